"""vanishing-gradients: where the gradient of a deep net vanishes, and what each remedy does about it.

Four groups of runs per seed (one task each, so they run in parallel):

- activations: 20 hidden layers of 64 units on MNIST-1D with sigmoid, tanh,
  ReLU, LeakyReLU, ELU and maxout, each with its usual initialisation
  (``normlab.lab.deepnets``). Backward multiplies the gradient at every layer
  by W^T diag(f'(z)); with variance-preserving weights the factor's size is
  that of f'(z): at most 1/4 for the sigmoid (at z = 0, less elsewhere), so
  20 layers shrink it by about 4^20 ~ 1e12, while ReLU's f' is 1 on the
  active side and He's init doubles the variance to make up for the other half.
- init: 30 ReLU layers with Xavier (Var(w) = 1/n for square layers: each layer
  halves the signal's second moment, 2^-15 in amplitude after 30) vs He
  (Var(w) = 2/n keeps it), as in He et al. 2015's Fig. 3.
- remedies on the 20-layer sigmoid net: BatchNorm before each sigmoid,
  identity shortcuts (pre-activation blocks x + W sigmoid(x)), and greedy
  layer-wise autoencoder pretraining (``normlab.nn.pretrain``) before fine-tuning.
- rnn: a tanh RNN whose recurrent weights are drawn with twice the critical
  scale (std 2/sqrt(H): the chaotic regime, where the backward product of
  Jacobians grows with the length), trained on the adding problem with and
  without clipping the gradient norm at 1 (Pascanu et al. 2013).

All MLPs train with the same SGD (learning rate 0.01, momentum 0.9, batch
64); gradient norms are |dL/dz| at each hidden layer's output, measured with
``GradientMonitor`` on a fixed batch of 512 training samples.
"""
from __future__ import annotations

import math

import numpy as np

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.data import make_adding_problem
from normlab.lab.deepnets import ACTIVATION_LABELS, ACTIVATIONS, deep_mlp, log_ratio, train_run
from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import mean_band, pyplot, save
from normlab.lab.training import StepProgress, merge_task_effects, mnist1d
from normlab.nn.pretrain import greedy_layerwise

DEPTH, INIT_DEPTH, SHALLOW, WIDTH = 20, 30, 5, 64
LR, MOMENTUM, BATCH = 0.01, 0.9, 64
RNN_HIDDEN, RNN_GAIN, RNN_BATCH, CLIP = 32, 2.0, 50, 1.0
RNN_TRAIN = 2000  # adding-problem sequences to train on
NON_SATURATING = ("relu", "leaky_relu", "elu", "maxout")
GROUPS = ("activations", "init", "remedies", "rnn")
REMEDIES = ("sigmoid", "bn", "residual", "pretrained", "sigmoid5", "pretrained5")
REMEDY_LABELS = {"sigmoid": "sigmoid (no remedy)", "bn": "sigmoid + BatchNorm", "residual": "sigmoid + shortcuts",
                 "pretrained": "sigmoid, pretrained", "sigmoid5": f"{SHALLOW} sigmoid layers",
                 "pretrained5": f"{SHALLOW} sigmoid layers, pretrained"}
COLOURS = {"sigmoid": "#d62728", "tanh": "#ff7f0e", "relu": "#1f77b4", "leaky_relu": "#17becf", "elu": "#2ca02c",
           "maxout": "#9467bd", "xavier": "#d62728", "he": "#1f77b4", "bn": "#1f77b4", "residual": "#2ca02c",
           "pretrained": "#9467bd", "sigmoid5": "#e377c2", "pretrained5": "#8c564b"}
FLOOR = -30.0  # log10 ratios below this (an exactly zero gradient) are reported as this floor


def _floored(value: float) -> float:
    return max(value, FLOOR) if not math.isnan(value) else value


def rnn_run(seed: int, length: int, steps: int, clip: float | None, tracker: StepProgress | None = None) -> dict:
    """A tanh RNN (H=32, recurrent std 2/sqrt(H)) + Linear on the adding problem; SGD 0.01, momentum 0.9, batch 50.

    Returns the loss and the (pre-clipping) gradient norm of every step, and
    whether the loss became non-finite (training stops there).
    """
    data = make_adding_problem(RNN_TRAIN, max_length=length, seed=seed)
    normlab.manual_seed(seed)
    rng = np.random.default_rng(seed)
    rnn = nn.RNN(2, RNN_HIDDEN, nonlinearity="tanh", batch_first=True)
    head = nn.Linear(RNN_HIDDEN, 1)
    with normlab.no_grad():
        nn.init.normal_(rnn.weight_hh_l0, 0.0, RNN_GAIN / math.sqrt(RNN_HIDDEN))
    parameters = list(rnn.parameters()) + list(head.parameters())
    optimizer = normlab.optim.SGD(parameters, lr=LR, momentum=MOMENTUM)
    losses, norms, diverged = [], [], False
    for _ in range(steps):
        rows = rng.choice(RNN_TRAIN, RNN_BATCH, replace=False)
        _, h_n = rnn(data.x[rows])
        loss = F.mse_loss(head(h_n[0]).reshape(-1), data.y[rows])
        value = float(loss.item())
        if not math.isfinite(value):
            diverged = True
            break
        optimizer.zero_grad()
        loss.backward()
        if clip is None:
            norm = float(nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None]))
        else:
            norm = float(nn.utils.clip_grad_norm_(parameters, clip))  # the norm before clipping
        optimizer.step()
        losses.append(value)
        norms.append(norm if math.isfinite(norm) else 1e300)  # overflowed: the largest finite report
        if tracker is not None:
            tracker.advance()
    if tracker is not None:
        tracker.advance(steps - len(losses))
    return {"loss": losses, "grad_norm": norms, "diverged": diverged}


def final_loss(losses) -> float:
    """Mean training loss over the last 10 % of the steps run."""
    tail = max(len(losses) // 10, 1)
    return float(np.mean(losses[-tail:])) if losses else float("nan")


@register
class VanishingGradients(Experiment):
    id = "vanishing-gradients"
    order = 70
    title = "Vanishing gradients in deep nets, and the remedies"
    claim = ("In a deep sigmoid net the gradient shrinks by orders of magnitude from the last layer to the first and "
             "the net does not learn; ReLU-like activations, He initialisation, BatchNorm, identity shortcuts and "
             "greedy layer-wise pretraining each restore learning, and clipping the gradient norm keeps a tanh RNN "
             "with exploding gradients trainable.")
    anchor = ("Glorot & Bengio 2010 (sigmoid nets: gradients vanish toward the input); He et al. 2015 Fig. 3 (a "
              "30-layer ReLU net stalls with Xavier init and converges with He's); Ioffe & Szegedy 2015 (BN); He et "
              "al. 2016 (identity shortcuts); Hinton & Salakhutdinov 2006 and Bengio et al. 2007 (greedy layer-wise "
              "pretraining); Pascanu, Mikolov & Bengio 2013 (gradient clipping made long-sequence RNN training "
              "stable).")
    method = (
        "MNIST-1D (4000 training, 1000 test samples). Fully connected nets of 64 units per layer with zero biases, "
        "trained by SGD (learning rate 0.01, momentum 0.9, batches of 64) for the same number of steps. "
        "Activations: 20 hidden layers of sigmoid and tanh (Xavier init with torch's gains 1 and 5/3), ReLU, "
        "LeakyReLU (slope 0.01) and ELU (He init), and maxout with two pieces (Var(w) = 1/fan_in, which keeps the "
        "scale because the larger of two exchangeable zero-mean values has the same second moment). "
        "Initialisation: 30 ReLU layers with Xavier (Var(w) = 1/64) vs He (2/64). Remedies applied to the "
        "20-layer sigmoid net: BatchNorm1d between each Linear and its sigmoid; identity shortcuts (a first "
        "Linear, then 19 blocks x + Linear(sigmoid(x)), so still 20 Linear layers); greedy layer-wise pretraining "
        "(`normlab.nn.pretrain.greedy_layerwise`: each Linear+sigmoid layer trained in turn as the encoder of an "
        "autoencoder with a linear decoder on the codes of the layers below, Adam 1e-3, batches of 64) followed by "
        "the same SGD fine-tuning; the pretraining comparison is repeated with 5 sigmoid layers, the depth of the "
        "papers' nets. Gradient norms: |dL/dz| at the output of every hidden layer, measured with "
        "`GradientMonitor` on a fixed batch of 512 training samples at initialisation and after training; the "
        "`log_ratio_*` effects are log10 of the first hidden layer's norm over the last's (-2: the first layer "
        "gets 100x less). Clipping: a tanh `nn.RNN` with 32 units whose recurrent weights have std 2/sqrt(32) "
        "(the chaotic regime, where gradients grow with the length), a Linear readout, mean squared error on the "
        "adding problem (`normlab.data.make_adding_problem`, 2000 training sequences; predicting 1 gives 1/6), "
        "with and without `clip_grad_norm_(..., 1.0)`, same SGD, batches of 50; the final loss is the mean "
        "training loss of the last 10 % of the steps.")
    checks = (
        Check("sigmoid-vanishes",
              "at initialisation the 20-layer sigmoid net's first hidden layer gets a gradient at least 100x smaller "
              "than its last (log_ratio_sigmoid <= -2)",
              lambda e: e["log_ratio_sigmoid"] <= -2),
        Check("non-saturating-keep-gradient",
              "with ReLU, LeakyReLU, ELU and maxout the first layer's gradient is within 10x of the last's or larger "
              "(log_ratio >= -1 for each)",
              lambda e: all(e[f"log_ratio_{act}"] >= -1 for act in NON_SATURATING)),
        Check("non-saturating-learn",
              "each of ReLU, LeakyReLU, ELU and maxout ends at least 10 points of test accuracy above the sigmoid net",
              lambda e: all(e[f"acc_{act}"] >= e["acc_sigmoid"] + 0.10 for act in NON_SATURATING)),
        Check("xavier-stalls-he-converges",
              "30 ReLU layers: with Xavier init the training loss falls by less than 5 %, with He init by at least "
              "20 %",
              lambda e: e["loss_drop_xavier"] < 0.05 and e["loss_drop_he"] >= 0.20),
        Check("bn-restores",
              "BatchNorm in the sigmoid net: first layer's gradient within 10x of the last's (log ratio >= -1) and "
              "test accuracy at least 10 points above the plain sigmoid net",
              lambda e: e["log_ratio_bn"] >= -1 and e["acc_bn"] >= e["acc_sigmoid"] + 0.10),
        Check("shortcuts-restore",
              "identity shortcuts in the sigmoid net: log ratio >= -1 and test accuracy at least 10 points above the "
              "plain sigmoid net",
              lambda e: e["log_ratio_residual"] >= -1 and e["acc_residual"] >= e["acc_sigmoid"] + 0.10),
        Check("pretraining-helps",
              "after greedy layer-wise pretraining, the fine-tuned 20-layer sigmoid net ends at least 10 points of "
              "test accuracy above the same net trained from random weights",
              lambda e: e["acc_pretrained"] >= e["acc_sigmoid"] + 0.10),
        Check("pretraining-helps-shallow",
              f"the same with {SHALLOW} sigmoid layers (the depth of the pretraining papers' nets): pretrained and "
              "fine-tuned ends at least 10 points above random weights",
              lambda e: e["acc_pretrained5"] >= e["acc_sigmoid5"] + 0.10),
        Check("rnn-gradients-explode",
              "without clipping, the RNN's gradient norm exceeds 10x the clipping threshold at some step (the "
              "setting has exploding gradients)",
              lambda e: e["rnn_max_grad_norm"] >= 10 * CLIP),
        Check("clipping-stabilises",
              "with clipping the RNN never diverges and ends with a lower training loss than without clipping "
              "(or the unclipped run diverged)",
              lambda e: e["rnn_diverged_clipped"] < 0.5 and (e["rnn_diverged_unclipped"] >= 0.5
                                                             or e["rnn_loss_clipped"] < e["rnn_loss_unclipped"])),
    )
    quick = {"steps": 400, "evaluations": 10, "pretrain_steps": 100, "rnn_steps": 1500, "rnn_length": 20}
    full = {"steps": 1500, "evaluations": 15, "pretrain_steps": 300, "rnn_steps": 3000, "rnn_length": 20}
    quick_seeds = 1
    seconds = {"quick": 7.0, "full": 25.0}

    def tasks(self, size, seeds):
        return [{"seed": seed, "group": group} for seed in seeds for group in GROUPS]

    def seed_effects(self, tasks, results, size):
        return merge_task_effects(tasks, results)

    def run_task(self, task, size, progress):
        group, seed, steps = task["group"], task["seed"], size["steps"]
        if group == "rnn":
            tracker = StepProgress(progress, 2 * size["rnn_steps"])
            runs = {name: rnn_run(seed, size["rnn_length"], size["rnn_steps"], clip, tracker)
                    for name, clip in (("unclipped", None), ("clipped", CLIP))}
            effect = {"rnn_max_grad_norm": max(runs["unclipped"]["grad_norm"], default=float("nan")),
                      "rnn_loss_unclipped": final_loss(runs["unclipped"]["loss"]),
                      "rnn_loss_clipped": final_loss(runs["clipped"]["loss"]),
                      "rnn_diverged_unclipped": runs["unclipped"]["diverged"],
                      "rnn_diverged_clipped": runs["clipped"]["diverged"]}
            return {"effect": effect, "runs": runs}
        data = mnist1d()
        train_rows = np.random.default_rng(seed).permutation(len(data.x_train))
        variants = {"activations": [(act, {"act": act, "depth": DEPTH}) for act in ACTIVATIONS],
                    "init": [(scheme, {"act": "relu", "depth": INIT_DEPTH, "init": scheme})
                             for scheme in ("xavier", "he")],
                    "remedies": [("bn", {"act": "sigmoid", "depth": DEPTH, "norm": True}),
                                 ("residual", {"act": "sigmoid", "depth": DEPTH, "residual": True}),
                                 ("pretrained", {"act": "sigmoid", "depth": DEPTH}),
                                 ("sigmoid5", {"act": "sigmoid", "depth": SHALLOW}),
                                 ("pretrained5", {"act": "sigmoid", "depth": SHALLOW})]}[group]
        pretraining = sum(options["depth"] for name, options in variants if name.startswith("pretrained"))
        tracker = StepProgress(progress, steps * len(variants) + pretraining * size["pretrain_steps"])
        runs, effect = {}, {}
        for name, options in variants:
            normlab.manual_seed(seed)  # every variant of a seed starts from the same generator state
            model = deep_mlp(width=WIDTH, **options)
            if name.startswith("pretrained"):
                stages = [model[2 * i:2 * i + 2] for i in range(options["depth"])]  # (Linear, Sigmoid) pairs
                reports = greedy_layerwise(stages, data.x_train[train_rows], steps=size["pretrain_steps"],
                                           batch_size=BATCH, lr=1e-3, rng=np.random.default_rng(seed),
                                           callback=lambda stage, step, loss: tracker.advance())
                effect[f"pretrain_error_drop{name[len('pretrained'):]}"] = float(
                    np.mean([1 - r.final_error / r.initial_error for r in reports]))
            run = train_run(model, data, steps=steps, lr=LR, momentum=MOMENTUM, batch_size=BATCH, seed=seed,
                            evaluations=size["evaluations"], tracker=tracker, train_rows=train_rows)
            runs[name] = run
            effect[f"log_ratio_{name}"] = _floored(log_ratio(run["profile_init"]))
            effect[f"log_ratio_end_{name}"] = _floored(log_ratio(run["profile_end"]))
            effect[f"acc_{name}"] = run["final_test_accuracy"]
            if group == "init":
                effect[f"loss_drop_{name}"] = 1 - run["loss_end"] / run["loss_init"]
        return {"effect": effect, "runs": runs}

    def measurement(self, e):
        return (f"first/last layer gradient at init: sigmoid 10^{e['log_ratio_sigmoid']:.1f}, ReLU "
                f"10^{e['log_ratio_relu']:.1f}; test accuracy sigmoid {e['acc_sigmoid']:.0%} vs ReLU "
                f"{e['acc_relu']:.0%}, BN {e['acc_bn']:.0%}, shortcuts {e['acc_residual']:.0%}, pretrained "
                f"{e['acc_pretrained']:.0%}; 30 layers: loss fell {e['loss_drop_xavier']:.0%} (Xavier) vs "
                f"{e['loss_drop_he']:.0%} (He); RNN loss {e['rnn_loss_unclipped']:.3f} unclipped vs "
                f"{e['rnn_loss_clipped']:.3f} clipped (largest gradient norm {e['rnn_max_grad_norm']:.3g})")

    def discussion(self, e, size):
        activations = ", ".join(f"{ACTIVATION_LABELS[a]} 10^{e[f'log_ratio_{a}']:.1f}" for a in ACTIVATIONS)
        accuracies = ", ".join(f"{ACTIVATION_LABELS[a]} {e[f'acc_{a}']:.1%}" for a in ACTIVATIONS)
        return (
            f"At initialisation the first hidden layer of the 20-layer nets receives this fraction of the last "
            f"layer's gradient: {activations}. After {size['steps']} SGD steps the test accuracies are: "
            f"{accuracies} (chance is 10 %). With 30 ReLU layers, Xavier's initialisation gives the first layer "
            f"10^{e['log_ratio_xavier']:.1f} of the last layer's gradient and the training loss falls by "
            f"{e['loss_drop_xavier']:.1%}; He's gives 10^{e['log_ratio_he']:.1f} and the loss falls by "
            f"{e['loss_drop_he']:.1%}.\n\n"
            f"On the sigmoid net, BatchNorm brings the ratio to 10^{e['log_ratio_bn']:.1f} (accuracy "
            f"{e['acc_bn']:.1%}), identity shortcuts to 10^{e['log_ratio_residual']:.1f} ({e['acc_residual']:.1%}). "
            f"Pretraining reduces each layer's reconstruction error by {e['pretrain_error_drop']:.0%} on average; "
            f"the pretrained net's gradient ratio is 10^{e['log_ratio_pretrained']:.1f} at the start of fine-tuning "
            f"and it ends at {e['acc_pretrained']:.1%}. With {SHALLOW} sigmoid layers, random weights end at "
            f"{e['acc_sigmoid5']:.1%} and pretrained ones at {e['acc_pretrained5']:.1%}. Pretraining does not make "
            f"the gradient flow; it can only help by giving the lower layers useful weights before any gradient has "
            f"to reach them.\n\n"
            f"The RNN's gradient norm reaches {e['rnn_max_grad_norm']:.3g} without clipping. Its final training "
            f"loss is {e['rnn_loss_unclipped']:.3f} without and {e['rnn_loss_clipped']:.3f} with clipping "
            f"(predicting the mean gives 0.167).")

    def figures(self, tasks, results, effect, size, folder):
        runs: dict[str, list] = {}
        for result in results:
            for name, run in result["runs"].items():
                runs.setdefault(name, []).append(run)
        return [self._depth_figure(runs, folder), self._curves_figure(runs, folder),
                self._clipping_figure(runs, size["rnn_length"], folder)]

    @staticmethod
    def _panels():
        return (("activations", [(a, ACTIVATION_LABELS[a]) for a in ACTIVATIONS], f"{DEPTH} layers, activations"),
                ("init", [("xavier", "Xavier"), ("he", "He")], f"{INIT_DEPTH} ReLU layers, initialisation"),
                ("remedies", [("sigmoid", REMEDY_LABELS["sigmoid"])] +
                 [(r, REMEDY_LABELS[r]) for r in REMEDIES[1:]], f"sigmoid nets ({DEPTH} layers unless said), remedies"))

    def _depth_figure(self, runs, folder):
        plt = pyplot()
        figure, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
        for axis, (_, members, title) in zip(axes, self._panels()):
            for name, label in members:
                for key, style, suffix in (("profile_init", "-", ""), ("profile_end", "--", None)):
                    profiles = np.array([[v if v else np.nan for v in run[key]] for run in runs[name]], dtype=float)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        logs = np.log10(profiles)
                    layers = np.arange(1, logs.shape[1] + 1)
                    axis.plot(layers, np.nanmean(logs, axis=0), style, color=COLOURS[name],
                              label=label if suffix is not None else None)
            axis.set_xlabel("hidden layer (1 = next to the input)")
            axis.set_title(title)
            axis.legend(fontsize=8)
        axes[0].set_ylabel("log10 |dL/dz| at the layer's output")
        save(figure, folder / "gradient_by_depth.png")
        return ("gradient_by_depth.png",
                "Gradient norm at every hidden layer's output (log10, mean over seeds) at initialisation (solid) and "
                "after training (dashed). Left: activations; middle: Xavier vs He on 30 ReLU layers; right: remedies "
                "for the 20-layer sigmoid net. A line that falls to the left is a vanishing gradient.")

    def _curves_figure(self, runs, folder):
        plt = pyplot()
        figure, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
        for axis, (_, members, title) in zip(axes, self._panels()):
            for name, label in members:
                mean_band(axis, runs[name][0]["steps"], [run["test_accuracy"] for run in runs[name]], label,
                          COLOURS[name])
            axis.axhline(0.1, color="#999", lw=0.8, ls=":")
            axis.set_xlabel("training step")
            axis.set_title(title)
            axis.legend(fontsize=8, loc="upper left")
        axes[0].set_ylabel("test accuracy")
        save(figure, folder / "training_curves.png")
        return ("training_curves.png",
                "Test accuracy over training (mean over seeds, band: lowest to highest) for the same three groups; "
                "dotted: chance (10 %).")

    def _clipping_figure(self, runs, length, folder):
        plt = pyplot()
        figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
        for name, colour_ in (("unclipped", "#d62728"), ("clipped", "#1f77b4")):
            first = runs[name][0]
            window = max(len(first["loss"]) // 50, 1)
            smooth = np.convolve(first["loss"], np.ones(window) / window, mode="valid") if first["loss"] else []
            left.plot(np.arange(len(smooth)) + window, smooth, color=colour_, label=f"{name} (seed 0)")
            right.semilogy(np.arange(1, len(first["grad_norm"]) + 1), first["grad_norm"], color=colour_, lw=0.6,
                           label=name)
        left.axhline(1 / 6, color="#999", ls=":", lw=1, label="predict the mean (1/6)")
        left.set_xlabel("training step")
        left.set_ylabel("training MSE (moving mean)")
        left.set_ylim(0, 0.6)
        left.legend()
        right.axhline(CLIP, color="#999", ls=":", lw=1, label="clipping threshold")
        right.set_xlabel("training step")
        right.set_ylabel("gradient norm before clipping")
        right.legend()
        figure.suptitle(f"tanh RNN, recurrent std {RNN_GAIN:g}/sqrt({RNN_HIDDEN}), adding problem of length {length}")
        save(figure, folder / "clipping.png")
        return ("clipping.png",
                "The tanh RNN with exploding gradients on the adding problem, with and without clipping the gradient "
                "norm at 1: training loss (left) and gradient norm before clipping (right), first seed.")
