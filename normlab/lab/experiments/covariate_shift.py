"""covariate-shift: Ioffe & Szegedy (2015) Fig. 1 at laptop scale, with Santurkar et al.'s (2018) noisy BN."""
from __future__ import annotations

import numpy as np

import normlab
import normlab.nn as nn
from normlab.data import load_digits
from normlab.diagnostics import GradientMonitor
from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import colour, mean_band, pyplot, save
from normlab.lab.training import StepProgress, auc, fit, mnist1d, seeded

DATASETS = ("digits", "mnist1d")
DATASET_LABELS = {"digits": "digits", "mnist1d": "MNIST-1D"}
ARMS = ("none", "batch", "noisy")
ARM_LABELS = {"none": "no BN", "batch": "BN", "noisy": "noisy BN"}
PERCENTILES = (15, 50, 85)
LEARNING_RATE = 0.5  # plain SGD, the same for every arm, fixed before running
BATCH = 60
WIDTH, DEPTH = 100, 3


class NoisyShift(nn.Module):
    """Santurkar et al.'s (2018) "noisy BN": a random shift and scale after BN, redrawn at every training step.

    At each training forward and for each unit j a noise distribution is drawn:
    shift mean m_j ~ U(-1, 1), scale mean c_j ~ U(0.5, 1.5), spread v_j ~ U(0, 0.5);
    then every activation gets its own scale s ~ N(c_j, v_j^2) and shift
    b ~ N(m_j, v_j^2): y = s * x + b. The next layer's input distribution thus
    changes at every step (non-zero mean, non-unit variance, as in the paper).
    Identity in eval mode.
    """

    def __init__(self, width: int, seed: int) -> None:
        super().__init__()
        self.width = width
        self.rng = np.random.default_rng(seed)

    def forward(self, x):
        if not self.training:
            return x
        shape = (1, self.width)
        m = self.rng.uniform(-1.0, 1.0, shape)
        c = self.rng.uniform(0.5, 1.5, shape)
        v = self.rng.uniform(0.0, 0.5, shape)
        noise_shape = x.shape
        scale = (c + v * self.rng.standard_normal(noise_shape)).astype(x.dtype)
        shift = (m + v * self.rng.standard_normal(noise_shape)).astype(x.dtype)
        return x * scale + shift


def sigmoid_mlp(in_features: int, arm: str, seed: int) -> tuple[nn.Sequential, str]:
    """3 x 100 sigmoid MLP (Ioffe's Fig. 1 net); returns it and the name of the last hidden sigmoid's input layer."""
    layers = []
    features = in_features
    for _ in range(DEPTH):
        layers.append(nn.Linear(features, WIDTH))
        if arm in ("batch", "noisy"):
            layers.append(nn.BatchNorm1d(WIDTH))
        if arm == "noisy":
            layers.append(NoisyShift(WIDTH, seed))
        layers.append(nn.Sigmoid())
        features = WIDTH
    layers.append(nn.Linear(WIDTH, 10))
    return nn.Sequential(*layers), str(len(layers) - 3)  # the layer feeding the last Sigmoid


def drift(percentiles: dict) -> float:
    """How far the sigmoid-input percentiles wander over training, relative to the distribution's width.

    mean over q in {15, 50, 85} of (max_t p_q - min_t p_q), divided by the
    mean over t of (p85 - p15). 0 = a fixed distribution.
    """
    series = {q: np.asarray(percentiles[f"p{q}"], dtype=np.float64) for q in PERCENTILES}
    width = float(np.mean(series[85] - series[15]))
    wander = float(np.mean([series[q].max() - series[q].min() for q in PERCENTILES]))
    return wander / width if width > 0 else float("inf")


def _each(effect: dict, predicate) -> bool:
    return all(predicate(lambda key: effect[f"{dataset}_{key}"]) for dataset in DATASETS)


@register
class CovariateShift(Experiment):
    id = "covariate-shift"
    order = 10
    title = "Batch normalization, sigmoid inputs and covariate shift"
    claim = ("With BN a 3 x 100 sigmoid net reaches higher test accuracy sooner, and the distribution of its "
             "last hidden layer's sigmoid inputs stays steadier over training; yet BN with noise injected after it "
             "(distributions unsteady on purpose) trains about as well, so steadier distributions are not the "
             "whole story.")
    anchor = ("Ioffe & Szegedy 2015, Fig. 1 (MNIST, 3 x 100 sigmoid, batch 60: BN reaches higher accuracy faster; "
              "15/50/85th percentiles of a sigmoid input steady with BN, shifting without); Santurkar et al. 2018, "
              "Fig. 2 (noisy BN trains as well as BN).")
    method = (
        "A multilayer perceptron with 3 hidden layers of 100 sigmoid units (normlab's default Linear init), "
        "trained with plain SGD (learning rate 0.5 for every variant, no momentum) on mini-batches of 60 with "
        "cross-entropy, on scikit-learn's 8x8 digits (1438 train / 359 test) and on MNIST-1D (4000 / 1000). "
        "Three variants start from the same seed: no normalization; BatchNorm1d between each Linear and its "
        "sigmoid; and noisy BN, where after each BN a random scale and shift is applied to every activation, "
        "drawn from a distribution (mean shift in U(-1, 1), mean scale in U(0.5, 1.5), spread in U(0, 0.5) per "
        "unit) that is redrawn at every step. Test accuracy (eval mode) is measured 20 times during training. "
        "A `GradientMonitor` on the layer that feeds the last hidden sigmoid records the 15th, 50th and 85th "
        "percentiles of its outputs over all 100 units and the 60 samples of the training batch (in training "
        "mode, as the next layer sees them) at the same 20 points. Effects: the test accuracy averaged over "
        "training (area under the curve, `auc`), the final test accuracy, and the percentiles' drift: the "
        "mean over the three percentiles of their range over training, divided by the mean distance between "
        "the 15th and 85th percentile.")
    checks = (
        Check("bn-learns-sooner",
              "on both datasets, BN's test accuracy averaged over training is at least 2 points higher than "
              "without BN, and its final test accuracy at most 1 point lower",
              lambda e: _each(e, lambda k: k("auc_batch") - k("auc_none") >= 0.02
                              and k("final_batch") >= k("final_none") - 0.01)),
        Check("bn-steadier-inputs",
              "on both datasets, the sigmoid-input percentiles drift less with BN than without",
              lambda e: _each(e, lambda k: k("drift_batch") < k("drift_none"))),
        Check("noisy-bn-as-good",
              "on both datasets, noisy BN's final test accuracy is at most 3 points below BN's while its "
              "percentiles drift more than BN's",
              lambda e: _each(e, lambda k: k("final_noisy") >= k("final_batch") - 0.03
                              and k("drift_noisy") > k("drift_batch"))),
    )
    quick = {"steps": 1000, "evaluations": 20}
    full = {"steps": 3000, "evaluations": 20}
    seconds = {"quick": 15.0, "full": 45.0}

    def run_task(self, task, size, progress):
        steps, evaluations = size["steps"], size["evaluations"]
        every = max(steps // evaluations, 1)
        tracker = StepProgress(progress, steps * len(DATASETS) * len(ARMS))
        data = {"digits": load_digits(), "mnist1d": mnist1d()}
        runs, effect = {}, {}
        for dataset in DATASETS:
            splits = data[dataset]
            x_train, x_test = splits.x_train.reshape(len(splits.x_train), -1), splits.x_test
            for arm in ARMS:
                rng = seeded(task["seed"])  # every variant starts from the same initial weights and batch order
                model, watched = sigmoid_mlp(splits.n_features, arm, task["seed"])
                optimizer = normlab.optim.SGD(model.parameters(), lr=LEARNING_RATE)
                monitor = GradientMonitor(model, layers=[watched], every=every, percentiles=PERCENTILES)
                with monitor:
                    curve = fit(model, optimizer, x_train, splits.y_train, steps=steps, batch_size=BATCH, rng=rng,
                                x_test=x_test, y_test=splits.y_test, eval_every=every, tracker=tracker,
                                on_step=lambda _: monitor.step())
                curve["percentile_steps"] = monitor.steps.tolist()
                curve["percentiles"] = {f"p{q}": monitor.series(watched, f"p{q}").tolist() for q in PERCENTILES}
                runs[f"{dataset}/{arm}"] = curve
                effect[f"{dataset}_auc_{arm}"] = auc(curve["steps"], curve["test_accuracy"])
                effect[f"{dataset}_final_{arm}"] = curve["final_test_accuracy"]
                effect[f"{dataset}_drift_{arm}"] = drift(curve["percentiles"])
        return {"effect": effect, "runs": runs}

    def measurement(self, e):
        parts = []
        for dataset in DATASETS:
            k = (lambda key: e[f"{dataset}_{key}"])
            parts.append(f"{DATASET_LABELS[dataset]}: accuracy over training {k('auc_batch'):.2f} BN vs "
                         f"{k('auc_none'):.2f} none, final {k('final_batch'):.2f} / {k('final_none'):.2f} / "
                         f"noisy {k('final_noisy'):.2f}; drift {k('drift_batch'):.2f} BN, {k('drift_none'):.2f} none, "
                         f"{k('drift_noisy'):.2f} noisy")
        return "; ".join(parts)

    def discussion(self, e, size):
        lines = []
        for dataset in DATASETS:
            k = (lambda key: e[f"{dataset}_{key}"])
            lines.append(
                f"On {DATASET_LABELS[dataset]}, after {size['steps']} steps the net without BN reaches "
                f"{k('final_none'):.1%} test accuracy and the BN net {k('final_batch'):.1%}; averaged over training "
                f"they score {k('auc_none'):.1%} and {k('auc_batch'):.1%}. The sigmoid-input percentiles drift by "
                f"{k('drift_none'):.2f} distribution widths without BN and {k('drift_batch'):.2f} with it. Noisy BN, "
                f"whose inputs drift by {k('drift_noisy'):.2f} widths, ends at {k('final_noisy'):.1%}.")
        return "\n\n".join(lines)

    def figures(self, tasks, results, effect, size, folder):
        plt = pyplot()
        figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for axis, dataset in zip(axes, DATASETS):
            for arm in ARMS:
                curves = [r["runs"][f"{dataset}/{arm}"]["test_accuracy"] for r in results]
                steps = results[0]["runs"][f"{dataset}/{arm}"]["steps"]
                mean_band(axis, steps, curves, ARM_LABELS[arm], colour(arm))
            axis.set_title(f"{DATASET_LABELS[dataset]}: test accuracy")
            axis.set_xlabel("training step")
            axis.set_ylim(0, 1)
            axis.legend(loc="lower right")
        save(figure, folder / "accuracy.png")

        figure, axes = plt.subplots(len(DATASETS), len(ARMS), figsize=(12, 6), sharex=True)
        first = results[0]["runs"]
        for row, dataset in enumerate(DATASETS):
            for column, arm in enumerate(ARMS):
                axis = axes[row, column]
                run = first[f"{dataset}/{arm}"]
                for q, style in zip(PERCENTILES, (":", "-", ":")):
                    axis.plot(run["percentile_steps"], run["percentiles"][f"p{q}"], style, color=colour(arm),
                              label=f"{q}th percentile")
                axis.set_title(f"{DATASET_LABELS[dataset]}, {ARM_LABELS[arm]}")
                if row == len(DATASETS) - 1:
                    axis.set_xlabel("training step")
            axes[row, 0].set_ylabel("last hidden layer's\nsigmoid input")
        axes[0, 0].legend()
        figure.tight_layout()
        save(figure, folder / "percentiles.png")
        seed = tasks[0]["seed"]
        return [("accuracy.png", f"Test accuracy over training without BN, with BN and with noisy BN (line: mean "
                                 f"over {len(results)} seed(s); band: lowest to highest seed)."),
                ("percentiles.png", f"15th, 50th and 85th percentiles of the last hidden layer's sigmoid inputs "
                                    f"(all units, training batch) over training, seed {seed}: Ioffe & Szegedy's "
                                    "Fig. 1(b, c), and noisy BN's deliberately unsteady inputs.")]
