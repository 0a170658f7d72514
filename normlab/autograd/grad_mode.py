"""Switching gradient recording on and off: ``no_grad``, ``enable_grad``."""
from __future__ import annotations

import functools
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad are recorded."""
    return getattr(_state, "enabled", True)


def _set(enabled: bool) -> None:
    _state.enabled = bool(enabled)


class set_grad_enabled:
    """Context manager (and decorator) that sets gradient recording to ``mode``."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.previous = is_grad_enabled()
        _set(self.mode)  # like torch, the call itself takes effect

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        _set(self.previous)

    def __call__(self, fn):
        mode = self.mode
        _set(self.previous)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


class _GradModeContext:
    mode = True

    def __new__(cls, orig_func=None):
        if orig_func is not None:  # used as a bare decorator: @normlab.no_grad
            return cls()(orig_func)
        return super().__new__(cls)

    def __enter__(self) -> None:
        self.previous = is_grad_enabled()
        _set(self.mode)

    def __exit__(self, *exc) -> None:
        _set(self.previous)

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):
    """Context manager / decorator: nothing inside is recorded for backward.

    >>> import normlab
    >>> x = normlab.tensor([1.0, 2.0], requires_grad=True)
    >>> with normlab.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    mode = False


class enable_grad(_GradModeContext):
    """Context manager / decorator: recording is on inside, even within ``no_grad``."""

    mode = True
