"""Pooling speed: normlab vs PyTorch CPU at the same thread count, and vs the memory-bandwidth floor.

Times forward + backward (and each alone) of max_pool2d and avg_pool2d on a ResNet-stem-sized
float32 input, through the public path on both sides (normlab.nn.functional with autograd Tensors,
torch.nn.functional with requires_grad), so the wrappers' overhead is included. Prints one table: ours ms, torch ms, ratio (ours / torch; < 1 is faster), and the
percent of the bandwidth floor reached (the bytes that must move, divided by a measured copy
bandwidth, over our time; 100% would be a kernel as fast as memcpy).

    python benchmarks/bench_pooling.py [--shape 32 64 56 56] [--repeat 15]

Bytes that must move (float32 x of B bytes, output y of b bytes, int64 indices 2b):
    max fwd: read x, write y and indices        B + 3b
    max bwd: read dy and indices, write dx      3b + B
    avg fwd: read x, write y                    B + b
    avg bwd: read dy, write dx                  b + B
"""
from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from _common import copy_bandwidth  # benchmarks/_common.py (run as scripts: this folder is on sys.path)

import normlab
import normlab.nn.functional as F
from normlab.ops import pooling as P





def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[32, 64, 56, 56])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as TF

    threads = numba.get_num_threads()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(args.shape).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    bandwidth = copy_bandwidth(x.nbytes, args.repeat)
    table = []

    cases = [
        ("max_pool2d k3 s2 p1", F.max_pool2d, P.max_pool2d_forward, P.max_pool2d_backward, TF.max_pool2d,
         dict(kernel_size=3, stride=2, padding=1), True),
        ("max_pool2d k2 s2", F.max_pool2d, P.max_pool2d_forward, P.max_pool2d_backward, TF.max_pool2d,
         dict(kernel_size=2, stride=2), True),
        ("avg_pool2d k3 s2 p1", F.avg_pool2d, P.avg_pool2d_forward, P.avg_pool2d_backward, TF.avg_pool2d,
         dict(kernel_size=3, stride=2, padding=1), False),
        ("avg_pool2d k2 s2", F.avg_pool2d, P.avg_pool2d_forward, P.avg_pool2d_backward, TF.avg_pool2d,
         dict(kernel_size=2, stride=2), False),
    ]
    xn = normlab.tensor(x, requires_grad=True)
    for name, ours_op, kernel_forward, kernel_backward, torch_op, kwargs, has_indices in cases:
        y = ours_op(xn, **kwargs)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dyt = torch.tensor(dy)
        y.backward(dy)  # compile outside the timing
        ours_f, ours_b, torch_f, torch_b, kernel_f, kernel_b = [], [], [], [], [], []
        for _ in range(args.repeat):  # interleaved, so a busy machine slows both sides alike
            t0 = time.perf_counter()
            _, saved = kernel_forward(x, **kwargs)
            t1 = time.perf_counter()
            kernel_backward(dy, saved)
            t2 = time.perf_counter()
            kernel_f.append(t1 - t0)
            kernel_b.append(t2 - t1)
            xn.grad = None
            t0 = time.perf_counter()
            y = ours_op(xn, **kwargs)
            t1 = time.perf_counter()
            y.backward(dy)
            t2 = time.perf_counter()
            ours_f.append(t1 - t0)
            ours_b.append(t2 - t1)
            t0 = time.perf_counter()
            yt = torch_op(xt, **kwargs)
            t1 = time.perf_counter()
            yt.backward(dyt)
            t2 = time.perf_counter()
            xt.grad = None
            torch_f.append(t1 - t0)
            torch_b.append(t2 - t1)
        B, b = x.nbytes, y.data.nbytes
        index_bytes = 2 * b if has_indices else 0
        floors = {"fwd": (B + b + index_bytes), "bwd": (b + index_bytes + B)}
        floors["fwd+bwd"] = floors["fwd"] + floors["bwd"]
        rows = {
            "fwd": (min(ours_f), min(kernel_f), min(torch_f)),
            "bwd": (min(ours_b), min(kernel_b), min(torch_b)),
            "fwd+bwd": (min(np.add(ours_f, ours_b)), min(np.add(kernel_f, kernel_b)), min(np.add(torch_f, torch_b))),
        }
        for label, (ours, kernels, theirs) in rows.items():
            table.append((name, label, ours, kernels, theirs, floors[label]))

    # a busy machine lowers the measured bandwidth: keep the best of a measurement before and after
    bandwidth = max(bandwidth, copy_bandwidth(x.nbytes, args.repeat))
    print(f"input {tuple(args.shape)} float32, {threads} threads (numba and torch), "
          f"copy bandwidth {bandwidth / 1e9:.1f} GB/s, best of {args.repeat}")
    header = f"{'op':<22}{'pass':<9}{'ours ms':>9}{'kernels ms':>12}{'torch ms':>10}{'ratio':>8}{'% floor':>9}"
    print(header)
    print("-" * len(header))
    for name, label, ours, kernels, theirs, floor_bytes in table:
        print(f"{name:<22}{label:<9}{ours * 1e3:>9.2f}{kernels * 1e3:>12.2f}{theirs * 1e3:>10.2f}"
              f"{ours / theirs:>8.2f}{100 * floor_bytes / bandwidth / ours:>8.0f}%")


if __name__ == "__main__":
    main()
