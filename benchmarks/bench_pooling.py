"""Pooling speed: normlab vs PyTorch CPU at the same thread count, and vs the memory-bandwidth floor.

Times forward + backward (and forward alone) through the public modules on
both sides -- ``normlab.nn.MaxPool2d(...)`` on a Tensor that requires grad,
then ``y.backward(dy)``; ``torch.nn.MaxPool2d(...)`` likewise -- float32, so
argument checks, autograd and the engine's bookkeeping are all included.
Interleaved (a busy machine slows both sides alike), warm-up first (Numba
compiles outside the timing), medians. MinPool has no torch layer: torch's
column times what a torch user writes, ``-max_pool(-x)``.

    python benchmarks/bench_pooling.py [--threads 1 2] [--repeat 15] [--quick] [--clock cpu] [--dims 1d 2d 3d]

``--clock cpu`` times with the process's CPU time instead of the wall clock:
on a machine shared with other work it leaves out the time spent waiting for
a core (at 1 thread it is the wall time of a quiet machine; at 2 threads it
adds up both threads' work, so it shows efficiency, not latency).

Columns: ours ms, torch ms, ratio (ours / torch; < 1 is faster), GB/s (the
floor's bytes over our time) and % of the floor (that over the copy bandwidth
measured in the same run at the same thread count; 100% is as fast as memcpy).

Bytes that must move (input x and dx of B bytes, output y and dy of b bytes):
    forward:  read x, write y                                  B + b
    backward: read dy, write dx                                b + B
    max/min also record each window's winner: at least one byte per output,
    written in forward and read in backward                    2 * (b / 4)
torch's max pooling saves int64 indices (2b each way); normlab saves one byte
per output. The floor counts only what any implementation must move.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import normlab  # first: it sets OMP_WAIT_POLICY before any OpenMP runtime loads, torch's included
from _common import copy_bandwidth  # benchmarks/_common.py (run as scripts: this folder is on sys.path)

SHAPES_2D = [(32, 64, 56, 56), (128, 256, 7, 7)]
SHAPES_1D = [(64, 128, 1000)]
SHAPES_3D = [(8, 32, 16, 32, 32)]
QUICK_SHAPES_2D = [(4, 8, 28, 28), (8, 16, 7, 7)]
QUICK_SHAPES_1D = [(4, 8, 200)]
QUICK_SHAPES_3D = [(2, 4, 4, 8, 8)]
CONFIGS = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)]


def _config_name(config) -> str:
    return ", ".join(str(v) for v in config.values())


def cases(quick: bool, dims=("2d", "1d", "3d")):
    """(label, shape, normlab module, torch callable, has winners) for every benchmarked layer and shape."""
    import torch
    import normlab.nn as nn

    shapes_2d, shapes_1d, shapes_3d = ((QUICK_SHAPES_2D, QUICK_SHAPES_1D, QUICK_SHAPES_3D) if quick
                                       else (SHAPES_2D, SHAPES_1D, SHAPES_3D))
    result = []
    for kind, shapes in (("2d", shapes_2d), ("1d", shapes_1d), ("3d", shapes_3d)):
        if kind not in dims:
            continue
        for shape in shapes:
            for config in CONFIGS:
                t_max = getattr(torch.nn, f"MaxPool{kind}")(**config)
                result.append((f"MaxPool{kind}({_config_name(config)})", shape,
                               getattr(nn, f"MaxPool{kind}")(**config), t_max, True))
                result.append((f"AvgPool{kind}({_config_name(config)})", shape,
                               getattr(nn, f"AvgPool{kind}")(**config),
                               getattr(torch.nn, f"AvgPool{kind}")(**config), False))
                if kind == "2d":
                    result.append((f"MinPool{kind}({_config_name(config)})", shape,
                                   getattr(nn, f"MinPool{kind}")(**config),
                                   lambda v, m=t_max: -m(-v), True))
    return result


def time_case(module, torch_layer, x, dy, repeat: int, clock):
    """Median seconds of (ours fwd, ours fwd+bwd, torch fwd, torch fwd+bwd), interleaved."""
    import torch

    xt = torch.tensor(x, requires_grad=True)
    dyt = torch.tensor(dy)
    ours_f, ours_fb, torch_f, torch_fb = [], [], [], []
    for i in range(repeat + 2):          # the first two rounds warm up (compile, allocator) and are dropped
        xn = normlab.tensor(x, requires_grad=True)
        t0 = clock()
        y = module(xn)
        t1 = clock()
        y.backward(dy)
        t2 = clock()
        del y, xn
        t3 = clock()
        yt = torch_layer(xt)
        t4 = clock()
        yt.backward(dyt)
        t5 = clock()
        xt.grad = None
        del yt
        if i >= 2:
            ours_f.append(t1 - t0)
            ours_fb.append(t2 - t0)
            torch_f.append(t4 - t3)
            torch_fb.append(t5 - t3)
    return tuple(statistics.median(v) for v in (ours_f, ours_fb, torch_f, torch_fb))


def run(threads: int, repeat: int, quick: bool, clock_name: str, dims) -> None:
    import torch

    normlab.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    table = []
    all_cases = cases(quick, dims)
    largest = max(int(np.prod(shape)) for _, shape, *_ in all_cases) * 4
    bandwidth = copy_bandwidth(largest, repeat)
    for label, shape, module, torch_layer, has_winners in all_cases:
        x = rng.standard_normal(shape).astype(np.float32)
        y_shape = torch_layer(torch.tensor(x)).shape
        dy = rng.standard_normal(y_shape).astype(np.float32)
        B, b = x.nbytes, dy.nbytes
        winner_bytes = b // 4 if has_winners else 0
        floor_f = B + b + winner_bytes
        floor_fb = floor_f + b + B + winner_bytes
        clock = time.process_time if clock_name == "cpu" else time.perf_counter
        ours_f, ours_fb, torch_f, torch_fb = time_case(module, torch_layer, x, dy, repeat, clock)
        table.append((label, shape, "fwd+bwd", ours_fb, torch_fb, floor_fb))
        table.append((label, shape, "fwd", ours_f, torch_f, floor_f))
    # a busy machine lowers the measured bandwidth: keep the best of a measurement before and after
    bandwidth = max(bandwidth, copy_bandwidth(largest, repeat))
    print(f"\nfloat32, {threads} thread(s) (normlab and torch), copy bandwidth {bandwidth / 1e9:.1f} GB/s, "
          f"median of {repeat}, interleaved, {clock_name} clock")
    header = (f"{'layer':<22}{'input':<23}{'pass':<9}{'ours ms':>9}{'torch ms':>10}{'ratio':>7}"
              f"{'GB/s':>7}{'% floor':>9}")
    print(header)
    print("-" * len(header))
    for label, shape, what, ours, theirs, floor_bytes in table:
        gbs = floor_bytes / ours / 1e9
        print(f"{label:<22}{str(shape):<23}{what:<9}{ours * 1e3:>9.2f}{theirs * 1e3:>10.2f}{ours / theirs:>7.2f}"
              f"{gbs:>7.1f}{100 * floor_bytes / bandwidth / ours:>8.0f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts to run at, normlab and torch alike (default: normlab.get_num_threads())")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="tiny shapes and 3 repeats (a smoke test)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall clock, or the process's CPU time (robust on a shared machine)")
    parser.add_argument("--dims", nargs="+", choices=["1d", "2d", "3d"], default=["2d", "1d", "3d"],
                        help="which pooling dimensions to time (default: all)")
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    for threads in args.threads or [normlab.get_num_threads()]:
        run(threads, repeat, args.quick, args.clock, args.dims)


if __name__ == "__main__":
    main()
