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


EPS32 = float(np.finfo(np.float32).eps)


def assert_float32_close(actual, reference, *, scale, what: str = "value", ulps: float = 16.0) -> None:
    """A float32 result against an exact (float64) reference, within float32 rounding.

    Never compare float32 with torch's float32: torch's vector paths differ by
    CPU (one build underflows gelu_tanh at x = -5.1 to 0, another does not).
    The bound is ``ulps`` float32 roundings of the magnitudes the op worked
    with: ``|actual - reference| <= ulps * eps32 * (|reference| + scale)``, where
    ``scale`` (a number or an array broadcasting to the result) is the size of
    the quantities that were rounded on the way -- ``|x|`` for an elementwise
    op with cancellation, the sum of ``|terms|`` for a reduction.
    """
    a, r = to_numpy(actual), to_numpy(reference)
    assert a is not None and r is not None, f"{what}: missing value"
    assert a.dtype == np.float32, f"{what}: expected a float32 result, got {a.dtype}"
    assert a.shape == r.shape, f"{what}: shape {a.shape} != reference's {r.shape}"
    r = r.astype(np.float64)
    bound = ulps * EPS32 * (np.abs(r) + np.abs(np.asarray(scale, dtype=np.float64)))
    error = np.abs(a.astype(np.float64) - r)
    bad = ~((error <= bound) | (np.isnan(a) & np.isnan(r)) | (a == r))
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, error - bound, -np.inf)), bad.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {a.size} float32 values off the float64 reference by more than "
            f"{ulps} roundings; worst at {i}: got {a[i]!r}, reference {r[i]!r}, bound {bound[i] if np.ndim(bound) else bound!r}"
        )


def assert_matches_reference(actual, reference, dtype, what: str = "value", *, scale=1.0, ulps: float = 16.0) -> None:
    """``actual`` computed in ``dtype`` against a float64 reference (torch run in float64).

    float64: within the tolerance table; float32: within ``ulps`` float32
    roundings of ``scale`` (see ``assert_float32_close``).
    """
    if np.dtype(dtype) == np.float64:
        assert_close(actual, reference, np.float64, what)
    else:
        assert_float32_close(actual, reference, scale=scale, what=what, ulps=ulps)


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
