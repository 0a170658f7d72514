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


def run_per_thread_count(script: str, threads: int, arguments: list[str]) -> list:
    """Run ``script --child threads *arguments`` in a fresh process with every thread variable set to ``threads``.

    The thread counts must be fixed before NumPy, Numba and torch load, hence
    a subprocess per count; the child prints its rows as JSON on its last line.
    """
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    command = [sys.executable, os.path.abspath(script), "--child", str(threads), *arguments]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])
