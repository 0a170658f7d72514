"""Tensor factories with torch's names, arguments and dtype rules.

Sizes are given as separate ints or one sequence (``zeros(2, 3)`` or
``zeros((2, 3))``); every factory takes ``dtype=``, ``device=`` (the CPU
only) and ``requires_grad=`` keywords. Floating-point results have the
default dtype (float32) unless ``dtype`` says otherwise; ``arange`` and
``full`` infer an integer or bool dtype from integer or bool arguments, as
torch does. Random factories draw from normlab's global generator
(``normlab.manual_seed``) or from ``generator=``.

>>> import normlab
>>> normlab.zeros(2, 3).shape, normlab.arange(5).dtype, normlab.full((2,), 7).dtype
((2, 3), dtype('int64'), dtype('int64'))
"""
from __future__ import annotations

import numbers

import numpy as np

from normlab._device import check_device
from normlab.autograd.tensor import Tensor, _shape, _unwrap, get_default_dtype

__all__ = ["zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like",
           "rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
           "arange", "linspace", "eye"]


def _make(name: str, array: np.ndarray, device, requires_grad: bool) -> Tensor:
    check_device(device, f"normlab.{name}")
    return Tensor(array, requires_grad=requires_grad)


def _float_dtype(dtype) -> np.dtype:
    return get_default_dtype() if dtype is None else np.dtype(dtype)


def _generator(generator):
    from normlab.random import default_generator
    return default_generator() if generator is None else generator


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _make("zeros", np.zeros(_shape(size), dtype=_float_dtype(dtype)), device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _make("ones", np.ones(_shape(size), dtype=_float_dtype(dtype)), device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uninitialised memory, as torch.empty (fill it before reading)."""
    return _make("empty", np.empty(_shape(size), dtype=_float_dtype(dtype)), device, requires_grad)


def _fill_dtype(fill_value, dtype) -> np.dtype:
    """torch.full's rule: the dtype of ``fill_value`` (bool, int64, or the default float dtype)."""
    if dtype is not None:
        return np.dtype(dtype)
    value = _unwrap(fill_value)
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(bool)
    if isinstance(value, numbers.Integral):
        return np.dtype(np.int64)
    if isinstance(value, np.ndarray):
        return value.dtype
    return get_default_dtype()


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    size = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    return _make("full", np.full(size, _unwrap(fill_value), dtype=_fill_dtype(fill_value, dtype)), device,
                 requires_grad)


def _like(name: str, make, input, dtype, device, requires_grad: bool) -> Tensor:
    source = np.asarray(_unwrap(input))
    return _make(name, make(source.shape, dtype=source.dtype if dtype is None else np.dtype(dtype)), device,
                 requires_grad)


def zeros_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like("zeros_like", np.zeros, input, dtype, device, requires_grad)


def ones_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like("ones_like", np.ones, input, dtype, device, requires_grad)


def empty_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like("empty_like", np.empty, input, dtype, device, requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like("full_like", lambda shape, dtype: np.full(shape, _unwrap(fill_value), dtype=dtype),
                 input, dtype, device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    data = _generator(generator).standard_normal(_shape(size)).astype(_float_dtype(dtype))
    return _make("randn", data, device, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    data = _generator(generator).random(_shape(size)).astype(_float_dtype(dtype))
    return _make("rand", data, device, requires_grad)


def randint(*args, size=None, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Integers uniform in [low, high): ``randint(high, size)`` or ``randint(low, high, size)`` (int64)."""
    if size is None:
        *bounds, size = args
    else:
        bounds = list(args)
    if len(bounds) not in (1, 2):
        raise TypeError("randint: expected randint(high, size) or randint(low, high, size)")
    low, high = (0, bounds[0]) if len(bounds) == 1 else bounds
    size = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    data = _generator(generator).integers(int(low), int(high), size=size).astype(np.int64 if dtype is None else dtype)
    return _make("randint", data, device, requires_grad)


def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A random permutation of 0 .. n-1 (int64)."""
    data = _generator(generator).permutation(int(n)).astype(np.int64 if dtype is None else dtype)
    return _make("randperm", data, device, requires_grad)


def rand_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    source = np.asarray(_unwrap(input))
    return rand(source.shape, dtype=source.dtype if dtype is None else dtype, device=device, requires_grad=requires_grad)


def randn_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    source = np.asarray(_unwrap(input))
    return randn(source.shape, dtype=source.dtype if dtype is None else dtype, device=device, requires_grad=requires_grad)


def randint_like(input, low=0, high=None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    source = np.asarray(_unwrap(input))
    low, high = (0, low) if high is None else (low, high)
    return randint(low, high, source.shape, dtype=source.dtype if dtype is None else dtype, device=device, requires_grad=requires_grad)


def arange(start=0, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` to ``end`` (excluded) by ``step``; int64 when all three are integers."""
    if end is None:
        start, end = 0, start
    bounds = [_unwrap(v) for v in (start, end, step)]
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) or (isinstance(v, np.ndarray) and v.dtype.kind in "iu")
                       for v in bounds)
        dtype = np.int64 if integral else get_default_dtype()
    # Computed in float64 (or int64) and then cast, so float32 values land where torch's do.
    wide = np.int64 if np.dtype(dtype).kind in "iu" else np.float64
    return _make("arange", np.arange(*bounds, dtype=wide).astype(dtype), device, requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` (both included)."""
    data = np.linspace(_unwrap(start), _unwrap(end), int(steps)).astype(_float_dtype(dtype))
    return _make("linspace", data, device, requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _make("eye", np.eye(int(n), None if m is None else int(m), dtype=_float_dtype(dtype)), device, requires_grad)
