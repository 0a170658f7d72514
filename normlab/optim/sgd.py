"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""
from __future__ import annotations

import numpy as np

from normlab.optim.optimizer import Optimizer, check_bool, check_real

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD, step for step equal to ``torch.optim.SGD`` (Sutskever et al., 2013 for the momentum form).

    For each parameter with a gradient (g = -grad when ``maximize``)::

        g <- g + weight_decay * p                      (if weight_decay != 0)
        b <- g                                         (first step: no dampening)
        b <- momentum * b + (1 - dampening) * g        (later steps)
        g <- g + momentum * b  if nesterov  else  b    (if momentum != 0)
        p <- p - lr * g

    The momentum buffer lives in ``state[p]["momentum_buffer"]``.

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Linear(3, 1)
    >>> opt = normlab.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    >>> opt.zero_grad(); model(normlab.randn(8, 3)).pow(2).mean().backward(); opt.step()
    """

    _elementwise_state = ("momentum_buffer",)

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict, group_index) -> None:
        check_real("SGD", "lr", options["lr"], group_index, minimum=0)
        momentum = check_real("SGD", "momentum", options["momentum"], group_index, minimum=0)
        dampening = check_real("SGD", "dampening", options["dampening"], group_index)
        check_real("SGD", "weight_decay", options["weight_decay"], group_index, minimum=0)
        nesterov = check_bool("SGD", "nesterov", options["nesterov"], group_index)
        check_bool("SGD", "maximize", options["maximize"], group_index)
        if nesterov and (momentum <= 0 or dampening != 0):
            where = "" if group_index is None else f" (param group {group_index})"
            raise ValueError(
                f"SGD: nesterov momentum requires momentum > 0 and dampening == 0{where}, "
                f"got momentum={options['momentum']!r}, dampening={options['dampening']!r}"
            )

    def _check_param_state(self, param, state, group, index) -> None:
        if float(group["momentum"]) != 0 and state:
            self._require_state(state, ("momentum_buffer",), index)

    def _update_group(self, group: dict) -> None:
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        nesterov, maximize = bool(group["nesterov"]), bool(group["maximize"])
        for p in group["params"]:
            if p.grad is None:
                continue
            g = self._gradient(p, maximize)
            if weight_decay != 0:
                g = g + weight_decay * p._data
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    # torch starts the buffer at the gradient itself, without dampening.
                    buf = np.array(g, copy=True)
                    state["momentum_buffer"] = buf
                else:
                    buf *= momentum
                    buf += (1 - dampening) * g
                g = g + momentum * buf if nesterov else buf
            p._data -= lr * g
