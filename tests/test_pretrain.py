"""normlab.nn.pretrain: greedy layer-wise autoencoder pretraining, on its own (outside the lab)."""
from __future__ import annotations

import numpy as np
import pytest

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.data import make_blobs
from normlab.nn.pretrain import LayerReport, greedy_layerwise, reconstruction_error


def low_rank_data(n=512, features=12, rank=3, seed=0):
    """Inputs on a 3-dimensional subspace plus a little noise: an autoencoder of width >= 3 can learn them."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, features))
    return (rng.standard_normal((n, rank)) @ basis + 0.05 * rng.standard_normal((n, features))).astype(np.float32)


def sigmoid_stages(widths):
    return [nn.Sequential(nn.Linear(a, b), nn.Sigmoid()) for a, b in zip(widths[:-1], widths[1:])]


def weights(stages):
    return [p.detach().numpy().copy() for stage in stages for p in stage.parameters()]


def test_pretraining_reduces_every_stages_reconstruction_error():
    normlab.manual_seed(0)
    stages = sigmoid_stages([12, 8, 6, 6])
    reports = greedy_layerwise(stages, low_rank_data(), steps=300, batch_size=32, lr=1e-2,
                               rng=np.random.default_rng(0))
    assert [r.index for r in reports] == [0, 1, 2]
    assert [(r.in_features, r.out_features) for r in reports] == [(12, 8), (8, 6), (6, 6)]
    for report in reports:
        assert isinstance(report, LayerReport) and len(report.losses) == 300
        assert report.final_error < 0.5 * report.initial_error, report


def test_reconstruction_error_is_the_mean_squared_error_of_the_autoencoder():
    normlab.manual_seed(1)
    stage, decoder = sigmoid_stages([5, 4])[0], nn.Linear(4, 5)
    x = np.random.default_rng(1).standard_normal((7, 5))
    w, b = stage[0].weight.detach().numpy().astype(np.float64), stage[0].bias.detach().numpy().astype(np.float64)
    v, c = decoder.weight.detach().numpy().astype(np.float64), decoder.bias.detach().numpy().astype(np.float64)
    h = 1 / (1 + np.exp(-(x @ w.T + b)))
    expected = np.mean((h @ v.T + c - x) ** 2)
    assert reconstruction_error(stage, decoder, x) == pytest.approx(expected, rel=1e-5)


def test_the_pretrained_stack_fine_tunes_on_labels():
    data = make_blobs(n_samples=600, n_classes=3, n_features=6, seed=0)
    normlab.manual_seed(0)
    stages = sigmoid_stages([6, 16, 16])
    greedy_layerwise(stages, data.x_train, steps=200, batch_size=32, lr=1e-2, rng=np.random.default_rng(0))
    net = nn.Sequential(*stages, nn.Linear(16, 3))
    optimizer = normlab.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for step in range(150):
        loss = F.cross_entropy(net(data.x_train), data.y_train)
        first = first if first is not None else float(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    accuracy = float((net(data.x_test).detach().numpy().argmax(axis=1) == data.y_test).mean())
    assert float(loss.item()) < 0.5 * first
    assert accuracy > 0.8


def test_later_stages_learn_from_the_trained_earlier_ones_and_train_in_place():
    normlab.manual_seed(2)
    stages = sigmoid_stages([12, 6, 4])
    before = weights(stages)
    seen = []
    greedy_layerwise(stages, low_rank_data(), steps=20, batch_size=32, rng=np.random.default_rng(0),
                     callback=lambda stage, step, loss: seen.append((stage, step)))
    assert seen == [(0, s) for s in range(20)] + [(1, s) for s in range(20)]
    assert all(not np.array_equal(a, b) for a, b in zip(before, weights(stages)))


def test_zero_steps_change_nothing_and_the_same_generator_gives_the_same_weights():
    normlab.manual_seed(3)
    stages = sigmoid_stages([12, 6])
    before = weights(stages)
    (report,) = greedy_layerwise(stages, low_rank_data(), steps=0, batch_size=8)
    assert report.losses == [] and report.final_error == report.initial_error
    assert all(np.array_equal(a, b) for a, b in zip(before, weights(stages)))
    results = []
    for _ in range(2):
        normlab.manual_seed(4)
        stages = sigmoid_stages([12, 6])
        greedy_layerwise(stages, low_rank_data(), steps=10, batch_size=16, rng=np.random.default_rng(9))
        results.append(weights(stages))
    assert all(np.array_equal(a, b) for a, b in zip(*results))


def test_custom_decoder_optimizer_and_denoising():
    normlab.manual_seed(5)
    stages = sigmoid_stages([12, 6])
    built = []

    def decoder(out_features, in_features):
        built.append((out_features, in_features))
        return nn.Sequential(nn.Linear(out_features, in_features))

    (report,) = greedy_layerwise(stages, low_rank_data(), steps=200, batch_size=32, decoder=decoder,
                                 optimizer=lambda params: normlab.optim.SGD(params, lr=0.1, momentum=0.9),
                                 corruption=0.2, rng=np.random.default_rng(0))
    assert built == [(6, 12)]
    assert isinstance(report.decoder, nn.Sequential)
    assert report.final_error < report.initial_error


def test_batch_norm_stages_keep_their_running_statistics_until_they_train():
    normlab.manual_seed(6)
    stage = nn.Sequential(nn.Linear(12, 6), nn.BatchNorm1d(6), nn.Sigmoid())
    greedy_layerwise([stage], low_rank_data(), steps=0, batch_size=8)
    np.testing.assert_array_equal(stage[1].running_mean.numpy(), np.zeros(6))
    assert stage.training
    greedy_layerwise([stage], low_rank_data(), steps=5, batch_size=8)
    assert not np.array_equal(stage[1].running_mean.numpy(), np.zeros(6))


@pytest.mark.parametrize("stages, data, kwargs, error, message", [
    ([], np.zeros((4, 3)), {}, ValueError, "at least one stage"),
    (["not a module"], np.zeros((4, 3)), {}, TypeError, "stage 0 to be a Module"),
    (None, np.zeros((4, 3, 2)), {}, ValueError, "shape (N, features)"),
    (None, np.array([["a", "b", "c"]] * 4), {}, TypeError, "numeric data"),
    (None, np.full((4, 3), np.nan), {}, ValueError, "NaN"),
    (None, np.zeros((4, 3)), {"batch_size": 5}, ValueError, "batch_size <= the 4 rows"),
    (None, np.zeros((4, 3)), {"batch_size": 0}, ValueError, "batch_size"),
    (None, np.zeros((4, 3)), {"steps": -1}, ValueError, "steps"),
    (None, np.zeros((4, 3)), {"corruption": 1.0}, ValueError, "corruption"),
    (None, np.zeros((4, 3)), {"lr": 0.0}, ValueError, "lr"),
])
def test_bad_arguments_are_refused(stages, data, kwargs, error, message):
    stages = sigmoid_stages([3, 2]) if stages is None else stages
    with pytest.raises(error, match="greedy_layerwise") as raised:
        greedy_layerwise(stages, data, **{"batch_size": 2, **kwargs})
    assert message in str(raised.value)


def test_a_stage_with_the_wrong_output_is_refused_before_any_stage_trains():
    normlab.manual_seed(7)
    good = sigmoid_stages([3, 4])[0]
    bad = nn.Unflatten(1, (2, 2))
    before = weights([good])
    with pytest.raises(ValueError, match="stage 1 to output \\(N, features\\)"):
        greedy_layerwise([good, bad], np.ones((8, 3)), steps=5, batch_size=2)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights([good])))


def test_integer_data_and_tensors_are_accepted():
    normlab.manual_seed(8)
    (report,) = greedy_layerwise(sigmoid_stages([3, 2]), np.arange(24).reshape(8, 3) % 3, steps=2, batch_size=4)
    assert np.isfinite(report.final_error)
    (report,) = greedy_layerwise(sigmoid_stages([3, 2]), normlab.tensor(np.ones((8, 3), np.float32)), steps=2,
                                 batch_size=4)
    assert np.isfinite(report.final_error)
