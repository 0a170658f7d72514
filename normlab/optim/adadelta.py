"""Adadelta (Zeiler, 2012): a step size in the units of the parameter, no global rate to tune."""
from __future__ import annotations

import numpy as np

from normlab.optim.optimizer import Optimizer, check_bool, check_real, ema_square_

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta, step for step equal to ``torch.optim.Adadelta`` (Zeiler, 2012, arXiv:1212.5701).

    The step is the gradient times RMS[previous steps] / RMS[gradients], so its
    units are those of the parameter. For each parameter with a gradient
    (g = -grad when ``maximize``)::

        g <- g + weight_decay * p
        v <- rho * v + (1 - rho) * g * g
        delta <- sqrt(u + eps) / sqrt(v + eps) * g
        u <- rho * u + (1 - rho) * delta * delta
        p <- p - lr * delta

    State per parameter: ``step``, ``square_avg`` (v) and ``acc_delta`` (u).

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Linear(3, 1)
    >>> opt = normlab.optim.Adadelta(model.parameters())
    >>> opt.zero_grad(); model(normlab.randn(8, 3)).pow(2).mean().backward(); opt.step()
    """

    _elementwise_state = ("square_avg", "acc_delta")

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict, group_index) -> None:
        check_real("Adadelta", "lr", options["lr"], group_index, minimum=0)
        check_real("Adadelta", "rho", options["rho"], group_index, minimum=0, maximum=1)
        check_real("Adadelta", "eps", options["eps"], group_index, minimum=0)
        check_real("Adadelta", "weight_decay", options["weight_decay"], group_index, minimum=0)
        check_bool("Adadelta", "maximize", options["maximize"], group_index)

    def _check_param_state(self, param, state, group, index) -> None:
        if state:
            self._require_state(state, ("step", "square_avg", "acc_delta"), index)

    def _update_group(self, group: dict) -> None:
        lr, rho, eps = float(group["lr"]), float(group["rho"]), float(group["eps"])
        weight_decay = float(group["weight_decay"])
        for p, g in self._with_gradients(group):
            state = self._stepped_state(p, square_avg=0, acc_delta=0)
            g = self._decay(p, g, weight_decay)
            ema_square_(state["square_avg"], g, rho)
            std = np.sqrt(state["square_avg"] + eps)
            delta = np.sqrt(state["acc_delta"] + eps)
            delta /= std
            delta *= g
            ema_square_(state["acc_delta"], delta, rho)
            p._data += (-lr) * delta
