"""NAdam (Dozat, 2016): Adam with Nesterov momentum, and torch's momentum-decay schedule."""
from __future__ import annotations

import numpy as np

from normlab.optim.adam import check_adam_options
from normlab.optim.optimizer import Optimizer, _as_array, check_bool, check_real, ema_square_, lerp_

__all__ = ["NAdam"]


class NAdam(Optimizer):
    """NAdam, step for step equal to ``torch.optim.NAdam`` (Dozat, 2016, "Incorporating Nesterov Momentum into Adam").

    The momentum coefficient follows a schedule ``mu_t = beta1 (1 - 0.5 * 0.96^(t psi))``
    (psi = ``momentum_decay``) and the step looks one momentum step ahead.
    For each parameter with a gradient (g = -grad when ``maximize``), at step t::

        g <- g + weight_decay * p        (decoupled_weight_decay: p <- p (1 - lr weight_decay) instead)
        P_t = mu_1 * ... * mu_t          (the state's ``mu_product``, a float32 scalar as in torch)
        m <- m + (1 - beta1) (g - m);    v <- beta2 v + (1 - beta2) g g
        denom = sqrt(v / (1 - beta2^t)) + eps
        p <- p - lr (1 - mu_t) / (1 - P_t) * g / denom - lr mu_{t+1} / (1 - P_t mu_{t+1}) * m / denom

    State per parameter: ``step``, ``mu_product``, ``exp_avg`` (m), ``exp_avg_sq`` (v).

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Linear(3, 1)
    >>> opt = normlab.optim.NAdam(model.parameters(), lr=1e-2)
    >>> opt.zero_grad(); model(normlab.randn(8, 3)).pow(2).mean().backward(); opt.step()
    """

    _elementwise_state = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict, group_index) -> None:
        check_adam_options("NAdam", options, group_index)
        check_real("NAdam", "momentum_decay", options["momentum_decay"], group_index, minimum=0)
        check_bool("NAdam", "decoupled_weight_decay", options["decoupled_weight_decay"], group_index)

    def _check_param_state(self, param, state, group, index) -> None:
        if state:
            self._require_state(state, ("step", "mu_product", "exp_avg", "exp_avg_sq"), index)

    def _load_state_value(self, p, key, value, index):
        if key != "mu_product" or value is None:
            return super()._load_state_value(p, key, value, index)
        where = f"NAdam: state 'mu_product' of parameter {index}"
        product = _as_array(value, where)
        if product.size != 1 or product.dtype.kind != "f" or not np.isfinite(product).all():
            raise ValueError(f"{where}: expected a finite scalar, got {value!r}")
        return np.array(product.reshape(()), copy=True)

    def _update_group(self, group: dict) -> None:
        lr, eps = float(group["lr"]), float(group["eps"])
        beta1, beta2 = (float(b) for b in group["betas"])
        weight_decay, momentum_decay = float(group["weight_decay"]), float(group["momentum_decay"])
        decoupled = bool(group["decoupled_weight_decay"])
        for p, g in self._with_gradients(group):
            state = self._stepped_state(p, exp_avg=0, exp_avg_sq=0)
            state.setdefault("mu_product", np.array(1.0, dtype=np.float32))
            step = float(state["step"])
            bias_correction2 = 1 - beta2 ** step
            g = self._decay(p, g, weight_decay, lr, decoupled)
            mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
            mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
            state["mu_product"] *= mu  # in the product's own precision (float32), as torch
            mu_product = float(state["mu_product"])
            mu_product_next = mu_product * mu_next
            lerp_(state["exp_avg"], g, 1 - beta1)
            ema_square_(state["exp_avg_sq"], g, beta2)
            denom = np.sqrt(state["exp_avg_sq"] / bias_correction2)
            denom += eps
            p._data += ((-lr * (1.0 - mu) / (1.0 - mu_product)) * g) / denom
            p._data += (((-lr * mu_next) / (1.0 - mu_product_next)) * state["exp_avg"]) / denom
