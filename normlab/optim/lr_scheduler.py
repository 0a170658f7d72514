"""Learning-rate schedules with ``torch.optim.lr_scheduler``'s names, arguments and sequences.

A scheduler owns an optimizer and rewrites each parameter group's ``"lr"``
(and, for the cyclic ones, its momentum or beta1) every time ``step()`` is
called, after ``optimizer.step()``::

    opt = normlab.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = normlab.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(epochs):
        train(...)            # opt.step() per batch
        sched.step()          # lr: 0.1 for epochs 0-29, 0.01 for 30-59, ...

Two forms, as in torch. ``step()`` uses the *chainable* form: the new lr is
computed from the group's current lr (so two schedulers on one optimizer
compose, e.g. a warm-up times a decay). ``step(epoch)`` (deprecated in torch)
jumps to ``epoch`` with the *closed form*, computed from ``base_lrs``, where
the scheduler has one. Both are written with torch's formulas in torch's order,
so the learning rates are equal to the last bit.

``state_dict()`` holds the scheduler's attributes under torch's names (a
copy; never the optimizer), so a torch scheduler's state dict loads here and
ours loads into torch.

>>> import normlab, normlab.nn as nn
>>> opt = normlab.optim.SGD(nn.Linear(2, 1).parameters(), lr=1.0)
>>> sched = normlab.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
>>> lrs = []
>>> for epoch in range(5):
...     opt.step(); lrs.append(sched.get_last_lr()[0]); sched.step()
>>> lrs
[1.0, 1.0, 0.5, 0.5, 0.25]
"""
from __future__ import annotations

import copy
import math
import numbers
import types
import warnings
import weakref
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping
from functools import partial, wraps

from normlab._checks import check_positive_int
from normlab.optim.optimizer import Optimizer, check_real

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
           "ExponentialLR", "SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler",
           "ReduceLROnPlateau", "CyclicLR", "CosineAnnealingWarmRestarts", "OneCycleLR"]

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where possible. "
    "Please use `scheduler.step()` to step the scheduler. During the deprecation, if epoch is different from "
    "None, the closed form is used instead of the new chainable form, where available."
)

#: Keys older torch versions wrote into a scheduler's state dict and no longer use.
_LEGACY_KEYS = frozenset({"verbose"})


def _check_optimizer(owner: str, optimizer) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{owner}: expected a normlab.optim Optimizer, got {type(optimizer).__name__}")


def _check_last_epoch(owner: str, last_epoch) -> int:
    if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) or last_epoch < -1:
        raise ValueError(f"{owner}: expected last_epoch to be an integer >= -1, got {last_epoch!r}")
    return int(last_epoch)


def _check_count(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{owner}: expected {name} to be a non-negative integer, got {value!r}")
    return int(value)


def _per_group(owner: str, name: str, optimizer: Optimizer, value) -> list:
    """``value`` once per parameter group: a list/tuple of that length, or one value repeated."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{owner}: expected {name} to have one value per param group "
                             f"({len(optimizer.param_groups)}), got {len(value)}")
        values = list(value)
    else:
        values = [value] * len(optimizer.param_groups)
    for v in values:
        check_real(owner, name, v)
    return values


def _group_values(optimizer: Optimizer, key: str) -> list:
    return [group[key] for group in optimizer.param_groups]


def _count_optimizer_steps(optimizer: Optimizer) -> None:
    """Wrap ``optimizer.step`` once so that it records that it ran (for the wrong-order warning, as torch)."""
    if getattr(optimizer.step, "_counted_by_lr_scheduler", False) or not hasattr(optimizer.step, "__func__"):
        return
    step = optimizer.step.__func__
    owner = weakref.ref(optimizer)  # no reference cycle through the wrapper

    @wraps(step)
    def counted_step(*args, **kwargs):
        opt = owner()
        opt._opt_called = True
        return step(opt, *args, **kwargs)

    counted_step._counted_by_lr_scheduler = True
    optimizer.step = counted_step


class _Flag:
    """Set ``owner.<name>`` to True for the duration of a ``with`` block."""

    def __init__(self, owner, name: str) -> None:
        self.owner, self.name = owner, name

    def __enter__(self):
        setattr(self.owner, self.name, True)

    def __exit__(self, *exc) -> None:
        setattr(self.owner, self.name, False)


class LRScheduler:
    """Base class: ``step()``, ``get_last_lr()``, ``last_epoch``, ``state_dict()``, as torch's ``LRScheduler``.

    A subclass writes ``get_lr()`` (the chainable form, from the groups'
    current lrs) and, where one exists, ``_get_closed_form_lr()`` (from
    ``base_lrs`` and ``last_epoch``). Building a scheduler takes its first
    step (epoch 0), so the optimizer starts at the schedule's first lr.
    """

    _get_lr_called_within_step = False
    _is_initial = False
    #: Attributes that are not part of ``state_dict()`` (besides the optimizer).
    _unsaved: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(type(self).__name__, optimizer)
        last_epoch = _check_last_epoch(type(self).__name__, last_epoch)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{type(self).__name__}: param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming with last_epoch >= 0 (load the optimizer's state dict first, or "
                                   "start a fresh run with last_epoch=-1)")
        self.base_lrs = _group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        _count_optimizer_steps(optimizer)
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        with _Flag(self, "_is_initial"):
            self.step()

    # ------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """The scheduler's attributes under torch's names (copies), without the optimizer."""
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                if key != "optimizer" and key not in self._unsaved}

    def load_state_dict(self, state_dict) -> None:
        """Restore attributes from ``state_dict()`` (normlab's or torch's); unknown keys are refused first."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{type(self).__name__}: expected a state dict (a dict), got {type(state_dict).__name__}")
        known = set(self.__dict__) | {"_is_initial", "_get_lr_called_within_step"}
        unknown = sorted(str(k) for k in state_dict if k not in known and k not in _LEGACY_KEYS)
        if unknown:
            raise ValueError(f"{type(self).__name__}: unexpected key(s) in state dict: {', '.join(unknown)}")
        self.__dict__.update({k: copy.deepcopy(v) for k, v in state_dict.items() if k not in _LEGACY_KEYS})

    def get_last_lr(self) -> list:
        """The learning rates the last ``step()`` set, one per parameter group."""
        return self._last_lr

    def get_lr(self) -> list:
        raise NotImplementedError(f"{type(self).__name__} has no get_lr()")

    def _current_lrs_times(self, factor: float) -> list:
        """Each group's current lr times ``factor`` (the chainable form's usual last line)."""
        return [group["lr"] * factor for group in self.optimizer.param_groups]

    def _warn_if_called_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                          UserWarning, stacklevel=3)

    # -------------------------------------------------------------- step
    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (chainable form), or jump to ``epoch`` (closed form; deprecated in torch)."""
        if self._step_count == 1:
            if not getattr(self.optimizer.step, "_counted_by_lr_scheduler", False):
                warnings.warn("Seems like `optimizer.step()` has been overridden after learning rate scheduler "
                              "initialization. Please, make sure to call `optimizer.step()` before "
                              "`lr_scheduler.step()`.", UserWarning, stacklevel=2)
            elif not getattr(self.optimizer, "_opt_called", False):
                warnings.warn("Detected call of `lr_scheduler.step()` before `optimizer.step()`. You should call "
                              "them in the opposite order: `optimizer.step()` before `lr_scheduler.step()`. "
                              "Failure to do this will result in skipping the first value of the learning rate "
                              "schedule.", UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        with _Flag(self, "_get_lr_called_within_step"):
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed_form = getattr(self, "_get_closed_form_lr", None)
                values = closed_form() if closed_form is not None else self.get_lr()
        if len(values) != len(self.optimizer.param_groups):
            raise ValueError(f"{type(self).__name__}: computed {len(values)} learning rates for "
                             f"{len(self.optimizer.param_groups)} param groups (was a group added?)")
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = _group_values(self.optimizer, "lr")


class _LambdaScheduler(LRScheduler):
    """Shared by LambdaLR and MultiplicativeLR: one function of the epoch per param group."""

    def __init__(self, optimizer: Optimizer, lr_lambda, last_epoch: int = -1) -> None:
        name = type(self).__name__
        _check_optimizer(name, optimizer)
        self.optimizer = optimizer
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(optimizer.param_groups):
                raise ValueError(f"{name}: expected {len(optimizer.param_groups)} lr_lambdas, got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
        for function in self.lr_lambdas:
            if not callable(function):
                raise TypeError(f"{name}: expected lr_lambda to be a function, got {type(function).__name__}")
        super().__init__(optimizer, last_epoch)

    def state_dict(self) -> dict:
        """As the base, with ``lr_lambdas``: None for a plain function, the attributes of a callable object."""
        state = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else copy.deepcopy(fn.__dict__)
                               for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict) -> None:
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", [None] * len(self.lr_lambdas))
        if len(saved) != len(self.lr_lambdas):
            raise ValueError(f"{type(self).__name__}: the state dict has {len(saved)} lr_lambdas, "
                             f"the scheduler {len(self.lr_lambdas)}")
        super().load_state_dict(state)
        for function, attributes in zip(self.lr_lambdas, saved):
            if attributes is not None:
                function.__dict__.update(attributes)


class LambdaLR(_LambdaScheduler):
    """lr = initial_lr * lr_lambda(epoch).

    >>> import normlab, normlab.nn as nn
    >>> opt = normlab.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    >>> warmup = normlab.optim.lr_scheduler.LambdaLR(opt, lambda epoch: min(1.0, (epoch + 1) / 5))
    """

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        return [base_lr * function(self.last_epoch) for function, base_lr in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(_LambdaScheduler):
    """lr <- lr * lr_lambda(epoch) at every step after the first."""

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * function(self.last_epoch)
                for function, group in zip(self.lr_lambdas, self.optimizer.param_groups)]


class StepLR(LRScheduler):
    """lr = initial_lr * gamma^(epoch // step_size): decay by ``gamma`` every ``step_size`` epochs.

    >>> import normlab, normlab.nn as nn
    >>> opt = normlab.optim.Adadelta(nn.Linear(2, 1).parameters(), lr=1.0)
    >>> sched = normlab.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = check_positive_int("StepLR", "step_size", step_size)
        self.gamma = check_real("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _group_values(self.optimizer, "lr")
        return self._current_lrs_times(self.gamma)

    def _get_closed_form_lr(self) -> list:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = initial_lr * gamma^(number of milestones <= epoch); a milestone listed twice decays twice."""

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1) -> None:
        milestones = list(milestones)
        if not all(isinstance(m, numbers.Integral) and not isinstance(m, bool) for m in milestones):
            raise TypeError(f"MultiStepLR: expected integer milestones, got {milestones!r}")
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = check_real("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self.last_epoch not in self.milestones:
            return _group_values(self.optimizer, "lr")
        return self._current_lrs_times(self.gamma ** self.milestones[self.last_epoch])

    def _get_closed_form_lr(self) -> list:
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch) for base_lr in self.base_lrs]


class ConstantLR(LRScheduler):
    """lr = initial_lr * factor for the first ``total_iters`` epochs, then initial_lr."""

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        check_real("ConstantLR", "factor", factor, minimum=0, maximum=1)
        self.factor = factor
        self.total_iters = _check_count("ConstantLR", "total_iters", total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self.last_epoch == 0:
            return self._current_lrs_times(self.factor)
        if self.last_epoch != self.total_iters:
            return _group_values(self.optimizer, "lr")
        return self._current_lrs_times(1.0 / self.factor)

    def _get_closed_form_lr(self) -> list:
        return [base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Linear warm-up (or decay): lr goes from initial_lr * start_factor to initial_lr * end_factor in total_iters."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        check_real("LinearLR", "start_factor", start_factor, minimum=0, maximum=1)
        if start_factor == 0:
            raise ValueError("LinearLR: expected start_factor in (0, 1], got 0 (the lr would start at zero)")
        check_real("LinearLR", "end_factor", end_factor, minimum=0, maximum=1)
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = check_positive_int("LinearLR", "total_iters", total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self.last_epoch == 0:
            return self._current_lrs_times(self.start_factor)
        if self._is_initial or self.last_epoch > self.total_iters:
            return _group_values(self.optimizer, "lr")
        # The ratio of consecutive factors: (s + (e - s) k / T) / (s + (e - s)(k - 1) / T).
        change = self.end_factor - self.start_factor
        ratio = 1.0 + change / (self.total_iters * self.start_factor + (self.last_epoch - 1) * change)
        return self._current_lrs_times(ratio)

    def _get_closed_form_lr(self) -> list:
        return [base_lr * (self.start_factor + (self.end_factor - self.start_factor)
                           * min(self.total_iters, self.last_epoch) / self.total_iters)
                for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = initial_lr * gamma^epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = check_real("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return self._current_lrs_times(self.gamma)

    def _get_closed_form_lr(self) -> list:
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class PolynomialLR(LRScheduler):
    """lr = initial_lr * (1 - min(epoch, total_iters) / total_iters)^power."""

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> None:
        self.total_iters = check_positive_int("PolynomialLR", "total_iters", total_iters)
        self.power = check_real("PolynomialLR", "power", power)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self._is_initial or self.last_epoch > self.total_iters:
            return _group_values(self.optimizer, "lr")
        decay = ((1.0 - self.last_epoch / self.total_iters)
                 / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
        return self._current_lrs_times(decay)

    def _get_closed_form_lr(self) -> list:
        return [base_lr * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
                for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2 (Loshchilov & Hutter, 2017, SGDR).

    Past ``T_max`` the cosine continues (the lr climbs back), as in torch.
    The chainable form multiplies by the ratio of consecutive cosine terms,
    so it composes with other schedulers.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        check_real("CosineAnnealingLR", "T_max", T_max)
        if not T_max > 0:
            raise ValueError(f"CosineAnnealingLR: expected T_max > 0, got {T_max!r}")
        check_real("CosineAnnealingLR", "eta_min", eta_min)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            # At the bottom of the cosine the ratio below is 0/0: add the increment instead.
            return [group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        return [(1 + math.cos(math.pi * self.last_epoch / self.T_max))
                / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
                * (group["lr"] - self.eta_min) + self.eta_min
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


def _check_schedulers(owner: str, schedulers, optimizer) -> None:
    if len(schedulers) < 1:
        raise ValueError(f"{owner}: expected at least one scheduler, got none")
    for index, scheduler in enumerate(schedulers):
        if not isinstance(scheduler, LRScheduler):
            raise TypeError(f"{owner}: expected a scheduler at index {index}, got {type(scheduler).__name__}")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(f"{owner}: ReduceLROnPlateau (index {index}) cannot be combined: its step() needs the "
                             "metric")
        if scheduler.optimizer is not optimizer:
            raise ValueError(f"{owner}: expected every scheduler to belong to the same optimizer, but the one at "
                             f"index {index} ({type(scheduler).__name__}) has another")


class _Composite(LRScheduler):
    """State dict of a scheduler made of schedulers: its own attributes plus one state dict per member."""

    def state_dict(self) -> dict:
        state = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict) -> None:
        state = dict(state_dict)
        members = state.pop("_schedulers", None)
        if members is None or len(members) != len(self._schedulers):
            raise ValueError(f"{type(self).__name__}: expected a state dict with {len(self._schedulers)} "
                             "'_schedulers' entries")
        LRScheduler.load_state_dict(self, state)
        for scheduler, member in zip(self._schedulers, members):
            scheduler.load_state_dict(member)


class SequentialLR(_Composite):
    """Runs ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` (restarted at its epoch 0), ...

    >>> import normlab, normlab.nn as nn
    >>> from normlab.optim import lr_scheduler as S
    >>> opt = normlab.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    >>> sched = S.SequentialLR(opt, [S.LinearLR(opt, 0.1, total_iters=5), S.CosineAnnealingLR(opt, T_max=20)],
    ...                        milestones=[5])
    """

    def __init__(self, optimizer: Optimizer, schedulers, milestones, last_epoch: int = -1) -> None:
        _check_optimizer("SequentialLR", optimizer)
        schedulers = list(schedulers)
        _check_schedulers("SequentialLR", schedulers, optimizer)
        milestones = list(milestones)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: expected one milestone fewer than schedulers, got {len(schedulers)} "
                             f"schedulers and {len(milestones)} milestones")
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = _check_last_epoch("SequentialLR", last_epoch) + 1
        self.optimizer = optimizer
        # Building each member stepped it once: put the lr back and rewind every member by that step.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._rewind(self)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def _rewind(self, scheduler) -> None:
        if hasattr(scheduler, "_schedulers"):
            for member in scheduler._schedulers:
                self._rewind(member)
        elif hasattr(scheduler, "last_epoch"):
            scheduler.last_epoch -= 1

    def step(self) -> None:
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)  # a new phase starts at its epoch 0 (closed form)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Steps every scheduler at once, each on the lr the previous left (their factors multiply)."""

    def __init__(self, schedulers, optimizer: Optimizer | None = None) -> None:
        schedulers = list(schedulers)
        if not schedulers:
            raise ValueError("ChainedScheduler: expected at least one scheduler, got none")
        optimizer = optimizer or getattr(schedulers[0], "optimizer", None)
        _check_optimizer("ChainedScheduler", optimizer)
        _check_schedulers("ChainedScheduler", schedulers, optimizer)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = _group_values(optimizer, "lr")

    def step(self) -> None:
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = _group_values(self.optimizer, "lr")


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when a metric has stopped improving for ``patience`` epochs.

    ``step(metric)`` once per epoch. Improvement means ``metric < best * (1 - threshold)``
    (mode 'min', threshold_mode 'rel'), ``metric < best - threshold`` ('abs'),
    and the mirror images for mode 'max'. After a reduction, ``cooldown``
    epochs pass before bad epochs count again; the lr never goes below
    ``min_lr`` and changes smaller than ``eps`` are skipped.

    >>> import normlab, normlab.nn as nn
    >>> opt = normlab.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    >>> sched = normlab.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    >>> for loss in [1.0, 1.0, 1.0]:
    ...     sched.step(loss)
    >>> sched.get_last_lr()
    [0.0010000000000000002]
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr=0,
                 eps: float = 1e-8) -> None:
        name = "ReduceLROnPlateau"
        _check_optimizer(name, optimizer)
        check_real(name, "factor", factor, minimum=0, below=1)
        _check_count(name, "patience", patience)
        _check_count(name, "cooldown", cooldown)
        check_real(name, "threshold", threshold, minimum=0)
        check_real(name, "eps", eps, minimum=0)
        self.factor = factor
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
            self.min_lrs = _per_group(name, "min_lr", optimizer, min_lr)
        else:
            check_real(name, "min_lr", min_lr, minimum=0)
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _group_values(optimizer, "lr")
        self._init_is_better(mode, threshold, threshold_mode)
        self._reset()

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: expected mode 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: expected threshold_mode 'rel' or 'abs', got {threshold_mode!r}")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def step(self, metrics, epoch=None) -> None:
        """Record this epoch's metric (a number or a one-element tensor); reduce the lr on a plateau."""
        try:
            current = float(metrics)
        except (TypeError, ValueError):
            raise TypeError(f"ReduceLROnPlateau: expected the metric to be a number, got {type(metrics).__name__}") \
                from None
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = _group_values(self.optimizer, "lr")

    def _reduce_lr(self) -> None:
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"ReduceLROnPlateau: the optimizer has {len(self.optimizer.param_groups)} param "
                                   f"groups but min_lr was given for {len(self.min_lrs)}; set `min_lrs` to match")
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)


def _momentum_range(owner: str, scheduler, optimizer: Optimizer, base_momentum, max_momentum):
    """Check momentum cycling (SGD's ``momentum`` or Adam's beta1); the per-group (base, max) momenta."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError(f"{owner}: optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
    scheduler.use_beta1 = "betas" in optimizer.defaults
    return (_per_group(owner, "base_momentum", optimizer, base_momentum),
            _per_group(owner, "max_momentum", optimizer, max_momentum))


def _start_momentum(scheduler, optimizer: Optimizer, base_momentums: list, max_momentums: list) -> None:
    """Each group starts at its max momentum and remembers its range, as torch."""
    for high, low, group in zip(max_momentums, base_momentums, optimizer.param_groups):
        _set_momentum(scheduler, group, high)
        group["max_momentum"] = high
        group["base_momentum"] = low


def _set_momentum(scheduler, group: dict, momentum: float) -> None:
    if scheduler.use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


class CyclicLR(LRScheduler):
    """The lr cycles between ``base_lr`` and ``max_lr`` (Smith, 2017, "Cyclical Learning Rates"); step per batch.

    ``mode`` 'triangular' (constant amplitude), 'triangular2' (halved each
    cycle), 'exp_range' (scaled by gamma^iteration), or a custom ``scale_fn``.
    With ``cycle_momentum`` the momentum (or Adam's beta1) moves inversely.
    """

    def __init__(self, optimizer: Optimizer, base_lr, max_lr, step_size_up: int = 2000, step_size_down=None,
                 mode: str = "triangular", gamma: float = 1.0, scale_fn=None, scale_mode: str = "cycle",
                 cycle_momentum: bool = True, base_momentum: float = 0.8, max_momentum: float = 0.9,
                 last_epoch: int = -1) -> None:
        name = "CyclicLR"
        _check_optimizer(name, optimizer)
        last_epoch = _check_last_epoch(name, last_epoch)
        self.optimizer = optimizer
        base_lrs = _per_group(name, "base_lr", optimizer, base_lr)
        self.max_lrs = _per_group(name, "max_lr", optimizer, max_lr)
        step_size_up = float(check_positive_int(name, "step_size_up", step_size_up))
        step_size_down = (float(check_positive_int(name, "step_size_down", step_size_down))
                          if step_size_down is not None else step_size_up)
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError(f"CyclicLR: expected mode 'triangular', 'triangular2' or 'exp_range' (or a scale_fn), "
                             f"got {mode!r}")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"CyclicLR: expected scale_mode 'cycle' or 'iterations', got {scale_mode!r}")
        self.mode = mode
        self.gamma = check_real(name, "gamma", gamma)
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.base_momentums, self.max_momentums = _momentum_range(name, self, optimizer, base_momentum,
                                                                      max_momentum)
        # Everything is checked: now the groups change.
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
            if cycle_momentum:
                _start_momentum(self, optimizer, self.base_momentums, self.max_momentums)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    _unsaved = ("_scale_fn_ref",)

    def _init_scale_fn(self) -> None:
        if self._scale_fn_custom is not None:
            return
        if self.mode == "triangular":
            self._scale_fn_ref, self.scale_mode = (lambda x: 1.0), "cycle"
        elif self.mode == "triangular2":
            self._scale_fn_ref, self.scale_mode = (lambda x: 1 / (2.0 ** (x - 1))), "cycle"
        else:
            self._scale_fn_ref, self.scale_mode = partial(pow, self.gamma), "iterations"

    def scale_fn(self, x) -> float:
        return (self._scale_fn_custom or self._scale_fn_ref)(x)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle  # position in the cycle, in [0, 1)
        scale_factor = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        lrs = [base_lr + (max_lr - base_lr) * scale_factor * scale
               for base_lr, max_lr in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for group, low, high in zip(self.optimizer.param_groups, self.base_momentums, self.max_momentums):
                _set_momentum(self, group, high - (high - low) * scale_factor * scale)
        return lrs

    def state_dict(self) -> dict:
        state = super().state_dict()
        function = state.pop("_scale_fn_custom")
        state["_scale_fn_custom"] = (None if function is None or isinstance(function, types.FunctionType)
                                     else copy.deepcopy(function.__dict__))
        return state

    def load_state_dict(self, state_dict) -> None:
        state = dict(state_dict)
        attributes = state.pop("_scale_fn_custom", None)
        super().load_state_dict(state)
        if attributes is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(attributes)
        self._init_scale_fn()


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing restarted every T_i epochs, T_i = T_0 * T_mult^i (Loshchilov & Hutter, 2017, SGDR).

    ``step(epoch)`` accepts fractional epochs (e.g. ``epoch + batch / batches``).
    """

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_0 = check_positive_int("CosineAnnealingWarmRestarts", "T_0", T_0)
        self.T_i = T_0
        self.T_mult = check_positive_int("CosineAnnealingWarmRestarts", "T_mult", T_mult)
        check_real("CosineAnnealingWarmRestarts", "eta_min", eta_min)
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base_lr in self.base_lrs]

    def step(self, epoch=None) -> None:
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"CosineAnnealingWarmRestarts: expected a non-negative epoch, got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    # Restart n has begun when epoch >= T_0 (T_mult^n - 1) / (T_mult - 1).
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        with _Flag(self, "_get_lr_called_within_step"):
            lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = _group_values(self.optimizer, "lr")


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2017, "Super-Convergence"); step once per batch.

    The lr rises from max_lr / div_factor to max_lr over the first
    ``pct_start`` of ``total_steps``, then anneals (cosine or linear) to
    max_lr / (div_factor * final_div_factor); ``three_phase`` adds a symmetric
    descent before the final annealing. With ``cycle_momentum`` the momentum
    (SGD) or beta1 (Adam) moves the opposite way between ``base_momentum``
    and ``max_momentum``.

    >>> import normlab, normlab.nn as nn
    >>> opt = normlab.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
    >>> sched = normlab.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=100)
    """

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False, last_epoch: int = -1) -> None:
        name = "OneCycleLR"
        _check_optimizer(name, optimizer)
        last_epoch = _check_last_epoch(name, last_epoch)
        self.optimizer = optimizer
        if total_steps is not None:
            self.total_steps = check_positive_int(name, "total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (check_positive_int(name, "epochs", epochs)
                                * check_positive_int(name, "steps_per_epoch", steps_per_epoch))
        else:
            raise ValueError("OneCycleLR: you must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: expected pct_start to be a float in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: expected anneal_strategy 'cos' or 'linear', got {anneal_strategy!r}")
        check_real(name, "div_factor", div_factor)
        check_real(name, "final_div_factor", final_div_factor)
        up_end = float(pct_start * self.total_steps) - 1
        phases = [(up_end, "initial_lr", "max_lr", "max_momentum", "base_momentum")]
        if three_phase:
            phases.append((float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                           "base_momentum", "max_momentum"))
            phases.append((self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"))
        else:
            phases.append((self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"))
        keys = ("end_step", "start_lr", "end_lr", "start_momentum", "end_momentum")
        self._schedule_phases = [dict(zip(keys, phase)) for phase in phases]
        self._anneal_func_type = anneal_strategy
        max_lrs = _per_group(name, "max_lr", optimizer, max_lr)
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            momenta = _momentum_range(name, self, optimizer, base_momentum, max_momentum)
        # Everything is checked: now the groups change.
        if last_epoch == -1:
            for group, group_max_lr in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = group_max_lr / div_factor
                group["max_lr"] = group_max_lr
                group["min_lr"] = group["initial_lr"] / final_div_factor
            if cycle_momentum:
                _start_momentum(self, optimizer, *momenta)
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step_num} times; the schedule has total_steps "
                             f"{self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step_num <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step_num - start_step) / (end_step - start_step)
                    lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
                    if self.cycle_momentum:
                        _set_momentum(self, group, self._anneal(group[phase["start_momentum"]],
                                                                group[phase["end_momentum"]], pct))
                    break
                start_step = phase["end_step"]
        return lrs
