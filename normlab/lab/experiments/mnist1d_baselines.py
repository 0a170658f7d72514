"""mnist1d-baselines: logistic regression, MLP, CNN and GRU on MNIST-1D against Greydanus (2020) Table 1."""
from __future__ import annotations

import normlab
import normlab.nn as nn
from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import colour, mean_band, pyplot, save
from normlab.lab.training import StepProgress, fit, mnist1d, mnist1d_cnn, seeded

#: Greydanus (2020), Table 1: test accuracy on MNIST-1D.
PUBLISHED = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94, "gru": 0.91}
LABELS = {"logistic": "logistic regression", "mlp": "MLP", "cnn": "CNN", "gru": "GRU"}
TOLERANCE = 0.06
LR, BATCH = 1e-2, 100  # Greydanus: Adam, learning rate 0.01, batch 100, no weight decay


class GRUClassifier(nn.Module):
    """Greydanus' GRUBase: the 40 values read as a sequence by a bidirectional GRU of 6 units, every step's
    output (40 x 12) flattened into a Linear classifier. Input (N, 40), output (N, 10) logits."""

    def __init__(self, hidden_size: int = 6, steps: int = 40) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden_size, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * hidden_size * steps, 10)

    def forward(self, x):
        output, _ = self.gru(x.reshape(x.shape[0], x.shape[1], 1))
        return self.linear(output.reshape(output.shape[0], -1))


def make_model(name: str) -> nn.Module:
    if name == "logistic":
        return nn.Linear(40, 10)
    if name == "mlp":  # Greydanus' MLPBase: two hidden layers of 100 ReLU units
        return nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    if name == "gru":
        return GRUClassifier()
    return mnist1d_cnn("none")


@register
class MNIST1DBaselines(Experiment):
    id = "mnist1d-baselines"
    order = 60
    title = "MNIST-1D baselines: the framework trains real models"
    claim = ("normlab trains logistic regression, an MLP, a CNN and a GRU on MNIST-1D to the test accuracies "
             "published for them, logistic < MLP < CNN as published.")
    anchor = "Greydanus 2020 (Scaling down Deep Learning), Table 1: logistic 32 %, MLP 68 %, CNN 94 %, GRU 91 %."
    method = (
        "MNIST-1D generated locally with the mnist1d package's defaults (4000 train / 1000 test, length 40). "
        "Greydanus' models: logistic regression (one Linear), an MLP with two hidden layers of 100 ReLU units, "
        "his CNN (three Conv1d of 25 channels, kernel 5 then 3, stride 2, ReLU, then a Linear), and his GRU "
        "(the signal read as 40 steps of one value by a bidirectional GRU of 6 units, all 40 x 12 outputs into a "
        "Linear); no normalization. His training setup for all four: Adam at learning rate 0.01, mini-batches "
        "of 100, no weight decay; test accuracy every 250 steps, the final one compared.")
    checks = (
        Check("within-6-points", "each model's final test accuracy lies within 6 points of its published value",
              lambda e: all(abs(e[f"acc_{m}"] - PUBLISHED[m]) <= TOLERANCE for m in PUBLISHED)),
        Check("ranking", "logistic regression < MLP < CNN in final test accuracy",
              lambda e: e["acc_logistic"] < e["acc_mlp"] < e["acc_cnn"]),
    )
    quick = {"steps": 3000, "eval_every": 250}
    full = {"steps": 8000, "eval_every": 250}
    seconds = {"quick": 6.0, "full": 18.0}

    def tasks(self, size, seeds):
        return [{"seed": seed, "model": name} for seed in seeds for name in PUBLISHED]

    def run_task(self, task, size, progress):
        data = mnist1d()
        rng = seeded(task["seed"])
        model = make_model(task["model"])
        optimizer = normlab.optim.Adam(model.parameters(), lr=LR)
        curve = fit(model, optimizer, data.x_train, data.y_train, steps=size["steps"], batch_size=BATCH, rng=rng,
                    x_test=data.x_test, y_test=data.y_test, eval_every=size["eval_every"],
                    tracker=StepProgress(progress, size["steps"]))
        return {"curve": curve}

    def seed_effects(self, tasks, results, size):
        per_seed = {}
        for task, result in zip(tasks, results):
            per_seed.setdefault(task["seed"], {})[f"acc_{task['model']}"] = result["curve"]["final_test_accuracy"]
        return [per_seed[seed] for seed in sorted(per_seed)]

    def measurement(self, e):
        return ", ".join(f"{LABELS[m]} {e[f'acc_{m}']:.1%} (published {PUBLISHED[m]:.0%})" for m in PUBLISHED)

    def discussion(self, e, size):
        return (f"After {size['steps']} Adam steps: " + "; ".join(
            f"{LABELS[m]} {e[f'acc_{m}']:.1%}, {(e[f'acc_{m}'] - PUBLISHED[m]) * 100:+.1f} points from Greydanus' "
            f"{PUBLISHED[m]:.0%}" for m in PUBLISHED) + ".")

    def figures(self, tasks, results, effect, size, folder):
        plt = pyplot()
        figure, axis = plt.subplots(figsize=(7, 4.2))
        for name in PUBLISHED:
            curves = [r["curve"] for t, r in zip(tasks, results) if t["model"] == name]
            mean_band(axis, curves[0]["steps"], [[a * 100 for a in c["test_accuracy"]] for c in curves],
                      LABELS[name], colour(name))
            axis.axhline(PUBLISHED[name] * 100, color=colour(name), ls=":", lw=1)
        axis.set_xlabel("Adam step")
        axis.set_ylabel("test accuracy (%)")
        axis.set_ylim(0, 100)
        axis.set_title("MNIST-1D: ours (lines) vs Greydanus 2020 (dotted)")
        axis.legend(loc="lower right")
        save(figure, folder / "baselines.png")
        return [("baselines.png", "Test accuracy over training of logistic regression, the MLP, the CNN and the GRU on "
                                  "MNIST-1D (line: mean over seeds; band: lowest to highest), with the published "
                                  "accuracies dotted.")]
