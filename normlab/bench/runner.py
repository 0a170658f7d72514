"""``normlab bench``: time every case against PyTorch CPU and the bandwidth floor; print the table, write JSON.

For each case (``cases.CASES``), float32, training mode, through the public
modules on both sides (argument checks, autograd and the engine's
bookkeeping included): ``y = layer(x)`` on a tensor that requires grad,
then ``y.backward(dy)`` with a random ``dy``. One call gives the forward
time and the forward + backward time. Ours and torch's calls alternate
(``timing.interleaved``) after a warm-up; the table gives medians. Before
the warm-up, our first call is timed alone: its excess over the warm median
is the cold start (compilation with an empty kernel cache, loading the
cache with a warm one), reported in a table of its own with the kernels
that call compiled.

Then one training step of the small CNN (``cnn``), ours and torch's
interleaved, with its peak memory (one fresh process per library), and the
compile latency of ``normlab train --epochs 1`` (``compile_latency``).

The JSON document (``--json PATH``)::

    {"normlab": version, "torch": version or null, "threads": n, "quick": bool, "repeat": n, "clock": "wall",
     "machine": {"cpu": model, "cores": n, "load_average": x}, "copy_bandwidth_gbs": x,
     "rows": [{"op", "shape", "pass": "fwd+bwd" | "fwd" | "step", "ours_ms", "torch_ms", "ratio", "gbs",
               "floor_percent"}],           (null where torch is missing or no floor applies)
     "cold_start": [{"op", "shape", "first_ms", "warm_ms", "extra_ms", "kernels_compiled", "compile_s"}],
     "peak_memory_mb": {"ours", "torch", "ours_traced"} or null,
     "compile_latency": compile_latency.train_latency()'s dict or null}
"""
from __future__ import annotations

import os
import platform

import numpy as np

import normlab
from normlab.bench import cases as bench_cases
from normlab.bench.compile_latency import CompileLog, format_latency, train_latency
from normlab.bench.timing import COUNTERS, clock_of, copy_bandwidth, interleaved

__all__ = ["run", "format_report", "CNN_STEP", "COMPILE_LATENCY"]

#: The names ``--ops`` matches for the CNN training step and for the compile latency of ``normlab train``.
CNN_STEP = "CNN step"
COMPILE_LATENCY = "compile latency"


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _phase_timer(layer, x, dy, counter):
    """A function running forward + backward once and returning (forward s, forward + backward s)."""
    def run():
        x.grad = None
        t0 = counter()
        y = layer(x)
        t1 = counter()
        y.backward(dy)
        return t1 - t0, counter() - t0
    return run


def _time_case(case, shape, torch, repeat: int, counter, rng) -> tuple[list, dict]:
    """(the case's table rows, its cold-start record)."""
    import normlab.nn as nn

    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    layer = case.layer(nn, shape)
    x_ours = normlab.tensor(x, requires_grad=True)
    with CompileLog() as log:  # the first call: compiles (empty cache) or loads (warm cache) its kernels
        t0 = counter()
        y = layer(x_ours)
        forward = counter() - t0
        dy = rng.standard_normal(y.shape).astype(np.float32)
        t0 = counter()
        y.backward(dy)
        first = forward + counter() - t0
    runs = {"ours": _phase_timer(layer, x_ours, normlab.tensor(dy), counter)}
    if torch is not None:
        runs["torch"] = _phase_timer(case.layer(torch.nn, shape), torch.tensor(x, requires_grad=True),
                                     torch.tensor(dy), counter)
    medians = interleaved(runs, repeat, warmup=2, clock=None)
    floors = case.floor_bytes(x.nbytes, dy.nbytes) if case.floor_bytes else (None, None)
    rows = [{"op": case.name, "shape": list(shape), "pass": what, "ours_s": medians["ours"][phase],
             "torch_s": medians["torch"][phase] if torch is not None else None, "floor_bytes": floors[phase]}
            for what, phase in (("fwd+bwd", 1), ("fwd", 0))]
    warm = medians["ours"][1]
    cold = {"op": case.name, "shape": list(shape), "first_ms": 1e3 * first, "warm_ms": 1e3 * warm,
            "extra_ms": 1e3 * (first - warm),
            "kernels_compiled": sum(row["module"].startswith("normlab.") for row in log.rows),
            "compile_s": log.seconds}
    return rows, cold


def _cnn_step(torch, threads: int, repeat: int, clock, quick: bool) -> tuple[dict, dict | None]:
    from normlab.bench import cnn

    batch = 8 if quick else cnn.BATCH
    runs = {"ours": cnn.build("normlab", batch)}
    if torch is not None:
        runs["torch"] = cnn.build("torch", batch)
    medians = interleaved(runs, repeat, warmup=3, clock=clock)
    row = {"op": CNN_STEP, "shape": [batch, 1, 28, 28], "pass": "step", "ours_s": medians["ours"],
           "torch_s": medians.get("torch"), "floor_bytes": None}
    ours_memory, torch_memory = cnn.peak_memory("normlab", threads, batch), cnn.peak_memory("torch", threads, batch)
    if ours_memory is None:
        return row, None
    mb = 2.0 ** 20
    return row, {"ours": ours_memory["rss_peak"] / mb, "ours_traced": ours_memory["traced_peak"] / mb,
                 "torch": torch_memory["rss_peak"] / mb if torch_memory else None}


def _finish_row(row: dict, bandwidth: float) -> dict:
    """Milliseconds, ratio, GB/s and % of the floor from a row's seconds and bytes."""
    ours, theirs, floor = row.pop("ours_s"), row.pop("torch_s"), row.pop("floor_bytes")
    row.update(ours_ms=1e3 * ours, torch_ms=None if theirs is None else 1e3 * theirs,
               ratio=None if theirs is None else ours / theirs,
               gbs=None if floor is None else floor / ours / 1e9,
               floor_percent=None if floor is None else 100 * floor / bandwidth / ours)
    return row


def run(ops: list[str] | None = None, threads: int | None = None, quick: bool = False, repeat: int | None = None,
        clock: str = "wall", progress=None) -> dict:
    """Run the benchmark and return its document (see the module docstring for the fields).

    ``ops``: name filters (a case runs when one occurs in its name,
    case-insensitive; None: all; ``--quick`` leaves out the compile latency
    unless a filter names it). ``threads``: normlab's and torch's thread count
    (None: normlab's current). ``repeat``: timed rounds (default 15, 2 with
    ``quick``). ``progress(message)`` is called before each case.
    """
    terms = [term.strip() for term in (ops or []) if term.strip()]
    torch = _torch()
    if threads is not None:
        normlab.set_num_threads(threads)
    threads = normlab.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    repeat = repeat if repeat is not None else (2 if quick else 15)
    rng = np.random.default_rng(0)
    selected = []
    for case in bench_cases.select(terms):
        shape = bench_cases.quick_shape(case.shape) if quick else case.shape
        if (case.name, shape) not in [(chosen.name, chosen_shape) for chosen, chosen_shape in selected]:
            selected.append((case, shape))  # quick shapes of one layer may coincide: time each once
    run_cnn = not terms or any(term.lower() in CNN_STEP.lower() for term in terms)
    run_latency = any(term.lower() in COMPILE_LATENCY for term in terms) if (terms or quick) else True
    largest = max([int(np.prod(shape)) * 4 for _, shape in selected], default=1 << 20)
    bandwidth = copy_bandwidth(largest, 5)
    rows, cold_starts = [], []
    for case, shape in selected:
        if progress:
            progress(f"{case.name} {tuple(shape)}")
        case_rows, cold = _time_case(case, shape, torch, repeat, COUNTERS[clock], rng)
        rows += case_rows
        cold_starts.append(cold)
    peak = None
    if run_cnn:
        if progress:
            progress(CNN_STEP)
        cnn_row, peak = _cnn_step(torch, threads, repeat, clock_of(clock), quick)
        rows.append(cnn_row)
    bandwidth = max(bandwidth, copy_bandwidth(largest, 5))  # a busy moment lowers it: the best of two
    latency = None
    if run_latency:
        if progress:
            progress(COMPILE_LATENCY)
        latency = train_latency(threads)
    return {"normlab": normlab.__version__, "torch": torch.__version__ if torch is not None else None,
            "threads": threads, "quick": quick, "repeat": repeat, "clock": clock,
            "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "load_average": os.getloadavg()[0]},
            "copy_bandwidth_gbs": bandwidth / 1e9,
            "rows": [_finish_row(row, bandwidth) for row in rows], "cold_start": cold_starts,
            "peak_memory_mb": peak, "compile_latency": latency}


def _number(value, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def format_report(document: dict) -> str:
    """The document as the tables ``normlab bench`` prints."""
    torch_version = document["torch"]
    lines = [f"normlab bench: float32, training mode, through the public modules; normlab {document['normlab']}, "
             + (f"torch {torch_version}" if torch_version else "torch not installed: ours only "
                "(pip install torch==2.13.0 for the comparison)"),
             f"{document['threads']} thread(s) (normlab and torch); copy bandwidth "
             f"{document['copy_bandwidth_gbs']:.1f} GB/s (the floor); medians of {document['repeat']}, interleaved, "
             f"{document['clock']} clock; {document['machine']['cpu']}, {document['machine']['cores']} cores, "
             f"load average {document['machine']['load_average']:.1f}"
             + ("; --quick: tiny shapes, the times mean nothing" if document["quick"] else "")]
    header = (f"{'op':<24}{'shape':<18}{'pass':<9}{'ours ms':>9}{'torch ms':>10}{'ratio':>7}{'GB/s':>7}"
              f"{'% floor':>9}")
    lines += ["", header, "-" * len(header)]
    for row in document["rows"]:
        shape = str(tuple(row["shape"])).replace(" ", "")
        percent = "-" if row["floor_percent"] is None else f"{row['floor_percent']:.0f}%"
        lines.append(f"{row['op'] if row['pass'] != 'fwd' else '':<24}{shape if row['pass'] != 'fwd' else '':<18}"
                     f"{row['pass']:<9}{row['ours_ms']:>9.2f}{_number(row['torch_ms'], '.2f', 10)}"
                     f"{_number(row['ratio'], '.2f', 7)}{_number(row['gbs'], '.1f', 7)}{percent:>9}")
    peak = document["peak_memory_mb"]
    if peak is not None:
        lines.append(f"\n{CNN_STEP}: peak memory of one step (resident, fresh process each) ours {peak['ours']:.1f} MB"
                     + (f", torch {peak['torch']:.1f} MB, ratio {peak['ours'] / max(peak['torch'], 1e-9):.2f}"
                        if peak["torch"] is not None else "")
                     + f"; ours traced by tracemalloc {peak['ours_traced']:.1f} MB")
    if document["cold_start"]:
        header = f"{'op':<24}{'shape':<18}{'first ms':>10}{'warm ms':>9}{'extra ms':>10}{'compiled':>10}{'compile s':>11}"
        lines += ["", "cold start: our first forward + backward minus the warm median (compiles with an empty kernel "
                  "cache, loads the cache otherwise; kernels already compiled by an earlier row are reused):",
                  header, "-" * len(header)]
        for row in document["cold_start"]:
            shape = str(tuple(row["shape"])).replace(" ", "")
            lines.append(f"{row['op']:<24}{shape:<18}{row['first_ms']:>10.1f}{row['warm_ms']:>9.2f}"
                         f"{row['extra_ms']:>10.1f}{row['kernels_compiled']:>10d}{row['compile_s']:>11.2f}")
    if document["compile_latency"] is not None:
        lines += ["", format_latency(document["compile_latency"])]
    return "\n".join(lines)
