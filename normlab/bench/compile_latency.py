"""What a new user waits for: Numba compiling normlab's kernels, per kernel, and ``normlab train`` cold vs warm.

Kernels compile on first use and are cached on disk (``cache=True``), so a
user's first run pays for compilation and every later run only loads the
cache. ``train_latency`` measures that difference the way a user meets it:
``normlab train --epochs 1 --quiet`` in a fresh process with an empty
kernel cache (a new temporary ``NUMBA_CACHE_DIR``), then again with the
cache that run left behind. The cold run records every compilation
(``CompileLog``) and reports it per kernel.

``CompileLog`` listens to Numba's "numba:compile" events, which Numba
sends only when a kernel is not found in its cache; the time of a kernel
excludes the kernels it compiled inside (its callees), so the rows add up.

    python -m normlab.bench.compile_latency     (prints the table)

>>> import numpy as np
>>> from numba import njit
>>> with CompileLog() as log:
...     _ = njit(lambda v: v + 1)(1)
>>> [row["kernel"] for row in log.rows]
['<lambda>']
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

__all__ = ["CompileLog", "train_latency", "TRAIN_COMMAND", "format_latency"]

#: The command whose cold start is measured (arguments of ``normlab``).
TRAIN_COMMAND = ["train", "--epochs", "1", "--quiet"]


def _signature(args) -> str:
    """Numba argument types in a few characters: float32[2d C], int64, None."""
    parts = []
    for arg in args:
        if hasattr(arg, "dtype") and hasattr(arg, "ndim"):
            parts.append(f"{arg.dtype}[{arg.ndim}d {arg.layout}]")
        else:
            parts.append(str(arg).replace("none", "None"))
    return ", ".join(parts)


def _constants(function) -> str:
    """The plain constants a kernel's closure fixes (``_channel_kernels``' loop order), as "[columns=True]"."""
    cells = zip(function.__code__.co_freevars, function.__closure__ or ())
    constants = [f"{name}={cell.cell_contents!r}" for name, cell in cells
                 if isinstance(cell.cell_contents, (bool, int, float, str))]
    return f"[{', '.join(constants)}]" if constants else ""


class CompileLog:
    """A context manager recording every Numba compilation in this process while it is open.

    ``rows``: one dict per compiled kernel, ``{"kernel", "module", "parallel",
    "signature", "seconds"}`` (seconds exclusive of callees compiled inside it).
    """

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._stack: list[list] = []
        self._listener = None

    def __enter__(self) -> "CompileLog":
        from numba.core import event

        log = self

        class _Listener(event.Listener):
            def on_start(self, compilation) -> None:
                log._stack.append([compilation.data, time.perf_counter(), 0.0])

            def on_end(self, compilation) -> None:
                data, start, inner = log._stack.pop()
                seconds = time.perf_counter() - start
                if log._stack:
                    log._stack[-1][2] += seconds
                dispatcher = data["dispatcher"]
                log.rows.append({"kernel": dispatcher.py_func.__qualname__ + _constants(dispatcher.py_func),
                                 "module": dispatcher.py_func.__module__,
                                 "parallel": bool(dispatcher.targetoptions.get("parallel")),
                                 "signature": _signature(data["args"]),
                                 "seconds": seconds - inner})

        self._listener = _Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc) -> None:
        from numba.core import event

        event.unregister("numba:compile", self._listener)

    @property
    def seconds(self) -> float:
        """Total seconds spent compiling."""
        return sum(row["seconds"] for row in self.rows)


def _run(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def train_latency(threads: int | None = None) -> dict:
    """``normlab train --epochs 1`` with an empty kernel cache and then a warm one, and the cold run's kernels.

    Returns ``{"command", "cold_s", "warm_s", "cold_minus_warm_s", "cold_cpu_s",
    "warm_cpu_s", "cold_minus_warm_cpu_s", "kernels": [CompileLog rows, slowest
    first]}``. ``threads`` sets the children's thread variables (None: untouched).
    """
    cache = tempfile.mkdtemp(prefix="normlab-empty-kernel-cache-")
    kernels_file = os.path.join(cache, "kernels.json")
    try:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        if threads is not None:
            from normlab.bench.timing import THREAD_VARIABLES

            env.update({variable: str(threads) for variable in THREAD_VARIABLES})
        logged = [sys.executable, "-m", "normlab.bench.compile_latency", "--child", kernels_file]
        cold_wall, cold_cpu = _run(logged, env)
        with open(kernels_file, encoding="utf-8") as file:
            kernels = json.load(file)
        warm_wall, warm_cpu = _run([sys.executable, "-m", "normlab", *TRAIN_COMMAND], env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {"command": "normlab " + " ".join(TRAIN_COMMAND), "cold_s": cold_wall, "warm_s": warm_wall,
            "cold_minus_warm_s": cold_wall - warm_wall, "cold_cpu_s": cold_cpu, "warm_cpu_s": warm_cpu,
            "cold_minus_warm_cpu_s": cold_cpu - warm_cpu,
            "kernels": sorted(kernels, key=lambda row: -row["seconds"])}


def format_latency(latency: dict) -> str:
    """The latency as text: one line of totals, then the kernels compiled, slowest first."""
    lines = [f"compile latency of `{latency['command']}`, a fresh process each, empty kernel cache vs warm:",
             f"  cold {latency['cold_s']:.2f} s, warm {latency['warm_s']:.2f} s, cold - warm "
             f"{latency['cold_minus_warm_s']:.2f} s (CPU time: {latency['cold_cpu_s']:.2f}, "
             f"{latency['warm_cpu_s']:.2f}, {latency['cold_minus_warm_cpu_s']:.2f} s)"]
    kernels = latency["kernels"]
    if kernels:
        total = sum(row["seconds"] for row in kernels)
        lines.append(f"  {len(kernels)} compilations in the cold run, {total:.2f} s (each excluding its callees):")
        width = max(len(_kernel_label(row)) for row in kernels)
        for row in kernels:
            lines.append(f"    {_kernel_label(row):<{width}}  {row['seconds']:6.3f} s  {row['signature'][:60]}")
    return "\n".join(lines)


def _kernel_label(row: dict) -> str:
    module = row["module"].removeprefix("normlab.")
    return f"{module}.{row['kernel']}" + (" (parallel)" if row["parallel"] else "")


def _child(kernels_file: str) -> int:
    """Run the train command with a CompileLog and write its rows to ``kernels_file``."""
    with CompileLog() as log:
        from normlab.cli import main

        status = main(TRAIN_COMMAND)
    with open(kernels_file, "w", encoding="utf-8") as file:
        json.dump(log.rows, file)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1])
    print(format_latency(train_latency()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
