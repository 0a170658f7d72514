"""RMSprop (Hinton, 2012, Coursera lecture 6.5), with torch's centered and momentum variants."""
from __future__ import annotations

import numpy as np

from normlab.optim.optimizer import Optimizer, check_bool, check_real, ema_square_, lerp_

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop, step for step equal to ``torch.optim.RMSprop``.

    Divides each gradient by a running root mean square of its recent values,
    so a parameter whose gradients are tiny (a vanishing-gradient layer) moves
    as fast as one whose gradients are large. For each parameter with a
    gradient (g = -grad when ``maximize``)::

        g <- g + weight_decay * p
        v <- alpha * v + (1 - alpha) * g * g
        m <- alpha * m + (1 - alpha) * g                  (centered: m estimates E[g])
        avg <- sqrt(v - m * m) + eps   if centered  else  sqrt(v) + eps
        b <- momentum * b + g / avg;  p <- p - lr * b     (momentum > 0)
        p <- p - lr * g / avg                             (otherwise)

    State per parameter: ``step``, ``square_avg`` (v), ``grad_avg`` (m, when
    centered) and ``momentum_buffer`` (b, when momentum > 0), as in torch.

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Linear(3, 1)
    >>> opt = normlab.optim.RMSprop(model.parameters(), lr=1e-2, momentum=0.9, centered=True)
    >>> opt.zero_grad(); model(normlab.randn(8, 3)).pow(2).mean().backward(); opt.step()
    """

    _elementwise_state = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict, group_index) -> None:
        for name in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            check_real("RMSprop", name, options[name], group_index, minimum=0)
        check_bool("RMSprop", "centered", options["centered"], group_index)
        check_bool("RMSprop", "maximize", options["maximize"], group_index)

    def _check_param_state(self, param, state, group, index) -> None:
        if state:
            required = ["step", "square_avg"] + (["momentum_buffer"] if float(group["momentum"]) > 0 else []) + (
                ["grad_avg"] if group["centered"] else [])
            self._require_state(state, required, index)

    def _update_group(self, group: dict) -> None:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        momentum, centered = float(group["momentum"]), bool(group["centered"])
        weight_decay = float(group["weight_decay"])
        for p, g in self._with_gradients(group):
            # Buffers for options switched on after the first step start at zero.
            state = self._stepped_state(p, square_avg=0)
            g = self._decay(p, g, weight_decay)
            ema_square_(state["square_avg"], g, alpha)
            if centered:
                grad_avg = state.setdefault("grad_avg", np.zeros_like(p._data))
                lerp_(grad_avg, g, 1 - alpha)
                avg = np.sqrt(state["square_avg"] - grad_avg * grad_avg)
            else:
                avg = np.sqrt(state["square_avg"])
            avg += eps
            if momentum > 0:
                buf = state.setdefault("momentum_buffer", np.zeros_like(p._data))
                buf *= momentum
                buf += g / avg
                p._data += (-lr) * buf
            else:
                p._data += ((-lr) * g) / avg  # torch's addcdiv order: (value * g) / avg
