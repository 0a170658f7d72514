"""Tiny experiments for the lab's own tests (a module, so that spawned worker processes can import them).

``tiny-fake`` trains a small BatchNorm MLP on blobs for a few steps (real
normlab kernels, so reproducibility is tested on real arithmetic), with two
tasks per seed to exercise ``tasks``/``seed_effects``; ``failing-fake``
raises in one of its seeds.
"""
from __future__ import annotations

import numpy as np

import normlab
import normlab.nn.functional as F
from normlab.data import make_blobs
from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import pyplot, save
from normlab.lab.training import batch_indices
from normlab.train import evaluate, mlp


@register
class TinyFake(Experiment):
    id = "tiny-fake"
    order = 1000
    title = "A tiny fake experiment"
    claim = "A small MLP with BatchNorm learns four Gaussian blobs."
    anchor = "None: a test fixture."
    method = "Train a 2-16-4 MLP with `BatchNorm1d` for a few SGD steps; measure test accuracy."
    checks = (Check("learns", "test accuracy above 0.5", lambda e: e["accuracy"] > 0.5),
              Check("impossible", "test accuracy above 1.5", lambda e: e["accuracy"] > 1.5))
    quick = {"steps": 10}
    full = {"steps": 30}
    quick_seeds = 2
    seconds = {"quick": 0.5, "full": 1.0}

    def tasks(self, size, seeds):
        return [{"seed": seed, "width": width} for seed in seeds for width in (8, 16)]

    def run_task(self, task, size, progress):
        data = make_blobs(n_samples=400, seed=0)
        rng = np.random.default_rng(task["seed"])
        model = mlp(2, task["width"], 4, 1, norm="batch")
        optimizer = normlab.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        batches = batch_indices(len(data.x_train), 32, rng)
        losses = []
        for step in range(size["steps"]):
            index = next(batches)
            loss = F.cross_entropy(model(data.x_train[index]), data.y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.item()))
            progress((step + 1) / size["steps"])
        return {"accuracy": evaluate(model, data.x_test, data.y_test)[1], "losses": losses,
                "weights": [float(v) for v in model[0].weight._data.ravel()[:5]]}

    def seed_effects(self, tasks, results, size):
        per_seed = {}
        for task, result in zip(tasks, results):
            per_seed.setdefault(task["seed"], {})[f"accuracy_{task['width']}"] = result["accuracy"]
            per_seed[task["seed"]][f"first_weight_{task['width']}"] = result["weights"][0]
        for effect in per_seed.values():
            effect["accuracy"] = (effect["accuracy_8"] + effect["accuracy_16"]) / 2
        return [per_seed[seed] for seed in sorted(per_seed)]

    def figures(self, tasks, results, effect, size, folder):
        plt = pyplot()
        figure, axis = plt.subplots(figsize=(4, 3))
        for task, result in zip(tasks, results):
            axis.plot(result["losses"], label=f"seed {task['seed']} width {task['width']}")
        axis.legend()
        save(figure, folder / "loss.png")
        return [("loss.png", "training loss of every task")]


@register
class FailingFake(Experiment):
    id = "failing-fake"
    order = 1001
    title = "A fake experiment that fails"
    claim = "Nothing."
    anchor = "None: a test fixture."
    method = "Raises in seed 1."
    checks = (Check("never", "never checked", lambda e: True),)
    quick = {}
    full = {}
    quick_seeds = 2
    seconds = {"quick": 0.1, "full": 0.1}

    def run_task(self, task, size, progress):
        if task["seed"] == 1:
            raise RuntimeError("failing-fake breaks on purpose in seed 1")
        return {"effect": {"value": 1.0}}


@register
class DeterministicFake(Experiment):
    id = "deterministic-fake"
    order = 1002
    title = "A fake experiment without randomness"
    claim = "Two plus two is four."
    anchor = "None: a test fixture."
    method = "Adds; one seed whatever the mode, as a deterministic experiment declares."
    checks = (Check("adds", "2 + 2 == 4", lambda e: e["sum"] == 4),)
    quick = {}
    full = {}

    def seeds(self, quick, count=None):
        return [0]

    def run_task(self, task, size, progress):
        return {"effect": {"sum": 2 + 2}}
