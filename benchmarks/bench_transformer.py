"""Attention, the Transformer encoder layer and Embedding: normlab vs PyTorch CPU at the same thread count.

Forward + backward (training mode, dropout 0, float32): self-attention and
an encoder layer (post-LN and pre-LN) on a batch of N sequences of length L,
width E, H heads, feed-forward F; an Embedding lookup (V rows of width D, an
(N, L) batch of ids). Each thread count runs in a fresh subprocess that sets
the thread variables before NumPy, Numba and torch load. Ours and torch
alternate within every repetition (the machine may be shared: a busy moment
slows both sides alike); the table gives the median of the repetitions.

Columns: ours ms, torch ms, ratio (ours / torch; < 1 is faster), and % floor:
for attention and the layer, the same matrix products done bare with NumPy's
BLAS (projections, q k^T, weights v, feed-forward, and their gradients) over
ours; for Embedding, the bytes it must move (read and write the looked-up
rows and their gradients) at the measured copy bandwidth, over ours.

    python benchmarks/bench_transformer.py [--threads 1 2] [--repeat 15] [--quick]
"""
from __future__ import annotations

import argparse
import json

N, L, E, H, FF = 16, 64, 256, 8, 1024
VOCAB, DIM = 20000, 256


def gemm_floor(np, timed, feed_forward: bool) -> float:
    """Seconds of the bare matrix products of one self-attention (+ feed-forward) forward and backward."""
    rng = np.random.default_rng(0)
    rows = N * L
    x = rng.standard_normal((rows, E)).astype(np.float32)
    w_in, w_out = rng.standard_normal((3 * E, E)).astype(np.float32), rng.standard_normal((E, E)).astype(np.float32)
    q = rng.standard_normal((N * H, L, E // H)).astype(np.float32)
    scores = rng.standard_normal((N * H, L, L)).astype(np.float32)
    w1, w2 = rng.standard_normal((FF, E)).astype(np.float32), rng.standard_normal((E, FF)).astype(np.float32)
    hidden = rng.standard_normal((rows, FF)).astype(np.float32)

    def run():
        for _ in range(3):  # forward, input gradient, weight gradient
            _ = x @ w_in.T, x @ w_out.T
            if feed_forward:
                _ = x @ w1.T, hidden @ w2.T
        for _ in range(2):  # forward; backward has two of each product
            _ = q @ q.transpose(0, 2, 1), scores @ q
        _ = scores @ q, scores @ q

    run()
    return timed(run)


def measure(threads: int, repeat: int, quick: bool) -> list[dict]:
    """Runs in the child process: time every case at ``threads`` threads."""
    import numpy as np
    import torch

    from normlab.bench.timing import copy_bandwidth, timed

    import normlab
    import normlab.nn as nn

    torch.set_num_threads(threads)
    normlab.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []

    def compare(label, ours_step, torch_step, floor):
        ours_step(), torch_step()  # compile and warm up outside the timing
        ours_times, torch_times = [], []
        for _ in range(repeat):
            ours_times.append(timed(ours_step))
            torch_times.append(timed(torch_step))
        rows.append(dict(label=label, ours=float(np.median(ours_times)), torch=float(np.median(torch_times)),
                         floor=floor))

    x = rng.standard_normal((N, L, E)).astype(np.float32)
    dy = rng.standard_normal((N, L, E)).astype(np.float32)
    layers = [("self-attention", lambda lib: lib.MultiheadAttention(E, H, batch_first=True), False)]
    if not quick:
        layers += [("encoder post-LN", lambda lib: lib.TransformerEncoderLayer(E, H, FF, 0.0, batch_first=True), True),
                   ("encoder pre-LN", lambda lib: lib.TransformerEncoderLayer(E, H, FF, 0.0, batch_first=True,
                                                                             norm_first=True), True)]
    for label, make, feed_forward in layers:
        ours, theirs = make(nn), make(torch.nn)
        theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
        xn, dyn = normlab.tensor(x, requires_grad=True), normlab.tensor(dy)
        xt, dyt = torch.tensor(x, requires_grad=True), torch.tensor(dy)

        def run(module, inp, upstream, attention=not feed_forward):
            out = module(inp, inp, inp, need_weights=False)[0] if attention else module(inp)
            (out * upstream).sum().backward()

        floor = min(gemm_floor(np, timed, feed_forward) for _ in range(3))
        compare(label, lambda: run(ours, xn, dyn), lambda: run(theirs, xt, dyt), floor)

    ids = rng.integers(0, VOCAB, (N, L))
    emb, temb = nn.Embedding(VOCAB, DIM), torch.nn.Embedding(VOCAB, DIM)
    g = rng.standard_normal((N, L, DIM)).astype(np.float32)
    gn, gt, idt = normlab.tensor(g), torch.tensor(g), torch.tensor(ids)
    moved = 4 * (N * L * DIM * 4 + VOCAB * DIM)  # rows read + written, gradient rows read + scattered, table zeroed

    def ours_lookup():
        emb.weight.grad = None
        (emb(ids) * gn).sum().backward()

    def torch_lookup():
        temb.weight.grad = None
        (temb(idt) * gt).sum().backward()

    compare("embedding", ours_lookup, torch_lookup, moved / copy_bandwidth(1 << 26, 3))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="self-attention and Embedding only, few repetitions")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeat, args.quick)))
        return
    print(f"float32, forward + backward, N {N}, L {L}, E {E}, heads {H}, feed-forward {FF}; embedding {VOCAB} x {DIM}; "
          f"median of {args.repeat}; ratio = ours / torch")
    header = f"{'threads':>7}  {'case':<18}{'ours ms':>9}{'torch ms':>10}{'ratio':>8}{'% floor':>9}"
    print(header)
    print("-" * len(header))
    from normlab.bench.timing import run_per_thread_count

    for threads in args.threads:
        for r in run_per_thread_count(__file__, threads, ["--repeat", str(args.repeat)] + ["--quick"] * args.quick):
            print(f"{threads:>7}  {r['label']:<18}{1e3 * r['ours']:9.1f}{1e3 * r['torch']:10.1f}"
                  f"{r['ours'] / r['torch']:8.2f}{100 * r['floor'] / r['ours']:8.0f}%")

if __name__ == "__main__":
    main()
