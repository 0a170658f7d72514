"""bn-sigmoid: can a sigmoid net with BatchNorm still have vanishing gradients?

The notes answer "possibly, e.g. with all-zero initial weights". Three cases
of one net (20 x (Linear -> BatchNorm1d -> sigmoid), 64 units, MNIST-1D):

- all-zero weights: every pre-activation is 0, BN maps a constant batch to
  its shift beta, every sigmoid outputs sigmoid(beta) for every sample. The
  weight gradient of layer l is dz_l^T h_{l-1}; h_{l-1} is the same for every
  sample and BN's backward centres dz_l over the batch, so the sum is 0; and
  dz_l = 0 anyway below the last layer, because it is multiplied by W_{l+1} = 0.
  The weights stay exactly 0: all units of a layer stay identical and no
  information from the input ever reaches the classifier.
- a large BN gain gamma: the sigmoid's input is gamma * x_hat, so with gamma =
  10 about 65 % of the units sit where the sigmoid is within 0.01 of 0 or 1
  (|input| > 4.6, P(|N(0, 1)| > 0.46)) and their derivative is below 0.01.
- the default (gamma = 1): x_hat ~ N(0, 1) lands 95 % of the inputs in
  [-2, 2], where the sigmoid is close to linear (derivative 0.10..0.25).
"""
from __future__ import annotations

import numpy as np

import normlab
import normlab.nn as nn
from normlab.lab.deepnets import PROBE, deep_mlp, gradient_profile, log_ratio, train_run, weight_layers
from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import mean_band, pyplot, save
from normlab.lab.training import StepProgress, mnist1d

DEPTH, WIDTH = 20, 64
LR, MOMENTUM, BATCH = 0.01, 0.9, 64
LARGE_GAIN = 10.0
GAIN_SWEEP = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
SATURATION = 0.01         # a sigmoid output within this of 0 or 1 counts as saturated (derivative < 0.01)
LINEAR_RANGE = 2.0        # |sigmoid input| <= 2: the near-linear range (derivative >= 0.105)
FLOOR = -30.0
CASES = ("default", "zeros", "large_gain")
LABELS = {"default": "default (gamma = 1)", "zeros": "all-zero weights", "large_gain": f"gamma = {LARGE_GAIN:g}"}
COLOURS = {"default": "#1f77b4", "zeros": "#7f7f7f", "large_gain": "#d62728"}


def bn_sigmoid_net(case: str, gain: float = 1.0) -> nn.Sequential:
    """The 20-layer Linear -> BatchNorm1d -> sigmoid net: Xavier weights, or all zeros; BN weight (gamma) = ``gain``."""
    model = deep_mlp("sigmoid", DEPTH, width=WIDTH, norm=True, init="zeros" if case == "zeros" else "xavier")
    with normlab.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                nn.init.constant_(module.weight, gain)
    return model


class SigmoidInputs:
    """Forward hooks on every Sigmoid: the share of its inputs in [-2, 2] and of its outputs saturated.

    Counts only forwards that record gradients (training steps and probes),
    not evaluation; ``take()`` returns the shares since the last call.
    """

    def __init__(self, model: nn.Module) -> None:
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, nn.Sigmoid)]
        self.linear = self.saturated = self.total = 0

    def _hook(self, module, inputs, output) -> None:
        if not normlab.is_grad_enabled():
            return
        y = output._data
        # the input z of y = sigmoid(z) is in [-a, a] exactly when y is in [sigmoid(-a), sigmoid(a)]
        bound = 1.0 / (1.0 + np.exp(-LINEAR_RANGE))
        self.linear += int(np.count_nonzero((y >= 1 - bound) & (y <= bound)))
        self.saturated += int(np.count_nonzero((y < SATURATION) | (y > 1 - SATURATION)))
        self.total += y.size

    def take(self) -> tuple[float, float]:
        shares = (self.linear / self.total, self.saturated / self.total) if self.total else (np.nan, np.nan)
        self.linear = self.saturated = self.total = 0
        return shares

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def unit_spread(model: nn.Module) -> list[float]:
    """Per hidden layer: the largest difference between two units' incoming weight vectors (max |w_i - w_j|)."""
    modules = dict(model.named_modules())
    spreads = []
    for name in weight_layers(model)[:-1]:
        w = modules[name].weight._data.astype(np.float64)
        spreads.append(float(np.max(w.max(axis=0) - w.min(axis=0))))
    return spreads


def _log10(value: float) -> float:
    return float(np.log10(value)) if value > 0 else FLOOR


@register
class BNSigmoid(Experiment):
    id = "bn-sigmoid"
    order = 80
    title = "Can a sigmoid net with BatchNorm still have vanishing gradients?"
    claim = ("Yes, possibly: with all-zero initial weights every unit of a layer stays identical and no gradient "
             "reaches the lower layers; a large BN gain pushes the sigmoids into saturation and the gradient "
             "collapses; with BN's default gain the sigmoid inputs stay in the near-linear range and the gradient "
             "flows.")
    anchor = ("The study notes' interview answer (\"possibly, e.g. all-zero initial weights\"); the symmetry "
              "argument for zero initialisation; Ioffe & Szegedy 2015, Sec. 3.3 (BN keeps sigmoid inputs away from "
              "the saturated regime).")
    method = (
        "A net of 20 hidden layers (Linear -> BatchNorm1d -> sigmoid, 64 units) and a Linear classifier on "
        "MNIST-1D, trained by SGD (learning rate 0.01, momentum 0.9, batches of 64). Cases: default (Xavier "
        "weights, BN gain gamma = 1), all-zero weights (every Linear, the classifier's too, and every bias 0; BN "
        "as default), and BN gain gamma = 10 (Xavier weights). Gradient norms |dL/dz| at each hidden Linear's "
        "output on a fixed batch of 512 training samples (`GradientMonitor`); `log_ratio_*` is log10 of the first "
        "hidden layer's norm over the last's at initialisation (for all-zero weights, whose hidden gradients are "
        "all exactly 0 at initialisation, after training; -30 stands for an exactly zero gradient). Forward hooks "
        "on the "
        "sigmoids count the share of their inputs in [-2, 2] (near-linear: derivative >= 0.105) and of their "
        "outputs within 0.01 of 0 or 1 (saturated: derivative < 0.01), over all training steps and at "
        "initialisation. The units' symmetry: per hidden layer, the largest difference between two units' "
        "incoming weight vectors after training. A sweep over gamma in 0.5..20 measures saturation and the "
        "gradient ratio at initialisation.")
    checks = (
        Check("zero-init-units-stay-identical",
              "with all-zero weights, after training every hidden layer's units still have identical incoming "
              "weights (largest difference <= 1e-6) and test accuracy stays within 5 points of chance (<= 15 %)",
              lambda e: e["zeros_unit_spread"] <= 1e-6 and e["acc_zeros"] <= 0.15),
        Check("large-gain-saturates",
              f"at initialisation, gamma = {LARGE_GAIN:g} saturates at least 50 % of the sigmoid outputs and "
              "gamma = 1 at most 5 %",
              lambda e: e["saturated_large_gain"] >= 0.5 and e["saturated_default"] <= 0.05),
        Check("large-gain-gradient-collapses",
              f"at initialisation, the first layer's share of the last layer's gradient is at least 10x smaller "
              f"with gamma = {LARGE_GAIN:g} than with gamma = 1",
              lambda e: e["log_ratio_large_gain"] <= e["log_ratio_default"] - 1),
        Check("large-gain-trains-worse",
              f"gamma = {LARGE_GAIN:g} ends at least 5 points of test accuracy below gamma = 1",
              lambda e: e["acc_large_gain"] <= e["acc_default"] - 0.05),
        Check("default-near-linear",
              "with gamma = 1, at least 80 % of the sigmoid inputs lie in [-2, 2] over training, and the first "
              "layer's gradient is within 10x of the last's at initialisation",
              lambda e: e["linear_share_default"] >= 0.8 and e["log_ratio_default"] >= -1),
    )
    quick = {"steps": 300, "evaluations": 10}
    full = {"steps": 1000, "evaluations": 20}
    quick_seeds = 1
    seconds = {"quick": 8.0, "full": 25.0}

    def run_task(self, task, size, progress):
        seed, steps = task["seed"], size["steps"]
        data = mnist1d()
        train_rows = np.random.default_rng(seed).permutation(len(data.x_train))
        probe_x, probe_y = data.x_train[train_rows[:PROBE]], data.y_train[train_rows[:PROBE]]
        tracker = StepProgress(progress, steps * len(CASES))
        effect, runs, sweep = {}, {}, []
        for gain in GAIN_SWEEP:
            normlab.manual_seed(seed)
            model = bn_sigmoid_net("default", gain)
            hooks = SigmoidInputs(model)
            profile = gradient_profile(model, probe_x, probe_y)
            linear, saturated = hooks.take()
            hooks.remove()
            sweep.append({"gain": gain, "profile": profile["grad_norm"], "linear": linear, "saturated": saturated,
                          "log_ratio": max(log_ratio(profile["grad_norm"]), FLOOR)})
        for case in CASES:
            normlab.manual_seed(seed)
            model = bn_sigmoid_net(case, LARGE_GAIN if case == "large_gain" else 1.0)
            hooks = SigmoidInputs(model)
            gradient_profile(model, probe_x, probe_y)
            effect[f"linear_share_init_{case}"], effect[f"saturated_{case}"] = hooks.take()
            every = max(steps // size["evaluations"], 1)
            shares = []
            run = train_run(model, data, steps=steps, lr=LR, momentum=MOMENTUM, batch_size=BATCH, seed=seed,
                            evaluations=size["evaluations"], tracker=tracker, train_rows=train_rows,
                            on_step=lambda step: shares.append(hooks.take()) if step % every == 0 else None)
            hooks.remove()
            linear_over_training = [s[0] for s in shares]
            run["linear_share"] = linear_over_training
            run["saturated_share"] = [s[1] for s in shares]
            run["unit_spread"] = unit_spread(model)
            runs[case] = run
            # all-zero weights give every hidden layer exactly 0 at initialisation (0/0): read them after training
            profile = run["profile_end"] if case == "zeros" else run["profile_init"]
            effect[f"log_ratio_{case}"] = max(log_ratio(profile), FLOOR)
            effect[f"acc_{case}"] = run["final_test_accuracy"]
            effect[f"linear_share_{case}"] = float(np.mean(linear_over_training))
            effect[f"{case}_unit_spread"] = max(run["unit_spread"])
        return {"effect": effect, "runs": runs, "sweep": sweep}

    def measurement(self, e):
        return (f"all-zero weights: units identical (largest weight difference {e['zeros_unit_spread']:.2g}), test "
                f"accuracy {e['acc_zeros']:.0%}; gamma {LARGE_GAIN:g}: {e['saturated_large_gain']:.0%} of sigmoids "
                f"saturated, first/last gradient 10^{e['log_ratio_large_gain']:.1f} (gamma 1: "
                f"10^{e['log_ratio_default']:.1f}), accuracy {e['acc_large_gain']:.0%} vs {e['acc_default']:.0%}; "
                f"gamma 1: {e['linear_share_default']:.0%} of sigmoid inputs in [-2, 2]")

    def discussion(self, e, size):
        return (
            f"All-zero weights: after {size['steps']} steps the largest difference between two units' weight "
            f"vectors in any hidden layer is {e['zeros_unit_spread']:.3g}; at initialisation every hidden layer's "
            f"gradient is exactly 0 (the zero classifier passes nothing back), and after training the first layer "
            f"gets 10^{e['log_ratio_zeros']:.0f} of the last layer's (-30 stands for exactly 0); test accuracy "
            f"{e['acc_zeros']:.1%}. BN cannot break the symmetry: a constant batch normalizes to a constant.\n\n"
            f"Gain gamma = {LARGE_GAIN:g}: {e['saturated_large_gain']:.1%} of the sigmoid outputs are saturated at "
            f"initialisation (gamma = 1: {e['saturated_default']:.1%}), and the first layer receives "
            f"10^{e['log_ratio_large_gain']:.1f} of the last layer's gradient (gamma = 1: "
            f"10^{e['log_ratio_default']:.1f}). Saturation removes most units from the backward pass, but the few "
            f"units near the sigmoid's centre get a derivative multiplied by gamma, so the total norm need not "
            f"shrink: the gradient becomes sparse rather than small. Test accuracy: {e['acc_large_gain']:.1%} "
            f"against {e['acc_default']:.1%} with gamma = 1.\n\n"
            f"Default: {e['linear_share_default']:.1%} of the sigmoid inputs lie in [-2, 2] over training "
            f"({e['linear_share_init_default']:.1%} at initialisation).")

    def figures(self, tasks, results, effect, size, folder):
        plt = pyplot()
        figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
        cmap = plt.get_cmap("viridis")
        for index, gain in enumerate(GAIN_SWEEP):
            profiles = np.array([r["sweep"][index]["profile"] for r in results], dtype=float)
            with np.errstate(divide="ignore"):
                logs = np.log10(np.where(profiles > 0, profiles, np.nan))
            left.plot(np.arange(1, DEPTH + 1), np.nanmean(logs, axis=0), color=cmap(index / len(GAIN_SWEEP)),
                      label=f"gamma = {gain:g}")
        zero_profiles = np.array([r["runs"]["zeros"]["profile_end"] for r in results], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            zero_logs = np.log10(np.where(zero_profiles > 0, zero_profiles, np.nan))
            zero_mean = np.nanmean(np.where(np.isnan(zero_logs), -np.inf, zero_logs), axis=0)
        left.plot(np.arange(1, DEPTH + 1), np.where(np.isfinite(zero_mean), zero_mean, np.nan), "o",
                  color=COLOURS["zeros"], label="all-zero weights, after training (other layers: exactly 0)")
        left.set_xlabel("hidden layer (1 = next to the input)")
        left.set_ylabel("log10 |dL/dz| at initialisation")
        left.set_title("gradient by depth, Linear -> BN -> sigmoid x 20")
        left.legend(fontsize=8)
        gains = np.array(GAIN_SWEEP)
        saturated = np.array([[s["saturated"] for s in r["sweep"]] for r in results]).mean(axis=0)
        ratios = np.array([[s["log_ratio"] for s in r["sweep"]] for r in results]).mean(axis=0)
        right.semilogx(gains, saturated, "o-", color="#d62728", label="saturated sigmoid outputs (share)")
        right.set_xlabel("BN gain gamma")
        right.set_ylabel("share of saturated sigmoids", color="#d62728")
        twin = right.twinx()
        twin.semilogx(gains, ratios, "s--", color="#1f77b4")
        twin.set_ylabel("log10 first/last layer gradient", color="#1f77b4")
        right.set_title("at initialisation, against BN's gain")
        save(figure, folder / "gain_and_depth.png")

        figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        for case in CASES:
            runs = [r["runs"][case] for r in results]
            mean_band(axes[0], runs[0]["steps"], [run["test_accuracy"] for run in runs], LABELS[case],
                      COLOURS[case])
            shares = [run["linear_share"] for run in runs]
            width = min(len(s) for s in shares)
            mean_band(axes[1], np.arange(1, width + 1), [s[:width] for s in shares], LABELS[case], COLOURS[case])
            spread = np.array([run["unit_spread"] for run in runs]).max(axis=0)
            axes[2].semilogy(np.arange(1, DEPTH + 1), np.maximum(spread, 1e-12), "o-", color=COLOURS[case],
                             label=LABELS[case])
        axes[0].axhline(0.1, color="#999", ls=":", lw=0.8)
        axes[0].set(xlabel="training step", ylabel="test accuracy", title="training")
        axes[1].set(xlabel="interval of training", ylabel="share of sigmoid inputs in [-2, 2]",
                    title="near-linear range over training", ylim=(0, 1.02))
        axes[2].set(xlabel="hidden layer", ylabel="max |w_i - w_j| between two units (1e-12 = 0)",
                    title="units' weights after training")
        for axis in axes:
            axis.legend(fontsize=8)
        save(figure, folder / "training.png")
        return [("gain_and_depth.png",
                 "Left: gradient norm at every hidden layer's output at initialisation (log10, mean over seeds) for "
                 "BN gains 0.5 to 20, and for all-zero weights after training (at initialisation all their hidden "
                 "layers get exactly zero; after training all but the last still do). "
                 "Right: share of saturated sigmoid outputs (red) and log10 of the first-to-last layer gradient "
                 "(blue) against the gain."),
                ("training.png",
                 "Left: test accuracy over training for the three cases (dotted: chance). Middle: share of the "
                 "sigmoid inputs in the near-linear range [-2, 2], per interval of training. Right: after training, "
                 "the largest difference between two units' incoming weights in each layer; all-zero weights keep "
                 "every unit identical (plotted at 1e-12 for exactly 0).")]
