"""online-learning: batch size 1 (BN cannot normalize; LN and GN learn) and BN's train/eval gap at small batches."""
from __future__ import annotations

import numpy as np

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.data import load_digits
from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import colour, pyplot, save
from normlab.lab.training import NORM_LABELS, StepProgress, linear_scaled_sgd, seeded, train_epochs
from normlab.train import evaluate, mlp

ONLINE_NORMS = ("layer", "group", "none")  # trained at batch 1
REFUSING_NORMS = ("batch", "renorm")        # need batch statistics: a batch of 1 raises
GAP_BATCHES = (2, 4, 8, 32)                 # BN trained at these; 32 is also the reference
WIDTH, DEPTH, GROUPS = 100, 2, 5


def make_model(norm: str, in_features: int, n_classes: int) -> nn.Sequential:
    return mlp(in_features, WIDTH, n_classes, DEPTH, norm=norm, act="relu", groups=GROUPS)


def train(model: nn.Module, batch_size: int, epochs: int, rng: np.random.Generator, data, tracker) -> None:
    """SGD with momentum at learning rate 0.1 x batch / 32 for ``epochs`` epochs."""
    train_epochs(model, linear_scaled_sgd(model.parameters(), batch_size), data.x_train, data.y_train,
                 epochs=epochs, batch_size=batch_size, rng=rng, tracker=tracker)


def batch_statistics_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int,
                              rng: np.random.Generator) -> float:
    """Accuracy in training mode (each test batch of ``batch_size`` normalized by its own statistics).

    The running statistics are restored afterwards; the last incomplete
    batch is dropped, as in training.
    """
    saved = {name: np.array(buffer._data, copy=True) for name, buffer in model.named_buffers()}
    order = rng.permutation(len(x))
    correct = total = 0
    model.train()
    with normlab.no_grad():
        for start in range(0, len(x) - batch_size + 1, batch_size):
            index = order[start:start + batch_size]
            correct += int((model(x[index])._data.argmax(axis=1) == y[index]).sum())
            total += len(index)
    for name, buffer in model.named_buffers():
        buffer._data[...] = saved[name]
    return correct / total


@register
class OnlineLearning(Experiment):
    id = "online-learning"
    order = 40
    title = "Batch size 1: what BN cannot do, and the train/eval gap"
    claim = ("BN cannot train on a batch of one (there is no batch to normalize over), while LN and GN learn "
             "online about as well as BN does at batch 32; and BN trained at small batches behaves differently in "
             "training (batch statistics) and in evaluation (running statistics).")
    anchor = ("Ba, Kiros & Hinton 2016, Sec. 1 and 3: BN cannot be applied to online learning (batch size 1), LN can; "
              "Wu & He 2018, Sec. 2; Ioffe 2017 (Batch Renormalization), Sec. 1: with small mini-batches the "
              "activations at training and at inference differ.")
    method = (
        "A multilayer perceptron with 2 hidden layers of 100 ReLU units on scikit-learn's 8x8 digits (1438 train / "
        "359 test), SGD with momentum 0.9 at learning rate 0.1 x batch / 32. Online: the net with LayerNorm, "
        "with GroupNorm (5 groups of 20 units) and without normalization is trained at batch size 1; with "
        "BatchNorm1d and BatchRenorm1d the first training step on a batch of one is attempted and its error "
        "recorded. Reference: the BN net trained at batch 32 for the same number of epochs. Train/eval gap: "
        "the BN net trained at batch 2, 4, 8 and 32, then its test accuracy measured twice: in eval mode "
        "(running statistics) and in training mode on test batches of its own training batch size (batch "
        "statistics; running statistics restored afterwards); the gap is the difference.")
    checks = (
        Check("bn-refuses-batch-1", "BatchNorm1d in training mode refuses a batch of one sample (raises an error)",
              lambda e: e["bn_raises_at_1"] >= 0.5),
        Check("ln-gn-learn-online",
              "LN and GN trained at batch 1 each end at most 3 points below BN trained at batch 32",
              lambda e: min(e["acc_layer_1"], e["acc_group_1"]) >= e["acc_batch_32"] - 0.03),
        Check("bn-gap-grows",
              "BN's train/eval accuracy gap (absolute) at batch 2 exceeds its gap at batch 32 by at least 2 points",
              lambda e: abs(e["gap_2"]) - abs(e["gap_32"]) >= 0.02),
    )
    quick = {"epochs": 2}
    full = {"epochs": 3}
    quick_seeds = 2
    seconds = {"quick": 8.0, "full": 12.0}

    def run_task(self, task, size, progress):
        seed, epochs = task["seed"], size["epochs"]
        data = load_digits()
        n = len(data.x_train)
        tracker = StepProgress(progress, epochs * (len(ONLINE_NORMS) * n + sum(n // b for b in GAP_BATCHES)))
        effect, errors = {}, {}
        for norm in REFUSING_NORMS:
            seeded(seed)
            model = make_model(norm, data.n_features, data.n_classes)
            try:
                F.cross_entropy(model(data.x_train[:1]), data.y_train[:1]).backward()
                raised = False
            except ValueError as error:
                raised, errors[norm] = True, str(error)
            effect[f"{'bn' if norm == 'batch' else norm}_raises_at_1"] = raised
        for norm in ONLINE_NORMS:
            rng = seeded(seed)
            model = make_model(norm, data.n_features, data.n_classes)
            train(model, 1, epochs, rng, data, tracker)
            effect[f"acc_{norm}_1"] = evaluate(model, data.x_test, data.y_test)[1]
        for batch_size in GAP_BATCHES:
            rng = seeded(seed)
            model = make_model("batch", data.n_features, data.n_classes)
            train(model, batch_size, epochs, rng, data, tracker)
            running = evaluate(model, data.x_test, data.y_test)[1]
            batch_stats = batch_statistics_accuracy(model, data.x_test, data.y_test, batch_size, rng)
            effect[f"acc_batch_{batch_size}"] = running
            effect[f"acc_batch_{batch_size}_batch_stats"] = batch_stats
            effect[f"gap_{batch_size}"] = batch_stats - running
        return {"effect": effect, "errors": errors}

    def measurement(self, e):
        bn = "raises" if e["bn_raises_at_1"] >= 0.5 else "trains"
        return (f"batch 1: BN {bn}, LN {e['acc_layer_1']:.1%}, GN {e['acc_group_1']:.1%}, none "
                f"{e['acc_none_1']:.1%} (BN at 32: {e['acc_batch_32']:.1%}); BN train-minus-eval accuracy gap "
                f"{e['gap_2'] * 100:+.1f} points at batch 2, {e['gap_32'] * 100:+.1f} at 32")

    def discussion(self, e, size):
        gaps = ", ".join(f"{e[f'gap_{b}'] * 100:+.1f} at {b}" for b in GAP_BATCHES)
        refusal = ("normlab raises a ValueError (as PyTorch does) instead of returning the constant bias"
                   if e["bn_raises_at_1"] >= 0.5 else "yet normlab did not refuse it")
        return (f"A batch of one gives BatchNorm1d one value per unit, whose variance is 0: {refusal}. Trained "
                f"online for {size['epochs']} epoch(s), LayerNorm reaches {e['acc_layer_1']:.1%}, GroupNorm "
                f"{e['acc_group_1']:.1%} and the plain net {e['acc_none_1']:.1%}, against {e['acc_batch_32']:.1%} "
                f"for BN at batch 32. The BN net's accuracy with batch statistics minus its accuracy with running "
                f"statistics is {gaps} (points): the network a small batch trains is not the one evaluation "
                f"runs.")

    def figures(self, tasks, results, effect, size, folder):
        plt = pyplot()
        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
        seeds = [r["effect"] for r in results]
        names = list(ONLINE_NORMS)
        values = [[s[f"acc_{n}_1"] * 100 for s in seeds] for n in names]
        left.bar(range(len(names)), [np.mean(v) for v in values], color=[colour(n) for n in names],
                 yerr=[np.std(v) for v in values] if len(seeds) > 1 else None)
        left.axhline(np.mean([s["acc_batch_32"] for s in seeds]) * 100, color=colour("batch"), ls="--",
                     label="BN at batch 32")
        left.set_xticks(range(len(names)), [f"{NORM_LABELS[n]}\nbatch 1" for n in names])
        errors = results[0]["errors"]
        refused = "\n".join(f"ValueError: {errors[n]}" for n in REFUSING_NORMS if n in errors)
        figure.text(0.01, -0.06, "at batch 1: " + (refused or "no error"), fontsize=8)
        left.set_ylabel("test accuracy (%)")
        left.set_ylim(0, 100)
        left.set_title("online learning (batch size 1), digits MLP")
        left.legend(loc="lower center")
        for key, label, line in (("acc_batch_{}", "eval mode (running statistics)", "-"),
                                 ("acc_batch_{}_batch_stats", "training mode (batch statistics)", "--")):
            curve = [np.mean([s[key.format(b)] for s in seeds]) * 100 for b in GAP_BATCHES]
            right.plot(range(len(GAP_BATCHES)), curve, "o" + line, color=colour("batch"), label=label)
        right.set_xticks(range(len(GAP_BATCHES)), [str(b) for b in GAP_BATCHES])
        right.set_xlabel("BN training batch size (= evaluation batch size in training mode)")
        right.set_ylabel("test accuracy (%)")
        right.set_title("BN: train/eval gap")
        right.legend()
        save(figure, folder / "online.png")
        return [("online.png", "Left: test accuracy of nets trained at batch size 1 (LN, GN, none) against BN "
                               "at batch 32. Right: the BN net trained at each batch size, evaluated with running "
                               f"statistics and with batch statistics (mean over {len(seeds)} seed(s)).")]
