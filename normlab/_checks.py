"""Argument checks shared by every layer of normlab.

Every public entry point validates its input *before* touching any state and
raises an error that names the layer, what it expected and what it was given.
This module sits below everything else (it imports only NumPy), so ops,
autograd and nn can all use it.
"""
from __future__ import annotations

import numbers
import sys

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_float(name: str, array: np.ndarray, what: str = "input") -> None:
    """Raise TypeError unless ``array`` is float32 or float64."""
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected a floating-point {what} (float32 or float64), got dtype {array.dtype}"
        )


def check_ndim(name: str, array: np.ndarray, allowed: tuple[int, ...], what: str = "input",
               layout: str | None = None) -> None:
    """Raise ValueError unless ``array.ndim`` is one of ``allowed``."""
    if array.ndim not in allowed:
        dims = " or ".join(f"{d}D" for d in allowed)
        hint = f" {layout}" if layout else ""
        raise ValueError(
            f"{name}: expected {dims} {what}{hint}, got {array.ndim}D {what} of shape {tuple(array.shape)}"
        )


def check_size(name: str, what: str, expected: int, given: int) -> None:
    """Raise ValueError when a size does not match."""
    if expected != given:
        raise ValueError(f"{name}: expected {what} of size {expected}, got {given}")


def check_positive_int(name: str, arg: str, value) -> int:
    """Return ``value`` as an int, or raise when it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name}: expected {arg} to be a positive integer, got {value!r}")
    return int(value)


def check_probability(name: str, arg: str, value) -> float:
    """Return ``value`` as a float in [0, 1], or raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected {arg} to be a probability in [0, 1], got {value!r}")
    return float(value)


def tuple_of(name: str, arg: str, value, n: int, minimum: int | None = None) -> tuple[int, ...]:
    """Expand an int or a length-``n`` sequence of ints into a tuple of ``n`` ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise TypeError(f"{name}: expected {arg} to be an int or a tuple of {n} ints, got {value!r}") from None
        if len(values) == 1 and n > 1:
            values = values * n
        if len(values) != n or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{name}: expected {arg} to be an int or a tuple of {n} ints, got {value!r}")
        values = tuple(int(v) for v in values)
    if minimum is not None and any(v < minimum for v in values):
        raise ValueError(f"{name}: expected every {arg} to be >= {minimum}, got {value!r}")
    return values


def check_same_dtype(name: str, input: np.ndarray, **parameters) -> None:
    """Raise TypeError when a parameter (or buffer) has another dtype than the input.

    torch raises here; NumPy would silently promote (a float64 input through
    a float32 layer would come out float64). ``parameters`` maps a name to an
    array or None (skipped).

    >>> check_same_dtype("Linear", np.ones(2), weight=np.ones(2, np.float32))
    Traceback (most recent call last):
    ...
    TypeError: Linear: expected input of the parameters' dtype float32, got input of dtype float64 (weight is float32); convert the input (x.astype(np.float32)) or the layer's parameters
    """
    for what, value in parameters.items():
        if value is not None and value.dtype != input.dtype:
            raise TypeError(
                f"{name}: expected input of the parameters' dtype {value.dtype}, got input of dtype {input.dtype} "
                f"({what} is {value.dtype}); convert the input (x.astype(np.{value.dtype})) or the layer's parameters"
            )


# ----------------------------------------------------------------------------
# Non-numeric input: one message everywhere
# ----------------------------------------------------------------------------

NUMERIC_KINDS = "biufc"  # bool, signed and unsigned integers, floats, complex

_OPERATORS = {
    "__add__": "+", "__radd__": "+", "__iadd__": "+=", "__sub__": "-", "__rsub__": "-", "__isub__": "-=",
    "__mul__": "*", "__rmul__": "*", "__imul__": "*=", "__truediv__": "/", "__rtruediv__": "/",
    "__itruediv__": "/=", "__pow__": "**", "__rpow__": "**", "__matmul__": "@", "__rmatmul__": "@",
    "__lt__": "<", "__le__": "<=", "__gt__": ">", "__ge__": ">=", "__eq__": "==", "__ne__": "!=",
    "__and__": "&", "__rand__": "&", "__or__": "|", "__ror__": "|", "__xor__": "^", "__rxor__": "^",
    "__floordiv__": "//", "__rfloordiv__": "//", "__mod__": "%", "__rmod__": "%", "__setitem__": "[...] =",
}

# Where a function the user calls is reached from (module prefix -> public prefix).
_PUBLIC_PREFIXES = (("normlab.autograd", "normlab."), ("normlab.nn.functional", "F."), ("normlab.checkpoint", "normlab."),
                    ("normlab.linalg", "normlab.linalg."))


def _frame_name(frame) -> str:
    code, local = frame.f_code, frame.f_locals
    owner = local.get("self")
    if code.co_name in _OPERATORS:
        return f"operator {_OPERATORS[code.co_name]}"
    if code.co_name == "__array_ufunc__" and "ufunc" in local:  # array + tensor: NumPy handed the call over
        return f"numpy.{local['ufunc'].__name__}"
    if owner is not None:
        kind = type(owner).__name__
        if code.co_name in ("__call__", "forward") and hasattr(owner, "_parameters"):
            return kind  # a Module called on bad input: name the layer
        return f"{kind}.{code.co_name}"
    module = frame.f_globals.get("__name__", "")
    for internal, public in _PUBLIC_PREFIXES:
        if module.startswith(internal):
            return public + code.co_name
    return code.co_name


def public_caller(default: str = "normlab") -> str:
    """The normlab function the user called: the outermost normlab frame on the stack.

    Used only to name the function in an error message (never on a fast path):
    ``F.relu("abc")`` fails deep inside ``as_tensor``, but the message should
    say ``F.relu``; ``t + "abc"`` says ``operator +``, ``nn.Linear(2, 3)("x")``
    says ``Linear``.
    """
    frame, name = sys._getframe(1), default
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != "normlab" and not module.startswith("normlab."):
            break
        if not frame.f_code.co_name.startswith("<"):  # lambdas and comprehensions name nothing
            name = _frame_name(frame)
        frame = frame.f_back
    return name


def describe(value) -> str:
    """A short description of a value for an error message: ``str 'abc'``, ``None``, ``list of str``."""
    if value is None:
        return "None"
    if isinstance(value, (str, bytes)):
        text = repr(value)
        return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, np.ndarray):
        strings = " of strings" if value.dtype.kind in "US" else ""
        return f"an array{strings} of dtype {value.dtype}"
    if isinstance(value, (list, tuple)) and value:
        kinds = sorted({type(item).__name__ for item in value})
        return f"{type(value).__name__} of {', '.join(kinds)}"
    kind = type(value)
    # A foreign class by its full name: "torch.Tensor", never a bare "Tensor" that reads like normlab's.
    module = kind.__module__.split(".")[0]
    return kind.__name__ if module == "builtins" else f"{module}.{kind.__name__}"


def not_numeric(value, what: str = "a Tensor, a NumPy array or a number") -> TypeError:
    """The TypeError for a non-numeric value, naming the public function that received it."""
    return TypeError(f"{public_caller()}: expected {what}, got {describe(value)}")
