"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), with torch's exact order of operations."""
from __future__ import annotations

import numpy as np

from normlab.optim.optimizer import Optimizer, check_betas, check_bool, check_real, ema_square_, lerp_

__all__ = ["Adam", "AdamW"]


def check_adam_options(name: str, options: dict, group_index) -> None:
    """The options Adam shares with its relatives (Adamax, NAdam, RAdam): lr, eps, betas, weight_decay, maximize."""
    check_real(name, "lr", options["lr"], group_index, minimum=0)
    check_real(name, "eps", options["eps"], group_index, minimum=0)
    check_betas(name, options["betas"], group_index)
    check_real(name, "weight_decay", options["weight_decay"], group_index, minimum=0)
    check_bool(name, "maximize", options["maximize"], group_index)


class Adam(Optimizer):
    """Adam, step for step equal to ``torch.optim.Adam`` (Kingma & Ba, 2015, arXiv:1412.6980).

    For each parameter with a gradient (g = -grad when ``maximize``), at step t::

        g <- g + weight_decay * p                  (L2 penalty; AdamW decays p instead)
        m <- m + (1 - beta1) * (g - m)
        v <- beta2 * v + (1 - beta2) * g * g
        v_max <- max(v_max, v)                     (amsgrad; then used in place of v)
        denom <- sqrt(v) / sqrt(1 - beta2^t) + eps
        p <- p - lr / (1 - beta1^t) * m / denom

    State per parameter: ``step`` (a 0-d float32 array, as torch), ``exp_avg``,
    ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Linear(3, 1)
    >>> opt = normlab.optim.Adam(model.parameters(), lr=1e-2)
    >>> opt.zero_grad(); model(normlab.randn(8, 3)).pow(2).mean().backward(); opt.step()
    """

    _elementwise_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict, group_index) -> None:
        check_adam_options(self._name, options, group_index)
        check_bool(self._name, "amsgrad", options["amsgrad"], group_index)

    def _check_param_state(self, param, state, group, index) -> None:
        if not state:
            return  # initialised lazily at the next step, as in torch
        required = ["step", "exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])
        self._require_state(state, required, index)

    def _update_group(self, group: dict) -> None:
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        amsgrad = bool(group["amsgrad"])
        for p, g in self._with_gradients(group):
            state = self._stepped_state(p, exp_avg=0, exp_avg_sq=0, **({"max_exp_avg_sq": 0} if amsgrad else {}))
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            # AdamW shrinks the weights directly, outside the adaptive scaling.
            g = self._decay(p, g, weight_decay, lr, decoupled=self._decoupled_weight_decay)
            lerp_(exp_avg, g, 1 - beta1)
            ema_square_(exp_avg_sq, g, beta2)

            step = float(state["step"])
            bias_correction1 = 1 - beta1 ** step
            bias_correction2 = 1 - beta2 ** step
            step_size = lr / bias_correction1
            bias_correction2_sqrt = bias_correction2 ** 0.5

            if amsgrad:
                # amsgrad switched on after some steps: start the running maximum now (torch raises KeyError).
                max_exp_avg_sq = state.setdefault("max_exp_avg_sq", np.zeros_like(p._data))
                np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
                second_moment = max_exp_avg_sq
            else:
                second_moment = exp_avg_sq
            # eps is added after the bias correction of sqrt(v), as in torch.
            denom = np.sqrt(second_moment) / bias_correction2_sqrt + eps
            p._data += ((-step_size) * exp_avg) / denom  # torch's addcdiv order: (value * m) / denom


class AdamW(Adam):
    """Adam with decoupled weight decay, equal to ``torch.optim.AdamW`` (Loshchilov & Hutter, 2019, arXiv:1711.05101).

    Before the Adam step: ``p <- p * (1 - lr * weight_decay)``; the gradient is
    not touched, so the decay is not rescaled by the second moment.

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Linear(3, 1)
    >>> opt = normlab.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    >>> opt.zero_grad(); model(normlab.randn(8, 3)).pow(2).mean().backward(); opt.step()
    """

    _decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
