"""The functions in normlab's namespace that torch has in its own: ``normlab.exp(x)``, ``normlab.max(x, 1)``, ...

Each is the functional form of the Tensor method of the same name (the
input may be a Tensor, an array or a nested list), so there is one
implementation per operation. ``einsum`` and the ``*_like`` factories live
next to their kin (``einsum.py``, ``creation.py``).

>>> import normlab
>>> normlab.max(normlab.tensor([[1.0, 5.0], [7.0, 2.0]]), dim=1).indices
tensor([1, 0])
"""
from __future__ import annotations

import numpy as np

from normlab.autograd.einsum import Einsum, parse
from normlab.autograd.grad_mode import no_grad
from normlab.autograd.tensor import Tensor, _unwrap, as_tensor, cat

__all__ = ["pow", "einsum", "inference_mode", "is_nonzero", "hstack", "vstack", "normal"]  # and every name in _METHODS (added below)

_METHODS = (
    # elementwise
    "exp", "log", "sqrt", "abs", "absolute", "sin", "cos", "tan", "log1p", "expm1", "log2", "log10", "reciprocal",
    "rsqrt", "square", "sign", "floor", "ceil", "trunc", "round", "clip", "clamp", "clamp_min", "clamp_max",
    "sigmoid", "tanh", "relu", "softmax", "log_softmax", "neg", "negative", "remainder", "div", "divide",
    "true_divide", "mul", "multiply", "add", "sub", "subtract",
    # comparisons and logic
    "eq", "ne", "lt", "le", "gt", "ge", "less", "less_equal", "greater", "greater_equal", "not_equal",
    "isnan", "isinf", "isfinite", "isclose", "allclose", "equal", "logical_not", "logical_and", "logical_or",
    "logical_xor",
    # reductions
    "sum", "mean", "var", "std", "var_mean", "std_mean", "prod", "cumsum", "logsumexp", "norm", "amax", "amin",
    "max", "min", "argmax", "argmin", "sort", "argsort", "topk", "median", "count_nonzero", "any", "all",
    # shape and indexing
    "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose", "swapaxes", "swapdims",
    "movedim", "moveaxis", "t", "narrow", "select", "index_select", "masked_select", "masked_fill", "gather",
    "scatter", "scatter_add", "flip", "roll", "tril", "triu", "split", "chunk", "unbind",
    "nonzero", "repeat_interleave", "broadcast_to", "tile", "diag", "diagonal", "trace", "kthvalue", "unique",
    "diff", "clone", "detach",
    # more elementwise
    "sinh", "cosh", "asin", "acos", "atan", "arcsin", "arccos", "arctan", "exp2", "lerp", "addcmul", "addcdiv",
    "addmm", "fmod",
    # products
    "matmul", "mm", "bmm", "dot", "outer",
    # sampling
    "bernoulli", "multinomial",
    # sizes
    "numel", "is_floating_point",
)


def _functional(name: str):
    def call(input, *args, **kwargs):
        return getattr(as_tensor(input), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__code__ = call.__code__.replace(co_name=name)  # error messages name normlab.<name>
    call.__doc__ = f"Functional form of ``Tensor.{name}`` (``normlab.{name}(x, ...)`` is ``x.{name}(...)``)."
    return call


# Defined in this module's namespace, so from here on ``sum``, ``max``, ``abs``, ``round``,
# ``all`` and ``any`` mean these functions, not Python's builtins.
globals().update({name: _functional(name) for name in _METHODS})
__all__ += list(_METHODS)


def pow(input, exponent):
    """``input ** exponent``; either may be a number (``normlab.pow(2, x)``)."""
    if isinstance(input, (int, float)) and isinstance(exponent, Tensor):
        return exponent.__rpow__(input)  # the number stays a weak scalar: float64 x keeps full precision
    return (input if isinstance(input, Tensor) else as_tensor(input)) ** exponent


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation over the operands (given separately or as one list), differentiable in each.

    >>> import normlab
    >>> float(einsum("i,i->", normlab.tensor([1.0, 2.0]), normlab.tensor([3.0, 4.0])))
    11.0
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    tensors = [as_tensor(a) for a in operands]
    subscripts, output = parse(equation, [t.shape for t in tensors])
    return Einsum.apply(*tensors, subscripts=subscripts, output=output)


def hstack(tensors) -> Tensor:
    """Concatenate along dimension 1 (dimension 0 for 1-D tensors), as torch.hstack."""
    tensors = [as_tensor(t) for t in tensors]
    return cat(tensors, dim=0 if tensors[0].ndim == 1 else 1)


def vstack(tensors) -> Tensor:
    """Stack rows: 1-D tensors become rows of a matrix, others are concatenated along dimension 0."""
    return cat([t.reshape(1, -1) if t.ndim == 1 else t for t in (as_tensor(t) for t in tensors)], dim=0)


def normal(mean, std, size=None, *, generator=None, dtype=None) -> Tensor:
    """Normal samples: ``normal(mean, std, size)`` with numbers, or elementwise means and stds (broadcast)."""
    from normlab.autograd.creation import randn
    if size is None:
        size = np.broadcast_shapes(np.shape(_unwrap(mean)), np.shape(_unwrap(std)))
        dtype = dtype or next((t.dtype for t in (mean, std) if isinstance(t, Tensor)), None)
    noise = randn(size, generator=generator, dtype=dtype)
    return Tensor(noise._data * _unwrap(std) + _unwrap(mean)).to(noise.dtype)


class inference_mode(no_grad):
    """Like ``no_grad`` (normlab has no separate inference tensors); ``inference_mode(False)`` records as usual.

    >>> import normlab
    >>> with normlab.inference_mode():
    ...     y = normlab.ones(2, requires_grad=True) * 2
    >>> y.requires_grad
    False
    """

    def __init__(self, mode: bool = True) -> None:
        self.mode = not bool(mode)

    def __new__(cls, mode=True):
        if callable(mode):  # bare decorator: @normlab.inference_mode
            return cls()(mode)
        return super().__new__(cls)


def is_nonzero(input) -> bool:
    t = as_tensor(input)
    if t.numel() != 1:
        raise RuntimeError(f"is_nonzero: expected a tensor with one element, got shape {t.shape}")
    return bool(_unwrap(t).reshape(()))
