"""Where parallel pays on this machine: the measurements behind ``normlab/ops/_threading.py``'s thresholds.

1. A normalization kernel (the row layers' forward, rows of 256 values:
   parallel over rows at any size) in its serial and its parallel flavour,
   at growing sizes: the first size from which the parallel flavour is
   faster by 10% is where ``PARALLEL_MIN_WORK`` should sit (the work counted
   is 2 x elements). BatchNorm's kernels cannot split an input that fits one
   cache tile (512 KiB), so for them small inputs are serial anyway.
2. Matrix products at 1 and at 2 BLAS threads, at growing sizes: where 2
   threads start to pay is ``BLAS_PARALLEL_MIN_WORK`` (multiply-adds).

Wall clock, medians of interleaved calls (a busy machine slows both alike);
run it on a quiet machine, and more than once.

    python benchmarks/bench_threading.py [--threads 2] [--repeat 30]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _median_times(calls, repeat: int) -> list[float]:
    for call in calls:  # warm-up: compile, fault the memory in
        call()
    times = [[] for _ in calls]
    for _ in range(repeat):
        for call, kept in zip(calls, times):
            t0 = time.perf_counter()
            call()
            kept.append(time.perf_counter() - t0)
    return [float(np.median(kept)) for kept in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    import numba

    import normlab
    from normlab.ops import _threading
    from normlab.ops import normalization as ops

    normlab.set_num_threads(args.threads)
    print(f"{numba.get_num_threads()} Numba threads (layer setting: {numba.config.THREADING_LAYER}), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, load average {os.getloadavg()[0]:.1f}")
    print(f"current thresholds: PARALLEL_MIN_WORK = {_threading.PARALLEL_MIN_WORK}, "
          f"BLAS_PARALLEL_MIN_WORK = {_threading.BLAS_PARALLEL_MIN_WORK}\n")
    rng = np.random.default_rng(0)
    print(f"{'elements':>10}{'serial us':>11}{'parallel us':>13}{'speed-up':>10}")
    first = None
    for log2 in range(12, 25, 2):
        x2 = rng.standard_normal((2 ** (log2 - 8), 256)).astype(np.float32)
        rows = x2.shape[0]
        table = np.ones((1, 256))
        out = [np.zeros(rows), np.zeros(rows), np.zeros(rows), np.empty_like(x2)]

        def run(flavour):
            getattr(ops._rows_forward, flavour)(x2, table, np.zeros_like(table), True, 1e-5, *out)
        serial, parallel = _median_times([lambda: run("serial"), lambda: run("parallel")], args.repeat)
        if first is None and serial > 1.1 * parallel:
            first = x2.size
        print(f"{x2.size:>10}{serial * 1e6:>11.1f}{parallel * 1e6:>13.1f}{serial / parallel:>10.2f}")
    print(f"parallel first faster by 10% at {first} elements\n")

    controllers = _threading._blas
    if controllers.controllers is None:
        controllers.load()
    print(f"{'m x k x n':>18}{'1 thread us':>13}{'2 threads us':>14}{'speed-up':>10}")
    for size in (32, 64, 100, 128, 192, 256, 384, 512):
        a = rng.standard_normal((size, size)).astype(np.float32)
        b = rng.standard_normal((size, size)).astype(np.float32)

        def product(threads):
            controllers.set(threads)
            a @ b
        one, two = _median_times([lambda: product(1), lambda: product(args.threads)], args.repeat)
        print(f"{f'{size}^3 = {size ** 3}':>18}{one * 1e6:>13.1f}{two * 1e6:>14.1f}{one / two:>10.2f}")
    controllers.set(controllers.wanted)


if __name__ == "__main__":
    main()
