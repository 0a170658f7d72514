"""Normalization speed: normlab vs PyTorch CPU at the same thread count, and vs the memory-bandwidth floor.

Times the public modules -- ``layer(x)`` on a Tensor that requires grad,
then ``y.backward(dy)`` -- in training mode, float32, at shapes that cover
every layout the kernels meet (one value per (sample, channel): BatchNorm1d
on (N, C); short and long rows; few and many channels). Ours and torch's
calls alternate, after a warm-up (compilation excluded); the table gives
medians.

Columns: ours ms and torch ms for the forward alone and for forward +
backward, the ratio of the latter (ours / torch; < 1 is faster), our GB/s
over the bytes that must move, and the percent of the bandwidth floor
(those bytes at the copy bandwidth measured in the same run; 100% would be
as fast as memcpy). Bytes that must move, for x of B bytes (parameters and
statistics are negligible)::

    forward:  read x, write y                      2B
    backward: read dy and x, write dx              3B      (fwd + bwd: 5B)

``--clock cpu`` times with the calling thread's CPU clock instead of the
wall clock: at ``--threads 1`` (where both libraries compute in the calling
thread) it leaves out the time a busy machine gives to other processes.

    python benchmarks/bench_normalization.py [--threads N] [--repeat 15] [--quick] [--only BatchNorm1d,LayerNorm]
                                             [--clock wall|cpu]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _common import copy_bandwidth  # benchmarks/_common.py (run as scripts: this folder is on sys.path)

# (label, constructor arguments (normlab's and torch's are the same), input shape)
CASES = [
    ("BatchNorm1d", (1024,), (4096, 1024)),
    ("BatchNorm1d", (64,), (256, 64)),
    ("BatchNorm2d", (64,), (32, 64, 56, 56)),
    ("BatchNorm2d", (256,), (64, 256, 14, 14)),
    ("BatchNorm2d", (512,), (256, 512, 7, 7)),
    ("GroupNorm", (32, 64), (32, 64, 56, 56)),
    ("GroupNorm", (32, 256), (8, 256, 7, 7)),
    ("InstanceNorm2d", (64,), (32, 64, 56, 56)),
    ("InstanceNorm2d", (256,), (8, 256, 7, 7)),
    ("LayerNorm", (768,), (64, 128, 768)),
    ("RMSNorm", (768,), (64, 128, 768)),
    ("LayerNorm", (64,), (8192, 64)),
]


def _quick(shape: tuple) -> tuple:
    """A quarter of the batch (at least 2): the same layouts, four times less work."""
    return (max(2, shape[0] // 4),) + shape[1:]


def _layer(library, name: str, args: tuple, torch_side: bool):
    kwargs = {"affine": True} if name == "InstanceNorm2d" else {}
    if torch_side:
        import torch
        kwargs["dtype"] = torch.float32
    else:
        kwargs["dtype"] = np.float32
    return getattr(library, name)(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="normlab and torch threads (default: untouched)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="a quarter of each batch")
    parser.add_argument("--only", default="", help="comma-separated layer names")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the calling thread's CPU time (meaningful at --threads 1 only)")
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures the calling thread only: use it with --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter

    import torch

    import normlab
    import normlab.nn as nn

    if args.threads:
        normlab.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    cases = [c for c in CASES if not args.only or c[0] in args.only.split(",")]
    rng = np.random.default_rng(0)
    shapes = [_quick(shape) if args.quick else shape for _, _, shape in cases]
    bandwidth = copy_bandwidth(max(int(np.prod(s)) for s in shapes) * 4, 5)
    print(f"float32, training mode, forward + backward through the modules; normlab threads "
          f"{normlab.get_num_threads()}, torch threads {torch.get_num_threads()}; copy bandwidth "
          f"{bandwidth / 1e9:.1f} GB/s; medians of {args.repeat}, interleaved, {args.clock} clock; "
          f"load average {os.getloadavg()[0]:.1f}")
    header = (f"{'layer':<16}{'input':<20}{'fwd ours':>9}{'torch':>8}{'fwd+bwd ours':>14}{'torch':>8}"
              f"{'ratio':>7}{'GB/s':>7}{'% floor':>9}")
    print(header)
    print("-" * len(header))
    for (name, layer_args, _), shape in zip(cases, shapes):
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        ours, theirs = _layer(nn, name, layer_args, False), _layer(torch.nn, name, layer_args, True)
        xn, xt, dyt = normlab.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True), torch.tensor(dy)

        def run(layer, x_in, upstream, params):
            for p in params:
                p.grad = None
            x_in.grad = None
            t0 = clock()
            y = layer(x_in)
            t1 = clock()
            y.backward(upstream)
            return t1 - t0, clock() - t0

        sides = ((ours, xn, dy, list(ours.parameters())), (theirs, xt, dyt, list(theirs.parameters())))
        for side in sides:  # warm-up: compile, fault the memory in
            run(*side)
            run(*side)
        times = {0: [], 1: []}
        for _ in range(args.repeat):
            for index, side in enumerate(sides):
                times[index].append(run(*side))
        (ours_fwd, ours_all), (torch_fwd, torch_all) = (np.median(np.array(times[i]), axis=0) for i in (0, 1))
        moved = 5 * x.nbytes
        label = str(tuple(shape)).replace(" ", "")
        print(f"{name:<16}{label:<20}{ours_fwd * 1e3:>9.2f}{torch_fwd * 1e3:>8.2f}{ours_all * 1e3:>14.2f}"
              f"{torch_all * 1e3:>8.2f}{ours_all / torch_all:>7.2f}{moved / ours_all / 1e9:>7.1f}"
              f"{100 * moved / bandwidth / ours_all:>8.0f}%")


if __name__ == "__main__":
    main()
