"""Average, adaptive-average and power-average (Lp) pooling against torch, plus numerical gradient checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import numerical_gradient, random_upstream
from tests.test_pooling_common import (
    DTYPES, close, config_axes, distinct_input, pool_configs, reference_average, torch_reference,
)


def check_against_torch(ours, theirs, x, dtype, rng, what=""):
    """Forward and input gradient (random upstream) of ours(x) vs theirs at float64 x (the reference)."""
    dy = random_upstream(theirs(torch.tensor(x.astype(np.float64))).shape, dtype, rng)
    ty, tdx, ty_scale, tdx_scale = torch_reference(theirs, x, dy)
    xt = normlab.tensor(x, requires_grad=True)
    y = ours(xt)
    assert y.dtype == dtype
    close(y, ty, dtype, f"output {what}", scale=ty_scale)
    y.backward(dy)
    assert xt.grad.dtype == dtype
    close(xt.grad, tdx, dtype, f"input gradient {what}", scale=tdx_scale)
    return y.detach().numpy(), xt.grad, dy


# ---------------------------------------------------------------- avg_pool


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_configs(dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.integers(1, 7), st.integers(-3, -1)))
def test_avg_pool_matches_torch(dtype, case, count_include_pad, divisor_override):
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    config = dict(config, count_include_pad=count_include_pad)
    if n >= 2:
        config["divisor_override"] = divisor_override
    ours, theirs = getattr(F, f"avg_pool{n}d"), getattr(TF, f"avg_pool{n}d")
    kernel = config_axes(n, config)[0]
    if n == 3 and any(L < k for L, k in zip(shape[-3:], kernel)):
        # torch's avg_pool3d (only the 3d one) refuses an input smaller than the kernel even where padding
        # makes the window fit; normlab keeps the one window rule of every dimension: check it against the loop
        with pytest.raises(RuntimeError, match="smaller than kernel size"):
            theirs(torch.tensor(x), **config)
        xt = normlab.tensor(x, requires_grad=True)
        y = ours(xt, **config)
        dy = random_upstream(y.shape, dtype, rng)
        y.backward(dy)
        y_ref, dx_ref = reference_average(x.astype(np.float64), n, config, dy.astype(np.float64),
                                          count_include_pad, config.get("divisor_override"))
        close(y, y_ref, dtype, "output", scale=np.abs(reference_average(np.abs(x), n, config, dy, count_include_pad,
                                                                         config.get("divisor_override"))[0]))
        close(xt.grad, dx_ref, dtype, "input gradient", scale=np.abs(dx_ref) + np.abs(dy).max())
        return
    check_against_torch(lambda v: ours(v, **config), lambda v: theirs(v, **config), x, dtype, rng, str(config))


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_avg_pool_divisor_of_a_ceil_window_past_the_right_padding(ceil_mode, count_include_pad, rng):
    # L=6, k=3, s=2, p=1: with ceil_mode the last window covers positions 5, 6, 7 -- 6 is the right
    # padding (counted only with count_include_pad), 7 lies beyond it and is never counted.
    x = rng.standard_normal((1, 1, 6))
    y = F.avg_pool1d(x, 3, 2, 1, ceil_mode=ceil_mode, count_include_pad=count_include_pad).detach().numpy()
    ty = TF.avg_pool1d(torch.tensor(x), 3, 2, 1, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    close(y, ty, np.float64, "output")
    if ceil_mode:
        assert y.shape[-1] == 4
        expected_divisor = 2 if count_include_pad else 1
        np.testing.assert_allclose(y[0, 0, -1], x[0, 0, 5] / expected_divisor, rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_configs(dilation=False, padding=False))
def test_avg_pool_gradient_sum_is_conserved_without_padding(dtype, case):
    # no padding and no override: every divisor counts exactly the window's real members, so each output
    # hands out exactly its gradient (ceil_mode's cut windows included); with stride = kernel every input
    # gets dy / (window size) of the one window it lies in.
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    xt = normlab.tensor(x, requires_grad=True)
    y = getattr(F, f"avg_pool{n}d")(xt, **config)
    dy = random_upstream(y.shape, dtype, rng)
    y.backward(dy)
    np.testing.assert_allclose(xt.grad.sum(dtype=np.float64), dy.sum(dtype=np.float64), rtol=1e-5, atol=1e-5)


def test_avg_pool_non_overlapping_windows_spread_equally(rng):
    x = rng.standard_normal((2, 3, 6, 4))
    xt = normlab.tensor(x, requires_grad=True)
    y = F.avg_pool2d(xt, 2)
    dy = random_upstream(y.shape, np.float64, rng)
    y.backward(dy)
    np.testing.assert_allclose(xt.grad, np.repeat(np.repeat(dy, 2, axis=2), 2, axis=3) / 4, rtol=1e-15)


# ---------------------------------------------------------------- adaptive_avg_pool


@st.composite
def adaptive_cases(draw):
    n = draw(st.sampled_from([1, 2, 3]))
    spatial = tuple(draw(st.integers(1, 12 if n < 3 else 6)) for _ in range(n))
    out = tuple(draw(st.one_of(st.integers(1, 14 if n < 3 else 7), st.none())) for _ in range(n))
    if n == 1:
        out = out[0] if out[0] is not None else spatial[0]
    elif len(set(out)) == 1 and out[0] is not None and draw(st.booleans()):
        out = out[0]
    batch = draw(st.sampled_from([None, 1, 2]))
    channels = draw(st.integers(1, 3))
    shape = ((channels,) if batch is None else (batch, channels)) + spatial
    return n, shape, out, draw(st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=adaptive_cases())
def test_adaptive_avg_pool_matches_torch(dtype, case):
    n, shape, out, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    ours, theirs = getattr(F, f"adaptive_avg_pool{n}d"), getattr(TF, f"adaptive_avg_pool{n}d")
    check_against_torch(lambda v: ours(v, out), lambda v: theirs(v, out), x, dtype, rng, f"output_size={out}")


def test_global_average_pooling_of_a_large_plane_in_float32(rng):
    # one window of 56*56 elements: the float64 accumulator keeps float32 close to the exact mean
    x = (rng.standard_normal((2, 3, 56, 56)) + 1e3).astype(np.float32)
    y = F.adaptive_avg_pool2d(x, 1).detach().numpy()
    np.testing.assert_allclose(y[..., 0, 0], x.astype(np.float64).mean(axis=(2, 3)), rtol=1e-7)


# ---------------------------------------------------------------- lp_pool


@st.composite
def lp_cases(draw):
    n, shape, config, seed = draw(pool_configs(dilation=False, padding=False))
    config.pop("padding")
    if n == 1 and isinstance(config["kernel_size"], tuple):
        config["kernel_size"] = config["kernel_size"][0]   # torch's lp_pool1d multiplies by an int kernel
    norm_type = draw(st.sampled_from([1, 2, 3, 1.5, 2.5, 4.0, math.inf, -math.inf]))
    return n, shape, norm_type, config, seed


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=lp_cases(), signed=st.booleans())
def test_lp_pool_matches_torch(dtype, case, signed):
    n, shape, norm_type, config, seed = case
    rng = np.random.default_rng(seed)
    x = distinct_input(shape, np.float64, rng) + 0.05
    if not signed or norm_type not in (2, math.inf, -math.inf):
        x = np.abs(x) + 0.1     # x^p of a negative x is NaN for fractional p (in torch too); keep it real
    x = x.astype(dtype)
    ours, theirs = getattr(F, f"lp_pool{n}d"), getattr(TF, f"lp_pool{n}d")
    check_against_torch(lambda v: ours(v, norm_type, **config), lambda v: theirs(v, norm_type, **config),
                        x, dtype, rng, f"p={norm_type} {config}")


def test_lp_pool_zero_window_has_zero_gradient_like_torch(rng):
    x = np.array([[[0.0, 0.0, 1.0, 2.0, -3.0, 0.5]]])
    for p in (2, 3, 1.5):
        _, dx, _ = check_against_torch(lambda v: F.lp_pool1d(v, p, 2), lambda v: TF.lp_pool1d(v, p, 2),
                                       x, np.float64, rng, f"p={p}")
        np.testing.assert_array_equal(dx[0, 0, :2], 0.0)


def test_lp_pool_ceil_window_is_scaled_like_torch(rng):
    # torch scales a ceil_mode window cut by the border by kernel/(its size): reproduce that exactly
    x = np.abs(rng.standard_normal((1, 2, 5, 5))) + 0.1
    check_against_torch(lambda v: F.lp_pool2d(v, 2, 2, ceil_mode=True), lambda v: TF.lp_pool2d(v, 2, 2, ceil_mode=True),
                        x, np.float64, rng)


# ---------------------------------------------------------------- numerical gradients (float64)


def _numerical_check(op, x, rng):
    xt = normlab.tensor(x, requires_grad=True)
    y = op(xt)
    dy = random_upstream(y.shape, np.float64, rng)
    y.backward(dy)
    numeric = numerical_gradient(lambda: float(np.sum(op(x).detach().numpy() * dy)), x)
    np.testing.assert_allclose(xt.grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("op", [
    lambda v: F.avg_pool2d(v, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda v: F.avg_pool2d(v, (2, 3), (1, 2), (1, 0), divisor_override=5),
    lambda v: F.avg_pool1d(v.reshape(2, 3, 15), 4, 3, 2, ceil_mode=True),
    lambda v: F.lp_pool2d(v, 2, 2, ceil_mode=True),
    lambda v: F.lp_pool2d(v, 1.5, (2, 3), stride=1),
    lambda v: F.lp_pool1d(v.reshape(2, 3, 15), 3, 4, 3, ceil_mode=True),
    lambda v: F.adaptive_avg_pool2d(v, (2, 4)),
    lambda v: F.adaptive_avg_pool1d(v.reshape(2, 3, 15), 4),
    lambda v: F.avg_pool3d(v.reshape(2, 3, 5, 3, 1), (3, 2, 1), 2, (1, 1, 0), ceil_mode=True, count_include_pad=False),
    lambda v: F.lp_pool3d(v.reshape(1, 2, 3, 5, 3), 2, 2, ceil_mode=True),
    lambda v: F.adaptive_avg_pool3d(v.reshape(1, 2, 3, 5, 3), (2, 3, 2)),
], ids=["avg2d-ceil-nopad", "avg2d-override", "avg1d", "lp2d-p2", "lp2d-p1.5", "lp1d-p3", "adaptive2d", "adaptive1d",
        "avg3d", "lp3d", "adaptive3d"])
def test_numerical_gradient(op, rng):
    x = np.abs(rng.standard_normal((2, 3, 5, 3))) + 0.2     # positive: fractional powers stay real
    _numerical_check(op, x, rng)


# ---------------------------------------------------------------- modules


def test_avg_and_lp_modules_match_torch(rng):
    x = rng.standard_normal((2, 3, 9, 8)) + 3
    pairs = [
        (nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False, divisor_override=None),
         torch.nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
        (nn.AvgPool2d((2, 3), divisor_override=4), torch.nn.AvgPool2d((2, 3), divisor_override=4)),
        (nn.AdaptiveAvgPool2d((3, None)), torch.nn.AdaptiveAvgPool2d((3, None))),
        (nn.AdaptiveMaxPool2d(4), torch.nn.AdaptiveMaxPool2d(4)),
        (nn.LPPool2d(2, 3, stride=2, ceil_mode=True), torch.nn.LPPool2d(2, 3, stride=2, ceil_mode=True)),
    ]
    x1 = x.reshape(2, 3, 72)
    pairs_1d = [
        (nn.AvgPool1d(4, 3, 2, ceil_mode=True, count_include_pad=False),
         torch.nn.AvgPool1d(4, 3, 2, ceil_mode=True, count_include_pad=False)),
        (nn.AdaptiveAvgPool1d(7), torch.nn.AdaptiveAvgPool1d(7)),
        (nn.AdaptiveMaxPool1d(7), torch.nn.AdaptiveMaxPool1d(7)),
        (nn.LPPool1d(3, 4), torch.nn.LPPool1d(3, 4)),
    ]
    x3 = x.reshape(2, 3, 3, 6, 4)
    pairs_3d = [
        (nn.AvgPool3d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
         torch.nn.AvgPool3d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
        (nn.AvgPool3d((1, 2, 3), divisor_override=4), torch.nn.AvgPool3d((1, 2, 3), divisor_override=4)),
        (nn.AdaptiveAvgPool3d((2, None, 3)), torch.nn.AdaptiveAvgPool3d((2, None, 3))),
        (nn.AdaptiveMaxPool3d(2), torch.nn.AdaptiveMaxPool3d(2)),
        (nn.LPPool3d(2, 2, stride=1), torch.nn.LPPool3d(2, 2, stride=1)),
        (nn.MaxPool3d(2, 1, 1, ceil_mode=True), torch.nn.MaxPool3d(2, 1, 1, ceil_mode=True)),
    ]
    for inputs, cases in ((x, pairs), (x1, pairs_1d), (x3, pairs_3d)):
        for ours, theirs in cases:
            assert repr(ours) == repr(theirs)
            assert list(ours.parameters()) == [] and list(ours.buffers()) == []
            check_against_torch(ours, theirs, inputs, np.float64, rng, repr(ours))
