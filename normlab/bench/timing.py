"""What every benchmark shares: timers, interleaved medians and the measured copy bandwidth that defines the floor.

A shared machine slows whatever runs while another process works, so the
calls compared are timed in turn within every repetition (a busy moment
slows both sides alike) and the median of the repetitions is kept. The
floor of a memory-bound op is the bytes it must move at the copy bandwidth
measured in the same run, at the same thread count.

>>> import numpy as np
>>> medians = interleaved({"sum": lambda: np.ones(1000).sum(), "max": lambda: np.ones(1000).max()}, repeat=3)
>>> sorted(medians), all(seconds > 0 for seconds in medians.values())
(['max', 'sum'], True)
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

import numpy as np
from numba import njit, prange

__all__ = ["timed", "COUNTERS", "clock_of", "interleaved", "copy_bandwidth", "run_per_thread_count", "THREAD_VARIABLES"]

#: The environment variables that fix the thread counts of OpenMP, the BLAS libraries and Numba at start-up.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def timed(f: Callable[[], object]) -> float:
    """Seconds one call of ``f()`` takes (wall clock)."""
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


#: The clocks a benchmark can read: the wall clock, or the calling thread's CPU time.
COUNTERS = {"wall": time.perf_counter, "cpu": time.thread_time}


def clock_of(name: str) -> Callable[[Callable[[], object]], float]:
    """A timer like ``timed`` on the ``"wall"`` clock or the calling thread's ``"cpu"`` time.

    The CPU clock leaves out the time a busy machine gives to other
    processes; it measures the calling thread only, so it is meaningful
    where the work runs on that thread (one thread).
    """
    if name not in COUNTERS:
        raise ValueError(f"clock_of: expected one of {sorted(COUNTERS)}, got {name!r}")
    counter = COUNTERS[name]

    def clock(f):
        t0 = counter()
        f()
        return counter() - t0

    return clock


def interleaved(runs: dict, repeat: int, warmup: int = 2, clock=timed) -> dict:
    """Median seconds of each callable in ``runs``, timed in turn (``warmup`` rounds first, not counted).

    ``clock(f)`` times one call (``timed``, ``clock_of("cpu")`` or any
    function of that shape). ``clock=None``: each callable times itself and
    returns its seconds, or a tuple of them (phases of one call: forward,
    then forward + backward); the medians are then tuples too.
    """
    times = {name: [] for name in runs}
    for i in range(warmup + repeat):
        for name, f in runs.items():
            seconds = f() if clock is None else clock(f)
            if i >= warmup:
                times[name].append(seconds)
    return {name: (tuple(statistics.median(phase) for phase in zip(*values)) if isinstance(values[0], tuple)
                   else statistics.median(values))
            for name, values in times.items()}


@njit(parallel=True, cache=True)
def _parallel_copy(src, dst):
    for i in prange(src.shape[0]):
        dst[i] = src[i]


def copy_bandwidth(nbytes: int, repeat: int) -> float:
    """STREAM-like copy bandwidth in bytes/s (read + write counted) over float32 arrays of ``nbytes``.

    The faster of NumPy's copy into a preallocated array and a flat copy on
    normlab's threads (``get_num_threads()``), best of ``repeat``: the floor
    is never flattered by a slow copy.
    """
    src = np.random.default_rng(0).standard_normal(max(1, nbytes // 4)).astype(np.float32)
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
    env = dict(os.environ, **{variable: str(threads) for variable in THREAD_VARIABLES})
    command = [sys.executable, os.path.abspath(script), "--child", str(threads), *arguments]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])
