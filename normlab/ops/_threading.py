"""When normlab's kernels run in parallel, and on how many threads.

A parallel kernel launch is not free: waking a sleeping worker costs
microseconds on a quiet machine and a scheduler time slice (milliseconds) on
a busy one, where the worker waits for a core. Training a small model calls
hundreds of kernels a step on arrays of a few thousand elements, so the
policy is to run small work serially and only large work in parallel:

1. **Numba kernels.** Each kernel is compiled in two flavours from one
   source, serial and ``parallel=True``; a call runs the parallel flavour
   only when its work (elements it reads and writes) reaches
   ``PARALLEL_MIN_WORK`` and more than one thread is set. Kernels written for
   this split their work by the input's geometry, never by the thread count,
   so both flavours give bit-identical results.
2. **BLAS.** ``matmul`` runs OpenBLAS on one thread below
   ``BLAS_PARALLEL_MIN_WORK`` multiply-adds (OpenBLAS's own threshold is far
   lower: two threads for a 60 x 100 x 100 product, which on a busy 2-core
   machine made each small GEMM wait milliseconds for its second thread).
3. **Idle workers sleep.** OpenMP workers that spin while idle take the core
   the next BLAS call needs, so ``OMP_WAIT_POLICY=PASSIVE`` is set before
   Numba loads OpenMP, unless the user set it. If OpenMP was already loaded
   (``import torch`` before ``import normlab``: Numba then shares torch's
   OpenMP runtime, whose workers spin), Numba uses its ``workqueue`` layer
   instead, whose workers always sleep -- unless the user chose a layer.
4. ``set_num_threads(n)`` sets Numba's and BLAS's thread counts together, as
   ``torch.set_num_threads`` does for its own pools.

Measured on the project's 2-core machine (``benchmarks/bench_threading.py``
reproduces it): see the constants below.

API (stable; pooling and convolution use it too)::

    @parallel_kernel(fastmath=..., error_model="numpy")   # njit options; cache=True by default
    def _kernel(x, out):
        for i in prange(x.shape[0]):   # prange is range in the serial flavour
            ...

    _kernel(x, out=out, work=x.size)   # serial below PARALLEL_MIN_WORK, parallel above (named arguments pass through)
    _kernel.serial, _kernel.parallel   # the two Numba dispatchers (compiled on first call)
    threads_for(work)                  # 1 when work runs serially, else get_num_threads()
    matmul(a, b, out=None)             # np.matmul with BLAS threads chosen by the policy
    set_num_threads(n), get_num_threads()

>>> import numpy as np
>>> from numba import prange
>>> @parallel_kernel(cache=False)   # a kernel in a file would keep the default cache=True
... def _double(x, out):
...     for i in prange(x.shape[0]):
...         out[i] = 2 * x[i]
>>> x = np.arange(4.0); out = np.empty(4)
>>> _double(x, out, work=x.size); out
array([0., 2., 4., 6.])
>>> threads_for(10)   # ten elements: always serial
1
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["PARALLEL_MIN_WORK", "BLAS_PARALLEL_MIN_WORK", "parallel_kernel", "Kernel", "threads_for",
           "matmul", "set_num_threads", "get_num_threads"]

#: Elements (read + written) from which a kernel runs in parallel. On the
#: 2-core machine a parallel launch costs ~5 us with sleeping OpenMP workers
#: on a quiet machine and up to a time slice when the other core is busy; a
#: one-pass kernel over 2^20 float32 values takes ~400 us serially, so the
#: launch is at most a few percent of it. Below this, 2 threads gained
#: nothing that survived a busy machine.
PARALLEL_MIN_WORK = 1 << 20

#: Multiply-adds (m * k * n) from which ``matmul`` lets BLAS use several
#: threads. 64 x 256 x 256 (2^22) ran 61 us on 1 thread and 51 us on 2;
#: smaller products gain nothing and risk the wait for a busy second core.
BLAS_PARALLEL_MIN_WORK = 1 << 22


def _openmp_already_loaded() -> bool:
    """True when an OpenMP runtime is mapped into this process (Linux; False where unknown)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libgomp" in line or "libomp" in line or "libiomp" in line for line in maps)
    except OSError:
        return False


def _configure_layer() -> None:
    """Rule 3 of the module docstring; runs once, at import, before Numba launches a thread."""
    if "OMP_WAIT_POLICY" in os.environ:
        return  # the user chose
    if not _openmp_already_loaded():
        # OpenMP reads this when it loads, at Numba's first parallel launch (after this line).
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return
    if "NUMBA_THREADING_LAYER" not in os.environ:
        import numba

        numba.config.THREADING_LAYER = "workqueue"


_configure_layer()

import numba  # noqa: E402  (after the environment is set)
from numba import njit  # noqa: E402


# ----------------------------------------------------------------------------
# Thread counts
# ----------------------------------------------------------------------------

class _Blas:
    """The BLAS libraries NumPy loaded (via threadpoolctl; found on first use) and their thread counts."""

    def __init__(self) -> None:
        self.controllers = None
        self.wanted = 1   # what the user asked for (set_num_threads, or BLAS's own default)
        self.now = 1      # what BLAS is set to at this moment

    def load(self) -> None:
        from threadpoolctl import ThreadpoolController

        self.controllers = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        self.wanted = self.now = max([c.num_threads for c in self.controllers], default=1)

    def set(self, n: int) -> None:
        if n != self.now:
            for controller in self.controllers:
                controller.set_num_threads(n)
            self.now = n


_blas = _Blas()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for normlab's parallel kernels and for BLAS (like ``torch.set_num_threads``).

    Numba cannot go above the thread count it started with (``NUMBA_NUM_THREADS``,
    the number of CPUs by default); a larger ``n`` is capped there for Numba
    and given to BLAS as it is. Like Numba's setting, it applies to the
    calling thread's kernel launches.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {n!r}")
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
    # Look the BLAS libraries up again and set them unconditionally: one may have
    # loaded since (import torch), or another tool (threadpoolctl) may have
    # changed a count behind the cached value.
    _blas.load()
    _blas.wanted = int(n)
    _blas.now = None
    _blas.set(_blas.wanted)


def get_num_threads() -> int:
    """The number of threads normlab's parallel kernels use (``torch.get_num_threads``'s counterpart)."""
    return numba.get_num_threads()


def threads_for(work: int) -> int:
    """1 when ``work`` elements run serially under the policy, else ``get_num_threads()``."""
    if work < PARALLEL_MIN_WORK:
        return 1
    return numba.get_num_threads()


# ----------------------------------------------------------------------------
# Kernels in two flavours
# ----------------------------------------------------------------------------

class Kernel:
    """A Numba kernel compiled serially and in parallel; a call picks the flavour by its work."""

    def __init__(self, function, options: dict) -> None:
        self.__wrapped__ = function
        self.__name__ = function.__name__
        self.__doc__ = function.__doc__
        options = {"cache": True, **options}
        self.serial = njit(**options)(function)
        self.parallel = njit(parallel=True, **options)(function)

    def __call__(self, *args, work: int, **kwargs):
        if work < PARALLEL_MIN_WORK or numba.get_num_threads() == 1:
            return self.serial(*args, **kwargs)
        return self.parallel(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<parallel_kernel {self.__name__}>"


def parallel_kernel(**options):
    """Decorator: compile a ``prange`` kernel in a serial and a parallel flavour (see the module docstring).

    ``options`` are ``numba.njit``'s (``fastmath``, ``error_model``, ...);
    ``cache=True`` unless given. Nothing compiles until the first call.
    """
    def decorate(function) -> Kernel:
        return Kernel(function, options)
    return decorate


# ----------------------------------------------------------------------------
# BLAS
# ----------------------------------------------------------------------------

def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)``, on one BLAS thread when the product is small (rule 2 of the module docstring)."""
    if _blas.controllers is None:
        _blas.load()
    # m * k * n over the broadcast batch (a lower bound when both operands carry batch dimensions)
    rows = a.shape[-2] if a.ndim > 1 else 1
    columns = b.shape[-1] if b.ndim > 1 else 1
    multiply_adds = max(a.size * columns, b.size * rows)
    if multiply_adds >= BLAS_PARALLEL_MIN_WORK or _blas.wanted == 1:
        return np.matmul(a, b, out=out)
    _blas.set(1)
    try:
        return np.matmul(a, b, out=out)
    finally:
        _blas.set(_blas.wanted)
