"""The lab's rnn-normalization experiment: its declaration, its checks on synthetic numbers, its data, a tiny run.

The checks are evaluated on effects where the claim holds and where it does
not; the stretched MNIST-1D signals are compared with ``np.interp``; the
batches with a direct count; the tiny run runs every task as the runner
would and draws the figures.
"""
from __future__ import annotations

import numpy as np
import pytest

import normlab
import normlab.nn as nn
from normlab.data import SequenceSet
from normlab.lab.experiment import get_experiment, list_experiments
from normlab.lab.experiments import rnn_normalization as rnn
from normlab.lab.runner import _json_safe

NAME = "rnn-normalization"
TINY = {"steps": 4, "eval_every": 2, "n_test": 20}


def check(name):
    return next(c for c in get_experiment(NAME).checks if c.name == name)


# ------------------------------------------------------------------ declaration


def test_registered_as_part_one_experiment_five_with_fixed_sizes():
    experiments = list_experiments()
    experiment = experiments[NAME]
    order = list(experiments)
    assert order.index("online-learning") < order.index(NAME) < order.index("mnist1d-baselines")
    assert set(experiment.quick) == set(experiment.full) == set(TINY)
    assert {c.name for c in experiment.checks} == {"ln-learns", "mnist1d-bn-drops-more",
                                                    "temporal-order-bn-drops-more"}
    assert "at least 5 points" in experiment.criterion and "Ba, Kiros & Hinton 2016, Sec. 3.1" in experiment.anchor
    tasks = experiment.tasks(experiment.full, [0, 1])
    assert len(tasks) == 2 * len(rnn.TASKS) * len(rnn.NORMS)
    assert {(t["task"], t["norm"]) for t in tasks if t["seed"] == 1} == {(t, n) for t in rnn.TASKS for n in rnn.NORMS}


# ------------------------------------------------------------------ checks on synthetic effects


def effect(**changes):
    """A seed where the claim holds: LN learned both tasks; BN's drop beyond T is 6 points larger than LN's."""
    values = {}
    for task in rnn.TASKS:
        for norm, (inside, beyond) in {"none": (0.8, 0.7), "layer": (0.8, 0.7), "batch": (0.8, 0.64)}.items():
            values.update({f"{task}_{norm}_in": inside, f"{task}_{norm}_beyond": beyond,
                           f"{task}_{norm}_drop": inside - beyond, f"{task}_{norm}_train": inside})
        values[f"{task}_excess_drop"] = 0.06
    values.update(changes)
    return values


@pytest.mark.parametrize("name, breaking", [
    ("ln-learns", {"mnist1d_layer_in": 0.54}),            # below halfway from 10 % to 100 %
    ("ln-learns", {"temporal_order_layer_in": 0.62}),     # below halfway from 25 % to 100 %
    ("mnist1d-bn-drops-more", {"mnist1d_excess_drop": 0.04}),
    ("mnist1d-bn-drops-more", {"mnist1d_excess_drop": -0.2}),
    ("temporal-order-bn-drops-more", {"temporal_order_excess_drop": 0.049}),
])
def test_checks_hold_on_the_claim_and_fail_without_it(name, breaking):
    assert all(c.holds(effect()) for c in get_experiment(NAME).checks)
    assert not check(name).holds(effect(**breaking))


def test_the_margins_are_inclusive():
    assert check("mnist1d-bn-drops-more").holds(effect(mnist1d_excess_drop=0.05))
    assert check("ln-learns").holds(effect(mnist1d_layer_in=0.55, temporal_order_layer_in=0.625))


def test_summary_splits_the_test_lengths_at_T_and_the_excess_drop_is_bn_minus_ln():
    # MNIST-1D: T = 40, so 20, 30 and 40 are inside, 50, 60 and 80 beyond
    by_length = {"20": 0.6, "30": 0.7, "40": 0.8, "50": 0.5, "60": 0.4, "80": 0.3}
    summary = rnn.summarize("mnist1d", "batch", by_length, {"accuracy": [0.5, 0.9]})
    assert summary["mnist1d_batch_in"] == pytest.approx(0.7) and summary["mnist1d_batch_beyond"] == pytest.approx(0.4)
    assert summary["mnist1d_batch_drop"] == pytest.approx(0.3) and summary["mnist1d_batch_train"] == 0.9
    tasks = [{"seed": 0, "task": t, "norm": n} for t in rnn.TASKS for n in rnn.NORMS]
    results = [{"effect": {f"{t['task']}_{t['norm']}_drop": {"none": 0.0, "layer": 0.1, "batch": 0.25}[t["norm"]]}}
               for t in tasks]
    (merged,) = get_experiment(NAME).seed_effects(tasks, results, TINY)
    for task in rnn.TASKS:
        assert merged[f"{task}_excess_drop"] == pytest.approx(0.15)


# ------------------------------------------------------------------ data, batches, model


def test_stretched_signals_are_linear_interpolations_zero_padded():
    rng = np.random.default_rng(3)
    signals = rng.normal(size=(6, 40)).astype(np.float32)
    source = SequenceSet("s", signals[:, :, None], np.full(6, 40), np.arange(6), 10)
    lengths = np.array([20, 40, 57, 80, 33, 40])
    result = rnn.stretched(source, lengths)
    assert result.x.shape == (6, 80, 1) and (result.lengths == lengths).all() and (result.y == source.y).all()
    for n, length in enumerate(lengths):
        expected = np.interp(np.linspace(0, 39, length), np.arange(40), signals[n].astype(np.float64))
        np.testing.assert_allclose(result.x[n, :length, 0], expected, rtol=0, atol=1e-5)
        assert not result.x[n, length:].any()


def test_batches_always_have_two_sequences_at_their_longest_step_and_repeat_from_the_seed():
    lengths = np.random.default_rng(0).integers(15, 31, size=400)
    first, second = rnn.training_batches(lengths, np.random.default_rng(1)), rnn.training_batches(
        lengths, np.random.default_rng(1))
    dropped = 0
    for _ in range(200):
        index = next(first)
        assert (index == next(second)).all()
        batch = lengths[index]
        assert np.count_nonzero(batch == batch.max()) >= 2 and len(set(index.tolist())) == len(index)
        dropped += rnn.BATCH - len(index)
    assert dropped > 0   # the rule was exercised: some batch had a longest sequence alone
    full = rnn.training_batches(np.full(100, 7), np.random.default_rng(0))
    assert len(next(full)) == rnn.BATCH


def test_layer_norm_of_a_single_input_keeps_only_its_sign_hence_the_embedding():
    """Why the model embeds each step: with input_size 1, LN(x * w) does not change when x is scaled."""
    normlab.manual_seed(0)
    x = np.abs(np.random.default_rng(0).normal(size=(3, 7, 1))).astype(np.float32) + 0.5
    lstm = nn.LSTM(1, 5, batch_first=True, norm="layer")
    with normlab.no_grad():
        small, big = lstm(x)[0]._data, lstm(4 * x)[0]._data
    np.testing.assert_allclose(small, big, atol=1e-3)
    model = rnn.SequenceClassifier("layer", 1, 10, max_steps=7)
    lengths = np.full(3, 7)
    with normlab.no_grad():
        assert np.abs(model(x, lengths)._data - model(4 * x, lengths)._data).max() > 1e-3


# ------------------------------------------------------------------ a tiny run


@pytest.fixture(scope="module")
def tiny_run():
    experiment = get_experiment(NAME)
    tasks = experiment.tasks(TINY, [0])
    results = []
    for task in tasks:
        normlab.manual_seed(task["seed"])
        results.append(_json_safe(experiment.run_task(dict(task), dict(TINY), lambda f: None)))
    return experiment, tasks, results


def test_tiny_run_gives_every_effect_every_check_and_its_figures(tiny_run, tmp_path):
    experiment, tasks, results = tiny_run
    (seed_effect,) = experiment.seed_effects(tasks, results, TINY)
    assert set(effect()) == set(seed_effect)
    assert all(isinstance(v, float) and np.isfinite(v) for v in seed_effect.values()), seed_effect
    for task, result in zip(tasks, results):
        assert set(result["accuracy"]) == {str(L) for L in rnn.TASKS[task["task"]]["test"]}
        assert result["curve"]["steps"] == [2, 4] and not result["curve"]["diverged"]
    for item in experiment.checks:
        assert isinstance(bool(item.holds(seed_effect)), bool)
    assert experiment.measurement(seed_effect) and experiment.discussion(seed_effect, TINY)
    figures = experiment.figures(tasks, results, seed_effect, TINY, tmp_path)
    assert [name for name, _ in figures] == ["accuracy_vs_length.png", "training_curves.png"]
    for file_name, caption in figures:
        assert (tmp_path / file_name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and caption


def test_tiny_run_repeats_exactly(tiny_run):
    experiment, tasks, results = tiny_run
    index = next(i for i, t in enumerate(tasks) if t["norm"] == "batch" and t["task"] == "temporal_order")
    normlab.manual_seed(0)
    again = _json_safe(experiment.run_task(dict(tasks[index]), dict(TINY), lambda f: None))
    assert again == results[index]
