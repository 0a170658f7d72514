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

How many workers follows ``normlab.ops._threading``'s policy: one for work
below ``PARALLEL_MIN_WORK`` elements (with BLAS on one thread too: the
products are small), else ``get_num_threads()``, at most one per task. A
large call with a single task (one big sample) runs on the calling thread
and leaves BLAS its threads.

>>> run_tasks(lambda task, squares: squares.append(task * task), range(4), work=10, state=list)
[[0, 1, 4, 9]]
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from normlab.ops import _threading

__all__ = ["run_tasks"]

_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _executor(workers: int) -> ThreadPoolExecutor:
    """The shared pool of helper threads (created on first use, grown when more are wanted)."""
    global _pool, _pool_size
    if _pool is None or _pool_size < workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="normlab-conv")
        _pool_size = workers
    return _pool


@contextlib.contextmanager
def _one_blas_thread():
    """BLAS on one thread inside the block, back to the wanted count after."""
    blas = _threading._blas  # the policy's record of BLAS's thread counts
    if blas.controllers is None:
        blas.load()
    blas.set(1)
    try:
        yield
    finally:
        blas.set(blas.wanted)


def run_tasks(work_fn, tasks, work: int, state=None) -> list:
    """Call ``work_fn(task, worker_state)`` for every task; return the workers' states.

    ``work``: the elements the call moves (input plus output), for the
    serial/parallel choice. ``state`` makes each worker's private state
    (scratch buffers, partial sums), so that workers never write to the same
    memory; tasks must be independent of each other in every other way.
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
            work_fn(task, own)

    wanted = _threading.threads_for(work)
    threads = max(1, min(wanted, len(tasks)))
    if threads == 1 and wanted > 1:
        return [worker()]  # one large task: BLAS keeps its threads
    with _one_blas_thread():
        if threads == 1:
            return [worker()]
        helpers = [_executor(threads - 1).submit(worker) for _ in range(threads - 1)]
        states = [worker()]
        return states + [helper.result() for helper in helpers]
