"""batch-size: Wu & He (2018) Fig. 1 at small scale: error vs batch size for BN, GN, LN, IN, Batch Renorm, none."""
from __future__ import annotations

import numpy as np

from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import colour, pyplot, save
from normlab.lab.training import (NORM_LABELS, StepProgress, linear_scaled_sgd, mnist1d, mnist1d_cnn, seeded,
                                  train_epochs)
from normlab.train import evaluate

NORMS = ("batch", "group", "layer", "instance", "renorm", "none")


def train_at_batch_size(norm: str, batch_size: int, epochs: int, seed: int, data, tracker: StepProgress) -> float:
    """Train the MNIST-1D CNN with ``norm`` for ``epochs`` epochs at ``batch_size``; return its test error."""
    rng = seeded(seed)
    model = mnist1d_cnn(norm)
    train_epochs(model, linear_scaled_sgd(model.parameters(), batch_size), data.x_train, data.y_train,
                 epochs=epochs, batch_size=batch_size, rng=rng, tracker=tracker)
    return 1.0 - evaluate(model, data.x_test, data.y_test)[1]


@register
class BatchSize(Experiment):
    id = "batch-size"
    order = 30
    title = "Batch normalization at small batches, and the alternatives"
    claim = ("BN's error grows as the batch shrinks, while group normalization's stays about flat and beats BN at "
             "batch 2; LN, IN and Batch Renorm are shown alongside.")
    anchor = ("Wu & He 2018, Fig. 1: ResNet-50 on ImageNet, BN error 23.6 % at 32 images per GPU rising to 34.7 % "
              "at 2; GN 24.1 %, flat across batch sizes.")
    method = (
        "Greydanus' MNIST-1D CNN (three Conv1d layers of 25 channels, kernel 5 then 3, stride 2) with a "
        "normalization after every convolution: BatchNorm1d, GroupNorm (5 groups of 5 channels), LayerNorm as "
        "Wu & He define it (GroupNorm with one group: over channels and positions, per-channel affine), "
        "InstanceNorm1d (affine), BatchRenorm1d (r_max 3, d_max 5), or none. Each is trained with SGD (momentum "
        "0.9) at several batch sizes for the same number of epochs over the 4000 training signals, with the "
        "learning rate scaled linearly with the batch as Wu & He do (0.1 x batch / 32), from the same initial "
        "weights for every batch size. Test error in eval mode (BN and Batch Renorm use their running "
        "statistics) on the 1000 test signals. Effects: every error, BN's and GN's rise from batch 32 to "
        "batch 2, and GN's advantage over BN at batch 2.")
    checks = (
        Check("bn-degrades", "BN's test error at batch 2 is at least 5 points above its error at batch 32",
              lambda e: e["batch_rise"] >= 0.05),
        Check("gn-flat", "GN's test error at batch 2 is at most 2 points above its error at batch 32",
              lambda e: e["group_rise"] <= 0.02),
        Check("gn-beats-bn-at-2", "at batch 2, GN's test error is at least 3 points below BN's",
              lambda e: e["gn_advantage_at_2"] >= 0.03),
    )
    quick = {"epochs": 2, "batch_sizes": [2, 8, 32]}
    full = {"epochs": 5, "batch_sizes": [2, 4, 8, 16, 32]}
    seconds = {"quick": 6.0, "full": 23.0}

    def tasks(self, size, seeds):
        return [{"seed": seed, "norm": norm} for seed in seeds for norm in NORMS]

    def run_task(self, task, size, progress):
        data = mnist1d()
        sizes = size["batch_sizes"]
        tracker = StepProgress(progress, sum(size["epochs"] * (len(data.x_train) // b) for b in sizes))
        errors = {str(b): train_at_batch_size(task["norm"], b, size["epochs"], task["seed"], data, tracker)
                  for b in sizes}
        return {"errors": errors}

    def seed_effects(self, tasks, results, size):
        small, large = str(min(size["batch_sizes"])), str(max(size["batch_sizes"]))
        per_seed = {}
        for task, result in zip(tasks, results):
            effect = per_seed.setdefault(task["seed"], {})
            for batch_size, error in result["errors"].items():
                effect[f"err_{task['norm']}_{batch_size}"] = error
        for effect in per_seed.values():
            effect["batch_rise"] = effect[f"err_batch_{small}"] - effect[f"err_batch_{large}"]
            effect["group_rise"] = effect[f"err_group_{small}"] - effect[f"err_group_{large}"]
            effect["gn_advantage_at_2"] = effect[f"err_batch_{small}"] - effect[f"err_group_{small}"]
        return [per_seed[seed] for seed in sorted(per_seed)]

    def measurement(self, e):
        return (f"BN error {e['err_batch_32']:.1%} at batch 32 -> {e['err_batch_2']:.1%} at 2; "
                f"GN {e['err_group_32']:.1%} -> {e['err_group_2']:.1%}; LN {e['err_layer_32']:.1%} -> "
                f"{e['err_layer_2']:.1%}; Batch Renorm {e['err_renorm_32']:.1%} -> {e['err_renorm_2']:.1%}")

    def discussion(self, e, size):
        rows = "; ".join(f"{NORM_LABELS[n]} {e[f'err_{n}_32']:.1%} -> {e[f'err_{n}_2']:.1%}" for n in NORMS)
        return (f"Test error from batch 32 to batch 2 after {size['epochs']} epoch(s): {rows}. BN's error rises by "
                f"{e['batch_rise'] * 100:.1f} points and GN's by {e['group_rise'] * 100:.1f}; at batch 2 GN is "
                f"{e['gn_advantage_at_2'] * 100:.1f} points better than BN. At this scale MNIST-1D is far from "
                "converged after a few epochs, so the errors are higher than a long run would give; the "
                "comparison between normalizations at equal epochs is what the experiment is about.")

    def figures(self, tasks, results, effect, size, folder):
        plt = pyplot()
        sizes = sorted(size["batch_sizes"], reverse=True)
        figure, axis = plt.subplots(figsize=(7, 4.2))
        for norm in NORMS:
            per_seed = np.array([[r["errors"][str(b)] for b in sizes] for t, r in zip(tasks, results)
                                 if t["norm"] == norm]) * 100
            mean = per_seed.mean(axis=0)
            axis.plot(range(len(sizes)), mean, "o-", color=colour(norm), label=NORM_LABELS[norm],
                      lw=2.5 if norm in ("batch", "group") else 1.2)
            if len(per_seed) > 1:
                axis.fill_between(range(len(sizes)), per_seed.min(axis=0), per_seed.max(axis=0), color=colour(norm),
                                  alpha=0.12, lw=0)
        axis.set_xticks(range(len(sizes)), [str(b) for b in sizes])
        axis.set_xlabel("batch size (images per step)")
        axis.set_ylabel("test error (%)")
        axis.set_title("MNIST-1D CNN: error vs batch size (Wu & He 2018, Fig. 1)")
        axis.legend()
        save(figure, folder / "error_vs_batch.png")
        return [("error_vs_batch.png", f"Test error against batch size for each normalization after "
                                       f"{size['epochs']} epoch(s), learning rate 0.1 x batch / 32 (line: mean over "
                                       f"{len(results) // len(NORMS)} seed(s); band: lowest to highest).")]
