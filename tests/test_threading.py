"""The threading policy (normlab/ops/_threading.py): thread counts, flavours, BLAS, the OpenMP environment.

Speed is the benchmarks' business (benchmarks/bench_small.py); these tests
pin the behaviour: the public setters, serial below the work threshold,
bit-identical serial and parallel flavours, BLAS threads restored after a
small product, and the environment normlab sets before OpenMP loads.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
import threadpoolctl

import normlab
from normlab.ops import _threading
from normlab.ops import normalization as ops


@pytest.fixture
def restore_threads():
    numba_threads = numba.get_num_threads()
    blas_threads = _threading._blas.wanted if _threading._blas.controllers is not None else None
    yield
    numba.set_num_threads(numba_threads)
    if blas_threads is not None:
        normlab.set_num_threads(blas_threads)
        numba.set_num_threads(numba_threads)


def _blas_threads() -> int:
    return max(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas")


def test_set_num_threads_sets_numba_and_blas_together(restore_threads):
    normlab.set_num_threads(1)
    assert normlab.get_num_threads() == numba.get_num_threads() == 1
    assert _blas_threads() == 1
    most = numba.config.NUMBA_NUM_THREADS
    normlab.set_num_threads(most + 3)  # more than Numba started with: Numba capped, BLAS as asked
    assert normlab.get_num_threads() == most
    assert _blas_threads() == most + 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_set_num_threads_rejects_what_torch_rejects(bad, restore_threads):
    before = normlab.get_num_threads()
    with pytest.raises(ValueError, match="set_num_threads"):
        normlab.set_num_threads(bad)
    assert normlab.get_num_threads() == before


def test_small_work_runs_the_serial_flavour(monkeypatch, restore_threads):
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    calls = []
    kernel = _threading.Kernel(lambda *args: None, {})
    monkeypatch.setattr(kernel, "serial", lambda *args: calls.append("serial"))
    monkeypatch.setattr(kernel, "parallel", lambda *args: calls.append("parallel"))
    kernel(work=10)
    kernel(work=_threading.PARALLEL_MIN_WORK - 1)
    kernel(work=_threading.PARALLEL_MIN_WORK)
    expected_large = "parallel" if numba.get_num_threads() > 1 else "serial"
    assert calls == ["serial", "serial", expected_large]
    numba.set_num_threads(1)
    kernel(work=10 * _threading.PARALLEL_MIN_WORK)
    assert calls[-1] == "serial", "one thread: never the parallel flavour"
    assert _threading.threads_for(10) == 1


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 CPUs for a parallel run")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_flavours_give_the_same_bits(dtype, restore_threads):
    """Tiles and blocks are cut by the geometry, never by the thread count."""
    numba.set_num_threads(2)
    rng = np.random.default_rng(0)
    data = [((rng.standard_normal(shape) * 2 + 1).astype(dtype), rng.standard_normal(shape).astype(dtype))
            for shape in [(300, 700), (8, 40, 300), (16, 3, 5)]]
    runs = {}
    for flavour in ("serial", "parallel"):
        got = []
        for x, dy in data:
            shape = x.shape
            x3 = x.reshape(shape[0], shape[1], -1)
            c = shape[1]
            tile, columns = ops._channel_tiles(x3)
            forward, gradients, view = ops._channel_kernels_for(columns)
            mean, var, rstd, y = np.zeros(c), np.zeros(c), np.zeros(c), np.empty_like(x3)
            getattr(forward, flavour)(view(x3), None, x3.shape[0] * x3.shape[2], np.ones(c), np.zeros(c), 1e-5,
                                      True, True, tile, mean, var, rstd, view(y))
            sums, dx = (np.zeros(c), np.zeros(c)), np.empty_like(x3)
            getattr(gradients, flavour)(view(dy.reshape(x3.shape)), view(x3), None, x3.shape[0] * x3.shape[2],
                                        mean, rstd, np.ones(c), True, True, tile, *sums, view(dx))
            rows = x.reshape(-1, shape[-1])
            b = rows.shape[0]
            stats, y2 = (np.zeros(b), np.zeros(b), np.zeros(b)), np.empty_like(rows)
            table = np.ones((1, shape[-1]))
            getattr(ops._rows_forward, flavour)(rows, table, np.zeros_like(table), True, 1e-5, *stats, y2)
            blocks = 4
            parts = (np.zeros((blocks,) + table.shape), np.zeros((blocks,) + table.shape))
            dx2 = np.empty_like(rows)
            getattr(ops._rows_gradients, flavour)(dy.reshape(rows.shape), rows, stats[0], stats[2], table, True,
                                                  True, True, blocks, dx2, *parts)
            got += [mean, var, y, *sums, dx, *stats, y2, dx2, *parts]
        runs[flavour] = got
    for serial, parallel in zip(runs["serial"], runs["parallel"]):
        np.testing.assert_array_equal(serial, parallel)


@pytest.mark.parametrize("shape_a, shape_b", [((60, 100), (100, 100)), ((512, 512), (512, 512)),
                                               ((3, 4, 5), (5, 6)), ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul_is_numpys_and_restores_blas_threads(shape_a, shape_b, restore_threads):
    normlab.set_num_threads(2)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    np.testing.assert_array_equal(_threading.matmul(a, b), np.matmul(a, b))
    out = np.empty(np.broadcast_shapes(shape_a[:-2], shape_b[:-2]) + (shape_a[-2], shape_b[-1]))
    assert _threading.matmul(a, b, out=out) is out
    assert _blas_threads() == 2, "a small product must give BLAS its thread count back"


def _run_python(code: str, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER")}
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_idle_openmp_workers_sleep_unless_the_user_chose():
    report = "import os, numba; print(os.environ.get('OMP_WAIT_POLICY'), numba.config.THREADING_LAYER)"
    assert _run_python("import normlab; " + report) == "PASSIVE default"
    assert _run_python("import normlab; " + report, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE default"


def test_openmp_loaded_before_normlab_means_the_workqueue_layer():
    """torch imported first: Numba would share torch's OpenMP, whose idle workers spin."""
    code = ("import torch; import normlab, numba, os; "
            "print(os.environ.get('OMP_WAIT_POLICY'), numba.config.THREADING_LAYER)")
    assert _run_python(code) == "None workqueue"
    assert _run_python(code, NUMBA_THREADING_LAYER="omp") == "None omp", "the user's choice wins"
