"""Adagrad (Duchi, Hazan & Singer, 2011), with torch's learning-rate decay."""
from __future__ import annotations

import numpy as np

from normlab.optim.optimizer import Optimizer, check_bool, check_real

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad, step for step equal to ``torch.optim.Adagrad`` (JMLR 12, 2011).

    Each coordinate's step is divided by the root of the sum of all its past
    squared gradients: rarely or weakly driven coordinates keep a large
    effective rate. For each parameter with a gradient (g = -grad when
    ``maximize``), at step t::

        g <- g + weight_decay * p
        s <- s + g * g                                  (s starts at initial_accumulator_value)
        p <- p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    State per parameter, created for every parameter when the optimizer is
    built (as torch does): ``step`` and ``sum`` (s).

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Linear(3, 1)
    >>> opt = normlab.optim.Adagrad(model.parameters(), lr=0.1, lr_decay=1e-3)
    >>> opt.zero_grad(); model(normlab.randn(8, 3)).pow(2).mean().backward(); opt.step()
    """

    _elementwise_state = ("sum",)

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Append a group and create its parameters' state at once (torch does so only in the constructor)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            self.state[p]["step"] = np.array(0.0, dtype=np.float32)
            self.state[p]["sum"] = np.full_like(p._data, float(group["initial_accumulator_value"]))

    def _check_options(self, options: dict, group_index) -> None:
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_real("Adagrad", name, options[name], group_index, minimum=0)
        check_bool("Adagrad", "maximize", options["maximize"], group_index)

    def _check_param_state(self, param, state, group, index) -> None:
        self._require_state(state, ("step", "sum"), index)

    def _update_group(self, group: dict) -> None:
        lr, lr_decay, eps = float(group["lr"]), float(group["lr_decay"]), float(group["eps"])
        weight_decay = float(group["weight_decay"])
        for p, g in self._with_gradients(group):
            state = self._stepped_state(p)
            g = self._decay(p, g, weight_decay)
            clr = lr / (1 + (float(state["step"]) - 1) * lr_decay)
            state["sum"] += g * g
            std = np.sqrt(state["sum"])
            std += eps
            p._data += ((-clr) * g) / std  # torch's addcdiv order: (value * g) / std
