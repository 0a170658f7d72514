"""Adamax (Kingma & Ba, 2015, section 7.1): Adam with the infinity norm in place of the second moment."""
from __future__ import annotations

import numpy as np

from normlab.optim.adam import check_adam_options
from normlab.optim.optimizer import Optimizer, lerp_

__all__ = ["Adamax"]


class Adamax(Optimizer):
    """Adamax, step for step equal to ``torch.optim.Adamax`` (arXiv:1412.6980, section 7.1).

    For each parameter with a gradient (g = -grad when ``maximize``), at step t::

        g <- g + weight_decay * p
        m <- m + (1 - beta1) * (g - m)
        u <- max(beta2 * u, |g| + eps)
        p <- p - lr / (1 - beta1^t) * m / u

    State per parameter: ``step``, ``exp_avg`` (m) and ``exp_inf`` (u).

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Linear(3, 1)
    >>> opt = normlab.optim.Adamax(model.parameters())
    >>> opt.zero_grad(); model(normlab.randn(8, 3)).pow(2).mean().backward(); opt.step()
    """

    _elementwise_state = ("exp_avg", "exp_inf")

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _check_options(self, options: dict, group_index) -> None:
        check_adam_options("Adamax", options, group_index)

    def _check_param_state(self, param, state, group, index) -> None:
        if state:
            self._require_state(state, ("step", "exp_avg", "exp_inf"), index)

    def _update_group(self, group: dict) -> None:
        lr, eps = float(group["lr"]), float(group["eps"])
        beta1, beta2 = (float(b) for b in group["betas"])
        weight_decay = float(group["weight_decay"])
        for p, g in self._with_gradients(group):
            state = self._stepped_state(p, exp_avg=0, exp_inf=0)
            g = self._decay(p, g, weight_decay)
            exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
            lerp_(exp_avg, g, 1 - beta1)
            exp_inf *= beta2
            np.maximum(exp_inf, np.abs(g) + eps, out=exp_inf)
            clr = lr / (1 - beta1 ** float(state["step"]))
            p._data += ((-clr) * exp_avg) / exp_inf  # torch's addcdiv order
