"""What every benchmark script shares: a timer and the measured copy bandwidth that defines the floor."""
from __future__ import annotations

import time

import numpy as np
from numba import njit, prange


def timed(f) -> float:
    """Seconds one call of ``f()`` takes."""
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


@njit(parallel=True, cache=True)
def _parallel_copy(src, dst):
    for i in prange(src.shape[0]):
        dst[i] = src[i]


def copy_bandwidth(nbytes: int, repeat: int) -> float:
    """STREAM-like copy bandwidth in bytes/s (read + write counted) over arrays of ``nbytes``.

    The faster of NumPy's copy into a preallocated array and a flat parallel
    copy, so that the floor is never flattered by a slow copy.
    """
    src = np.random.default_rng(0).standard_normal(nbytes // 4).astype(np.float32)
    dst = np.empty_like(src)
    _parallel_copy(src, dst)
    best = min(min(timed(lambda: np.copyto(dst, src)), timed(lambda: _parallel_copy(src, dst)))
               for _ in range(repeat))
    return 2 * src.nbytes / best
