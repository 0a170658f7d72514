"""Batch Renormalization (Ioffe, 2017). torch has none, so the oracles are BatchNorm and a slow NumPy reference.

* r_max=1, d_max=0: exactly BatchNorm (every bit: output, gradients, buffers), over training steps and eval.
* otherwise: a per-channel loop that writes the paper's formulas out, with the
  backward as the chain rule through mu_B and sigma_B (Ioffe & Szegedy 2015's
  form), r and d held constant;
* r and d receive no gradient: central differences with r and d frozen agree
  with backward, and differences that let r and d move do not.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.normalization_checks import assert_matches
from tests.oracle import numerical_gradient, random_upstream


def renorm_reference(x, dy, weight, bias, running_mean, running_var, r_max, d_max, eps, momentum):
    """Slow, obvious NumPy: one channel at a time. Returns y, dx, dweight, dbias, new running mean/var, r, d."""
    n, c = x.shape[:2]
    channels = np.moveaxis(x, 1, 0).reshape(c, -1)
    upstream = np.moveaxis(dy, 1, 0).reshape(c, -1)
    y, dx = np.empty_like(channels), np.empty_like(channels)
    dweight, dbias = np.empty(c), np.empty(c)
    new_mean, new_var, rs, ds = np.empty(c), np.empty(c), np.empty(c), np.empty(c)
    for ch in range(c):
        v, g_y = channels[ch], upstream[ch]
        m = v.size
        mu_b = v.sum() / m
        var_b = ((v - mu_b) ** 2).sum() / m
        sigma_b = np.sqrt(var_b + eps)
        sigma = np.sqrt(running_var[ch] + eps)
        r = min(max(sigma_b / sigma, 1 / r_max), r_max)
        d = min(max((mu_b - running_mean[ch]) / sigma, -d_max), d_max)
        x_hat = (v - mu_b) / sigma_b
        y_hat = x_hat * r + d
        y[ch] = weight[ch] * y_hat + bias[ch]
        # backward, r and d constants
        g_x_hat = g_y * weight[ch] * r
        g_var = np.sum(g_x_hat * (v - mu_b)) * -0.5 * (var_b + eps) ** -1.5
        g_mu = np.sum(-g_x_hat / sigma_b) + g_var * np.sum(-2 * (v - mu_b)) / m
        dx[ch] = g_x_hat / sigma_b + g_var * 2 * (v - mu_b) / m + g_mu / m
        dweight[ch] = np.sum(g_y * y_hat)
        dbias[ch] = np.sum(g_y)
        new_mean[ch] = running_mean[ch] + momentum * (mu_b - running_mean[ch])
        new_var[ch] = running_var[ch] + momentum * (var_b * m / (m - 1) - running_var[ch])
        rs[ch], ds[ch] = r, d

    def back(a):
        return np.moveaxis(a.reshape((c, n) + x.shape[2:]), 0, 1)
    return back(y), back(dx), dweight, dbias, new_mean, new_var, rs, ds


# ---------------------------------------------------------------------------- r_max=1, d_max=0 is BatchNorm

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, shapes, kwargs", [
    ("1d", [(5, 3), (2, 3), (7, 3), (4, 3)], {}),
    ("1d", [(4, 3, 6), (2, 3, 5), (3, 3, 2), (2, 3, 4)], {"momentum": None}),
    ("2d", [(2, 3, 4, 5), (3, 3, 2, 2), (4, 3, 3, 2)], {"affine": False}),
    ("2d", [(1, 3, 4, 5), (2, 3, 2, 2), (1, 3, 3, 3), (1, 3, 2, 2)], {}),
    ("2d", [(2, 3, 4, 5), (3, 3, 2, 2), (4, 3, 3, 2)], {"momentum": 0.4, "bias": False, "eps": 1e-3}),
])
def test_equals_batch_norm_exactly_with_r_max_1_d_max_0(kind, shapes, kwargs, dtype, rng):
    renorm = getattr(nn, f"BatchRenorm{kind}")(3, r_max=1.0, d_max=0.0, dtype=dtype, **kwargs)
    batchnorm = getattr(nn, f"BatchNorm{kind}")(3, dtype=dtype, **kwargs)
    for layer in (renorm, batchnorm):  # start both from the same non-trivial state
        layer.running_mean.data[...] = 0.5
        layer.running_var.data[...] = 2.0
        if layer.weight is not None:
            layer.weight.data[...] = np.array([0.5, -1.5, 2.0], dtype=dtype)
        if layer.bias is not None:
            layer.bias.data[...] = np.array([0.1, 0.2, -0.3], dtype=dtype)
    for step, shape in enumerate(shapes):
        training = step < len(shapes) - 1
        renorm.train(training)
        batchnorm.train(training)
        x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
        dy = random_upstream(shape, dtype, rng)
        xr, xb = normlab.tensor(x, requires_grad=True), normlab.tensor(x, requires_grad=True)
        yr, yb = renorm(xr), batchnorm(xb)
        np.testing.assert_array_equal(yr.detach().numpy(), yb.detach().numpy(), err_msg=f"step {step} output")
        yr.backward(dy)
        yb.backward(dy)
        np.testing.assert_array_equal(xr.grad, xb.grad, err_msg=f"step {step} input gradient")
        for (name, p), (_, q) in zip(renorm.named_parameters(), batchnorm.named_parameters()):
            np.testing.assert_array_equal(p.grad, q.grad, err_msg=f"step {step} {name} gradient")
            p.data -= (0.1 * p.grad).astype(dtype)
            q.data -= (0.1 * q.grad).astype(dtype)
            p.grad = q.grad = None
        assert list(renorm.state_dict()) == list(batchnorm.state_dict())
        for key, value in batchnorm.state_dict().items():
            np.testing.assert_array_equal(renorm.state_dict()[key], value, err_msg=f"step {step} {key}")


# ---------------------------------------------------------------------------- against the NumPy reference

def _run_module_against_reference(layer, schedule, rng, dtype=np.float64):
    """schedule: (shape, r_max, d_max) per training step; r_max/d_max are set between steps as a schedule would."""
    dtype = np.dtype(dtype)
    c = layer.num_features
    layer.weight.data[...] = rng.uniform(0.5, 1.5, c) * rng.choice([-1, 1], c)
    layer.bias.data[...] = rng.standard_normal(c)
    clipped = {"r": False, "d": False}
    for step, (shape, r_max, d_max) in enumerate(schedule):
        layer.r_max, layer.d_max = r_max, d_max
        x = (rng.standard_normal(shape) * rng.uniform(0.3, 3, (1, c) + (1,) * (len(shape) - 2))
             + rng.uniform(-3, 3, (1, c) + (1,) * (len(shape) - 2))).astype(dtype)
        dy = random_upstream(shape, dtype, rng)
        expected = renorm_reference(x.astype(np.float64), dy.astype(np.float64), layer.weight.data.astype(np.float64),
                                    layer.bias.data.astype(np.float64), layer.running_mean.data.astype(np.float64),
                                    layer.running_var.data.astype(np.float64), r_max, d_max, layer.eps,
                                    layer.momentum)
        y_ref, dx_ref, dw_ref, db_ref, mean_ref, var_ref, r, d = expected
        clipped["r"] |= bool(np.any((r == r_max) | (r == 1 / r_max)) and r_max > 1)
        clipped["d"] |= bool(np.any(np.abs(d) == d_max) and d_max > 0)
        xt = normlab.tensor(x, requires_grad=True)
        y = layer(xt)
        y.backward(dy)
        what = f"step {step} (r_max={r_max}, d_max={d_max})"
        assert_matches(y, y_ref, dtype, f"{what}: output")
        assert_matches(xt.grad, dx_ref, dtype, f"{what}: input gradient")
        assert_matches(layer.weight.grad, dw_ref, dtype, f"{what}: weight gradient")
        assert_matches(layer.bias.grad, db_ref, dtype, f"{what}: bias gradient")
        assert_matches(layer.running_mean.data, mean_ref, dtype, f"{what}: running_mean")
        assert_matches(layer.running_var.data, var_ref, dtype, f"{what}: running_var")
        assert int(layer.num_batches_tracked.data) == step + 1
        layer.zero_grad()
    return clipped


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_renorm_2d_matches_reference_over_a_relaxing_schedule(dtype, rng):
    layer = nn.BatchRenorm2d(4, momentum=0.3, dtype=dtype)
    schedule = [((3, 4, 3, 3), 1.0, 0.0), ((2, 4, 4, 2), 1.5, 0.5), ((4, 4, 2, 2), 2.0, 1.0),
                ((2, 4, 3, 3), 3.0, 5.0), ((3, 4, 2, 3), 1.2, 0.1)]
    clipped = _run_module_against_reference(layer, schedule, rng, dtype)
    assert clipped["r"] and clipped["d"], "the schedule must exercise the clipping of r and d"
    layer.eval()
    x = rng.standard_normal((2, 4, 3, 3)).astype(dtype)
    expected = (x - layer.running_mean.data[:, None, None]) / np.sqrt(layer.running_var.data[:, None, None] + 1e-5)
    expected = expected * layer.weight.data[:, None, None] + layer.bias.data[:, None, None]
    assert_matches(layer(x), expected, dtype, "eval output uses the running statistics")


@given(batch=st.integers(2, 5), channels=st.integers(1, 3), length=st.sampled_from([None, 1, 3]),
       r_max=st.sampled_from([1.0, 1.1, 2.0, 5.0]), d_max=st.sampled_from([0.0, 0.2, 1.0, 10.0]),
       momentum=st.sampled_from([0.1, 0.9]), seed=st.integers(0, 2**16))
def test_batch_renorm_1d_sweep_against_reference(batch, channels, length, r_max, d_max, momentum, seed):
    shape = (batch, channels) if length is None else (batch, channels, length)
    layer = nn.BatchRenorm1d(channels, momentum=momentum, dtype=np.float64)
    rng = np.random.default_rng(seed)
    _run_module_against_reference(layer, [(shape, r_max, d_max)] * 3, rng)


# ---------------------------------------------------------------------------- r and d get no gradient

def test_r_and_d_receive_no_gradient(rng):
    """Backward equals the derivative with r and d frozen, and differs from the one that lets them move."""
    x = rng.standard_normal((6, 2, 3)) * 2 + 1
    weight, bias = rng.standard_normal(2), rng.standard_normal(2)
    running_mean, running_var = np.array([0.3, -0.2]), np.array([3.0, 2.5])
    r_max, d_max = 10.0, 10.0  # wide: no clipping, so r and d really depend on x
    dy = random_upstream(x.shape, np.float64, rng)
    xt = normlab.tensor(x, requires_grad=True)
    F.batch_renorm(xt, running_mean.copy(), running_var.copy(), weight, bias, training=True,
                   r_max=r_max, d_max=d_max).backward(dy)

    _, _, _, _, _, _, r0, d0 = renorm_reference(x, dy, weight, bias, running_mean, running_var, r_max, d_max,
                                                1e-5, 0.1)
    assert np.all((r0 > 1 / r_max) & (r0 < r_max)) and np.all(np.abs(d0) < d_max), "r and d must be unclipped"
    shape = (1, 2, 1)

    def frozen():  # y with r and d fixed at their values for x
        mu = x.mean(axis=(0, 2), keepdims=True)
        x_hat = (x - mu) / np.sqrt(x.var(axis=(0, 2), keepdims=True) + 1e-5)
        y = weight.reshape(shape) * (x_hat * r0.reshape(shape) + d0.reshape(shape)) + bias.reshape(shape)
        return float(np.sum(y * dy))

    def moving():  # y as the forward computes it, r and d recomputed from x
        y = F.batch_renorm(x, running_mean.copy(), running_var.copy(), weight, bias, training=True,
                           r_max=r_max, d_max=d_max)
        return float(np.sum(y.detach().numpy() * dy))

    np.testing.assert_allclose(xt.grad, numerical_gradient(frozen, x), rtol=1e-6, atol=1e-8)
    assert not np.allclose(xt.grad, numerical_gradient(moving, x), rtol=1e-3, atol=1e-4), \
        "with r and d free to move the derivative must differ (otherwise this test proves nothing)"


def test_numerical_gradients_when_r_and_d_are_clipped(rng):
    """Where r and d sit at their bounds they are locally constant: the full derivative is backward's."""
    x = rng.standard_normal((4, 2, 3)) * 3 + 4   # far from running stats (0, 1): r -> r_max, d -> d_max
    weight, bias = rng.standard_normal(2), rng.standard_normal(2)
    dy = random_upstream(x.shape, np.float64, rng)

    def call(values):
        return F.batch_renorm(values, np.zeros(2), np.ones(2), weight, bias, training=True, r_max=1.5, d_max=0.5)
    xt = normlab.tensor(x, requires_grad=True)
    call(xt).backward(dy)
    numeric = numerical_gradient(lambda: float(np.sum(call(x).detach().numpy() * dy)), x)
    np.testing.assert_allclose(xt.grad, numeric, rtol=1e-6, atol=1e-8)


def test_weight_and_bias_numerical_gradients(rng):
    x = rng.standard_normal((4, 2, 3)) * 2 + 1
    weight, bias = rng.standard_normal(2), rng.standard_normal(2)
    dy = random_upstream(x.shape, np.float64, rng)
    stats = (np.array([0.5, -1.0]), np.array([2.0, 0.5]))

    def call(w, b):
        return F.batch_renorm(x, stats[0].copy(), stats[1].copy(), w, b, training=True, r_max=2.0, d_max=1.0)
    wt, bt = normlab.tensor(weight, requires_grad=True), normlab.tensor(bias, requires_grad=True)
    call(wt, bt).backward(dy)
    np.testing.assert_allclose(wt.grad, numerical_gradient(lambda: float(np.sum(call(weight, bias).detach().numpy() * dy)),
                                                           weight), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(bt.grad, numerical_gradient(lambda: float(np.sum(call(weight, bias).detach().numpy() * dy)),
                                                           bias), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------- module surface

def test_module_surface():
    layer = nn.BatchRenorm2d(3)
    assert repr(layer) == ("BatchRenorm2d(3, eps=1e-05, momentum=0.1, r_max=3.0, d_max=5.0, affine=True, "
                           "bias=True)")
    assert list(layer.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert list(layer.state_dict()) == list(nn.BatchNorm2d(3).state_dict())
    assert nn.BatchRenorm1d(2, affine=False).weight is None
    layer.r_max, layer.d_max = 1.5, 0.25
    assert "r_max=1.5, d_max=0.25" in repr(layer)


def test_eval_is_batch_norm_eval(rng):
    renorm, batchnorm = nn.BatchRenorm1d(3, dtype=np.float64), nn.BatchNorm1d(3, dtype=np.float64)
    for layer in (renorm, batchnorm):
        layer.running_mean.data[...] = [1.0, -2.0, 0.5]
        layer.running_var.data[...] = [0.5, 2.0, 4.0]
        layer.eval()
    x = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(renorm(x).detach().numpy(), batchnorm(x).detach().numpy())
