"""RAdam (Liu et al., 2020): Adam with the variance of its adaptive rate rectified in early steps."""
from __future__ import annotations

import numpy as np

from normlab.optim.adam import check_adam_options
from normlab.optim.optimizer import Optimizer, check_bool, ema_square_, lerp_

__all__ = ["RAdam"]


class RAdam(Optimizer):
    """RAdam, step for step equal to ``torch.optim.RAdam`` (Liu et al., ICLR 2020, arXiv:1908.03265).

    In the first steps the second-moment estimate rests on too few samples and
    the adaptive rate's variance is huge; RAdam takes plain momentum steps
    until the approximated simple moving average is long enough (rho_t > 5),
    then scales the Adam step by the rectification r_t. For each parameter
    with a gradient (g = -grad when ``maximize``), at step t::

        g <- g + weight_decay * p        (decoupled_weight_decay: p <- p (1 - lr weight_decay) instead)
        m <- m + (1 - beta1) (g - m);    v <- beta2 v + (1 - beta2) g g
        rho_inf = 2 / (1 - beta2) - 1;   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        m_hat = m / (1 - beta1^t)
        p <- p - lr m_hat r_t sqrt(1 - beta2^t) / (sqrt(v) + eps)     if rho_t > 5
        p <- p - lr m_hat                                            otherwise
        r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))

    State per parameter: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v).

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Linear(3, 1)
    >>> opt = normlab.optim.RAdam(model.parameters(), lr=1e-2)
    >>> opt.zero_grad(); model(normlab.randn(8, 3)).pow(2).mean().backward(); opt.step()
    """

    _elementwise_state = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict, group_index) -> None:
        check_adam_options("RAdam", options, group_index)
        check_bool("RAdam", "decoupled_weight_decay", options["decoupled_weight_decay"], group_index)

    def _check_param_state(self, param, state, group, index) -> None:
        if state:
            self._require_state(state, ("step", "exp_avg", "exp_avg_sq"), index)

    def _update_group(self, group: dict) -> None:
        lr, eps = float(group["lr"]), float(group["eps"])
        beta1, beta2 = (float(b) for b in group["betas"])
        weight_decay, decoupled = float(group["weight_decay"]), bool(group["decoupled_weight_decay"])
        for p, g in self._with_gradients(group):
            state = self._stepped_state(p, exp_avg=0, exp_avg_sq=0)
            step = float(state["step"])
            g = self._decay(p, g, weight_decay, lr, decoupled)
            lerp_(state["exp_avg"], g, 1 - beta1)
            ema_square_(state["exp_avg_sq"], g, beta2)
            bias_correction1 = 1 - beta1 ** step
            bias_correction2 = 1 - beta2 ** step
            m_hat = state["exp_avg"] / bias_correction1
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
            if rho_t > 5.0:
                adaptive_lr = (bias_correction2 ** 0.5) / (np.sqrt(state["exp_avg_sq"]) + eps)
                rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
                p._data -= m_hat * lr * adaptive_lr * rect
            else:
                p._data -= m_hat * lr
