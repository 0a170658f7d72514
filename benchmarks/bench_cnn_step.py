"""One training step of a small CNN: normlab against PyTorch CPU, time and peak memory, at 1 and 2 threads.

The network (the issue's): Conv2d(1, 16, 3, padding=1) - BatchNorm2d - ReLU -
MaxPool2d(2) - Conv2d(16, 32, 3, padding=1) - BatchNorm2d - ReLU -
MaxPool2d(2) - Flatten - Linear(32 * 7 * 7, 10); one step is forward,
cross-entropy, backward and an SGD step (momentum 0.9), on a float32 batch
of 128 x 1 x 28 x 28. Both libraries start from the same weights and data.

Time: ours and torch's steps interleaved (a noisy neighbour slows both
alike), after warm-up steps; the median of ``--repeat`` steps. ``--clock
cpu`` times the calling thread's CPU time instead (robust on a busy
machine, meaningful at 1 thread only).

Peak memory: measured in a fresh subprocess per library, the same way for
both. After two warm-up steps (so that optimizer state, compiled kernels
and the allocator's first growth are behind us), the kernel's high-water
mark of resident memory is reset (``/proc/self/clear_refs``, value 5) and
the resident size read; after one more step, the high-water mark (VmHWM)
minus that baseline is the step's peak: every byte the step had resident at
once beyond what it started with (activations, gradients, temporaries).
The subprocesses run with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc
hands large blocks back to the system when freed (otherwise a warm heap
hides the step's allocations from the resident size). For ours,
tracemalloc's peak over the step (NumPy's arrays) is printed as a cross-check.

``--profile`` prints where our step spends its time (cProfile, by op).

    python benchmarks/bench_cnn_step.py [--threads 1 2] [--repeat 21] [--clock wall|cpu] [--profile]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

BATCH, CLASSES = 128, 10


def build(library: str, seed: int = 0):
    """(model, optimizer, x, y, step) for ``library`` ('normlab' or 'torch'), same weights and data."""
    import torch

    torch.manual_seed(seed)
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, CLASSES))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=BATCH)
    if library == "torch":
        optimizer = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9)
        xt, yt = torch.tensor(x), torch.tensor(y)

        def step():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(reference(xt), yt)
            loss.backward()
            optimizer.step()
            return loss

        return step
    import normlab
    import normlab.nn as nn
    import normlab.nn.functional as F

    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, CLASSES))
    model.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    optimizer = normlab.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xn = normlab.tensor(x)

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xn), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def set_threads(threads: int) -> None:
    import torch

    import normlab

    if hasattr(normlab, "set_num_threads"):
        normlab.set_num_threads(threads)
    else:  # a normlab from before set_num_threads (to measure an older version): Numba and BLAS by hand
        import numba
        from threadpoolctl import threadpool_limits

        numba.set_num_threads(threads)
        threadpool_limits(threads, user_api="blas")
    torch.set_num_threads(threads)


def _status(field: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(library: str, threads: int) -> None:
    """Measure the peak memory of one step in this (fresh) process; print it as JSON."""
    import tracemalloc

    set_threads(threads)
    step = build(library)
    step()
    step()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")  # the high-water mark of resident memory restarts from the current size
    baseline = _status("VmRSS")
    tracemalloc.start()
    step()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"rss_peak": _status("VmHWM") - baseline, "traced_peak": traced_peak}))


def peak_memory(library: str, threads: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, __file__, "--child", library, "--threads", str(threads)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def clock_of(name: str):
    counter = time.perf_counter if name == "wall" else time.thread_time

    def clock(f) -> float:
        t0 = counter()
        f()
        return counter() - t0

    return clock


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
    parser.add_argument("--child", choices=["normlab", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.threads[0])
        return
    clock = clock_of(args.clock)
    print(f"small CNN training step, batch {BATCH}, float32, {args.clock} clock, median of {args.repeat}, "
          f"load average {os.getloadavg()[0]:.1f}")
    header = (f"{'threads':>7s} {'ours ms':>8s} {'torch ms':>9s} {'ratio':>6s} {'ours peak MB':>13s} "
              f"{'torch peak MB':>14s} {'ratio':>6s} {'ours traced MB':>15s}")
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        set_threads(threads)
        ours, theirs = build("normlab"), build("torch")
        for _ in range(3):
            ours()
            theirs()
        ours_times, theirs_times = [], []
        for _ in range(args.repeat):
            ours_times.append(clock(ours))
            theirs_times.append(clock(theirs))
        ours_ms, theirs_ms = 1e3 * statistics.median(ours_times), 1e3 * statistics.median(theirs_times)
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
