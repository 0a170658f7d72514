"""conv2d forward + backward: normlab (im2col + OpenBLAS GEMM) against PyTorch CPU (oneDNN), same threads.

Prints one row per layer shape: our time, torch's time at the same thread
count, their ratio (ours / torch; < 1 is faster), and the percent of the GEMM
floor we reach. Both sides run through the public path (``F.conv2d`` on
Tensors with autograd, ``torch.nn.functional.conv2d`` with requires_grad), so
the wrappers' overhead is included; a row computes dx, dW and db unless it
says "no dx" (a network's first layer, whose input needs no gradient).

GEMM floor: the time of bare ``np.matmul`` calls doing the same FLOPs as the
convolution's three products (forward ``W cols``, input gradient
``W^T dY``, weight gradient ``dY cols^T``), with contiguous operands of the
layer's own shapes (O x K times K x M, M = N H_out W_out, in column blocks of
at most 16384), measured in the same run, same threads. It ignores im2col,
col2im and bias, so 100 % is out of reach of an im2col design; it says how far
from the arithmetic of this BLAS we are.

Timing: ours and torch's interleaved (a noisy neighbour slows both alike),
after a warm-up; the median of ``--repeat`` runs. ``--clock cpu`` times the
calling thread's CPU time instead of the wall clock: robust on a shared,
busy machine, meaningful only at 1 thread (both sides then run on the
calling thread).

    python benchmarks/bench_conv.py [--threads 1 2] [--repeat 9] [--quick] [--clock wall|cpu]
"""
from __future__ import annotations

import argparse
import os
import statistics

import numpy as np

import normlab
import normlab.nn.functional as F
from normlab.bench.timing import clock_of

# (label, (N, C, H, W), out_channels, kernel, stride, padding, groups, needs dx)
CASES = [
    ("3x3 64->64, 28x28", (16, 64, 28, 28), 64, 3, 1, 1, 1, True),
    ("3x3 64->64, 56x56", (32, 64, 56, 56), 64, 3, 1, 1, 1, True),
    ("3x3 3->64 (stem)", (32, 3, 56, 56), 64, 3, 1, 1, 1, True),
    ("3x3 256->256, 14x14", (8, 256, 14, 14), 256, 3, 1, 1, 1, True),
    ("1x1 256->64", (32, 256, 14, 14), 64, 1, 1, 0, 1, True),
    ("CNN 1->16 b128, no dx", (128, 1, 28, 28), 16, 3, 1, 1, 1, False),
    ("CNN 16->32 b128", (128, 16, 14, 14), 32, 3, 1, 1, 1, True),
    ("CNN 1->16 b64, no dx", (64, 1, 28, 28), 16, 3, 1, 1, 1, False),
    ("CNN 16->32 b64", (64, 16, 14, 14), 32, 3, 1, 1, 1, True),
    ("3x3 s2 64->128", (32, 64, 56, 56), 128, 3, 2, 1, 1, True),
    ("1x1 s2 64->128", (32, 64, 56, 56), 128, 1, 2, 0, 1, True),
    ("3x3 depthwise 64", (32, 64, 56, 56), 64, 3, 1, 1, 64, True),
]


def set_threads(threads: int) -> None:
    """The same thread count for normlab (Numba and OpenBLAS) and torch."""
    import torch

    normlab.set_num_threads(threads)
    torch.set_num_threads(threads)


def gemm_floor(out_channels: int, rows: int, columns: int, dtype, repeat: int, clock) -> float:
    """Seconds of the three bare GEMMs of an im2col convolution (O x K) (K x M), (K x O) (O x M), (O x M) (M x K)."""
    rng = np.random.default_rng(1)
    block = min(columns, 16384)
    w = rng.standard_normal((out_channels, rows)).astype(dtype)
    w_t = np.ascontiguousarray(w.T)
    cols = rng.standard_normal((rows, block)).astype(dtype)
    cols_t = np.ascontiguousarray(cols.T)
    dy = rng.standard_normal((out_channels, block)).astype(dtype)

    def three():
        w @ cols
        w_t @ dy
        dy @ cols_t

    three()
    best = statistics.median(clock(three) for _ in range(repeat))
    return best * columns / block


def run_case(case, dtype, repeat: int, clock, quick: bool):
    import torch
    import torch.nn.functional as TF

    label, shape, out_channels, kernel, stride, padding, groups, needs_dx = case
    if quick:
        shape = (min(shape[0], 4),) + shape[1:]
    n, c = shape[:2]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    weight = (rng.standard_normal((out_channels, c // groups, kernel, kernel)) * 0.1).astype(dtype)
    bias = rng.standard_normal(out_channels).astype(dtype)
    xn = normlab.tensor(x, requires_grad=needs_dx)
    wn = normlab.tensor(weight, requires_grad=True)
    bn = normlab.tensor(bias, requires_grad=True)
    xt = torch.tensor(x, requires_grad=needs_dx)
    wt = torch.tensor(weight, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    y_shape = tuple(TF.conv2d(xt.detach(), wt.detach(), None, stride, padding, 1, groups).shape)
    dy = rng.standard_normal(y_shape).astype(dtype)
    dyt = torch.tensor(dy)

    def ours():
        xn.grad = wn.grad = bn.grad = None
        F.conv2d(xn, wn, bn, stride, padding, 1, groups).backward(dy)

    def theirs():
        xt.grad = wt.grad = bt.grad = None
        TF.conv2d(xt, wt, bt, stride, padding, 1, groups).backward(dyt)

    ours()  # compile and warm up both
    theirs()
    ours_times, theirs_times = [], []
    for _ in range(repeat):
        ours_times.append(clock(ours))
        theirs_times.append(clock(theirs))
    ours_s, theirs_s = statistics.median(ours_times), statistics.median(theirs_times)
    rows = (c // groups) * kernel * kernel
    columns = y_shape[0] * y_shape[2] * y_shape[3]
    if groups == 1:
        floor = gemm_floor(out_channels, rows, columns, dtype, repeat, clock) * (1.0 if needs_dx else 2 / 3)
        floor_text = f"{100 * floor / ours_s:7.1f}%"
    else:
        floor_text = f"{'-':>8s}"  # grouped: no single GEMM to compare with
    return (f"{label:24s} {str(shape):>18s} {out_channels:4d} {ours_s * 1e3:8.2f} {theirs_s * 1e3:9.2f} "
            f"{ours_s / theirs_s:6.2f} {floor_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="batch of at most 4: a smoke run")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"])
    parser.add_argument("--cases", nargs="*", help="substrings of the row labels to run (default: all)")
    args = parser.parse_args()
    dtype = np.dtype(args.dtype)
    clock = clock_of(args.clock)
    cases = [case for case in CASES if not args.cases or any(s in case[0] for s in args.cases)]
    for threads in args.threads:
        set_threads(threads)
        print(f"\nconv2d forward + backward, {dtype}, {threads} thread(s) (numba, OpenBLAS, torch), "
              f"{args.clock} clock, median of {args.repeat}, load average {os.getloadavg()[0]:.1f}")
        header = (f"{'layer':24s} {'input':>18s} {'out':>4s} {'ours ms':>8s} {'torch ms':>9s} {'ratio':>6s} "
                  f"{'% GEMM':>8s}")
        print(header)
        print("-" * len(header))
        for case in cases:
            print(run_case(case, dtype, args.repeat, clock, args.quick), flush=True)


if __name__ == "__main__":
    main()
