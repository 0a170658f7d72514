"""Shared helpers for comparing normlab with PyTorch (the oracle) and with numerical gradients.

Tolerance table (relative, absolute), used everywhere unless a test states otherwise:

    float64: rtol 1e-9,  atol 1e-12   (same math, same order of operations up to rounding)
    float32: rtol 2e-5,  atol 2e-6    (float32 rounding of a few accumulated terms)
"""
from __future__ import annotations

import numpy as np

TOLERANCES = {
    np.dtype(np.float64): dict(rtol=1e-9, atol=1e-12),
    np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6),
}


def tol(dtype) -> dict:
    return TOLERANCES[np.dtype(dtype)]


def to_numpy(value) -> np.ndarray:
    """A torch tensor, normlab Tensor or array as an ndarray."""
    if value is None:
        return None
    if type(value).__module__.startswith("torch"):
        return value.detach().numpy()
    return np.asarray(value)  # a normlab Tensor converts through __array__


def assert_close(actual, expected, dtype=None, what: str = "value", **overrides) -> None:
    """Assert that two arrays match within the tolerance table for ``dtype``."""
    a, e = to_numpy(actual), to_numpy(expected)
    assert a is not None, f"{what}: normlab gave None"
    assert e is not None, f"{what}: torch gave None"
    assert a.shape == e.shape, f"{what}: shape {a.shape} != torch's {e.shape}"
    dtype = np.dtype(dtype or e.dtype)
    options = dict(tol(dtype) if dtype in TOLERANCES else dict(rtol=0, atol=0))
    options.update(overrides)
    np.testing.assert_allclose(a, e, err_msg=what, equal_nan=True, **options)


def random_upstream(shape, dtype, rng: np.random.Generator) -> np.ndarray:
    """A random upstream gradient: never all ones (that makes BatchNorm's dx identically zero)."""
    return rng.standard_normal(shape).astype(dtype)


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function ``f`` at float64 ``x`` (x is restored)."""
    assert x.dtype == np.float64, "numerical gradients are only meaningful in float64"
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad
