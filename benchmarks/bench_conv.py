"""conv2d forward + backward: normlab (im2col + OpenBLAS GEMM + col2im) against PyTorch CPU (oneDNN).

Prints one row per layer shape: our time, torch's time (same thread count),
their ratio, and the percent of the compute floor we reach.

Compute floor: the three GEMMs' work (forward, input gradient, weight
gradient: 3 x 2 N O H_out W_out (C / groups) kH kW flops) divided by the rate
of one large square GEMM (``A @ B``, 2048 x 2048) on this machine with the
same threads and dtype. It ignores im2col/col2im traffic, so 100 % is not
reachable by an im2col design; it says how far from the arithmetic we are.

Timings are the minimum over ``--repeats`` runs, ours and torch's
interleaved, so that a noisy neighbour hurts both alike.

    python benchmarks/bench_conv.py [--dtype float32|float64] [--repeats 5] [--quick]
"""
from __future__ import annotations

import argparse
import os

import numba
import numpy as np

from _common import timed  # benchmarks/_common.py (run as scripts: this folder is on sys.path)

from normlab.ops import convolution as ops

# (label, (N, C, H, W), out_channels, kernel, stride, padding, groups)
CASES = [
    ("3x3 s1 (ResNet stage 1)", (32, 64, 56, 56), 64, 3, 1, 1, 1),
    ("1x1 s1 (pointwise)", (32, 64, 56, 56), 64, 1, 1, 0, 1),
    ("3x3 s2 (downsample)", (32, 64, 56, 56), 128, 3, 2, 1, 1),
    ("1x1 s2 (shortcut)", (32, 64, 56, 56), 128, 1, 2, 0, 1),
    ("3x3 s1 small map", (32, 256, 14, 14), 256, 3, 1, 1, 1),
    ("3x3 depthwise", (32, 64, 56, 56), 64, 3, 1, 1, 64),
]


def gemm_rate(dtype, size: int = 2048, repeats: int = 5) -> float:
    """Flop/s of one large square GEMM: the machine's practical peak for this dtype."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size ** 3 / best



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="batch 8 instead of 32")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as TF

    threads = numba.get_num_threads()
    torch.set_num_threads(threads)
    dtype = np.dtype(args.dtype)
    torch_dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype]
    rate = gemm_rate(dtype)
    rng = np.random.default_rng(0)

    print(f"conv2d forward + backward (dx, dW, db), {dtype}, numba threads = torch threads = {threads}, "
          f"OpenBLAS GEMM peak {rate / 1e9:.0f} GFLOP/s, load average {os.getloadavg()[0]:.1f}")
    header = (f"{'layer':26s} {'input':>18s} {'out':>4s} {'ours ms':>8s} {'torch ms':>9s} {'ratio':>6s} "
              f"{'% floor':>8s}")
    print(header)
    print("-" * len(header))
    for label, shape, out_channels, kernel, stride, padding, groups in CASES:
        if args.quick:
            shape = (8,) + shape[1:]
        n, c, h, w = shape
        x = rng.standard_normal(shape).astype(dtype)
        weight = (rng.standard_normal((out_channels, c // groups, kernel, kernel)) * 0.1).astype(dtype)
        bias = rng.standard_normal(out_channels).astype(dtype)
        y, saved = ops.conv2d_forward(x, weight, bias, stride, padding, 1, groups)
        dy = rng.standard_normal(y.shape).astype(dtype)

        def ours():
            _, state = ops.conv2d_forward(x, weight, bias, stride, padding, 1, groups)
            ops.conv2d_backward(dy, state)

        xt = torch.tensor(x, dtype=torch_dtype, requires_grad=True)
        wt = torch.tensor(weight, requires_grad=True)
        bt = torch.tensor(bias, requires_grad=True)
        dyt = torch.tensor(dy)

        def theirs():
            xt.grad = wt.grad = bt.grad = None
            TF.conv2d(xt, wt, bt, stride, padding, 1, groups).backward(dyt)

        ours()  # compile and warm up both
        theirs()
        ours_best = theirs_best = float("inf")
        for _ in range(args.repeats):
            ours_best = min(ours_best, timed(ours))
            theirs_best = min(theirs_best, timed(theirs))
        positions = y.shape[2] * y.shape[3]
        flops = 3 * 2 * n * out_channels * positions * (c // groups) * kernel * kernel
        floor = flops / rate
        print(f"{label:26s} {str(shape):>18s} {out_channels:4d} {ours_best * 1e3:8.1f} {theirs_best * 1e3:9.1f} "
              f"{ours_best / theirs_best:6.2f} {100 * floor / ours_best:7.1f}%")


if __name__ == "__main__":
    main()
