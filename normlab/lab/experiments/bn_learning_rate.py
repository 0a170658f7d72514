"""bn-learning-rate: BN tolerates 5x the best learning rate of the same net without BN (Ioffe & Szegedy 2015)."""
from __future__ import annotations

import numpy as np

import normlab
from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import colour, mean_band, pyplot, save
from normlab.lab.training import StepProgress, fit, mnist1d, seeded
from normlab.train import mlp

GRID = (0.003, 0.01, 0.03, 0.1, 0.3)  # the no-BN learning rates tried, half a decade apart
FACTOR = 5
BATCH, WIDTH, DEPTH, MOMENTUM = 60, 100, 3, 0.9
VALIDATION = 500  # training samples held out to choose the learning rate (the test set is never used for it)
RUNS = ("none@best", "none@5x", "batch@best", "batch@5x")


def first_reach(curve_steps, accuracy, target: float):
    """The first evaluated step whose accuracy is at least ``target``, or None."""
    for step, value in zip(curve_steps, accuracy):
        if value >= target - 1e-12:
            return step
    return None


@register
class BNLearningRate(Experiment):
    id = "bn-learning-rate"
    order = 20
    title = "Batch normalization allows a higher learning rate"
    claim = ("At 5x the best learning rate of the net without BN, the BN net still trains, while the net without "
             "BN diverges or loses at least 5 points of accuracy.")
    anchor = ("Ioffe & Szegedy 2015, Sec. 4.2: BN-x5 (Inception with BN, learning rate x5) reached the baseline's "
              "72.2 % in 14x fewer steps; the same x5 rate without BN made the model diverge (Sec. 4.2.2).")
    method = (
        "A multilayer perceptron with 3 hidden layers of 100 ReLU units (Linear, then BatchNorm1d for the BN "
        "net, then ReLU), SGD with momentum 0.9, mini-batches of 60, on MNIST-1D. 500 of the 4000 training "
        "samples are held out (chosen by the seed) to pick the best learning rate of the net without BN from "
        "0.003, 0.01, 0.03, 0.1 and 0.3 (highest validation accuracy at the end of training); the test set is "
        "not used for the choice. Then four runs from the same initial weights: without BN at the best and at 5x "
        "the best rate, with BN at the same two rates. A run whose loss becomes non-finite is stopped and "
        "counted as diverged. Effects: final test accuracies, whether no-BN at 5x diverged, and (reported, not "
        "judged) the steps each run needs to first reach the best test accuracy of no-BN at its best rate, "
        "whose ratio is Ioffe's 14x.")
    checks = (
        Check("no-bn-fails-at-5x",
              "without BN, 5x the best learning rate diverges or ends at least 5 points below the best rate's "
              "test accuracy",
              lambda e: e["none_5x_diverged"] >= 0.5 or e["acc_none_best"] - e["acc_none_5x"] >= 0.05),
        Check("bn-trains-at-5x",
              "with BN at 5x that learning rate, training does not diverge and ends at most 2 points below "
              "the no-BN net at its best rate",
              lambda e: e["batch_5x_diverged"] < 0.5 and e["acc_batch_5x"] >= e["acc_none_best"] - 0.02),
    )
    quick = {"steps": 1000, "evaluations": 10}
    full = {"steps": 3000, "evaluations": 20}
    quick_seeds = 2
    seconds = {"quick": 10.0, "full": 30.0}

    def run_task(self, task, size, progress):
        seed, steps = task["seed"], size["steps"]
        every = max(steps // size["evaluations"], 1)
        data = mnist1d()
        order = np.random.default_rng(seed).permutation(len(data.x_train))
        validation, train = order[:VALIDATION], order[VALIDATION:]
        x_train, y_train = data.x_train[train], data.y_train[train]
        tracker = StepProgress(progress, steps * (len(GRID) + 3))

        def train(norm: str, lr: float, x_eval, y_eval) -> dict:
            rng = seeded(seed)  # same initial weights and batch order for every run
            model = mlp(data.n_features, WIDTH, data.n_classes, DEPTH, norm=norm, act="relu")
            optimizer = normlab.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM)
            return fit(model, optimizer, x_train, y_train, steps=steps, batch_size=BATCH, rng=rng, x_test=x_eval,
                       y_test=y_eval, eval_every=every, tracker=tracker)

        sweep = [train("none", lr, data.x_train[validation], data.y_train[validation]) for lr in GRID]
        validation_accuracy = [run["final_test_accuracy"] for run in sweep]
        best = GRID[int(np.argmax(validation_accuracy))]
        runs = {"none@best": train("none", best, data.x_test, data.y_test),
                "none@5x": train("none", FACTOR * best, data.x_test, data.y_test),
                "batch@best": train("batch", best, data.x_test, data.y_test),
                "batch@5x": train("batch", FACTOR * best, data.x_test, data.y_test)}
        baseline = runs["none@best"]
        target = max(baseline["test_accuracy"])
        reach_none = first_reach(baseline["steps"], baseline["test_accuracy"], target)
        reach_batch = first_reach(runs["batch@5x"]["steps"], runs["batch@5x"]["test_accuracy"], target)
        effect = {
            "best_lr": best, "acc_none_best": baseline["final_test_accuracy"],
            "acc_none_5x": runs["none@5x"]["final_test_accuracy"], "none_5x_diverged": runs["none@5x"]["diverged"],
            "acc_batch_best": runs["batch@best"]["final_test_accuracy"],
            "acc_batch_5x": runs["batch@5x"]["final_test_accuracy"], "batch_5x_diverged": runs["batch@5x"]["diverged"],
            "steps_none_to_target": reach_none, "steps_batch_5x_to_target": reach_batch,
            "speedup_batch_5x": (reach_none / reach_batch) if reach_batch else None,
        }
        return {"effect": effect, "validation_accuracy": validation_accuracy, "runs": runs}

    def measurement(self, e):
        return (f"no BN: {e['acc_none_best']:.1%} at the best rate (mean {e['best_lr']:.3g}), "
                f"{e['acc_none_5x']:.1%} at 5x (diverged in {e['none_5x_diverged']:.0%} of seeds); "
                f"BN at 5x: {e['acc_batch_5x']:.1%}" + (f", reaches no-BN's best accuracy "
                                                         f"{e['speedup_batch_5x']:.1f}x sooner"
                                                         if e.get("speedup_batch_5x") else ""))

    def discussion(self, e, size):
        return (f"The best learning rate without BN (chosen on held-out training data) averages {e['best_lr']:.3g} "
                f"over the seeds. Five times that rate, the net without BN ends at {e['acc_none_5x']:.1%} test "
                f"accuracy against {e['acc_none_best']:.1%} at its best rate, and diverges in "
                f"{e['none_5x_diverged']:.0%} of the seeds. With BN the 5x rate ends at {e['acc_batch_5x']:.1%} "
                f"(BN at the best rate: {e['acc_batch_best']:.1%}).")

    def figures(self, tasks, results, effect, size, folder):
        plt = pyplot()
        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
        for result, task in zip(results, tasks):
            left.plot(GRID, result["validation_accuracy"], "o-", color=colour("none"), alpha=0.6,
                      label="no BN" if task is tasks[0] else None)
            best = result["effect"]["best_lr"]
            left.axvline(best, color=colour("none"), ls=":", lw=1)
            left.axvline(FACTOR * best, color=colour("batch"), ls="--", lw=1)
        left.set_xscale("log")
        left.set_xlabel("learning rate")
        left.set_ylabel("validation accuracy")
        left.set_title("choosing the best rate without BN (dotted); 5x (dashed)")
        left.legend()
        styles = {"none@best": ("none", "-"), "none@5x": ("none", "--"), "batch@best": ("batch", "-"),
                  "batch@5x": ("batch", "--")}
        for name in RUNS:
            variant, line = styles[name]
            curves = [r["runs"][name]["test_accuracy"] for r in results]
            label = ("no BN" if variant == "none" else "BN") + (" at the best rate" if name.endswith("best")
                                                                else " at 5x the best rate")
            mean_band(right, results[0]["runs"][name]["steps"], curves, label, colour(variant), ls=line)
        right.set_xlabel("training step")
        right.set_ylabel("test accuracy")
        right.set_ylim(0, 1)
        right.set_title("MNIST-1D, 3 x 100 ReLU MLP, SGD momentum 0.9")
        right.legend(loc="lower right")
        save(figure, folder / "learning_rate.png")
        return [("learning_rate.png", "Left: validation accuracy of the net without BN over the learning-rate grid "
                                      "(one line per seed). Right: test accuracy over training at the best rate and "
                                      "at 5x, with and without BN (mean over seeds, band: lowest to highest).")]
