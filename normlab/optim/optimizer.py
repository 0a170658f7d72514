"""``Optimizer``: parameter groups, per-parameter state and torch's ``state_dict`` layout.

An optimizer holds ``param_groups`` (a list of dicts: ``"params"`` plus that
group's options, e.g. ``"lr"``) and ``state`` (a dict from each Parameter to
its own arrays, e.g. a momentum buffer). Subclasses only write
``_update_group`` (the update rule) and say which options and state they have.

``state_dict()`` uses torch's layout, with NumPy arrays instead of tensors::

    {"state": {0: {"momentum_buffer": array(...)}, ...},
     "param_groups": [{"lr": 0.1, ..., "params": [0, 1]}, ...]}

so a torch optimizer's state dict (converted to NumPy) loads into the
normlab optimizer with the same parameters, and the reverse.

>>> import normlab, normlab.nn as nn, normlab.optim as optim
>>> model = nn.Linear(3, 2)
>>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> model(normlab.randn(4, 3)).sum().backward()
>>> opt.step()
>>> sorted(opt.state_dict()["state"])
[0, 1]
"""
from __future__ import annotations

import copy
import numbers
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from normlab.autograd.grad_mode import enable_grad
from normlab.autograd.tensor import Tensor

__all__ = ["Optimizer"]


# --------------------------------------------------------------- option checks
def _where(group_index: int | None) -> str:
    return "" if group_index is None else f" in param group {group_index}"


def check_real(owner: str, name: str, value, group_index: int | None = None, *, minimum: float | None = None,
               below: float | None = None, maximum: float | None = None) -> float:
    """Return ``value`` as a float, or raise: a real number (not a bool), >= minimum and < below (or <= maximum)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: expected {name} to be a real number{_where(group_index)}, got {value!r}")
    value_f = float(value)
    if minimum is not None and maximum is not None:
        if not minimum <= value_f <= maximum:
            raise ValueError(f"{owner}: expected {name} in [{minimum:g}, {maximum:g}]{_where(group_index)}, "
                             f"got {value!r}")
    elif minimum is not None and below is not None:
        if not minimum <= value_f < below:  # also refuses NaN
            raise ValueError(f"{owner}: expected {name} in [{minimum:g}, {below:g}){_where(group_index)}, got {value!r}")
    elif minimum is not None and not value_f >= minimum:
        raise ValueError(f"{owner}: expected {name} >= {minimum:g}{_where(group_index)}, got {value!r}")
    elif value_f != value_f:
        raise ValueError(f"{owner}: expected {name} to be a number{_where(group_index)}, got nan")
    return value_f


def check_bool(owner: str, name: str, value, group_index: int | None = None) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: expected {name} to be a bool{_where(group_index)}, got {value!r}")
    return bool(value)


def check_betas(owner: str, betas, group_index: int | None = None) -> tuple[float, float]:
    """Return ``betas`` as two floats, each in [0, 1), or raise (Adam and its relatives)."""
    if isinstance(betas, (str, bytes, numbers.Number)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise ValueError(f"{owner}: expected betas to be a pair (beta1, beta2), got {betas!r}")
    return (check_real(owner, "betas[0]", betas[0], group_index, minimum=0, below=1),
            check_real(owner, "betas[1]", betas[1], group_index, minimum=0, below=1))


def lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """start <- start + weight * (end - start), in place, with torch's two formulas.

    torch's lerp switches formula at |weight| = 0.5 to stay accurate near both ends;
    matching it keeps float64 results equal to the last bits.
    """
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        np.subtract(end, (end - start) * (1 - weight), out=start)


def ema_square_(average: np.ndarray, g: np.ndarray, decay: float) -> None:
    """average <- decay * average + (1 - decay) * g * g, in place, in torch's order (mul_ then addcmul_)."""
    average *= decay
    average += ((1 - decay) * g) * g


def _as_array(value, what: str) -> np.ndarray:
    """An ndarray from an ndarray, a normlab Tensor, a NumPy/Python scalar or anything with ``__array__``."""
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, (np.ndarray, np.generic, numbers.Number)) or hasattr(value, "__array__"):
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"{what}: expected a numeric array, got {type(value).__name__}")
        return array
    raise TypeError(f"{what}: expected an array, got {type(value).__name__}")


def _copy_value(value):
    """A copy of one state-dict value: arrays are copied, containers rebuilt, scalars kept."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Tensor):
        return value._data.copy()
    if isinstance(value, (list, tuple, dict)):
        return copy.deepcopy(value)
    return value


class Optimizer:
    """Base class of the optimizers (same interface as ``torch.optim.Optimizer``).

    ``params`` is an iterable of Tensors, of ``(name, Tensor)`` pairs, or of
    dicts (parameter groups) each with a ``"params"`` entry and optional
    per-group options that override ``defaults``.
    """

    #: State entries with one value per parameter element (same shape and dtype as the parameter).
    _elementwise_state: tuple[str, ...] = ()

    def __init__(self, params, defaults: dict) -> None:
        self.defaults = dict(defaults)
        self._check_options(self.defaults, None)
        # Keyed by the Parameter object itself (Tensors hash by identity), like torch.
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(
                f"{self._name}: params should be an iterable of Tensors or dicts, got a single Tensor "
                f"(wrap it in a list)"
            )
        if isinstance(params, Mapping):
            raise TypeError(
                f"{self._name}: params should be an iterable of Tensors or dicts, got a dict (wrap it in a list)"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{self._name}: optimizer parameters need to be organized in ordered collections, but the "
                f"ordering of tensors in sets changes between runs; please use a list instead"
            )
        groups = list(params)
        if len(groups) == 0:
            raise ValueError(f"{self._name}: optimizer got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # -------------------------------------------------- subclass interface
    def _check_options(self, options: dict, group_index: int | None) -> None:
        """Raise when an option is out of range (subclasses check theirs)."""

    def _check_param_state(self, param: Tensor, state: dict, group: dict, index) -> None:
        """Raise when a loaded per-parameter state entry is incomplete (subclasses check theirs)."""

    def _update_group(self, group: dict) -> None:
        raise NotImplementedError(f"{self._name} has no update rule")

    # ------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict) -> None:
        """Append a parameter group; its missing options are taken from ``defaults``."""
        if not isinstance(param_group, Mapping):
            raise TypeError(f"{self._name}: param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{self._name}: param_group must have a 'params' entry, got keys {sorted(param_group)}")
        group = dict(param_group)  # never mutate the caller's dict
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{self._name}: optimizer parameters need to be organized in ordered collections, but the "
                f"ordering of tensors in sets changes between runs; please use a list instead"
            )
        else:
            params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:
            if len(names) != len(params):
                raise ValueError(f"{self._name}: all params of a group should be with or without names")
            params = [p[1] for p in params]
            group["param_names"] = names
        group_index = len(self.param_groups)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{self._name}: optimizer can only optimize Tensors, but one of the params is a {type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError(f"{self._name}: can't optimize a non-leaf Tensor")
            if p.dtype.kind != "f":
                raise TypeError(f"{self._name}: can only optimize floating-point Tensors, got dtype {p.dtype}")
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            # torch only warns and then updates such a parameter twice per step.
            raise ValueError(f"{self._name}: param group {group_index} contains the same parameter more than once")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_options(group, group_index)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if existing.intersection(ids):
            raise ValueError(f"{self._name}: some parameters appear in more than one parameter group")
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: to None (default, like torch) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad._data[...] = 0
                    p.grad._bump_version()

    # --------------------------------------------------------------- step
    def step(self, closure=None):
        """Update every parameter that has a gradient; ``closure`` re-evaluates the loss and is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        # Everything is checked before the first parameter changes.
        for index, group in enumerate(self.param_groups):
            self._check_options(group, index)
            for p in group["params"]:
                if p.grad is not None and np.shape(p.grad) != p.shape:
                    raise ValueError(
                        f"{self._name}: expected the gradient of a parameter of shape {p.shape} to have the same "
                        f"shape, got {np.shape(p.grad)}"
                    )
        for group in self.param_groups:
            self._update_group(group)
            for p in group["params"]:
                if p.grad is not None:
                    p._bump_version()  # an optimizer step is an in-place change (torch's rule)
        return loss

    @staticmethod
    def _gradient(p: Tensor, maximize: bool) -> np.ndarray:
        """The gradient to descend along: -grad when maximizing (a new array, the stored grad is untouched)."""
        grad = np.asarray(p.grad)
        if grad.dtype != p.dtype:
            grad = grad.astype(p.dtype)
        return -grad if maximize else grad

    def _with_gradients(self, group: dict):
        """``(p, g)`` for each parameter of ``group`` that has a gradient; ``g`` is negated when maximizing."""
        maximize = bool(group["maximize"])
        for p in group["params"]:
            if p.grad is not None:
                yield p, self._gradient(p, maximize)

    def _stepped_state(self, p: Tensor, **fill: float) -> dict:
        """``state[p]`` with its step count advanced by one.

        Created on the parameter's first step as torch does: ``step`` a 0-d
        float32 array, and one array per keyword, shaped like ``p`` and filled
        with that keyword's value (e.g. ``exp_avg=0``).
        """
        state = self.state[p]
        if len(state) == 0:
            state["step"] = np.array(0.0, dtype=np.float32)
            for name, value in fill.items():
                state[name] = np.full_like(p._data, value)
        state["step"] += 1
        return state

    @staticmethod
    def _decay(p: Tensor, g: np.ndarray, weight_decay: float, lr: float = 0.0, decoupled: bool = False) -> np.ndarray:
        """Weight decay: the L2 gradient ``g + weight_decay * p``, or (decoupled, Loshchilov & Hutter, 2019)
        ``p <- p * (1 - lr * weight_decay)`` in place with ``g`` unchanged. Returns the gradient to use."""
        if weight_decay == 0:
            return g
        if decoupled:
            p._data *= 1 - lr * weight_decay
            return g
        return g + weight_decay * p._data

    # ---------------------------------------------------------- state dict
    def state_dict(self) -> dict:
        """``{"state": {index: {name: array}}, "param_groups": [{options, "params": [index]}]}`` (copies)."""
        index_of: dict[int, int] = {}
        start = 0
        packed_groups = []
        for group in self.param_groups:
            packed = {k: _copy_value(v) for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                index_of.setdefault(id(p), i)
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            start += len(group["params"])
            packed_groups.append(packed)
        packed_state = {
            index_of[id(p)]: {k: _copy_value(v) for k, v in s.items()}
            for p, s in self.state.items()
            if id(p) in index_of
        }
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict) -> None:
        """Load a ``state_dict()`` (normlab's or torch's converted to NumPy); everything is checked first."""
        name = self._name
        if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}: expected a state dict with 'state' and 'param_groups' entries")
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not all(isinstance(g, Mapping) for g in saved_groups):
            raise ValueError(f"{name}: expected 'param_groups' to be a list of dicts")
        if not isinstance(saved_state, Mapping):
            raise ValueError(f"{name}: expected 'state' to be a dict, got {type(saved_state).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: loaded state dict has {len(saved_groups)} parameter groups, "
                f"the optimizer has {len(self.param_groups)}"
            )
        param_of: dict = {}
        new_groups = []
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            saved_ids = saved.get("params")
            if not isinstance(saved_ids, (list, tuple)):
                raise ValueError(f"{name}: expected param group {index} of the state dict to list its 'params'")
            if len(saved_ids) != len(group["params"]):
                raise ValueError(
                    f"{name}: loaded param group {index} has {len(saved_ids)} parameters, "
                    f"the optimizer's group has {len(group['params'])}"
                )
            for saved_id, p in zip(saved_ids, group["params"]):
                if isinstance(saved_id, bool) or not isinstance(saved_id, numbers.Integral):
                    raise ValueError(f"{name}: expected integer parameter ids in param group {index}, got {saved_id!r}")
                param_of[int(saved_id)] = p
            new_group = {k: _copy_value(v) for k, v in saved.items() if k != "params"}
            # Options missing from the file (an older or foreign state dict) keep the optimizer's values.
            for key, value in group.items():
                if key != "params":
                    new_group.setdefault(key, value)
            new_group["params"] = group["params"]
            self._check_options(new_group, index)
            new_groups.append(new_group)
        group_of = {id(p): g for g in new_groups for p in g["params"]}
        new_state: defaultdict = defaultdict(dict)
        for key, entry in saved_state.items():
            if isinstance(key, bool) or not isinstance(key, numbers.Integral) or int(key) not in param_of:
                raise ValueError(f"{name}: the state dict has state for parameter {key!r}, which is in no param group")
            if not isinstance(entry, Mapping):
                raise ValueError(f"{name}: expected the state of parameter {key} to be a dict, got {type(entry).__name__}")
            p = param_of[int(key)]
            loaded = {k: self._load_state_value(p, k, v, key) for k, v in entry.items()}
            self._check_param_state(p, loaded, group_of[id(p)], key)
            new_state[p] = loaded
        self.param_groups = new_groups
        self.state = new_state

    def _load_state_value(self, p: Tensor, key: str, value, index):
        """A private copy of one loaded state value, cast to the parameter's dtype where it is per-element."""
        if value is None:
            return None
        where = f"{self._name}: state '{key}' of parameter {index}"
        if key == "step":
            step = _as_array(value, where)
            if step.size != 1 or step.dtype.kind not in "iuf" or not np.isfinite(step).all() or float(step.reshape(())) < 0:
                raise ValueError(f"{where}: expected a non-negative scalar step count, got {value!r}")
            # A 0-d float array, as torch stores its step tensor.
            return np.array(step.reshape(()), dtype=step.dtype if step.dtype.kind == "f" else np.float32)
        array = _as_array(value, where)
        if key in self._elementwise_state:
            if array.shape != p.shape:
                raise ValueError(f"{where}: expected shape {p.shape}, got {array.shape}")
            if array.dtype.kind not in "iuf":
                raise ValueError(f"{where}: expected a real array, got dtype {array.dtype}")
            return np.array(array, dtype=p.dtype, copy=True)
        return np.array(array, copy=True)

    def _require_state(self, state: dict, keys, index) -> None:
        for key in keys:
            if key not in state or state[key] is None:
                raise ValueError(f"{self._name}: the state of parameter {index} is missing '{key}'")

    # ---------------------------------------------------------------- repr
    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)
