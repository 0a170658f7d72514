"""Run experiments in worker processes and write the report: ``run(names, quick=..., out=...)``.

Every task (by default one seed of one experiment) runs in a worker process
started with ``spawn`` and limited to ``threads`` threads (Numba, OpenMP and
BLAS; 1 by default). A task seeds normlab's generator with its seed before
it starts and draws everything else from generators of that seed, so the
numbers depend only on the command and the thread count, not on ``jobs``
or on which worker ran what. A task that raises is recorded with its
traceback; its experiment is reported as failed and the others go on.

Results are assembled per experiment in the parent process: the per-seed
effects, their mean and standard deviation, each check's outcome per seed
and on the mean, the verdict (``experiment.vote``/``combine``), and the
figures. ``DIR/results.json`` and ``DIR/index.html`` are written at the end.
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import datetime
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import queue as queue_module
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from normlab.lab.experiment import Experiment, combine, get_experiment, load_experiment, vote

__all__ = ["run", "THREAD_VARIABLES"]

#: Environment variables that set the thread count of every library a worker uses.
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_PROGRESS_INTERVAL = 0.25  # seconds between two progress messages of one task


# ----------------------------------------------------------------------------
# Worker side
# ----------------------------------------------------------------------------

_progress_queue = None


def _initialize_worker(progress_queue) -> None:
    global _progress_queue
    _progress_queue = progress_queue


def _run_unit(module: str, name: str, index: int, task: dict, size: dict) -> dict:
    """Run one task of one experiment; never raises (a failure comes back as a traceback)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    last = [0.0]

    def progress(fraction: float) -> None:
        now = time.perf_counter()
        if _progress_queue is not None and now - last[0] >= _PROGRESS_INTERVAL:
            last[0] = now
            _progress_queue.put((name, index, min(max(float(fraction), 0.0), 1.0)))

    threads = None
    try:
        import normlab

        threads = normlab.get_num_threads()  # what the worker really uses, recorded next to what was asked
        experiment = load_experiment(module, name)
        normlab.manual_seed(int(task["seed"]))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = experiment.run_task(dict(task), dict(size), progress)
        if not isinstance(result, dict):
            raise TypeError(f"{name}.run_task must return a dict, got {type(result).__name__}")
        outcome = {"ok": True, "result": _json_safe(result)}
    except Exception:
        outcome = {"ok": False, "traceback": traceback.format_exc()}
    # CPU time as well as wall time: on a shared machine the CPU time is what the task costs.
    return {**outcome, "threads": threads, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu_start}


# ----------------------------------------------------------------------------
# Parent side
# ----------------------------------------------------------------------------

def _json_safe(value):
    """Plain JSON values: NumPy scalars/arrays to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


@contextlib.contextmanager
def _thread_environment(threads: int):
    """Set the thread variables while workers start (they inherit the environment); restore them after."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _versions() -> dict:
    """Installed versions of Python and of every package the numbers depend on (None: not installed)."""
    versions = {"python": platform.python_version()}
    for distribution in ("normlab", "numpy", "numba", "matplotlib", "mnist1d", "scikit-learn"):
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[distribution] = None
    return versions


def _git_commit() -> str | None:
    """The commit of the normlab checkout, when it is one (an installed wheel has none)."""
    folder = Path(__file__).resolve().parents[2]
    try:
        output = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return output + ("+uncommitted changes" if dirty else "") if output else None


class _Bars:
    """tqdm bars on stderr: one overall (estimated time left), one per experiment; lines when not a terminal."""

    def __init__(self, plan: list[dict], enabled: bool, log: Callable[[str], None] | None) -> None:
        self.log = log or (lambda line: None)
        self.overall = None
        self.bars: dict[str, object] = {}
        self.fraction: dict[tuple[str, int], float] = {}
        self.plan = {entry["experiment"].id: entry for entry in plan}
        self.finished = 0
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        if not sys.stderr.isatty():
            return
        total = sum(entry["estimate"] * len(entry["tasks"]) for entry in plan) or 1.0
        self.overall = tqdm(total=total, desc="lab", position=0, file=sys.stderr, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| elapsed {elapsed}, about {remaining} left")
        for row, entry in enumerate(plan, start=1):
            self.bars[entry["experiment"].id] = tqdm(
                total=max(len(entry["tasks"]), 1), desc=entry["experiment"].id, position=row, file=sys.stderr,
                dynamic_ncols=True, bar_format="{desc:<22} {percentage:3.0f}%|{bar}| {n:.1f}/{total} tasks")

    def update(self, name: str, index: int, fraction: float) -> None:
        # max: a progress message can arrive after its task's result.
        self.fraction[(name, index)] = max(self.fraction.get((name, index), 0.0), fraction)
        if self.overall is None:
            return
        done = sum(f for (n, _), f in self.fraction.items() if n == name)
        bar = self.bars[name]
        bar.n = done
        bar.refresh()
        self.overall.n = sum(f * self.plan[n]["estimate"] for (n, _), f in self.fraction.items())
        self.overall.refresh()

    def experiment_done(self, record: dict) -> None:
        self.finished += 1
        line = (f"normlab lab: [{self.finished}/{len(self.plan)}] {record['id']}: "
                f"{'FAILED' if record['status'] == 'failed' else record['verdict']} "
                f"({record['task_seconds']:.1f} s in tasks, {record['task_cpu_seconds']:.1f} s of CPU)")
        if self.overall is not None:
            self.overall.write(line, file=sys.stderr)
        else:
            self.log(line)

    def close(self) -> None:
        for bar in list(self.bars.values()) + ([self.overall] if self.overall is not None else []):
            bar.close()


def _finish(entry: dict, outcomes: list[dict], quick: bool, out: Path) -> dict:
    """The results.json record of one experiment from the outcomes of its tasks."""
    experiment: Experiment = entry["experiment"]
    record = {
        "id": experiment.id, "title": experiment.title, "claim": experiment.claim, "anchor": experiment.anchor,
        "criterion": experiment.criterion, "seeds": entry["seeds"], "effect": {}, "verdict": "inconclusive",
        "figures": [], "status": "ok", "method": experiment.method, "size": entry["size"],
        "module": type(experiment).__module__,
        "task_seconds": sum(o.get("seconds", 0.0) for o in outcomes),
        "task_cpu_seconds": sum(o.get("cpu_seconds", 0.0) for o in outcomes),
        "threads_observed": sorted({o["threads"] for o in outcomes if o.get("threads") is not None}),
    }
    failures = [o["traceback"] for o in outcomes if not o.get("ok")]
    if entry.get("error"):
        failures.insert(0, entry["error"])
    if failures:
        record.update(status="failed", traceback="\n".join(failures))
        return record
    results = [o["result"] for o in outcomes]
    try:
        per_seed = [_json_safe(e) for e in experiment.seed_effects(entry["tasks"], results, entry["size"])]
        effect, spread = _aggregate(per_seed)
        record.update(effect=effect, effect_sd=spread, effect_per_seed=per_seed)
        checks = []
        for check in experiment.checks:
            per = [bool(_holds(check, e)) for e in per_seed]
            on_mean = bool(_holds(check, effect))
            checks.append({"name": check.name, "sentence": check.sentence, "holds_per_seed": per,
                           "holds_on_mean": on_mean, "verdict": vote(per, on_mean, quick)})
        record["checks"] = checks
        record["verdict"] = combine([c["verdict"] for c in checks])
        record["measurement"] = experiment.measurement(effect)
        record["discussion"] = experiment.discussion(effect, entry["size"])
        folder = out / experiment.id
        folder.mkdir(parents=True, exist_ok=True)
        figures = experiment.figures(entry["tasks"], results, effect, entry["size"], folder)
        for name, _ in figures:
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{experiment.id}.figures returned {name}, which it did not write")
        record["figures"] = [f"{experiment.id}/{name}" for name, _ in figures]
        record["captions"] = [caption for _, caption in figures]
    except Exception:
        record.update(status="failed", traceback=traceback.format_exc(), verdict="inconclusive")
    return record


def _holds(check, effect: dict) -> bool:
    # A predicate that meets a missing (None) number cannot hold.
    try:
        return bool(check.holds(effect))
    except TypeError:
        return False


def _aggregate(per_seed: list[dict]) -> tuple[dict, dict]:
    """Mean and standard deviation (ddof=1; 0 for one seed) of every number across seeds; None stays None."""
    effect, spread = {}, {}
    for key in per_seed[0] if per_seed else []:
        values = [e.get(key) for e in per_seed]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            array = np.asarray(values, dtype=np.float64)
            effect[key] = float(array.mean())
            spread[key] = float(array.std(ddof=1)) if len(array) > 1 else 0.0
        elif all(isinstance(v, bool) for v in values):
            effect[key] = float(np.mean(values))  # the share of seeds where it is true
        else:
            effect[key] = None
    return effect, spread


def _plan(experiments: list[Experiment], quick: bool, seeds: int | None) -> list[dict]:
    plan = []
    for experiment in experiments:
        entry = {"experiment": experiment, "seeds": experiment.seeds(quick, seeds),
                 "size": dict(experiment.quick if quick else experiment.full),
                 "estimate": float(experiment.seconds.get("quick" if quick else "full", 10.0)), "tasks": []}
        try:
            entry["tasks"] = [dict(task) for task in experiment.tasks(entry["size"], entry["seeds"])]
            if not all("seed" in task for task in entry["tasks"]):
                raise ValueError(f"{experiment.id}.tasks: every task needs a 'seed'")
        except Exception:
            entry["error"] = traceback.format_exc()
            entry["tasks"] = []
        plan.append(entry)
    return plan


def run(names, *, quick: bool = False, seeds: int | None = None, out="report", jobs: int = 1, threads: int = 1,
        progress: bool = True, command: str | None = None, log: Callable[[str], None] | None = print) -> dict:
    """Run the experiments ``names`` (ids or ``Experiment`` instances) and write DIR/results.json and DIR/index.html.

    ``quick`` uses each experiment's quick sizes and seeds; ``seeds`` overrides
    the number of seeds; ``jobs`` worker processes run tasks in parallel, each
    with ``threads`` threads. Returns the results document (as written to
    results.json). ``command`` is recorded as the command that made the
    numbers (default: this process's command line).
    """
    for label, value in (("jobs", jobs), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"lab run: expected {label} to be an integer >= 1, got {value!r}")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"lab run: expected seeds to be an integer >= 1, got {seeds!r}")
    chosen = [name if isinstance(name, Experiment) else get_experiment(name) for name in names]
    if not chosen:
        raise ValueError("lab run: no experiment to run")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # Taken before any task runs: the code and versions that made the numbers, not those at the end.
    provenance = {
        "command": command if command is not None else shlex.join(["normlab"] + sys.argv[1:]),
        "versions": _versions(), "git_commit": _git_commit(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "jobs": jobs, "threads_per_worker": threads,
        "thread_variables": {name: str(threads) for name in THREAD_VARIABLES},
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    plan = _plan(chosen, quick, seeds)
    outcomes: dict[str, list] = {entry["experiment"].id: [None] * len(entry["tasks"]) for entry in plan}
    records: dict[str, dict] = {}
    bars = _Bars(plan, progress, log)

    def finish_if_complete(entry: dict) -> None:
        name = entry["experiment"].id
        if name not in records and all(o is not None for o in outcomes[name]):
            records[name] = _finish(entry, outcomes[name], quick, out)
            bars.experiment_done(records[name])

    units = [(entry, index, task) for entry in plan for index, task in enumerate(entry["tasks"])]
    units.sort(key=lambda unit: -unit[0]["estimate"])  # longest first: better packing on few workers
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    try:
        for entry in plan:
            finish_if_complete(entry)  # experiments whose tasks() failed, or that have none
        if units:
            with _thread_environment(threads), futures.ProcessPoolExecutor(
                    max_workers=min(jobs, len(units)), mp_context=context, initializer=_initialize_worker,
                    initargs=(progress_queue,)) as pool:
                pending = {}
                for entry, index, task in units:
                    experiment = entry["experiment"]
                    future = pool.submit(_run_unit, type(experiment).__module__, experiment.id, index, task,
                                         entry["size"])
                    pending[future] = (entry, index)
                while pending:
                    done, _ = futures.wait(pending, timeout=0.2, return_when=futures.FIRST_COMPLETED)
                    _drain(progress_queue, bars)
                    for future in done:
                        entry, index = pending.pop(future)
                        try:
                            outcome = future.result()
                        except Exception as error:  # the worker process died (e.g. killed, out of memory)
                            outcome = {"ok": False, "seconds": 0.0,
                                       "traceback": f"worker process failed: {type(error).__name__}: {error}"}
                        outcomes[entry["experiment"].id][index] = outcome
                        bars.update(entry["experiment"].id, index, 1.0)
                        finish_if_complete(entry)
    finally:
        bars.close()
        progress_queue.close()
    provenance["seeds"] = {entry["experiment"].id: entry["seeds"] for entry in plan}
    provenance["wall_seconds"] = time.perf_counter() - started
    document = {"quick": bool(quick), "experiments": [records[entry["experiment"].id] for entry in plan],
                "provenance": provenance}
    document = _json_safe(document)
    _write_atomic(out / "results.json", json.dumps(document, indent=1, allow_nan=False) + "\n")
    from normlab.lab.report import write_report

    write_report(document, out)
    return document


def _drain(progress_queue, bars: _Bars) -> None:
    while True:
        try:
            name, index, fraction = progress_queue.get_nowait()
        except queue_module.Empty:
            return
        bars.update(name, index, fraction)


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
