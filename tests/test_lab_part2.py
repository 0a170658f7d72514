"""The lab's part 2 (vanishing gradients, BN + sigmoid, pooling): tiny runs, checks that can fail, the theory.

Each experiment's ``run_task`` runs at tiny sizes and its figures are drawn
from the result; each check is evaluated on synthetic effects where the claim
holds and where it does not; the Boureau closed forms are compared with a
direct computation from the binomial distribution; the pooling gradient-sum
identity is checked on normlab's autograd.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.lab.deepnets import deep_mlp, gradient_profile, initialise, log_ratio, weight_layers
from normlab.lab.experiment import get_experiment, list_experiments
from normlab.lab.experiments import bn_sigmoid, pooling_choice, pooling_gradients, vanishing_gradients
from normlab.lab.runner import _json_safe

PART_TWO = ("vanishing-gradients", "bn-sigmoid", "pooling-gradients", "pooling-choice")
TINY = {
    "vanishing-gradients": {"steps": 4, "evaluations": 2, "pretrain_steps": 2, "rnn_steps": 4, "rnn_length": 6},
    "bn-sigmoid": {"steps": 4, "evaluations": 2},
    "pooling-gradients": {"image_size": 8},
    "pooling-choice": {"steps": 4, "evaluations": 2, "mc_samples": 1000},
}


def check(experiment, name):
    return next(c for c in experiment.checks if c.name == name)


# ------------------------------------------------------------------ registration, tiny runs, figures


def test_part_two_is_registered_after_part_one_with_fixed_sizes():
    experiments = list_experiments()
    assert set(PART_TWO) <= set(experiments)
    for name in PART_TWO:
        experiment = experiments[name]
        assert experiment.order >= 70 and experiment.checks
        assert set(experiment.quick) == set(experiment.full) == set(TINY[name])


@pytest.fixture(scope="module")
def tiny_runs():
    """Every task of every part-2 experiment at tiny sizes, seed 0, as the runner would do it."""
    runs = {}
    for name in PART_TWO:
        experiment = get_experiment(name)
        tasks = experiment.tasks(TINY[name], [0])
        results = []
        for task in tasks:
            normlab.manual_seed(task["seed"])
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                results.append(_json_safe(experiment.run_task(dict(task), dict(TINY[name]), lambda f: None)))
        runs[name] = (experiment, tasks, results)
    return runs


@pytest.mark.parametrize("name", PART_TWO)
def test_tiny_run_gives_every_effect_every_check_and_its_figures(tiny_runs, name, tmp_path):
    experiment, tasks, results = tiny_runs[name]
    (effect,) = experiment.seed_effects(tasks, results, TINY[name])
    assert effect and all(isinstance(v, (int, float)) for v in effect.values()), effect
    for item in experiment.checks:
        assert isinstance(bool(item.holds(effect)), bool)
    assert experiment.measurement(effect) and experiment.discussion(effect, TINY[name])
    figures = experiment.figures(tasks, results, effect, TINY[name], tmp_path)
    assert figures
    for file_name, caption in figures:
        assert (tmp_path / file_name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and caption


def test_tiny_runs_repeat_exactly():
    experiment = get_experiment("bn-sigmoid")
    effects = []
    for _ in range(2):
        normlab.manual_seed(0)
        effects.append(experiment.run_task({"seed": 0}, dict(TINY["bn-sigmoid"]), lambda f: None)["effect"])
    assert effects[0] == effects[1]


# ------------------------------------------------------------------ checks on synthetic effects


def vanishing_effect(**changes):
    effect = {f"log_ratio_{a}": 0.1 for a in ("relu", "leaky_relu", "elu", "maxout", "bn", "residual")}
    effect.update({f"acc_{a}": 0.45 for a in ("relu", "leaky_relu", "elu", "maxout", "bn", "residual", "pretrained",
                                               "pretrained5")})
    effect.update(log_ratio_sigmoid=-12.0, acc_sigmoid=0.1, acc_sigmoid5=0.2, loss_drop_xavier=0.0,
                  loss_drop_he=0.4, rnn_max_grad_norm=50.0, rnn_diverged_clipped=0.0, rnn_diverged_unclipped=0.0,
                  rnn_loss_clipped=0.1, rnn_loss_unclipped=0.15)
    effect.update(changes)
    return effect


@pytest.mark.parametrize("name, breaking", [
    ("sigmoid-vanishes", {"log_ratio_sigmoid": -1.5}),
    ("non-saturating-keep-gradient", {"log_ratio_elu": -1.2}),
    ("non-saturating-learn", {"acc_maxout": 0.15}),
    ("xavier-stalls-he-converges", {"loss_drop_xavier": 0.3}),
    ("xavier-stalls-he-converges", {"loss_drop_he": 0.1}),
    ("bn-restores", {"log_ratio_bn": -3.0}),
    ("bn-restores", {"acc_bn": 0.15}),
    ("shortcuts-restore", {"acc_residual": 0.12}),
    ("pretraining-helps", {"acc_pretrained": 0.1}),
    ("pretraining-helps-shallow", {"acc_pretrained5": 0.25}),
    ("rnn-gradients-explode", {"rnn_max_grad_norm": 3.0}),
    ("clipping-stabilises", {"rnn_loss_clipped": 0.2}),
    ("clipping-stabilises", {"rnn_diverged_clipped": 1.0, "rnn_diverged_unclipped": 1.0}),
])
def test_vanishing_gradient_checks_hold_on_the_claim_and_fail_without_it(name, breaking):
    experiment = get_experiment("vanishing-gradients")
    assert all(c.holds(vanishing_effect()) for c in experiment.checks)
    assert not check(experiment, name).holds(vanishing_effect(**breaking))


def test_clipping_counts_a_diverged_unclipped_run_as_unstable():
    diverged = vanishing_effect(rnn_diverged_unclipped=1.0, rnn_loss_clipped=0.3, rnn_loss_unclipped=0.1)
    assert check(get_experiment("vanishing-gradients"), "clipping-stabilises").holds(diverged)


def bn_effect(**changes):
    effect = {"zeros_unit_spread": 0.0, "acc_zeros": 0.1, "saturated_large_gain": 0.65, "saturated_default": 0.0,
              "log_ratio_large_gain": -2.0, "log_ratio_default": -0.3, "acc_large_gain": 0.12, "acc_default": 0.42,
              "linear_share_default": 0.95}
    effect.update(changes)
    return effect


@pytest.mark.parametrize("name, breaking", [
    ("zero-init-units-stay-identical", {"zeros_unit_spread": 1e-3}),
    ("zero-init-units-stay-identical", {"acc_zeros": 0.4}),
    ("large-gain-saturates", {"saturated_large_gain": 0.3}),
    ("large-gain-saturates", {"saturated_default": 0.2}),
    ("large-gain-gradient-collapses", {"log_ratio_large_gain": 4.4}),
    ("large-gain-trains-worse", {"acc_large_gain": 0.4}),
    ("default-near-linear", {"linear_share_default": 0.5}),
    ("default-near-linear", {"log_ratio_default": -2.0}),
])
def test_bn_sigmoid_checks_hold_on_the_claim_and_fail_without_it(name, breaking):
    experiment = get_experiment("bn-sigmoid")
    assert all(c.holds(bn_effect()) for c in experiment.checks)
    assert not check(experiment, name).holds(bn_effect(**breaking))


def pooling_gradient_effect(**changes):
    effect = {"max_routing_errors": 0, "min_routing_errors": 0, "avg_routing_error": 0.0, "routing_vs_backward": 0.0,
              "routing_vs_backward_ninths": 1e-16, "max_routes_overlap": 9, "min_routes_overlap": 4,
              "avg_routes_overlap": 9, "sum_gap_max": 0.0, "sum_gap_avg": 0.0, "sum_gap_min": 0.0}
    effect.update(changes)
    return effect


@pytest.mark.parametrize("name, breaking", [
    ("extremum-routes-to-one-winner", {"min_routing_errors": 1}),
    ("average-spreads-evenly", {"avg_routing_error": 0.01}),
    ("routing-is-the-backward", {"routing_vs_backward": 1e-300}),
    ("routing-is-the-backward", {"routing_vs_backward_ninths": 1e-9}),
    ("overlap-accumulates", {"min_routes_overlap": 1}),
    ("sum-conserved", {"sum_gap_avg": 2.0 ** -40}),
])
def test_pooling_gradient_checks_hold_on_the_claim_and_fail_without_it(name, breaking):
    experiment = get_experiment("pooling-gradients")
    assert all(c.holds(pooling_gradient_effect()) for c in experiment.checks)
    assert not check(experiment, name).holds(pooling_gradient_effect(**breaking))


def pooling_choice_effect(**changes):
    effect = {"acc_max": 0.78, "acc_avg": 0.77, "acc_none": 0.6, "acc_stride2": 0.57, "activations_max": 700.0,
              "activations_none": 1610.0, "macs_max": 28400.0, "macs_none": 58400.0, "shift_change_max": 0.4,
              "shift_change_avg": 0.3, "shift_change_none": 0.7, "boureau_worst_z": 3.0,
              "boureau_avg_slope_min": 0.49, "boureau_avg_slope_max": 0.51, "boureau_max_fall": 0.7,
              "boureau_peak_P_0.4": 6.0, "boureau_peak_P_0.01": 256.0}
    effect.update(changes)
    return effect


@pytest.mark.parametrize("name, breaking", [
    ("max-beats-none", {"acc_none": 0.75}),
    ("avg-beats-none", {"acc_avg": 0.62}),
    ("max-matches-avg", {"acc_avg": 0.72}),
    ("pooling-beats-stride", {"acc_stride2": 0.76}),
    ("pooling-cuts-cost", {"activations_max": 1810.0}),
    ("pooling-steadies-features", {"shift_change_avg": 0.65}),
    ("boureau-closed-form", {"boureau_worst_z": 7.0}),
    ("boureau-average-sqrt-P", {"boureau_avg_slope_max": 0.6}),
    ("boureau-max-peaks", {"boureau_max_fall": 1.0}),
    ("boureau-max-peaks", {"boureau_peak_P_0.4": 256.0}),
])
def test_pooling_choice_checks_hold_on_the_claim_and_fail_without_it(name, breaking):
    experiment = get_experiment("pooling-choice")
    assert all(c.holds(pooling_choice_effect()) for c in experiment.checks)
    assert not check(experiment, name).holds(pooling_choice_effect(**breaking))


# ------------------------------------------------------------------ Boureau, Ponce & LeCun: closed form vs direct


def separability_from_distribution(alpha_1, alpha_2, P):
    """psi_avg and psi_max computed from the exact distribution of the count of present features (Binomial pmf)."""
    def moments(alpha):
        pmf = np.array([math.comb(P, k) * alpha ** k * (1 - alpha) ** (P - k) for k in range(P + 1)])
        average = np.arange(P + 1) / P              # f_a = k / P
        maximum = (np.arange(P + 1) > 0).astype(float)   # f_m = 1 unless k = 0
        return [(float(pmf @ f), float(np.sqrt(pmf @ (f - pmf @ f) ** 2))) for f in (average, maximum)]

    first, second = moments(alpha_1), moments(alpha_2)
    return tuple(abs(a[0] - b[0]) / (a[1] + b[1]) for a, b in zip(first, second))


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2, 0.4])
def test_boureau_closed_forms_match_the_binomial_distribution(alpha):
    # sizes where P(no feature present) stays above 1e-6, so the direct sums keep their precision
    sizes = [P for P in (1, 2, 3, 5, 8, 13, 40, 100) if (1 - alpha) ** P > 1e-6]
    psi_avg, psi_max = pooling_choice.separability_closed_form(alpha, alpha / 2, sizes)
    for index, P in enumerate(sizes):
        direct_avg, direct_max = separability_from_distribution(alpha, alpha / 2, P)
        assert psi_avg[index] == pytest.approx(direct_avg, rel=1e-9)
        assert psi_max[index] == pytest.approx(direct_max, rel=1e-7)


def test_boureau_monte_carlo_estimates_the_closed_form():
    rng = np.random.default_rng(0)
    psi_avg, psi_max = pooling_choice.separability_closed_form(0.1, 0.05, [4, 16])
    mc = pooling_choice.separability_monte_carlo(0.1, 0.05, [4, 16], 20000, rng)
    np.testing.assert_allclose(mc["psi_avg"], psi_avg, rtol=0.06)
    np.testing.assert_allclose(mc["psi_max"], psi_max, rtol=0.06)
    assert all(0 < se < 0.05 for se in mc["se_avg"] + mc["se_max"])


def test_max_pooling_separability_peaks_lower_for_denser_features():
    sizes = np.arange(1, 400)
    peaks = [sizes[np.argmax(pooling_choice.separability_closed_form(a, a / 2, sizes)[1])] for a in (0.01, 0.1, 0.4)]
    assert peaks[0] > peaks[1] > peaks[2] and peaks[0] < sizes[-1]


# ------------------------------------------------------------------ pooling: routing and the gradient sum


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(["max", "avg", "min"]), k=st.integers(1, 3), cells=st.tuples(st.integers(1, 4),
       st.integers(1, 4)), seed=st.integers(0, 2 ** 16))
def test_non_overlapping_pooling_conserves_the_gradient_sum_exactly(kind, k, cells, seed):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((cells[0] * k, cells[1] * k))
    dy = pooling_gradients.dyadic_upstream(cells, rng) * (4.0 if k == 3 else 1.0)  # k = 3: shares of 1/9 rounded
    dx = pooling_gradients.autograd_input_gradient(kind, image, dy, kernel_size=k)
    if kind != "avg" or k != 3:
        assert np.sum(dx) == np.sum(dy)
    else:
        assert np.sum(dx) == pytest.approx(np.sum(dy), rel=1e-12, abs=1e-12)


def test_padding_counted_in_the_divisor_leaks_gradient():
    image = np.arange(64, dtype=np.float64).reshape(8, 8)
    dx = pooling_gradients.autograd_input_gradient("avg", image, np.ones((4, 4)), kernel_size=3, stride=2,
                                                   padding=1)
    # 16 windows of 9 cells each send 1/9 per cell; the 7 windows on the top or left edge hold 3 padding cells
    # (the corner one 5): 6 x 3 + 5 = 23 shares of 1/9 go to padding
    assert np.sum(dx) == pytest.approx(16 - 23 / 9, rel=1e-12)


def test_window_winners_follow_the_first_extremum_rule():
    image = np.array([[1, 3, 0, 0], [3, 2, 0, 5], [7, 7, 1, 1], [7, 0, 1, 1]], dtype=np.float64)
    np.testing.assert_array_equal(pooling_gradients.window_winners(image, "max", 2), [[1, 7], [8, 10]])
    np.testing.assert_array_equal(pooling_gradients.window_winners(image, "min", 2), [[0, 2], [13, 10]])


def test_dyadic_upstream_is_nonzero_integers_up_to_8():
    dy = pooling_gradients.dyadic_upstream((50, 50), np.random.default_rng(0))
    assert np.all(dy == np.round(dy)) and np.all(np.abs(dy) >= 1) and np.all(np.abs(dy) <= 8)


# ------------------------------------------------------------------ the small CNN's cost and shift measure


def test_cost_per_layer_counts_by_hand():
    # conv1: 20 channels x 40 positions x 1 input channel x 3 taps; pooled conv2: 20 x 20 x 20 x 3; linear 200 x 10
    pooled = pooling_choice.cost_per_layer(pooling_choice.pooling_cnn("max"))
    assert sum(r["macs"] for r in pooled) == 20 * 40 * 3 + 20 * 20 * 20 * 3 + 200 * 10
    assert [r["activations"] for r in pooled] == [800, 400, 400, 200, 10]
    unpooled = pooling_choice.cost_per_layer(pooling_choice.pooling_cnn("none"))
    assert sum(r["macs"] for r in unpooled) == 20 * 40 * 3 + 20 * 40 * 20 * 3 + 800 * 10
    strided = pooling_choice.cost_per_layer(pooling_choice.pooling_cnn("stride2"))
    assert [r["activations"] for r in strided] == [400, 200, 10]
    assert [pooling_choice.block_outputs(c) for c in (pooled, unpooled, strided)] == [[400, 200], [800, 800],
                                                                                      [400, 200]]


def test_shift_sensitivity_is_zero_for_a_constant_input_and_positive_otherwise():
    normlab.manual_seed(0)
    model = pooling_choice.pooling_cnn("max")
    change, agreement = pooling_choice.shift_sensitivity(model, np.ones((3, 40), dtype=np.float32))
    assert change == 0.0 and agreement == 1.0
    change, _ = pooling_choice.shift_sensitivity(model, np.random.default_rng(0).standard_normal((8, 40))
                                                 .astype(np.float32))
    assert change > 0


# ------------------------------------------------------------------ deep nets: init, probe, symmetry


@pytest.mark.parametrize("scheme, act, variance", [("xavier", "relu", 1 / 256), ("he", "relu", 2 / 256),
                                                   ("lecun", "maxout", 1 / 256),
                                                   ("recommended", "tanh", (5 / 3) ** 2 / 256)])
def test_initialisation_schemes_have_their_variance(scheme, act, variance):
    normlab.manual_seed(0)
    model = deep_mlp(act, 3, width=256, in_features=256, init=scheme)
    modules = dict(model.named_modules())
    hidden = modules[weight_layers(model)[1]]
    assert np.var(hidden.weight.detach().numpy()) == pytest.approx(variance, rel=0.05)
    assert np.all(hidden.bias.detach().numpy() == 0)


def test_zero_initialisation_keeps_every_unit_identical_through_batch_norm_training():
    normlab.manual_seed(0)
    model = bn_sigmoid.bn_sigmoid_net("zeros")
    x = np.random.default_rng(0).standard_normal((32, 40)).astype(np.float32)
    y = np.arange(32) % 10
    optimizer = normlab.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(5):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert max(bn_sigmoid.unit_spread(model)) == 0.0
    normlab.manual_seed(0)
    assert max(bn_sigmoid.unit_spread(bn_sigmoid.bn_sigmoid_net("default"))) > 0


def test_sigmoid_input_shares_match_a_direct_count():
    normlab.manual_seed(0)
    model = bn_sigmoid.bn_sigmoid_net("default", gain=10.0)
    hooks = bn_sigmoid.SigmoidInputs(model)
    x = np.random.default_rng(0).standard_normal((64, 40)).astype(np.float32)
    inputs = []

    def keep_input(module, args, output):
        inputs.append(np.asarray(args[0]._data, dtype=np.float64))

    handles = [m.register_forward_hook(keep_input) for m in model.modules() if isinstance(m, nn.Sigmoid)]
    model(x)
    linear, saturated = hooks.take()
    z = np.concatenate([a.ravel() for a in inputs])
    assert linear == pytest.approx(np.mean(np.abs(z) <= 2.0), abs=1e-3)
    assert saturated == pytest.approx(np.mean(np.abs(z) > np.log(99)), abs=1e-3)
    hooks.remove()
    for handle in handles:
        handle.remove()


def test_gradient_profile_measures_each_hidden_layer_and_leaves_running_statistics_alone():
    normlab.manual_seed(0)
    model = deep_mlp("sigmoid", 4, width=16, norm=True)
    x = np.random.default_rng(0).standard_normal((32, 40)).astype(np.float32)
    y = np.arange(32) % 10
    buffers = {k: v.copy() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    profile = gradient_profile(model, x, y)
    for key, value in buffers.items():
        np.testing.assert_array_equal(model.state_dict()[key], value)
    # the same gradients by hand: retain each hidden Linear's output and backpropagate the same loss
    outputs = []
    modules = dict(model.named_modules())

    def keep_output(module, args, output):
        output.retain_grad()
        outputs.append(output)

    handles = [modules[name].register_forward_hook(keep_output) for name in weight_layers(model)[:-1]]
    F.cross_entropy(model(x), y).backward()
    for handle in handles:
        handle.remove()
    expected = [float(np.linalg.norm(np.asarray(o.grad, dtype=np.float64))) for o in outputs]
    np.testing.assert_allclose(profile["grad_norm"], expected, rtol=1e-5)


def test_log_ratio():
    assert log_ratio([1e-3, 1.0, 1.0]) == pytest.approx(-3.0)
    assert log_ratio([0.0, 1.0]) == -math.inf
    assert math.isnan(log_ratio([0.0, 0.0]))


def test_initialise_refuses_an_unknown_scheme():
    with pytest.raises(ValueError, match="unknown scheme"):
        initialise(deep_mlp("relu", 2), "orthogonal-ish", "relu")


def test_the_rnn_run_clips_what_it_applies_and_reports_the_norm_before():
    clipped = vanishing_gradients.rnn_run(0, 8, 6, clip=1.0)
    unclipped = vanishing_gradients.rnn_run(0, 8, 6, clip=None)
    assert clipped["grad_norm"][0] == pytest.approx(unclipped["grad_norm"][0], rel=1e-6)
    assert len(clipped["loss"]) == 6 and not clipped["diverged"]
    assert clipped["loss"][0] == unclipped["loss"][0]
