"""The experiment interface, the registry, and the rule that turns criteria into verdicts.

An experiment is a subclass of ``Experiment`` decorated with ``@register``
in its own module under ``normlab/lab/experiments/`` (found by a package
scan: adding one touches no other file). See ``normlab.lab`` for the
interface in one page.
"""
from __future__ import annotations

import importlib
import math
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["VERDICTS", "Check", "Experiment", "register", "list_experiments", "get_experiment", "load_experiment",
           "vote", "combine"]

VERDICTS = ("reproduced", "not_reproduced", "inconclusive")
DEFAULT_FULL_SEEDS = 5

#: A check is "reproduced" when it holds on the mean effect and in at least this share of the seeds,
#: "not_reproduced" (full mode only) when it fails on the mean and holds in at most 1 - this share.
AGREEMENT = 0.8


@dataclass(frozen=True)
class Check:
    """One criterion, fixed in code before running: the sentence the report shows and the predicate it states.

    ``holds(effect)`` receives one seed's effect numbers (and, separately,
    their mean over seeds) and returns whether the criterion is met.
    """

    name: str
    sentence: str
    holds: Callable[[dict], bool]


def vote(holds_per_seed: list[bool], holds_on_mean: bool, quick: bool) -> str:
    """The verdict of one check from its outcome in every seed and on the mean effect.

    reproduced: holds on the mean and in at least ``AGREEMENT`` of the seeds
    (all of them below 5 seeds). not_reproduced: fails on the mean and holds
    in at most ``1 - AGREEMENT`` of the seeds, in full mode; in quick mode
    such a result is "inconclusive": a reduced budget cannot refute a
    published claim. Anything between is inconclusive.
    """
    n = len(holds_per_seed)
    held = sum(bool(h) for h in holds_per_seed)
    if n == 0:
        return "inconclusive"
    if holds_on_mean and held >= math.ceil(AGREEMENT * n - 1e-9):
        return "reproduced"
    if not holds_on_mean and held <= math.floor((1 - AGREEMENT) * n + 1e-9):
        return "inconclusive" if quick else "not_reproduced"
    return "inconclusive"


def combine(verdicts: list[str]) -> str:
    """An experiment's verdict from its checks': reproduced if all are, not_reproduced if any is."""
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if any(v == "not_reproduced" for v in verdicts):
        return "not_reproduced"
    return "inconclusive"


class Experiment:
    """One claim, measured. Subclass it, fill in the attributes, implement ``run_task`` (and ``figures``).

    Attributes (class-level, all required unless a default is shown):
        id: the fixed id, lower-case words joined by '-', e.g. "batch-size".
        title: a short heading.
        claim: the claim in one or two sentences.
        anchor: the published result it is compared with (paper, figure or table, number).
        method: how it is measured: models, data, sizes, what is computed (a paragraph).
        checks: the criteria (``Check``), fixed before running.
        quick, full: the sizes (a dict of JSON numbers/strings) of the quick and full runs.
        quick_seeds: seeds in quick mode (default 1); full mode uses 5 unless --seeds says otherwise.
        seconds: estimated seconds of one task at one thread, {"quick": s, "full": s}
            (progress bars and scheduling only; the runner measures the real time).
        order: position in listings and the report (part 1 uses 10, 20, ...; part 2 can use 70, 80, ...).

    Methods to implement:
        run_task(task, size, progress) -> dict: one unit of work (default: one seed), run in a
            worker process; ``task`` comes from ``tasks``, ``size`` is ``quick`` or ``full``,
            ``progress(fraction)`` reports how far it is. Returns a JSON-friendly dict; with the
            default ``seed_effects`` it must hold "effect": {name: number}.
        figures(tasks, results, effect, size, folder) -> [(file name, caption), ...]: writes PNGs into
            ``folder`` (this experiment's folder of the report) from all tasks' results.

    Methods with defaults:
        tasks(size, seeds) -> [task dict, ...]: one {"seed": s} per seed. Split finer (e.g. one task
            per seed and model) for parallelism; every task needs a "seed".
        seed_effects(tasks, results, size) -> [effect dict per seed]: default each result's "effect".
        measurement(effect) -> str: one line for the verdict table.
        discussion(effect, size) -> str: what the numbers show, in words (a paragraph, may be empty).
    """

    id: str = ""
    title: str = ""
    claim: str = ""
    anchor: str = ""
    method: str = ""
    checks: tuple = ()
    quick: dict = {}
    full: dict = {}
    quick_seeds: int = 1
    seconds: dict = {"quick": 10.0, "full": 60.0}
    order: float = 100.0

    def tasks(self, size: dict, seeds: list[int]) -> list[dict]:
        return [{"seed": seed} for seed in seeds]

    def run_task(self, task: dict, size: dict, progress: Callable[[float], None]) -> dict:
        raise NotImplementedError(f"experiment {self.id}: run_task is not implemented")

    def seed_effects(self, tasks: list[dict], results: list[dict], size: dict) -> list[dict]:
        return [result["effect"] for result in results]

    def figures(self, tasks: list[dict], results: list[dict], effect: dict, size: dict,
                folder: Path) -> list[tuple[str, str]]:
        return []

    def measurement(self, effect: dict) -> str:
        return ", ".join(f"{key} {value:.3g}" for key, value in effect.items())

    def discussion(self, effect: dict, size: dict) -> str:
        return ""

    @property
    def criterion(self) -> str:
        """The checks' sentences as one text (the ``criterion`` field of results.json)."""
        return " AND ".join(check.sentence for check in self.checks)

    def seeds(self, quick: bool, count: int | None = None) -> list[int]:
        """The seeds of a run: 0..count-1, count defaulting to ``quick_seeds`` or 5."""
        count = count if count is not None else (self.quick_seeds if quick else DEFAULT_FULL_SEEDS)
        return list(range(count))

    def describe(self) -> str:
        """The text ``normlab lab show`` prints."""
        lines = [f"{self.id}: {self.title}", "", f"Claim: {self.claim}", f"Anchor: {self.anchor}",
                 "Criterion (fixed in code before running):"]
        lines += [f"  - {check.sentence}" for check in self.checks]
        lines += ["", f"How it is measured: {self.method}", "",
                  f"Quick run: {self.quick_seeds} seed(s), {_format_size(self.quick)}",
                  f"Full run: {DEFAULT_FULL_SEEDS} seeds, {_format_size(self.full)}",
                  f"Module: {type(self).__module__}"]
        return "\n".join(lines)


def _format_size(size: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in size.items())


_registry: dict[str, Experiment] = {}
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def register(cls: type) -> type:
    """Class decorator: check the experiment's declaration and add an instance to the registry."""
    if not (isinstance(cls, type) and issubclass(cls, Experiment)):
        raise TypeError(f"register: expected a subclass of Experiment, got {cls!r}")
    experiment = cls()
    name = experiment.id
    if not isinstance(name, str) or not _ID.match(name):
        raise ValueError(f"register: {cls.__name__}.id must be lower-case words joined by '-', got {name!r}")
    for field in ("title", "claim", "anchor", "method"):
        if not isinstance(getattr(experiment, field), str) or not getattr(experiment, field).strip():
            raise ValueError(f"register: experiment {name} needs a non-empty {field}")
    if not experiment.checks or not all(isinstance(c, Check) for c in experiment.checks):
        raise ValueError(f"register: experiment {name} needs at least one Check in checks")
    if len({c.name for c in experiment.checks}) != len(experiment.checks):
        raise ValueError(f"register: experiment {name} has two checks with the same name")
    for mode in ("quick", "full"):
        if not isinstance(getattr(experiment, mode), dict):
            raise ValueError(f"register: experiment {name} needs a dict of sizes in {mode}")
    previous = _registry.get(name)
    if previous is not None and type(previous).__qualname__ != cls.__qualname__:
        raise ValueError(f"register: an experiment with id {name!r} is already registered "
                         f"({type(previous).__module__}.{type(previous).__qualname__})")
    _registry[name] = experiment
    return cls


_discovered = False


def _discover() -> None:
    """Import every module of ``normlab.lab.experiments`` once (each registers its experiment)."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("normlab.lab.experiments")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    _discovered = True


def list_experiments() -> dict[str, Experiment]:
    """Every registered experiment, by id, in report order (``order``, then id)."""
    _discover()
    return {e.id: e for e in sorted(_registry.values(), key=lambda e: (e.order, e.id))}


def get_experiment(name: str) -> Experiment:
    """The experiment with id ``name``; ValueError listing the known ids otherwise."""
    known = list_experiments()
    if name not in known:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(known) or 'none'}")
    return known[name]


def load_experiment(module: str, name: str) -> Experiment:
    """The experiment ``name`` defined in ``module`` (how a worker process finds it, tests' ones included)."""
    if name not in _registry:
        importlib.import_module(module)
    if name not in _registry:
        raise ValueError(f"module {module} registers no experiment {name!r}")
    return _registry[name]
