"""Recurrent layers' speed: normlab vs PyTorch CPU at the same thread count, and vs a GEMM floor.

Forward + backward (training mode, float32) of one layer: input 128, hidden
256, T = 50, batch 64 -- time-major, batch_first, and a packed batch of
variable lengths (uniform in 25 .. 50; torch gets the PackedSequence). Each
thread count runs in a fresh subprocess that sets the thread variables before
NumPy, Numba and torch load. Ours and torch alternate within every repetition
(the machine may be shared: a busy moment slows both sides alike); the table
gives the median of the repetitions.

Columns: ours ms, torch ms, ratio (ours / torch; < 1 is faster), and % floor:
the time of the same matrix multiplies done bare with NumPy's BLAS (``x
W_ih^T`` once, ``h W_hh^T`` and ``dz W_hh`` per step, the three weight and
input gradients once; timed in the same interleave) over ours -- 100% would
mean everything but the GEMMs is free. LN-LSTM and BN-LSTM (normlab's ``norm=``) have no torch
counterpart: their second column is normlab's plain LSTM, timed interleaved
with them in the same way, and the ratio is against it (target <= 2x).

    python benchmarks/bench_rnn.py [--threads 1 2] [--repeat 15] [--quick]
"""
from __future__ import annotations

import argparse
import json

INPUT, HIDDEN, STEPS, BATCH = 128, 256, 50, 64

CASES = [  # (label, mode, norm, layout)
    ("LSTM", "LSTM", None, "time-major"),
    ("LSTM", "LSTM", None, "batch_first"),
    ("LSTM", "LSTM", None, "packed"),
    ("GRU", "GRU", None, "time-major"),
    ("GRU", "GRU", None, "batch_first"),
    ("GRU", "GRU", None, "packed"),
    ("LN-LSTM", "LSTM", "layer", "time-major"),
    ("BN-LSTM", "LSTM", "batch", "time-major"),
]


def gemm_floor(mode, dtype, np, lengths):
    """A function running the bare GEMMs of one forward + backward (the same shapes as ours)."""
    gates = 4 if mode == "LSTM" else 3
    rng = np.random.default_rng(0)
    rows = int(sum(lengths))
    batch_sizes = [sum(1 for n in lengths if n > t) for t in range(max(lengths))]
    x = rng.standard_normal((rows, INPUT)).astype(dtype)
    w_ih = rng.standard_normal((gates * HIDDEN, INPUT)).astype(dtype)
    w_hh = rng.standard_normal((gates * HIDDEN, HIDDEN)).astype(dtype)
    w_hh_t = np.ascontiguousarray(w_hh.T)
    h = rng.standard_normal((rows, HIDDEN)).astype(dtype)
    g = rng.standard_normal((rows, gates * HIDDEN)).astype(dtype)
    out, dh = np.empty((BATCH, gates * HIDDEN), dtype), np.empty((BATCH, HIDDEN), dtype)

    def run():
        _ = x @ w_ih.T
        start = 0
        for n in batch_sizes:
            np.matmul(h[start:start + n], w_hh_t, out=out[:n])
            start += n
        start = 0
        for n in batch_sizes:
            np.matmul(g[start:start + n], w_hh, out=dh[:n])
            start += n
        _ = g @ w_ih, g.T @ x, g.T @ h

    run()
    return run


def measure(threads: int, repeat: int, quick: bool) -> list[dict]:
    """Runs in the child process: time every case at ``threads`` threads."""
    import numpy as np
    import torch

    from normlab.bench.timing import timed

    import normlab
    import normlab.nn as nn

    torch.set_num_threads(threads)
    normlab.set_num_threads(threads)
    steps = STEPS // 5 if quick else STEPS
    rng = np.random.default_rng(0)
    lengths_variable = np.sort(rng.integers(steps // 2, steps + 1, BATCH))[::-1].copy()
    lengths_variable[0] = steps

    def build(mode, norm, layout, x, dy, lengths):
        """(normlab step, torch step) -- the torch step is None for normlab's norms."""
        normlab.manual_seed(0)
        extra = dict(norm=norm, max_steps=steps) if norm == "batch" else dict(norm=norm)
        ours = getattr(nn, mode)(INPUT, HIDDEN, batch_first=layout == "batch_first", **extra)
        xn, dyn = normlab.tensor(x, requires_grad=True), normlab.tensor(dy)

        def ours_step():
            xn.grad = None
            for p in ours.parameters():
                p.grad = None
            output = ours(xn, lengths=lengths if layout == "packed" else None)[0]
            (output * dyn).sum().backward()

        if norm is not None:
            return ours_step, None
        ref = getattr(torch.nn, mode)(INPUT, HIDDEN, batch_first=layout == "batch_first")
        xt, dyt = torch.tensor(x, requires_grad=True), torch.tensor(dy)

        def torch_step():
            xt.grad = None
            ref.zero_grad()
            if layout == "packed":
                packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths))
                output = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], total_length=steps)[0]
            else:
                output = ref(xt)[0]
            (output * dyt).sum().backward()

        return ours_step, torch_step

    rows = []
    for label, mode, norm, layout in CASES:
        shape = (BATCH, steps, INPUT) if layout == "batch_first" else (steps, BATCH, INPUT)
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal(shape[:2] + (HIDDEN,)).astype(np.float32)
        lengths = lengths_variable if layout == "packed" else np.full(BATCH, steps)
        ours_step, other_step = build(mode, norm, layout, x, dy, lengths)
        if other_step is None:   # a norm: against normlab's plain LSTM, interleaved the same way
            other_step = build(mode, None, layout, x, dy, lengths)[0]
        floor_step = gemm_floor(mode, np.float32, np, lengths)
        ours_step(), other_step()     # compile and warm up outside the timing
        ours_times, other_times, floor_times = [], [], []
        for _ in range(repeat):
            ours_times.append(timed(ours_step))
            other_times.append(timed(other_step))
            floor_times.append(timed(floor_step))
        rows.append(dict(label=label, layout=layout, norm=norm, ours=float(np.median(ours_times)),
                         other=float(np.median(other_times)), floor=float(np.median(floor_times))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="T = 10 and few repetitions")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeat, args.quick)))
        return
    print(f"float32, forward + backward, input {INPUT}, hidden {HIDDEN}, T {STEPS // 5 if args.quick else STEPS}, "
          f"batch {BATCH}, median of {args.repeat}; ratio = ours / torch (normlab norms: / normlab's plain LSTM)")
    header = f"{'threads':>7}  {'layer':<8}{'layout':<12}{'ours ms':>9}{'torch ms':>14}{'ratio':>8}{'% floor':>9}"
    print(header)
    print("-" * len(header))
    from normlab.bench.timing import run_per_thread_count

    for threads in args.threads:
        for r in run_per_thread_count(__file__, threads, ["--repeat", str(args.repeat)] + ["--quick"] * args.quick):
            other_text = f"{1e3 * r['other']:10.1f}" if r["norm"] is None else f"{1e3 * r['other']:6.1f} ours"
            print(f"{threads:>7}  {r['label']:<8}{r['layout']:<12}{1e3 * r['ours']:9.1f}{other_text:>14}"
                  f"{r['ours'] / r['other']:8.2f}{100 * r['floor'] / r['ours']:8.0f}%")

if __name__ == "__main__":
    main()
