"""One comparison for every normalization test: float64 at the oracle's tolerance, float32 against float64.

float32 results are compared with a float64 reference (torch in float64 on
the same float32 inputs, or an exact NumPy value) within float32 rounding of
the magnitudes involved -- never with torch's own float32, whose vector paths
differ by CPU.
"""
from __future__ import annotations

import numpy as np

from tests.oracle import assert_close, assert_float32_close, to_numpy


def assert_matches(actual, reference, dtype, what: str, at_least: float = 0.0) -> None:
    """``actual`` (of ``dtype``) against a float64 ``reference``.

    float32: within 16 float32 roundings of max|reference|, or of ``at_least``
    when that is larger -- the size of the quantities rounded on the way
    (an input gradient that cancels to 0 still rounded terms of size |dy * weight|).
    """
    reference = to_numpy(reference).astype(np.float64)
    if np.dtype(dtype) == np.float32:
        scale = max(float(np.abs(reference).max()) if reference.size else 0.0, at_least)
        assert_float32_close(actual, reference, scale=scale, what=what)
    else:
        assert_close(actual, reference, np.float64, what)
