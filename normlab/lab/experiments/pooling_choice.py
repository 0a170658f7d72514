"""pooling-choice: what pooling buys in a small CNN, and Boureau, Ponce & LeCun's theory of max vs average pooling.

The CNN is Greydanus' pooling benchmark (the MNIST-1D repository's notebook
"benchmark_pooling"): Conv1d(1, 20, 3, padding 1) -> ReLU -> pool(2) ->
Conv1d(20, 20, 3, padding 1) -> ReLU -> pool(2) -> Linear(200, 10), trained with
Adam (1e-2, batches of 100) on 1000 training examples; pool is max, average,
min or nothing (then the classifier reads 800 features), and "stride 2"
replaces pooling by convolutions of stride 2.

Boureau, Ponce & LeCun (2010), "A theoretical analysis of feature pooling in
visual recognition" (ICML), Sec. 3 (pooling binary features): a feature is
present (1) or absent (0) at each of P positions, independently with
probability alpha; two classes differ in alpha (here alpha_1 = alpha,
alpha_2 = alpha / 2). Their separability is the distance between the pooled
feature's class means over the sum of its class standard deviations,
psi = |mu_1 - mu_2| / (sigma_1 + sigma_2). Derivation:

- average pooling f_a = (1/P) sum_i v_i: the sum is Binomial(P, alpha), so
  E f_a = alpha, Var f_a = alpha (1 - alpha) / P, and
  psi_avg(P) = sqrt(P) |alpha_1 - alpha_2| / (sqrt(alpha_1 (1 - alpha_1)) + sqrt(alpha_2 (1 - alpha_2))):
  it grows as sqrt(P) without bound;
- max pooling f_m = max_i v_i is 0 only when every v_i is 0, so it is
  Bernoulli(1 - q) with q = (1 - alpha)^P: E f_m = 1 - q, Var f_m = q (1 - q), and
  psi_max(P) = |q_2 - q_1| / (sqrt(q_1 (1 - q_1)) + sqrt(q_2 (1 - q_2))), q_k = (1 - alpha_k)^P.
  Both q_k go to 0 as P grows, so psi_max rises, peaks and falls back to 0:
  the best pool size is finite; for small alpha q_k ~ exp(-alpha_k P), so
  psi_max depends on alpha P and the peak sits at P* ~ c / alpha: it moves
  down as alpha grows.

The experiment evaluates both formulas and a Monte Carlo estimate that draws
the binary features and pools them with ``F.max_pool1d`` / ``F.avg_pool1d``.
"""
from __future__ import annotations

import numpy as np

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import mean_band, pyplot, save
from normlab.lab.training import StepProgress, fit, merge_task_effects, mnist1d

VARIANTS = ("max", "avg", "min", "none", "stride2")
LABELS = {"max": "max pooling", "avg": "average pooling", "min": "min pooling", "none": "no pooling",
          "stride2": "stride-2 convolutions"}
COLOURS = {"max": "#d62728", "avg": "#2ca02c", "min": "#9467bd", "none": "#000000", "stride2": "#7f7f7f"}
ANCHOR = {"max": 0.782, "avg": 0.780, "none": 0.592, "stride2": 0.574}  # Greydanus' notebook, 1000 examples
CHANNELS, TRAIN_EXAMPLES, LR, BATCH = 20, 1000, 1e-2, 100
ALPHAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
POOL_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
MC_BATCHES = 20           # the Monte Carlo samples are split into this many batches to estimate standard errors
MC_MIN_SHARE = 0.01       # compare max pooling only where both classes' pooled feature is 0 and 1 at least this often


def pooling_cnn(variant: str) -> nn.Sequential:
    """Greydanus' ConvPooling net for one variant; input (N, 40), output (N, 10) logits."""
    stride = 2 if variant == "stride2" else 1
    pool = {"max": lambda: nn.MaxPool1d(2), "avg": lambda: nn.AvgPool1d(2), "min": lambda: nn.MinPool1d(2),
            "none": nn.Identity, "stride2": nn.Identity}[variant]
    length = 40 // 4 if variant != "none" else 40
    return nn.Sequential(nn.Unflatten(1, (1, 40)),
                         nn.Conv1d(1, CHANNELS, 3, stride=stride, padding=1), nn.ReLU(), pool(),
                         nn.Conv1d(CHANNELS, CHANNELS, 3, stride=stride, padding=1), nn.ReLU(), pool(),
                         nn.Flatten(), nn.Linear(CHANNELS * length, 10))


def cost_per_layer(model: nn.Sequential, length: int = 40) -> list[dict]:
    """Per layer of ``model`` (one sample): its output's number of activations and its multiply-adds.

    Shapes are read from a forward pass of one input, so the numbers are
    those of the model as built. A Conv1d costs out_channels x out_length x
    in_channels x kernel, a Linear in x out, pooling and ReLU nothing here
    (comparisons only).
    """
    rows = []
    handles = []

    def hook(module, inputs, output):
        shape = output.shape[1:]
        if isinstance(module, nn.Conv1d):
            macs = int(np.prod(shape)) * module.in_channels * module.kernel_size[0]
        elif isinstance(module, nn.Linear):
            macs = module.in_features * module.out_features
        else:
            macs = 0
        rows.append({"layer": type(module).__name__, "activations": int(np.prod(shape)), "macs": macs})

    for module in list(model)[1:]:
        if not isinstance(module, (nn.ReLU, nn.Identity, nn.Flatten)):
            handles.append(module.register_forward_hook(hook))
    try:
        with normlab.no_grad():
            model(np.zeros((1, length), dtype=np.float32))
    finally:
        for handle in handles:
            handle.remove()
    return rows


def block_outputs(cost: list[dict]) -> list[int]:
    """Activations each convolution block hands to the next layer (its last output: after the pool, if any)."""
    passed = []
    for row, following in zip(cost, cost[1:]):
        if following["layer"] in ("Conv1d", "Linear"):
            passed.append(row["activations"])
    return passed


def shift_sensitivity(model: nn.Sequential, x: np.ndarray) -> tuple[float, float]:
    """(mean relative change of the classifier's input features, share of unchanged predictions) when the
    input moves one position to the right (the first value repeated at the left edge)."""
    shifted = np.concatenate([x[:, :1], x[:, :-1]], axis=1)
    features = model[:-1]
    model.eval()
    with normlab.no_grad():
        f, f_shift = features(x)._data.astype(np.float64), features(shifted)._data.astype(np.float64)
        same = model(x)._data.argmax(axis=1) == model(shifted)._data.argmax(axis=1)
    norms = np.linalg.norm(f, axis=1)
    change = np.linalg.norm(f_shift - f, axis=1) / np.where(norms > 0, norms, 1.0)
    return float(np.mean(change)), float(np.mean(same))


# ------------------------------------------------------------------------- Boureau, Ponce & LeCun (2010)

def separability_closed_form(alpha_1: float, alpha_2: float, pool_sizes) -> tuple[np.ndarray, np.ndarray]:
    """(psi_avg, psi_max) over ``pool_sizes`` from the closed forms in the module docstring."""
    P = np.asarray(pool_sizes, dtype=np.float64)
    spread = np.sqrt(alpha_1 * (1 - alpha_1)) + np.sqrt(alpha_2 * (1 - alpha_2))
    psi_avg = np.sqrt(P) * abs(alpha_1 - alpha_2) / spread
    q_1, q_2 = (1 - alpha_1) ** P, (1 - alpha_2) ** P
    psi_max = np.abs(q_2 - q_1) / (np.sqrt(q_1 * (1 - q_1)) + np.sqrt(q_2 * (1 - q_2)))
    return psi_avg, psi_max


def _separability(f_1: np.ndarray, f_2: np.ndarray) -> float:
    spread = f_1.std() + f_2.std()
    return float(abs(f_1.mean() - f_2.mean()) / spread) if spread > 0 else float("nan")


def separability_monte_carlo(alpha_1: float, alpha_2: float, pool_sizes, samples: int,
                             rng: np.random.Generator) -> dict:
    """Draw ``samples`` binary feature maps of P positions per class, pool them with normlab's max/avg pooling.

    Returns per pool size the estimates of psi_avg and psi_max, their
    standard errors (spread of the estimates on ``MC_BATCHES`` equal batches /
    sqrt(batches)), and the share of max-pooled features equal to 0 per class.
    """
    out = {"psi_avg": [], "psi_max": [], "se_avg": [], "se_max": [], "zero_share_1": [], "zero_share_2": []}
    for P in pool_sizes:
        pooled = {}
        for label, alpha in (("1", alpha_1), ("2", alpha_2)):
            v = (rng.random((samples, 1, P)) < alpha).astype(np.float64)
            pooled[label] = (F.avg_pool1d(v, P)._data.ravel(), F.max_pool1d(v, P)._data.ravel())
        for index, name in ((0, "avg"), (1, "max")):
            f_1, f_2 = pooled["1"][index], pooled["2"][index]
            out[f"psi_{name}"].append(_separability(f_1, f_2))
            batches = [_separability(a, b) for a, b in zip(np.array_split(f_1, MC_BATCHES),
                                                           np.array_split(f_2, MC_BATCHES))]
            out[f"se_{name}"].append(float(np.std(batches, ddof=1) / np.sqrt(MC_BATCHES)))
        out["zero_share_1"].append(float(np.mean(pooled["1"][1] == 0)))
        out["zero_share_2"].append(float(np.mean(pooled["2"][1] == 0)))
    return out


def boureau_effects(samples: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """The theory part: closed forms and Monte Carlo for every alpha in ``ALPHAS``; (effect, curves)."""
    worst_z, slopes, peaks, falls, curves = 0.0, [], {}, [], {}
    log_P = np.log(np.asarray(POOL_SIZES, dtype=np.float64))
    for alpha in ALPHAS:
        psi_avg, psi_max = separability_closed_form(alpha, alpha / 2, POOL_SIZES)
        mc = separability_monte_carlo(alpha, alpha / 2, POOL_SIZES, samples, rng)
        for name, exact in (("avg", psi_avg), ("max", psi_max)):
            estimate, se = np.array(mc[f"psi_{name}"]), np.array(mc[f"se_{name}"])
            keep = np.isfinite(estimate) & (se > 0)
            if name == "max":
                shares = np.array([mc["zero_share_1"], mc["zero_share_2"]])
                keep &= np.all((shares >= MC_MIN_SHARE) & (shares <= 1 - MC_MIN_SHARE), axis=0)
            if keep.any():
                worst_z = max(worst_z, float(np.max(np.abs(estimate[keep] - exact[keep]) / se[keep])))
        slopes.append(float(np.polyfit(log_P, np.log(mc["psi_avg"]), 1)[0]))
        estimate_max = np.nan_to_num(np.array(mc["psi_max"]), nan=0.0)
        peak = int(np.argmax(estimate_max))
        peaks[alpha] = POOL_SIZES[peak]
        falls.append(float(estimate_max[-1] / estimate_max[peak]))
        curves[str(alpha)] = {"closed_avg": psi_avg.tolist(), "closed_max": psi_max.tolist(), **mc}
    effect = {"boureau_worst_z": worst_z, "boureau_avg_slope_min": min(slopes),
              "boureau_avg_slope_max": max(slopes), "boureau_max_fall": max(falls)}
    effect.update({f"boureau_peak_P_{alpha:g}": float(peaks[alpha]) for alpha in ALPHAS})
    return effect, curves


@register
class PoolingChoice(Experiment):
    id = "pooling-choice"
    order = 100
    title = "Max vs average vs min vs no pooling"
    claim = ("In a small CNN trained on 1000 MNIST-1D examples, max and average pooling beat no pooling and "
             "stride-2 convolutions by a wide margin and match each other; pooling cuts activations and compute "
             "and makes the features less sensitive to a one-position shift; and for binary features, average "
             "pooling's separability grows as sqrt(P) while max pooling's peaks at a finite pool size that moves "
             "down as the features get denser (Boureau et al. 2010).")
    anchor = ("Greydanus 2020, MNIST-1D pooling benchmark (notebook benchmark_pooling, 1000 training examples, "
              "6000 steps): max 78.2 %, average 78.0 %, no pooling 59.2 %, stride 2 57.4 % test accuracy. "
              "Boureau, Ponce & LeCun, ICML 2010, Sec. 3: separability of max- vs average-pooled Bernoulli "
              "features as a function of the pool cardinality P.")
    method = (
        "Greydanus' ConvPooling net (Conv1d(1, 20, 3, padding 1), ReLU, pool 2, Conv1d(20, 20, 3, padding 1), "
        "ReLU, pool 2, Linear) with max, average, min (normlab's `MinPool1d`) or no pooling (Linear(800, 10)), "
        "and a fifth net with stride-2 convolutions instead of pooling; Adam (learning rate 0.01, batches of "
        "100) on 1000 MNIST-1D training examples (a different random 1000 of the 4000 per seed), test accuracy "
        "on the 1000 test examples at the end. Cost: activations per sample after every layer and multiply-adds "
        "of the convolutions and the classifier, read from the shapes of a forward pass. Shift: the input moved "
        "one position to the right (first value repeated); the relative change of the classifier's input "
        "features |f(shifted) - f(x)| / |f(x)| averaged over the test set, and the share of test predictions "
        "that stay the same. Theory (Boureau, Ponce & LeCun 2010, Sec. 3, formulas derived in the module "
        "docstring): two classes of binary features present at each of P positions with probability alpha and "
        "alpha/2, alpha in 0.01..0.4, P in 1..512; separability psi = |mean difference| / (sum of standard "
        "deviations) of the pooled feature, closed form against a Monte Carlo estimate that draws the features "
        "and pools them with `F.max_pool1d`/`F.avg_pool1d` (standard errors from 20 batches; max pooling is "
        "compared where each class's pooled feature is 0 in 1 % to 99 % of the samples).")
    checks = (
        Check("max-beats-none", "max pooling ends at least 5 points of test accuracy above no pooling",
              lambda e: e["acc_max"] >= e["acc_none"] + 0.05),
        Check("avg-beats-none", "average pooling ends at least 5 points above no pooling",
              lambda e: e["acc_avg"] >= e["acc_none"] + 0.05),
        Check("max-matches-avg", "max and average pooling end within 3 points of each other",
              lambda e: abs(e["acc_max"] - e["acc_avg"]) <= 0.03),
        Check("pooling-beats-stride", "max pooling ends at least 5 points above stride-2 convolutions",
              lambda e: e["acc_max"] >= e["acc_stride2"] + 0.05),
        Check("pooling-cuts-cost",
              "the pooled net has at most half the activations and half the multiply-adds of the unpooled one",
              lambda e: e["activations_max"] <= 0.5 * e["activations_none"] and e["macs_max"] <= 0.5 * e["macs_none"]),
        Check("pooling-steadies-features",
              "a one-position shift changes max- and average-pooled features at most 0.8x as much as unpooled ones",
              lambda e: e["shift_change_max"] <= 0.8 * e["shift_change_none"]
              and e["shift_change_avg"] <= 0.8 * e["shift_change_none"]),
        Check("boureau-closed-form",
              "the closed forms lie within 5 Monte Carlo standard errors of the estimates at every compared point",
              lambda e: e["boureau_worst_z"] <= 5),
        Check("boureau-average-sqrt-P",
              "the Monte Carlo separability of average pooling grows as sqrt(P): log-log slope in [0.45, 0.55] for "
              "every alpha",
              lambda e: e["boureau_avg_slope_min"] >= 0.45 and e["boureau_avg_slope_max"] <= 0.55),
        Check("boureau-max-peaks",
              "the Monte Carlo separability of max pooling peaks at a finite P (at P = 512 it is at most 0.8x its "
              "peak, for every alpha) and the peak moves down: smaller P at alpha 0.4 than at alpha 0.01",
              lambda e: e["boureau_max_fall"] <= 0.8 and e["boureau_peak_P_0.4"] < e["boureau_peak_P_0.01"]),
    )
    quick = {"steps": 1000, "evaluations": 10, "mc_samples": 10000}
    full = {"steps": 2000, "evaluations": 20, "mc_samples": 10000}
    quick_seeds = 1
    seconds = {"quick": 4.0, "full": 12.0}

    def tasks(self, size, seeds):
        return [{"seed": seed, "part": part} for seed in seeds for part in VARIANTS + ("theory",)]

    def seed_effects(self, tasks, results, size):
        return merge_task_effects(tasks, results)

    def run_task(self, task, size, progress):
        seed, part = task["seed"], task["part"]
        if part == "theory":
            effect, curves = boureau_effects(size["mc_samples"], np.random.default_rng(seed))
            progress(1.0)
            return {"effect": effect, "curves": curves}
        data = mnist1d()
        rows = np.random.default_rng(seed).permutation(len(data.x_train))[:TRAIN_EXAMPLES]
        normlab.manual_seed(seed)
        model = pooling_cnn(part)
        cost = cost_per_layer(model)
        optimizer = normlab.optim.Adam(model.parameters(), lr=LR)
        run = fit(model, optimizer, data.x_train[rows], data.y_train[rows], steps=size["steps"], batch_size=BATCH,
                  rng=np.random.default_rng(seed), x_test=data.x_test, y_test=data.y_test,
                  eval_every=max(size["steps"] // size["evaluations"], 1),
                  tracker=StepProgress(progress, size["steps"]))
        change, agreement = shift_sensitivity(model, data.x_test)
        passed = block_outputs(cost)
        effect = {f"acc_{part}": run["final_test_accuracy"], f"shift_change_{part}": change,
                  f"shift_agreement_{part}": agreement,
                  f"activations_{part}": float(sum(row["activations"] for row in cost)),
                  f"macs_{part}": float(sum(row["macs"] for row in cost)),
                  f"passed_block1_{part}": float(passed[0]), f"passed_block2_{part}": float(passed[1])}
        return {"effect": effect, "run": run, "cost": cost}

    def measurement(self, e):
        return (f"test accuracy max {e['acc_max']:.1%}, average {e['acc_avg']:.1%}, min {e['acc_min']:.1%}, none "
                f"{e['acc_none']:.1%}, stride 2 {e['acc_stride2']:.1%}; pooled net {e['macs_max'] / e['macs_none']:.0%}"
                f" of the unpooled multiply-adds; one-position shift changes features by {e['shift_change_max']:.0%}"
                f" (max), {e['shift_change_avg']:.0%} (average), {e['shift_change_none']:.0%} (none); Boureau: "
                f"closed form within {e['boureau_worst_z']:.1f} standard errors, max pooling's best P "
                f"{e['boureau_peak_P_0.01']:.0f} at alpha 0.01 and {e['boureau_peak_P_0.4']:.0f} at alpha 0.4")

    def discussion(self, e, size):
        peaks = ", ".join(f"{e[f'boureau_peak_P_{a:g}']:.0f} (alpha {a:g})" for a in ALPHAS)
        return (
            f"After {size['steps']} Adam steps on 1000 examples: max pooling {e['acc_max']:.1%} (Greydanus: 78.2 %), "
            f"average {e['acc_avg']:.1%} (78.0 %), min {e['acc_min']:.1%}, no pooling {e['acc_none']:.1%} (59.2 %), "
            f"stride-2 convolutions {e['acc_stride2']:.1%} (57.4 %). Min pooling after a ReLU keeps the smallest "
            f"activation of each pair, often a zero, and throws away the detector's response.\n\n"
            f"Cost per sample: each pooled block hands {e['passed_block1_max']:.0f} and then "
            f"{e['passed_block2_max']:.0f} activations to the next layer, against {e['passed_block1_none']:.0f} and "
            f"{e['passed_block2_none']:.0f} without pooling, so the second convolution and the classifier cost 2x "
            f"and 4x less: {e['macs_max']:.0f} multiply-adds against {e['macs_none']:.0f} (stride 2: "
            f"{e['macs_stride2']:.0f}). Counting every layer's output, pooling layers included (what training "
            f"keeps for backward), the pooled net holds {e['activations_max']:.0f} activations against "
            f"{e['activations_none']:.0f}: the first convolution's full-length output is still computed and "
            f"stored. Shifting the input by one position changes "
            f"the classifier's input features by {e['shift_change_max']:.0%} with max pooling, "
            f"{e['shift_change_avg']:.0%} with average, {e['shift_change_min']:.0%} with min, "
            f"{e['shift_change_none']:.0%} without pooling and {e['shift_change_stride2']:.0%} with stride 2; the "
            f"predictions stay the same for {e['shift_agreement_max']:.0%}, {e['shift_agreement_avg']:.0%}, "
            f"{e['shift_agreement_min']:.0%}, {e['shift_agreement_none']:.0%} and {e['shift_agreement_stride2']:.0%}"
            f" of the test inputs.\n\n"
            f"Theory: the Monte Carlo separabilities agree with the closed forms to {e['boureau_worst_z']:.1f} "
            f"standard errors at worst; average pooling's grows with slope {e['boureau_avg_slope_min']:.3f} to "
            f"{e['boureau_avg_slope_max']:.3f} in log-log (sqrt(P): 0.5), max pooling's peaks at P = {peaks} and "
            f"falls to at most {e['boureau_max_fall']:.0%} of its peak by P = 512. With these two classes (alpha and "
            f"alpha/2) average pooling separates better than max pooling at every P; max pooling wins where the "
            f"pool is small relative to 1/alpha and the features are sparse, which is what the peak formula says.")

    def figures(self, tasks, results, effect, size, folder):
        by_part: dict[str, list] = {}
        for task, result in zip(tasks, results):
            by_part.setdefault(task["part"], []).append(result)
        plt = pyplot()
        figure, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.2))
        for variant in VARIANTS:
            runs = [r["run"] for r in by_part[variant]]
            mean_band(left, runs[0]["steps"], [run["test_accuracy"] for run in runs], LABELS[variant],
                      COLOURS[variant])
            if variant in ANCHOR:
                left.plot(runs[0]["steps"][-1], ANCHOR[variant], "*", color=COLOURS[variant], ms=11)
        left.set(xlabel="training step", ylabel="test accuracy", title="1000 MNIST-1D examples (stars: Greydanus)")
        left.legend(fontsize=8, loc="lower right")
        positions = np.arange(len(VARIANTS))
        costs = {v: by_part[v][0]["cost"] for v in VARIANTS}
        for index, layer in enumerate(("first conv", "second conv", "classifier")):
            macs = [[row["macs"] for row in costs[v] if row["macs"]][index] for v in VARIANTS]
            middle.bar(positions + (index - 1) * 0.27, macs, 0.27, label=f"{layer}: multiply-adds")
        for position, variant in zip(positions, VARIANTS):
            middle.text(position, 1.2 * max(row["macs"] for row in costs[variant]),
                        " / ".join(str(n) for n in block_outputs(costs[variant])), ha="center", fontsize=7)
        middle.set_xticks(positions, [LABELS[v].replace(" ", "\n", 1) for v in VARIANTS], fontsize=8)
        middle.set_yscale("log")
        middle.set_ylim(top=1e5)
        middle.set_title("cost per sample and layer (text: activations passed on by block 1 / 2)", fontsize=9)
        middle.legend(fontsize=7, loc="lower left")
        right.bar(positions - 0.2, [effect[f"shift_change_{v}"] for v in VARIANTS], 0.4,
                  label="relative change of features")
        right.bar(positions + 0.2, [1 - effect[f"shift_agreement_{v}"] for v in VARIANTS], 0.4,
                  label="share of predictions that change")
        right.set_xticks(positions, [LABELS[v].replace(" ", "\n", 1) for v in VARIANTS], fontsize=8)
        right.set_title("input moved by one position")
        right.legend(fontsize=8)
        save(figure, folder / "pooling_choice.png")

        curves = by_part["theory"][0]["curves"]
        figure, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
        cmap = plt.get_cmap("viridis")
        for index, alpha in enumerate(ALPHAS):
            c = curves[str(alpha)]
            colour_ = cmap(index / (len(ALPHAS) - 1))
            for axis, name in ((axes[0], "max"), (axes[1], "avg")):
                axis.plot(POOL_SIZES, c[f"closed_{name}"], "-", color=colour_, label=f"alpha = {alpha:g}")
                estimate, error = (np.array([np.nan if v is None else v for v in c[key]], dtype=float)
                                   for key in (f"psi_{name}", f"se_{name}"))
                axis.errorbar(POOL_SIZES, estimate, yerr=error, fmt="o", ms=3, color=colour_)
        for axis, name in ((axes[0], "max pooling"), (axes[1], "average pooling")):
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel("pool cardinality P")
            axis.set_title(f"{name}: closed form (lines), Monte Carlo (dots)")
        axes[0].set_ylabel("separability |mu_1 - mu_2| / (sigma_1 + sigma_2)")
        axes[0].set_ylim(1e-2, None)
        axes[1].legend(fontsize=8)
        save(figure, folder / "boureau.png")
        return [("pooling_choice.png",
                 "Left: test accuracy over training with each kind of pooling (mean over seeds, band: lowest to "
                 "highest; stars: Greydanus' numbers after 6000 steps). Middle: multiply-adds per sample of each "
                 "layer, and (text) the activations each convolution block passes to the next layer. Right: how "
                 "much the classifier's input features and predictions change when the input "
                 "moves one position."),
                ("boureau.png",
                 "Boureau, Ponce & LeCun's model: separability of two classes of binary features (present with "
                 "probability alpha and alpha/2 at each of P positions) after max pooling (left) and average "
                 "pooling (right); closed form as lines, Monte Carlo with standard errors as dots (first seed). "
                 "Average pooling grows as sqrt(P); max pooling peaks at a P that moves down as alpha grows.")]
