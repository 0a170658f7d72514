"""Run a convolution's independent tasks on several threads: Python workers, one BLAS thread each.

A convolution is a chain of compiled transforms (im2col, Winograd tiles)
and BLAS products, block after block. Two thread pools on the same cores
fight: OpenBLAS's workers keep spinning after each product, and a parallel
Numba kernel started in that window waits for them (measured on 2 cores:
im2col 6x slower). So the convolution runs one pool only: ``threads``
workers (the calling thread and ``threads - 1`` pooled Python threads) each
take the next task and run its whole chain serially -- Numba kernels
compiled with ``nogil=True`` and ``np.matmul`` on one BLAS thread, both of
which release the GIL. Idle workers block on a queue (they never spin), and
tasks are handed out in order as workers free up, so a core taken by
another process slows one worker, not the whole call.

>>> import numpy as np
>>> run_tasks(lambda task, state: state.append(task * task), range(4), threads=2, state=list)
[...]
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

__all__ = ["run_tasks", "threads_for_work"]

# Elements moved from which a call runs on several workers (a task hand-off
# costs tens of microseconds, a time slice on a busy machine).
PARALLEL_MIN_WORK = 1 << 20

_blas_controller = None


@contextlib.contextmanager
def blas_threads(n: int):
    """BLAS on ``n`` threads inside the block (threadpoolctl), restored after."""
    global _blas_controller
    try:
        if _blas_controller is None:
            from threadpoolctl import ThreadpoolController

            _blas_controller = ThreadpoolController().select(user_api="blas")
        before = [c.num_threads for c in _blas_controller.lib_controllers]
    except ImportError:
        before = None
    if before is None:
        yield
        return
    for c in _blas_controller.lib_controllers:
        c.set_num_threads(n)
    try:
        yield
    finally:
        for c, k in zip(_blas_controller.lib_controllers, before):
            c.set_num_threads(k)

_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def threads_for_work(work: int, tasks: int) -> int:
    """Workers for ``tasks`` tasks moving ``work`` elements: 1 for small work, at most one per task."""
    if work < PARALLEL_MIN_WORK:
        return 1
    return max(1, min(numba.get_num_threads(), tasks))


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size < workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="normlab-conv")
        _pool_size = workers
    return _pool


def run_tasks(work, tasks, threads: int, state=None) -> list:
    """Call ``work(task, worker_state)`` for every task; return the workers' states.

    ``state`` makes each worker's private state (scratch buffers, partial
    sums), so that workers never write to the same memory; tasks must be
    independent of each other in every other way.
    """
    tasks = list(tasks)
    lock = threading.Lock()
    queue = iter(tasks)

    def worker():
        own = state() if state is not None else None
        while True:
            with lock:
                task = next(queue, None)
            if task is None:
                return own
            work(task, own)

    threads = max(1, min(threads, len(tasks)))
    if threads == 1:
        return [worker()]
    with blas_threads(1):
        helpers = [_executor(threads - 1).submit(worker) for _ in range(threads - 1)]
        states = [worker()]
        return states + [h.result() for h in helpers]
