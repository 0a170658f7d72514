"""GradientMonitor against norms, fractions and ratios computed by hand with NumPy."""
from __future__ import annotations

import numpy as np
import pytest

import normlab
import normlab.nn as nn
from normlab.diagnostics import GradientMonitor
from normlab.train import mlp


def _set(parameter, value) -> None:
    parameter._data[...] = value


@pytest.fixture
def small(rng):
    """Linear(3, 4) -> ReLU -> Linear(4, 2) in float64, unit 0 of the ReLU dead on every input."""
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(np.float64)
    w1 = rng.standard_normal((4, 3))
    b1 = rng.standard_normal(4)
    w1[0], b1[0] = -np.abs(w1[0]), -100.0  # never active for inputs in [0, 1]
    _set(model[0].weight, w1)
    _set(model[0].bias, b1)
    _set(model[2].weight, rng.standard_normal((2, 4)))
    _set(model[2].bias, rng.standard_normal(2))
    x = rng.uniform(0, 1, (5, 3))
    upstream = rng.standard_normal((5, 2))
    return model, x, upstream


def _hand(model, x, upstream):
    """Forward and backward of the small model by hand."""
    w1, b1 = model[0].weight._data, model[0].bias._data
    w2, b2 = model[2].weight._data, model[2].bias._data
    z = x @ w1.T + b1
    h = np.maximum(z, 0)
    y = h @ w2.T + b2
    g_y = upstream
    g_h = g_y @ w2
    g_z = g_h * (z > 0)
    return {"z": z, "h": h, "y": y, "g_y": g_y, "g_h": g_h, "g_z": g_z,
            "g_w2": g_y.T @ h, "g_b2": g_y.sum(0), "g_w1": g_z.T @ x, "g_b1": g_z.sum(0)}


def _step(model, x, upstream, optimizer, monitor):
    loss = (model(x) * upstream).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return monitor.step()


def test_norms_statistics_and_fractions_match_a_hand_computation(small):
    model, x, upstream = small
    hand = _hand(model, x, upstream)
    before = {name: p._data.copy() for name, p in model.named_parameters()}
    lr = 0.05
    optimizer = normlab.optim.SGD(model.parameters(), lr=lr)
    with GradientMonitor(model, percentiles=(15, 50, 85)) as monitor:
        record = _step(model, x, upstream, optimizer, monitor)
    layers, parameters = record["layers"], record["parameters"]
    assert sorted(layers) == ["0", "1", "2"]
    for name, (value, grad) in {"0": ("z", "g_z"), "1": ("h", "g_h"), "2": ("y", "g_y")}.items():
        np.testing.assert_allclose(layers[name]["grad_norm"], np.linalg.norm(hand[grad]), rtol=1e-12)
        np.testing.assert_allclose(layers[name]["mean"], hand[value].mean(), rtol=1e-12)
        np.testing.assert_allclose(layers[name]["std"], hand[value].std(), rtol=1e-12)
        for q in (15, 50, 85):
            np.testing.assert_allclose(layers[name][f"p{q}"], np.percentile(hand[value], q), rtol=1e-12)
        counts, edges = layers[name]["hist"]
        assert sum(counts) == hand[value].size and len(edges) == len(counts) + 1
    # unit 0 never fires on these 5 samples; the others did in at least one (checked independently)
    active_units = (hand["z"] > 0).any(axis=0)
    assert not active_units[0]
    assert layers["1"]["dead"] == pytest.approx(1 - active_units.mean())
    assert "dead" not in layers["0"] and "saturated" not in layers["1"]
    for name, grad in (("0.weight", "g_w1"), ("0.bias", "g_b1"), ("2.weight", "g_w2"), ("2.bias", "g_b2")):
        np.testing.assert_allclose(parameters[name]["grad_norm"], np.linalg.norm(hand[grad]), rtol=1e-12)
        np.testing.assert_allclose(parameters[name]["norm"], np.linalg.norm(before[name]), rtol=1e-12)
        # plain SGD: the update is lr * grad
        expected = lr * np.linalg.norm(hand[grad]) / np.linalg.norm(before[name])
        np.testing.assert_allclose(parameters[name]["update_ratio"], expected, rtol=1e-9)


def test_saturated_fractions_of_sigmoid_and_tanh(rng):
    x = rng.standard_normal((64, 6)) * 6  # wide inputs: many values land near the asymptotes
    identity = nn.Linear(6, 6, bias=False).to(np.float64)
    _set(identity.weight, np.eye(6))
    model = nn.Sequential(identity, nn.Sigmoid(), nn.Linear(6, 6).to(np.float64), nn.Tanh())
    monitor = GradientMonitor(model, saturation=0.02)
    model(x).sum().backward()
    layers = monitor.step()["layers"]
    sigmoid = 1 / (1 + np.exp(-x))
    assert layers["1"]["saturated"] == pytest.approx(np.mean((sigmoid < 0.02) | (sigmoid > 0.98)))
    assert 0.2 < layers["1"]["saturated"] < 0.9  # the test input really has saturated and unsaturated values
    pre_tanh = sigmoid @ model[2].weight._data.T + model[2].bias._data
    assert layers["3"]["saturated"] == pytest.approx(np.mean(np.abs(np.tanh(pre_tanh)) > 0.98))


def test_gradient_hooks_accept_tensors_as_well_as_arrays(small):
    # Gradient hooks are moving from ndarrays to Tensors (as in torch); both must give the same record.
    model, x, upstream = small
    monitor = GradientMonitor(model)
    model(x)
    g = np.arange(8.0).reshape(4, 2)
    monitor._output_gradient_hook("2")(normlab.tensor(g))
    monitor._parameter_hook("2.bias")(normlab.tensor(g[0]))
    record = monitor.step()
    assert record["layers"]["2"]["grad_norm"] == pytest.approx(np.linalg.norm(g))
    assert record["parameters"]["2.bias"]["grad_norm"] == pytest.approx(np.linalg.norm(g[0]))


def test_detached_monitor_leaves_no_hook_and_changes_nothing(small):
    model, x, upstream = small
    plain = model(x)._data.copy()
    monitor = GradientMonitor(model)
    assert monitor.attached
    assert all(module._forward_hooks for module in model)
    monitor.detach()
    assert not monitor.attached
    assert not any(module._forward_hooks for module in model.modules())
    assert not any(p._hooks for p in model.parameters())
    out = model(x)
    np.testing.assert_array_equal(out._data, plain)
    out.sum().backward()
    assert monitor.step() is None and monitor.history == []
    monitor.attach()  # and it can come back
    model(x).sum().backward()
    assert monitor.step() is not None
    monitor.remove()
    assert not any(p._hooks for p in model.parameters())


def test_every_and_no_grad_forwards(small):
    model, x, upstream = small
    optimizer = normlab.optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, every=3)
    for _ in range(7):
        with normlab.no_grad():
            model(x * 100)  # an evaluation pass: not recorded
        _step(model, x, upstream, optimizer, monitor)
    assert monitor.steps.tolist() == [0, 3, 6]
    assert monitor.steps_seen == 7
    hand = _hand(model, x, upstream)  # weights have moved, so compare the first layer's input scale only
    assert monitor.history[-1]["layers"]["0"]["p50"] < 10 * np.abs(hand["z"]).max()  # not the x * 100 pass
    assert np.isfinite(monitor.series("0", "grad_norm")).all()
    assert monitor.series("0.weight", "update_ratio").shape == (3,)


def test_a_layer_called_twice_per_step_contributes_both_calls(rng):
    layer = nn.Linear(3, 3).to(np.float64)
    model = nn.Sequential(layer)
    monitor = GradientMonitor(model, layers=["0"])
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    u1, u2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    y1, y2 = model(x1), model(x2)
    ((y1 * u1).sum() + (y2 * u2).sum()).backward()
    record = monitor.step()["layers"]["0"]
    both = np.concatenate([y1._data.ravel(), y2._data.ravel()])
    assert record["mean"] == pytest.approx(both.mean())
    assert record["grad_norm"] == pytest.approx(np.sqrt((u1 ** 2).sum() + (u2 ** 2).sum()))


def test_summary_flags_vanishing_dead_exploding_and_update_ratios(rng):
    normlab.manual_seed(0)
    deep = mlp(10, 32, 3, 10, norm="none", act="sigmoid").to(np.float64)
    x, y = rng.standard_normal((32, 10)), rng.integers(0, 3, 32)
    optimizer = normlab.optim.SGD(deep.parameters(), lr=1e-4)
    monitor = GradientMonitor(deep)
    for _ in range(3):
        loss = normlab.nn.functional.cross_entropy(deep(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.step()
    kinds = {(name, kind) for name, kind, _ in monitor.flags()}
    assert ("0", "vanishing") in kinds and ("20", "vanishing") not in kinds
    assert ("0.weight", "update_small") in kinds
    text = monitor.summary()
    assert "vanishing gradient" in text and "barely learns" in text and "layer '0' (Linear)" in text

    dead = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).to(np.float64)
    _set(dead[0].bias, -1e3)  # every unit off
    _set(dead[2].weight, dead[2].weight._data * 1e6)  # and a huge output layer: exploding output-gradient norm
    monitor = GradientMonitor(dead, exploding=1e3)
    (dead(rng.standard_normal((6, 4))) * 1e5).sum().backward()
    monitor.step()
    text = monitor.summary()
    assert "layer '1' (ReLU): dead, 100% of its units" in text
    assert "exploding gradient" in text
    big = nn.Sequential(nn.Linear(4, 2)).to(np.float64)
    optimizer = normlab.optim.SGD(big.parameters(), lr=100.0)
    monitor = GradientMonitor(big)
    big(rng.standard_normal((6, 4))).sum().backward()
    optimizer.step()
    monitor.step()
    assert any(kind == "update_large" for _, kind, _ in monitor.flags())


def test_summary_and_plot_on_a_quiet_model(tmp_path, small):
    model, x, upstream = small
    monitor = GradientMonitor(model)
    assert "nothing recorded yet" in monitor.summary()
    optimizer = normlab.optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(4):
        _step(model, x, upstream, optimizer, monitor)
    path = monitor.plot(tmp_path / "sub" / "monitor.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_are_refused(small):
    model, _, _ = small
    with pytest.raises(TypeError, match="expected a normlab.nn.Module"):
        GradientMonitor(np.zeros(3))
    with pytest.raises(ValueError, match=r"model has no layer\(s\) \['9'\]"):
        GradientMonitor(model, layers=["9"])
    with pytest.raises(ValueError, match="every"):
        GradientMonitor(model, every=0)
    with pytest.raises(ValueError, match="saturation"):
        GradientMonitor(model, saturation=0.7)
    assert not any(m._forward_hooks for m in model.modules())  # the refused monitors attached nothing
    with pytest.raises(ValueError, match="series: no layer or parameter named 'x'"):
        GradientMonitor(model).series("x", "mean")
