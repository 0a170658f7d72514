"""One training step of a small CNN: normlab against PyTorch CPU, time and peak memory, at 1 and 2 threads.

The network, the step and the peak-memory measurement (one fresh process
per library) are ``normlab/bench/cnn.py``'s, shared with ``normlab bench``
(whose "CNN step" row is this at one thread count). This script adds the
table over several thread counts, tracemalloc's peak as a cross-check and
a profile.

Time: ours and torch's steps interleaved (a noisy neighbour slows both
alike), after warm-up steps; the median of ``--repeat`` steps. ``--clock
cpu`` times the calling thread's CPU time instead (robust on a busy
machine, meaningful at 1 thread only).

``--profile`` prints where our step spends its time (cProfile, by op).

    python benchmarks/bench_cnn_step.py [--threads 1 2] [--repeat 21] [--clock wall|cpu] [--profile]
"""
from __future__ import annotations

import argparse
import os
import time

from normlab.bench.cnn import BATCH, build, peak_memory, set_threads
from normlab.bench.timing import clock_of, interleaved


def profile(threads: int) -> None:
    import cProfile
    import pstats

    set_threads(threads)
    step = build("normlab")
    for _ in range(3):
        step()
    profiler = cProfile.Profile(time.thread_time if threads == 1 else time.perf_counter)
    profiler.enable()
    for _ in range(10):
        step()
    profiler.disable()
    clock = "thread CPU time" if threads == 1 else "wall clock"
    print(f"\nwhere our step spends its time ({threads} thread(s), 10 steps, cProfile on {clock}, by op):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(r"normlab/(ops|nn|optim|autograd)", 25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    clock = clock_of(args.clock)
    print(f"small CNN training step, batch {BATCH}, float32, {args.clock} clock, median of {args.repeat}, "
          f"load average {os.getloadavg()[0]:.1f}")
    header = (f"{'threads':>7s} {'ours ms':>8s} {'torch ms':>9s} {'ratio':>6s} {'ours peak MB':>13s} "
              f"{'torch peak MB':>14s} {'ratio':>6s} {'ours traced MB':>15s}")
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        set_threads(threads)
        medians = interleaved({"ours": build("normlab"), "torch": build("torch")}, args.repeat, warmup=3, clock=clock)
        ours_ms, theirs_ms = 1e3 * medians["ours"], 1e3 * medians["torch"]
        ours_memory, theirs_memory = peak_memory("normlab", threads), peak_memory("torch", threads)
        mb = 2.0 ** 20
        print(f"{threads:7d} {ours_ms:8.2f} {theirs_ms:9.2f} {ours_ms / theirs_ms:6.2f} "
              f"{ours_memory['rss_peak'] / mb:13.1f} {theirs_memory['rss_peak'] / mb:14.1f} "
              f"{ours_memory['rss_peak'] / max(theirs_memory['rss_peak'], 1):6.2f} "
              f"{ours_memory['traced_peak'] / mb:15.1f}", flush=True)
    if args.profile:
        for threads in args.threads:
            profile(threads)


if __name__ == "__main__":
    main()
