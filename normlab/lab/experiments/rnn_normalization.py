"""rnn-normalization: an LSTM without norm, with LN and with per-step BN, trained on lengths <= T, tested on longer."""
from __future__ import annotations

import math

import numpy as np

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.data import SequenceSet, make_temporal_order, mnist1d_sequences
from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import colour, mean_band, pyplot, save
from normlab.lab.training import NORM_LABELS, StepProgress, batch_indices, merge_task_effects, mnist1d, seeded
from normlab.nn.utils import clip_grad_norm_

NORMS = ("none", "layer", "batch")
#: Each task: the training lengths [shortest, T] (T = the longest, = max_steps of the per-step BN) and the test lengths.
TASKS = {
    "mnist1d": {"label": "MNIST-1D read in time", "train": (20, 40), "test": (20, 30, 40, 50, 60, 80), "chance": 0.1},
    "temporal_order": {"label": "temporal order", "train": (15, 30), "test": (15, 20, 25, 30, 40, 50, 60),
                       "chance": 0.25},
}
HIDDEN, EMBEDDING, BATCH, LR, CLIP = 32, 8, 50, 1e-2, 1.0
TEMPORAL_ORDER_TRAIN = 4000  # as many training sequences as MNIST-1D has
TEST_SEED = 1_000_000        # test sets do not depend on the run's seed and never meet a training seed
#: The criterion's margin: per-step BN must lose at least this much more accuracy than LN beyond T.
EXCESS_DROP = 0.05


class SequenceClassifier(nn.Module):
    """A Linear embedding of each step, an LSTM (``HIDDEN`` units, ``norm``), a Linear read-out of the last valid step.

    The embedding (``EMBEDDING`` features, with bias) is there for LN: the
    input-to-hidden summed input of one value x is x * w, and its layer
    normalization over features, sign(x) * (w - mean(w)) / std(w), keeps only
    the sign of x; x * u + v after an embedding keeps its size. All three
    versions get it. Input x (N, L, features) zero-padded, ``lengths`` (N,);
    output (N, classes) logits.
    """

    def __init__(self, norm: str, features: int, classes: int, max_steps: int) -> None:
        super().__init__()
        self.embedding = nn.Linear(features, EMBEDDING)
        self.lstm = nn.LSTM(EMBEDDING, HIDDEN, batch_first=True, norm=None if norm == "none" else norm,
                            max_steps=max_steps if norm == "batch" else None)
        self.head = nn.Linear(HIDDEN, classes)

    def forward(self, x, lengths):
        _, (h_n, _) = self.lstm(self.embedding(x), lengths=lengths)
        return self.head(h_n[0])


def stretched(sequences: SequenceSet, lengths: np.ndarray) -> SequenceSet:
    """The same signals read at another speed: sequence n linearly interpolated from its steps to ``lengths[n]``.

    The first and last values are kept; the result is zero-padded to the
    longest length. Used on MNIST-1D's 40-step signals, so a sequence of any
    length carries the same digit.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    source = sequences.x[:, :, 0]
    width = source.shape[1]
    x = np.zeros((len(source), int(lengths.max()), 1), dtype=np.float32)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        position = np.linspace(0.0, width - 1.0, int(length))
        left = np.minimum(np.floor(position).astype(np.int64), width - 2)
        weight = (position - left).astype(np.float32)
        x[rows, :length, 0] = source[rows][:, left] * (1 - weight) + source[rows][:, left + 1] * weight
    return SequenceSet(sequences.name, x, lengths, sequences.y, sequences.n_classes,
                       f"{sequences.description}, read in {lengths.min()}..{lengths.max()} steps")


def task_data(task: str, seed: int, n_test: int) -> tuple[SequenceSet, dict]:
    """(training set with lengths drawn uniformly from the task's [shortest, T], {test length: test set})."""
    shortest, longest = TASKS[task]["train"]
    if task == "mnist1d":
        train, test = mnist1d_sequences(mnist1d())
        lengths = np.random.default_rng([seed, 1]).integers(shortest, longest + 1, size=len(train))
        test = SequenceSet(test.name, test.x[:n_test], test.lengths[:n_test], test.y[:n_test], test.n_classes,
                           test.description)
        return stretched(train, lengths), {L: stretched(test, np.full(len(test), L)) for L in TASKS[task]["test"]}
    train = make_temporal_order(TEMPORAL_ORDER_TRAIN, max_length=longest, min_length=shortest, seed=seed)
    return train, {L: make_temporal_order(n_test, max_length=L, seed=TEST_SEED + L) for L in TASKS[task]["test"]}


def training_batches(lengths: np.ndarray, rng: np.random.Generator):
    """Endless random batches of ``BATCH`` indices; a batch's longest sequence, when alone at its length, is dropped.

    Per-step BN needs at least two sequences at every step of a batch (a
    step's variance over one sequence is 0); every norm gets the same
    batches, so all three train on the same data.
    """
    for index in batch_indices(len(lengths), BATCH, rng):
        while np.count_nonzero(lengths[index] == lengths[index].max()) < 2:
            index = index[lengths[index] < lengths[index].max()]
        yield index


def accuracy(model: nn.Module, data: SequenceSet, chunk: int = 500) -> float:
    """Test accuracy in eval mode (per-step BN uses its running statistics; those of step T beyond T)."""
    model.eval()
    correct = 0
    with normlab.no_grad():
        for start in range(0, len(data), chunk):
            rows = slice(start, start + chunk)
            logits = model(data.x[rows], data.lengths[rows])
            correct += int((logits._data.argmax(axis=1) == data.y[rows]).sum())
    model.train()
    return correct / len(data)


def train(model: nn.Module, data: SequenceSet, steps: int, eval_every: int, rng: np.random.Generator,
          tracker: StepProgress) -> dict:
    """Adam (``LR``) on cross-entropy, gradient norm clipped at ``CLIP``; a curve point every ``eval_every`` steps.

    Returns {"steps", "loss", "accuracy"}: the mean loss and accuracy of the
    training batches of each interval, and "diverged" (a non-finite loss
    stops training; the weights stay as they were).
    """
    optimizer = normlab.optim.Adam(model.parameters(), lr=LR)
    curve = {"steps": [], "loss": [], "accuracy": [], "diverged": False}
    losses, hits = [], []
    batches = training_batches(data.lengths, rng)
    model.train()
    for step in range(1, steps + 1):
        index = next(batches)
        lengths = data.lengths[index]
        logits = model(data.x[index, :lengths.max()], lengths)
        loss = F.cross_entropy(logits, data.y[index])
        value = float(loss.item())
        if not math.isfinite(value):
            curve["diverged"] = True
            tracker.advance(steps - step + 1)
            break
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        losses.append(value)
        hits.append(float((logits._data.argmax(axis=1) == data.y[index]).mean()))
        tracker.advance()
        if step % eval_every == 0 or step == steps:
            curve["steps"].append(step)
            curve["loss"].append(float(np.mean(losses)))
            curve["accuracy"].append(float(np.mean(hits)))
            losses, hits = [], []
    return curve


def summarize(task: str, norm: str, by_length: dict, curve: dict) -> dict:
    """Mean test accuracy over the test lengths <= T ("in") and > T ("beyond"), the drop from one to the other, and
    the accuracy on the last interval's training batches ("train": batch statistics for per-step BN)."""
    longest = TASKS[task]["train"][1]
    inside = [a for L, a in by_length.items() if int(L) <= longest]
    beyond = [a for L, a in by_length.items() if int(L) > longest]
    prefix = f"{task}_{norm}"
    return {f"{prefix}_in": float(np.mean(inside)), f"{prefix}_beyond": float(np.mean(beyond)),
            f"{prefix}_drop": float(np.mean(inside) - np.mean(beyond)),
            f"{prefix}_train": curve["accuracy"][-1] if curve["accuracy"] else float("nan")}


def learned(task: str, accuracy: float) -> bool:
    """At least halfway from chance to 100 %: a model whose drop beyond T means something."""
    chance = TASKS[task]["chance"]
    return accuracy >= chance + (1 - chance) / 2


@register
class RNNNormalization(Experiment):
    id = "rnn-normalization"
    order = 50
    title = "Normalization in recurrent nets: per-step BN vs LN on sequences longer than in training"
    claim = ("Batch normalization does not suit recurrent nets: it needs statistics for every time step, so a test "
             "sequence longer than any training sequence has none, while layer normalization normalizes each "
             "sample over its own features and works at any length. An LSTM with per-step BN loses more accuracy "
             "than an LN LSTM on test sequences longer than the training ones.")
    anchor = ("Ba, Kiros & Hinton 2016, Sec. 3.1: applying BN to RNNs needs separate statistics per time step, "
              "which is problematic if a test sequence is longer than any of the training sequences; LN has no "
              "such problem. Cooijmans et al. 2016 (Recurrent Batch Normalization, Sec. 3) answer it by using "
              "the statistics of the last training step T_max for every step beyond it, arguing that the "
              "statistics settle to stationary values over time.")
    method = (
        "Each step's input is embedded by a Linear layer (8 features, with bias), read by a one-layer LSTM of 32 "
        "units and classified by a Linear layer from each sequence's last valid step, in three versions: no "
        "normalization; layer normalization inside the cell (Ba 2016: the input-to-hidden and hidden-to-hidden summed "
        "inputs and the cell state, `nn.LSTM(norm='layer')`); recurrent batch normalization (Cooijmans 2016: the same "
        "places, statistics per time step, gains initialised to 0.1, `nn.LSTM(norm='batch', max_steps=T)`; beyond T "
        "it uses the statistics of step T). Two tasks: MNIST-1D read as a sequence of single values, each 40-value "
        "signal linearly interpolated to a length drawn from [20, 40] (T = 40) for training; and the temporal order "
        "problem (Hochreiter & Schmidhuber 1997; 4 classes, 4000 sequences, lengths from [15, 30], T = 30). Training "
        "batches mix lengths (zero-padded, with `lengths=` so padded steps neither count nor enter BN's statistics); "
        "a batch's longest sequence, when alone at its length, is dropped, since per-step BN needs two sequences at "
        "each step. Adam at learning rate 0.01, batch 50, gradient norm clipped at 1, the same batches and seed for "
        "all three versions. Test accuracy in eval mode on test sets of fixed lengths, up to twice T (MNIST-1D's test "
        "signals stretched to each length; fresh temporal order sequences of each length). Effects: the mean accuracy "
        "over test lengths <= T ('in') and > T ('beyond'), their difference (the drop) per version, and per task the "
        "excess drop, BN's drop minus LN's; also each version's accuracy on its last training batches (per-step BN: "
        "with batch statistics). The embedding is there for LN: a single input value x makes the input-to-hidden "
        "summed input x * w, whose layer normalization keeps only the sign of x.")
    checks = (Check("ln-learns", "on each task, the LN LSTM's mean accuracy over test lengths <= T is at least "
                    "halfway from chance to 100 % (55 % on MNIST-1D, 62.5 % on temporal order)",
                    lambda e: all(learned(task, e[f"{task}_layer_in"]) for task in TASKS)),) + tuple(
        Check(f"{task.replace('_', '-')}-bn-drops-more",
              f"{spec['label']}: the per-step-BN LSTM's accuracy drop from test lengths <= T to lengths > T exceeds "
              f"the LN LSTM's drop by at least {EXCESS_DROP * 100:.0f} points",
              lambda e, task=task: e[f"{task}_excess_drop"] >= EXCESS_DROP)
        for task, spec in TASKS.items())
    quick = {"steps": 500, "eval_every": 50, "n_test": 500}
    full = {"steps": 1500, "eval_every": 100, "n_test": 1000}
    seconds = {"quick": 3.0, "full": 8.0}

    def tasks(self, size, seeds):
        return [{"seed": seed, "task": task, "norm": norm} for seed in seeds for task in TASKS for norm in NORMS]

    def run_task(self, task, size, progress):
        name, norm, seed = task["task"], task["norm"], task["seed"]
        train_set, test_sets = task_data(name, seed, size["n_test"])
        rng = seeded(seed)
        model = SequenceClassifier(norm, train_set.n_features, train_set.n_classes, TASKS[name]["train"][1])
        curve = train(model, train_set, size["steps"], size["eval_every"], rng, StepProgress(progress, size["steps"]))
        by_length = {str(L): accuracy(model, data) for L, data in test_sets.items()}
        return {"curve": curve, "accuracy": by_length, "effect": summarize(name, norm, by_length, curve)}

    def seed_effects(self, tasks, results, size):
        effects = merge_task_effects(tasks, results)
        for effect in effects:
            for name in TASKS:
                effect[f"{name}_excess_drop"] = effect[f"{name}_batch_drop"] - effect[f"{name}_layer_drop"]
        return effects

    def measurement(self, e):
        return "; ".join(
            f"{spec['label']}: accuracy <= T -> > T, " + ", ".join(
                f"{NORM_LABELS[n]} {e[f'{t}_{n}_in']:.1%} -> {e[f'{t}_{n}_beyond']:.1%}" for n in NORMS)
            + f" (BN's drop exceeds LN's by {e[f'{t}_excess_drop'] * 100:+.1f} points)"
            for t, spec in TASKS.items())

    def discussion(self, e, size):
        parts = []
        for t, spec in TASKS.items():
            shortest, longest = spec["train"]
            drops = ", ".join(f"{NORM_LABELS[n]} {e[f'{t}_{n}_drop'] * 100:+.1f}" for n in NORMS)
            parts.append(f"{spec['label']} (trained on lengths {shortest}..{longest}, tested up to "
                         f"{max(spec['test'])}): accuracy drops beyond T by {drops} points; BN's drop minus LN's is "
                         f"{e[f'{t}_excess_drop'] * 100:+.1f} points (criterion: at least "
                         f"{EXCESS_DROP * 100:.0f}), with in-range accuracies of "
                         + ", ".join(f"{NORM_LABELS[n]} {e[f'{t}_{n}_in']:.1%}" for n in NORMS)
                         + f" (per-step BN on its last training batches, with batch statistics: "
                         f"{e[f'{t}_batch_train']:.1%}).")
        return (f"After {size['steps']} Adam steps. " + " ".join(parts) + " Beyond T, per-step BN normalizes every "
                "step with the running statistics of step T, which were gathered only from the training sequences "
                "still running at T; LN needs no statistics from other sequences. No-norm is the reference for "
                "how much of a drop is the task's own (a longer sequence is a harder one).")

    def figures(self, tasks, results, effect, size, folder):
        plt = pyplot()
        figure, axes = plt.subplots(1, len(TASKS), figsize=(11, 4))
        for axis, (name, spec) in zip(axes, TASKS.items()):
            lengths = list(spec["test"])
            for norm in NORMS:
                curves = [[r["accuracy"][str(L)] * 100 for L in lengths]
                          for t, r in zip(tasks, results) if t["task"] == name and t["norm"] == norm]
                mean_band(axis, lengths, curves, NORM_LABELS[norm], colour(norm), marker="o")
            axis.axvline(spec["train"][1], color="black", ls="--", lw=1, label=f"T = {spec['train'][1]}")
            axis.axvspan(spec["train"][0], spec["train"][1], color="#f3e3b5", alpha=0.5, lw=0, label="training lengths")
            axis.axhline(spec["chance"] * 100, color="grey", ls=":", lw=1, label="chance")
            axis.set_xlabel("test sequence length")
            axis.set_ylabel("test accuracy (%)")
            axis.set_ylim(0, 100)
            axis.set_title(f"LSTM on {spec['label']}")
            axis.legend(fontsize=8)
        save(figure, folder / "accuracy_vs_length.png")
        figure, axes = plt.subplots(1, len(TASKS), figsize=(11, 3.6))
        for axis, (name, spec) in zip(axes, TASKS.items()):
            for norm in NORMS:
                curves = [r["curve"] for t, r in zip(tasks, results) if t["task"] == name and t["norm"] == norm]
                width = min(len(c["loss"]) for c in curves)
                mean_band(axis, curves[0]["steps"][:width], [c["loss"][:width] for c in curves], NORM_LABELS[norm],
                          colour(norm))
            axis.set_xlabel("Adam step")
            axis.set_ylabel("training loss (cross-entropy)")
            axis.set_title(f"training on {spec['label']}, lengths {spec['train'][0]}..{spec['train'][1]}")
            axis.legend(fontsize=8)
        save(figure, folder / "training_curves.png")
        seeds = len(results) // (len(TASKS) * len(NORMS))
        return [("accuracy_vs_length.png",
                 "Test accuracy against test sequence length for the LSTM without norm, with LN and with per-step BN "
                 "(yellow: the training lengths; dashed: T, the longest training length and the last step with its "
                 f"own BN statistics; line: mean over {seeds} seed(s); band: lowest to highest)."),
                ("training_curves.png",
                 "Training loss (mean over each interval's batches of mixed lengths) of the three LSTMs on each task "
                 f"(line: mean over {seeds} seed(s); band: lowest to highest).")]
