"""What the experiments share: the MNIST-1D CNN with a choice of normalization, a training loop that
records test-accuracy curves, evaluation, and progress over several runs of one task.

All randomness comes from the ``rng`` passed in (batch order) and from
normlab's global generator (initialization), which the runner seeds with
the task's seed; an experiment calls ``normlab.manual_seed`` itself when it
wants several models of one task to start alike.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.data import DataSplits, load_mnist1d
from normlab.train import evaluate

__all__ = ["mnist1d", "NORM_LABELS", "conv_norm", "mnist1d_cnn", "batch_indices", "fit", "train_epochs",
           "linear_scaled_sgd", "StepProgress", "auc", "seeded", "merge_task_effects"]

#: Normalization names used across the lab, and how the report writes them.
NORM_LABELS = {"none": "no norm", "batch": "BatchNorm", "group": "GroupNorm", "layer": "LayerNorm",
               "instance": "InstanceNorm", "renorm": "Batch Renorm"}


def mnist1d() -> DataSplits:
    """MNIST-1D with the mnist1d package's defaults, cached on disk where the cache folder can be written.

    The cache saves every worker process the 3 s of generating it; a
    read-only home only costs that time again.
    """
    try:
        return load_mnist1d(cache_dir=True)
    except OSError:
        return load_mnist1d()


def conv_norm(norm: str, channels: int, groups: int = 5) -> nn.Module | None:
    """The normalization layer for a (N, C, L) conv output, as Wu & He (2018) define them.

    batch: BatchNorm1d (over N and L per channel); group: GroupNorm with
    ``groups`` groups; layer: GroupNorm with one group (over C and L per
    sample, per-channel affine: Wu & He's LN); instance: InstanceNorm1d with
    affine (over L per sample and channel); renorm: BatchRenorm1d (Ioffe
    2017, r_max 3, d_max 5); none: None.
    """
    if norm == "none":
        return None
    if norm == "batch":
        return nn.BatchNorm1d(channels)
    if norm == "group":
        return nn.GroupNorm(groups, channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    if norm == "instance":
        return nn.InstanceNorm1d(channels, affine=True)
    if norm == "renorm":
        return nn.BatchRenorm1d(channels)
    raise ValueError(f"conv_norm: expected one of {tuple(NORM_LABELS)}, got {norm!r}")


def mnist1d_cnn(norm: str = "none", channels: int = 25) -> nn.Sequential:
    """Greydanus' (2020) MNIST-1D CNN with ``norm`` after each convolution; input (N, 40), output (N, 10) logits.

    Three Conv1d (kernel 5 stride 2 padding 1, then twice kernel 3 stride 2
    padding 1; 25 channels; lengths 40 -> 19 -> 10 -> 5), each followed by
    the normalization and a ReLU, then a Linear(125, 10) on the flattened
    features.
    """
    layers: list = [nn.Unflatten(1, (1, 40))]
    for index, (kernel, inputs) in enumerate(((5, 1), (3, channels), (3, channels))):
        layers.append(nn.Conv1d(inputs, channels, kernel, stride=2, padding=1))
        norm_layer = conv_norm(norm, channels)
        if norm_layer is not None:
            layers.append(norm_layer)
        layers.append(nn.ReLU())
    layers += [nn.Flatten(), nn.Linear(channels * 5, 10)]
    return nn.Sequential(*layers)


def batch_indices(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless mini-batches of indices into n samples: a fresh permutation per epoch, incomplete batches dropped."""
    if batch_size > n:
        raise ValueError(f"batch_indices: batch_size {batch_size} is larger than the {n} samples")
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


class StepProgress:
    """Report a task's progress as training steps done out of the task's total, over several runs."""

    def __init__(self, progress: Callable[[float], None], total_steps: int) -> None:
        self.progress, self.total, self.done = progress, max(int(total_steps), 1), 0

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        self.progress(min(self.done / self.total, 1.0))


def fit(model: nn.Module, optimizer, x_train: np.ndarray, y_train: np.ndarray, *, steps: int, batch_size: int,
        rng: np.random.Generator, x_test: np.ndarray, y_test: np.ndarray, eval_every: int,
        tracker: StepProgress | None = None, on_step: Callable[[int], None] | None = None) -> dict:
    """Train with cross-entropy for ``steps`` mini-batch steps; record test accuracy every ``eval_every`` steps.

    Returns ``{"steps", "test_accuracy"}`` (the curve, evaluated in eval mode
    at step 0, every ``eval_every`` steps and at the end), ``"loss"`` (mean
    training loss of each interval), ``"final_test_accuracy"``,
    ``"diverged"`` and ``"diverged_at"``. A non-finite loss stops training
    without a step (the weights stay as they were); the curve is then
    continued with the accuracy of the weights at that point, so curves of
    diverged runs keep their length.
    """
    curve_steps, curve_accuracy, interval_losses, losses = [0], [evaluate(model, x_test, y_test)[1]], [], []
    batches = batch_indices(len(x_train), batch_size, rng)
    diverged_at = None
    model.train()
    for step in range(1, steps + 1):
        index = next(batches)
        loss = F.cross_entropy(model(x_train[index]), y_train[index])
        value = float(loss.item())
        if not math.isfinite(value):
            diverged_at = step
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(value)
        if on_step is not None:
            on_step(step)
        if tracker is not None:
            tracker.advance()
        if step % eval_every == 0 or step == steps:
            curve_steps.append(step)
            curve_accuracy.append(evaluate(model, x_test, y_test)[1])
            interval_losses.append(float(np.mean(losses)))
            losses = []
            model.train()
    if diverged_at is not None:
        accuracy = evaluate(model, x_test, y_test)[1]
        for step in range(curve_steps[-1] + eval_every, steps + eval_every, eval_every):
            curve_steps.append(min(step, steps))
            curve_accuracy.append(accuracy)
        if tracker is not None:
            tracker.advance(steps - diverged_at + 1)
    return {"steps": curve_steps, "test_accuracy": curve_accuracy, "loss": interval_losses,
            "final_test_accuracy": curve_accuracy[-1], "diverged": diverged_at is not None,
            "diverged_at": diverged_at}


def linear_scaled_sgd(parameters, batch_size: int, base_lr: float = 0.1, base_batch: int = 32,
                      momentum: float = 0.9):
    """SGD with momentum at ``base_lr * batch_size / base_batch``: the linear scaling rule Wu & He (2018) use."""
    return normlab.optim.SGD(parameters, lr=base_lr * batch_size / base_batch, momentum=momentum)


def train_epochs(model: nn.Module, optimizer, x_train: np.ndarray, y_train: np.ndarray, *, epochs: int,
                 batch_size: int, rng: np.random.Generator, tracker: StepProgress | None = None) -> None:
    """Cross-entropy training for ``epochs`` passes over the data (incomplete batches dropped), in train mode."""
    batches = batch_indices(len(x_train), batch_size, rng)
    model.train()
    for _ in range(epochs * (len(x_train) // batch_size)):
        index = next(batches)
        loss = F.cross_entropy(model(x_train[index]), y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if tracker is not None:
            tracker.advance()


def auc(curve_steps, accuracy) -> float:
    """The mean of a test-accuracy curve over training (trapezoid area / steps): higher = learns sooner and better."""
    curve_steps = np.asarray(curve_steps, dtype=np.float64)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    if len(curve_steps) < 2 or curve_steps[-1] <= curve_steps[0]:
        return float(accuracy[-1])
    widths = np.diff(curve_steps)
    return float(np.sum(widths * (accuracy[1:] + accuracy[:-1]) / 2) / (curve_steps[-1] - curve_steps[0]))


def seeded(seed: int) -> np.random.Generator:
    """Seed normlab's generator (initialization) and return a NumPy generator for batch order, both from ``seed``."""
    normlab.manual_seed(seed)
    return np.random.default_rng(seed)


def merge_task_effects(tasks: list[dict], results: list[dict]) -> list[dict]:
    """One effect dict per seed, in seed order, from tasks that each measured part of it (for ``seed_effects``)."""
    merged: dict[int, dict] = {}
    for task, result in zip(tasks, results):
        merged.setdefault(task["seed"], {}).update(result["effect"])
    return [merged[seed] for seed in sorted(merged)]
