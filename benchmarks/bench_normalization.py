"""Normalization speed: normlab vs PyTorch CPU at the same thread count, and vs the memory-bandwidth floor.

Times the public path -- ``F.batch_norm`` / ``F.layer_norm`` on Tensors that
require grad, then ``backward`` -- forward, backward and both, float32, training
mode (batch statistics, running stats updated). Prints one table: ours ms,
torch ms, ratio (ours / torch; < 1 is faster), and the percent of the
bandwidth floor reached (the bytes that must move, divided by a measured
copy bandwidth, over our time; 100% would be as fast as memcpy). The
``kernel ms`` columns time ``normlab.ops.normalization`` alone (no autograd:
no argument checks, no engine, no copy of the input gradient into ``.grad``).

    python benchmarks/bench_normalization.py [--threads N] [--repeat 10] [--quick]

Bytes that must move (x of B bytes; parameters and statistics are negligible):
    forward:  read x, write y                      2B
    backward: read dy and x (or x_hat), write dx   3B
normlab's forward also writes x_hat (its saved state, 3B in all) where torch
saves x itself; the floor counts only what any implementation must move.
"""
from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from _common import copy_bandwidth  # benchmarks/_common.py (run as scripts: this folder is on sys.path)





def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="numba and torch threads (default: numba's)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as TF

    import normlab
    import normlab.nn.functional as F
    from normlab.ops import normalization as P

    threads = args.threads or numba.get_num_threads()
    numba.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    scale = 4 if args.quick else 1
    cases = [
        ("BatchNorm2d", (32 // scale, 64, 56, 56), None),
        ("BatchNorm2d", (64 // scale, 256, 14, 14), None),
        ("BatchNorm2d", (256 // scale, 512, 7, 7), None),
        ("LayerNorm", (64 // scale, 128, 768), (768,)),
        ("LayerNorm", (32 // scale, 64, 56, 56), (64, 56, 56)),
        ("LayerNorm", (8192 // scale, 64), (64,)),
    ]
    largest = max(int(np.prod(shape)) for _, shape, _ in cases) * 4
    bandwidth = copy_bandwidth(largest, args.repeat)
    print(f"float32, training mode, {threads} threads (numba and torch), copy bandwidth "
          f"{bandwidth / 1e9:.1f} GB/s, best of {args.repeat}")
    header = (f"{'layer':<12}{'input':<20}{'pass':<9}{'ours ms':>9}{'torch ms':>10}{'ratio':>8}{'% floor':>9}"
              f"{'kernel ms':>11}{'% floor':>9}")
    print(header)
    print("-" * len(header))
    for layer, shape, normalized_shape in cases:
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        channels = shape[1]
        if layer == "BatchNorm2d":
            weight, bias = np.ones(channels, np.float32), np.zeros(channels, np.float32)
            mean, var = np.zeros(channels, np.float32), np.ones(channels, np.float32)
            tmean, tvar = torch.zeros(channels), torch.ones(channels)

            def ours_forward(xt, w, b):
                return F.batch_norm(xt, mean, var, w, b, training=True)

            def torch_forward(xt, w, b):
                return TF.batch_norm(xt, tmean, tvar, w, b, training=True)
        else:
            weight, bias = np.ones(normalized_shape, np.float32), np.zeros(normalized_shape, np.float32)

            def ours_forward(xt, w, b):
                return F.layer_norm(xt, normalized_shape, w, b)

            def torch_forward(xt, w, b):
                return TF.layer_norm(xt, normalized_shape, w, b)

        xn = normlab.tensor(x, requires_grad=True)
        wn, bn = normlab.tensor(weight, requires_grad=True), normlab.tensor(bias, requires_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        wt, bt = torch.tensor(weight, requires_grad=True), torch.tensor(bias, requires_grad=True)
        dyt = torch.tensor(dy)
        if layer == "BatchNorm2d":
            def kernel_forward():
                return P.batch_norm_forward(x, weight, bias, training=True)
            kernel_backward = P.batch_norm_backward
        else:
            def kernel_forward():
                return P.layer_norm_forward(x, weight, bias, normalized_ndim=len(normalized_shape))
            kernel_backward = P.layer_norm_backward
        ours_forward(xn, wn, bn).backward(dy)  # compile outside the timing
        ours_f, ours_b, torch_f, torch_b, kernel_f, kernel_b = [], [], [], [], [], []
        for _ in range(args.repeat):  # interleaved, so a busy machine slows both sides alike
            t0 = time.perf_counter()
            _, saved = kernel_forward()
            t1 = time.perf_counter()
            kernel_backward(dy, saved)
            t2 = time.perf_counter()
            kernel_f.append(t1 - t0)
            kernel_b.append(t2 - t1)
            del saved
            for t in (xn, wn, bn):
                t.grad = None
            t0 = time.perf_counter()
            y = ours_forward(xn, wn, bn)
            t1 = time.perf_counter()
            y.backward(dy)
            t2 = time.perf_counter()
            ours_f.append(t1 - t0)
            ours_b.append(t2 - t1)
            for t in (xt, wt, bt):
                t.grad = None
            t0 = time.perf_counter()
            yt = torch_forward(xt, wt, bt)
            t1 = time.perf_counter()
            yt.backward(dyt)
            t2 = time.perf_counter()
            torch_f.append(t1 - t0)
            torch_b.append(t2 - t1)
        nbytes = x.nbytes
        floors = {"fwd": 2 * nbytes, "bwd": 3 * nbytes, "fwd+bwd": 5 * nbytes}
        rows = {
            "fwd": (min(ours_f), min(torch_f), min(kernel_f)),
            "bwd": (min(ours_b), min(torch_b), min(kernel_b)),
            "fwd+bwd": (min(np.add(ours_f, ours_b)), min(np.add(torch_f, torch_b)),
                        min(np.add(kernel_f, kernel_b))),
        }
        label = str(tuple(shape)).replace(" ", "")
        for name, (ours, theirs, kernel) in rows.items():
            floor = floors[name] / bandwidth
            print(f"{layer:<12}{label:<20}{name:<9}{ours * 1e3:>9.2f}{theirs * 1e3:>10.2f}{ours / theirs:>8.2f}"
                  f"{100 * floor / ours:>8.0f}%{kernel * 1e3:>11.2f}{100 * floor / kernel:>8.0f}%")


if __name__ == "__main__":
    main()
