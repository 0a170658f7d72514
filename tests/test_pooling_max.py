"""Max / min pooling and max-unpooling against torch, the tie and NaN rules, and gradient routing invariants."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import random_upstream
from tests.test_pooling_common import (
    DTYPES, close, distinct_input, has_all_padding_window, pool_configs, reference_extremum, refused_all_padding,
    tied_input, torch_reference, torch_tensor,
)

TORCH_MAX = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}
OURS_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
OURS_MIN = {1: F.min_pool1d, 2: F.min_pool2d, 3: F.min_pool3d}


def run_ours(op, x, dy, **config):
    """Forward with indices, then backward with the upstream ``dy``: (y, indices, dx)."""
    t = normlab.tensor(x, requires_grad=True)
    y, indices = op(t, return_indices=True, **config)
    y.backward(dy)
    return y.detach().numpy(), indices.detach().numpy(), t.grad


def run_torch(n, x, dy, **config):
    """torch in float64 (the reference for float32 too): (y, indices, dx, dx for |dy|)."""
    y, dx, _, dx_scale = torch_reference(lambda t: TORCH_MAX[n](t, **config), x, dy, scale_input=x)
    indices = TORCH_MAX[n](torch.tensor(x.astype(np.float64)), return_indices=True, **config)[1]
    return y, indices.detach().numpy(), dx, dx_scale


# ---------------------------------------------------------------- against torch, tie-free


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_configs(), return_indices=st.booleans())
def test_max_pool_matches_torch(dtype, case, return_indices):
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = distinct_input(shape, dtype, rng)
    if refused_all_padding(OURS_MAX[n], n, x, config):
        return
    dy = random_upstream(TORCH_MAX[n](torch.tensor(x), **config).shape, dtype, rng)
    ty, tidx, tdx, tdx_scale = run_torch(n, x, dy, **config)

    xt = normlab.tensor(x, requires_grad=True)
    result = OURS_MAX[n](xt, return_indices=return_indices, **config)
    if return_indices:
        y, idx = result
        assert idx.dtype == np.int64
        np.testing.assert_array_equal(idx.detach().numpy(), tidx, err_msg="indices")
    else:
        assert isinstance(result, normlab.Tensor)
        y = result
    close(y, ty, dtype, "output")
    assert y.dtype == dtype
    y.backward(dy)
    assert xt.grad.dtype == dtype
    close(xt.grad, tdx, dtype, "input gradient", scale=tdx_scale)


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_configs())
def test_min_pool_is_minus_max_pool_of_minus_x(dtype, case):
    # on tie-laden inputs with NaNs and infinities too, for every tie/nan rule: values, indices, gradients
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = tied_input(shape, dtype, rng, levels=3, nan_fraction=0.1, inf_fraction=0.05)
    if refused_all_padding(OURS_MIN[n], n, x, config):
        return
    for tie in ("first", "split"):
        for nan in ("propagate", "ignore"):
            xt = normlab.tensor(x, requires_grad=True)
            y, idx = OURS_MIN[n](xt, return_indices=True, tie=tie, nan=nan, **config)
            dy = random_upstream(y.shape, dtype, rng)
            y.backward(dy)
            xn = normlab.tensor(x, requires_grad=True)
            ym, idxm = OURS_MAX[n](-xn, return_indices=True, tie=tie, nan=nan, **config)
            (-ym).backward(dy)
            np.testing.assert_array_equal(y.detach().numpy(), -ym.detach().numpy(), err_msg=f"value {tie}/{nan}")
            np.testing.assert_array_equal(idx.detach().numpy(), idxm.detach().numpy(), err_msg=f"indices {tie}/{nan}")
            np.testing.assert_array_equal(xt.grad, xn.grad, err_msg=f"gradient {tie}/{nan}")


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_configs())
def test_min_pool_matches_torch_minus_max_pool(dtype, case):
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = distinct_input(shape, dtype, rng)
    if refused_all_padding(OURS_MIN[n], n, x, config):
        return
    dy = random_upstream(TORCH_MAX[n](torch.tensor(x), **config).shape, dtype, rng)
    ty, tdx, _, tdx_scale = torch_reference(lambda t: -TORCH_MAX[n](-t, **config), x, dy, scale_input=x)
    tidx = TORCH_MAX[n](-torch.tensor(x.astype(np.float64)), return_indices=True, **config)[1]
    y, idx, dx = run_ours(OURS_MIN[n], x, dy, **config)
    close(y, ty, dtype, "output")
    np.testing.assert_array_equal(idx, tidx.detach().numpy())
    close(dx, tdx, dtype, "input gradient", scale=tdx_scale)


# ---------------------------------------------------------------- ties and NaN: torch's defaults


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_configs(), levels=st.sampled_from([1, 2, 3]))
def test_ties_go_to_the_first_maximum_like_torch(dtype, case, levels):
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = tied_input(shape, dtype, rng, levels=levels, inf_fraction=0.05)
    if refused_all_padding(OURS_MAX[n], n, x, config):
        return
    dy = random_upstream(_out_shape(n, x, config), dtype, rng)
    ty, tidx, tdx, tdx_scale = run_torch(n, x, dy, **config)
    y, idx, dx = run_ours(OURS_MAX[n], x, dy, **config)
    close(y, ty, dtype, "output")
    np.testing.assert_array_equal(idx, tidx, err_msg="indices")
    close(dx, tdx, dtype, "input gradient", scale=tdx_scale)
    # the rule itself, independently of torch: each output's gradient sits at the first maximum
    _, idx_ref, dx_ref = reference_extremum(x.astype(np.float64), n, config, dy.astype(np.float64))
    np.testing.assert_array_equal(idx, idx_ref, err_msg="first maximum")


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_configs(), nan_fraction=st.sampled_from([0.1, 0.3, 1.0]))
def test_nan_propagates_like_torch(dtype, case, nan_fraction):
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = tied_input(shape, dtype, rng, levels=4, nan_fraction=nan_fraction, inf_fraction=0.05)
    if refused_all_padding(OURS_MAX[n], n, x, config):
        return
    dy = random_upstream(_out_shape(n, x, config), dtype, rng)
    y_t, idx_t, dx_t, dx_scale = run_torch(n, x, dy, **config)
    y, idx, dx = run_ours(OURS_MAX[n], x, dy, **config)
    close(y, y_t, dtype, "output")          # equal_nan: NaN where torch has NaN
    np.testing.assert_array_equal(idx, idx_t, err_msg="indices (torch points at the last NaN)")
    close(dx, dx_t, dtype, "input gradient", scale=dx_scale)


def _out_shape(n, x, config):
    return TORCH_MAX[n](torch.tensor(x), **config).shape


def test_nan_window_points_at_its_last_nan_like_torch():
    x = np.array([[[1.0, np.nan, 3.0, np.nan, 2.0, 2.0, 5.0, 5.0]]])
    y, idx, dx = run_ours(F.max_pool1d, x, np.array([[[1.5, 2.5]]]), kernel_size=4)
    assert np.isnan(y[0, 0, 0]) and y[0, 0, 1] == 5.0
    np.testing.assert_array_equal(idx, [[[3, 6]]])         # last NaN; first of the tied 5s
    np.testing.assert_array_equal(dx, [[[0, 0, 0, 1.5, 0, 0, 2.5, 0]]])
    _, tidx, tdx, _ = run_torch(1, x, np.array([[[1.5, 2.5]]]), kernel_size=4)
    np.testing.assert_array_equal(idx, tidx)
    np.testing.assert_array_equal(dx, tdx)


# ---------------------------------------------------------------- tie="split", nan="ignore": slow reference


@pytest.mark.parametrize("is_min", [False, True])
@given(case=pool_configs(), tie=st.sampled_from(["first", "split"]), nan=st.sampled_from(["propagate", "ignore"]),
       nan_fraction=st.sampled_from([0.0, 0.15, 0.6]))
def test_tie_and_nan_rules_match_the_slow_reference(is_min, case, tie, nan, nan_fraction):
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = tied_input(shape, np.float64, rng, levels=3, nan_fraction=nan_fraction, inf_fraction=0.05)
    if refused_all_padding((OURS_MIN if is_min else OURS_MAX)[n], n, x, config):
        return
    y0 = (OURS_MIN if is_min else OURS_MAX)[n](x, **config)
    dy = random_upstream(y0.shape, np.float64, rng)
    y, idx, dx = run_ours(OURS_MIN[n] if is_min else OURS_MAX[n], x, dy, tie=tie, nan=nan, **config)
    y_ref, idx_ref, dx_ref = reference_extremum(x, n, config, dy, is_min=is_min, tie=tie, nan=nan)
    close(y, y_ref, np.float64, "output")
    np.testing.assert_array_equal(idx, idx_ref, err_msg="indices")
    close(dx, dx_ref, np.float64, "input gradient")


def test_split_shares_a_tied_window_equally():
    x = np.array([[[[2.0, 2.0], [1.0, 2.0]]]])
    y, idx, dx = run_ours(F.max_pool2d, x, np.array([[[[3.0]]]]), kernel_size=2, tie="split")
    assert y.item() == 2.0 and idx.item() == 0           # the reported index is still the first
    np.testing.assert_allclose(dx, [[[[1.0, 1.0], [0.0, 1.0]]]])
    _, _, dx_first = run_ours(F.max_pool2d, x, np.array([[[[3.0]]]]), kernel_size=2)
    np.testing.assert_allclose(dx_first, [[[[3.0, 0.0], [0.0, 0.0]]]])


def test_ignore_skips_nans_and_an_all_nan_window_stays_nan():
    x = np.array([[[np.nan, 1.0, 4.0, np.nan, np.nan, np.nan]]])
    y, idx, dx = run_ours(F.max_pool1d, x, np.array([[[1.0, 2.0, 3.0]]]), kernel_size=2, nan="ignore")
    np.testing.assert_array_equal(y[0, 0, :2], [1.0, 4.0])
    assert np.isnan(y[0, 0, 2])
    np.testing.assert_array_equal(idx, [[[1, 2, 4]]])       # all-NaN window: its first element
    np.testing.assert_array_equal(dx, [[[0, 1.0, 2.0, 0, 3.0, 0]]])


# ---------------------------------------------------------------- gradient invariants


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_configs(dilation=False, padding=False, stride=False))
def test_max_pool_gradient_sum_is_conserved_and_non_overlapping_windows_copy_it(dtype, case):
    # stride = kernel, no padding: windows do not overlap, so each input receives at most one output's
    # gradient and every output's gradient lands somewhere: the non-zero entries of dx are exactly dy's.
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = distinct_input(shape, dtype, rng)
    for op in (OURS_MAX[n], OURS_MIN[n]):
        y = op(x, **config)
        dy = random_upstream(y.shape, dtype, rng)
        _, _, dx = run_ours(op, x, dy, **config)
        np.testing.assert_allclose(dx.sum(dtype=np.float64), dy.sum(dtype=np.float64), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(np.sort(dx[dx != 0]), np.sort(dy.ravel()))


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_configs())
def test_max_pool_gradient_sum_is_conserved_with_overlap(dtype, case):
    # each output hands its whole gradient to exactly one input, overlapping or not
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = distinct_input(shape, dtype, rng)
    if refused_all_padding(OURS_MAX[n], n, x, config):
        return
    y = OURS_MAX[n](x, **config)
    dy = random_upstream(y.shape, np.float64, rng)
    _, _, dx = run_ours(OURS_MAX[n], x.astype(np.float64), dy, **config)
    np.testing.assert_allclose(dx.sum(), dy.sum(), rtol=1e-10, atol=1e-10)


def test_overlapping_windows_add_up_at_a_shared_maximum():
    x = np.array([[[0.0, 1.0, 9.0, 2.0, 3.0]]])
    _, idx, dx = run_ours(F.max_pool1d, x, np.array([[[1.0, 10.0, 100.0]]]), kernel_size=3, stride=1)
    np.testing.assert_array_equal(idx, [[[2, 2, 2]]])
    np.testing.assert_array_equal(dx, [[[0, 0, 111.0, 0, 0]]])


# ---------------------------------------------------------------- adaptive max pooling


@st.composite
def adaptive_cases(draw):
    n = draw(st.sampled_from([1, 2, 3]))
    spatial = tuple(draw(st.integers(1, 9 if n < 3 else 5)) for _ in range(n))
    out = tuple(draw(st.one_of(st.integers(1, 11 if n < 3 else 6), st.none())) for _ in range(n))
    if n == 1 or (len(set(out)) == 1 and out[0] is not None and draw(st.booleans())):
        out = out[0]
    batch = draw(st.sampled_from([None, 1, 2]))
    channels = draw(st.integers(1, 3))
    shape = ((channels,) if batch is None else (batch, channels)) + spatial
    if n == 1 and out is None:
        out = spatial[0]          # torch's 1d form takes an int only
    return n, shape, out, draw(st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=adaptive_cases(), ties=st.booleans())
def test_adaptive_max_pool_matches_torch(dtype, case, ties):
    n, shape, out, seed = case
    rng = np.random.default_rng(seed)
    x = tied_input(shape, dtype, rng, nan_fraction=0.05) if ties else distinct_input(shape, dtype, rng)
    torch_op = getattr(TF, f"adaptive_max_pool{n}d")
    tidx = torch_op(torch.tensor(x.astype(np.float64)), out, return_indices=True)[1]
    dy = random_upstream(tidx.shape, dtype, rng)
    ty, tdx, _, tdx_scale = torch_reference(lambda t: torch_op(t, out), x, dy, scale_input=x)
    xt = normlab.tensor(x, requires_grad=True)
    y, idx = getattr(F, f"adaptive_max_pool{n}d")(xt, out, return_indices=True)
    y.backward(dy)
    close(y, ty, dtype, "output")
    np.testing.assert_array_equal(idx.detach().numpy(), tidx.detach().numpy(), err_msg="indices")
    close(xt.grad, tdx, dtype, "input gradient", scale=tdx_scale)


# ---------------------------------------------------------------- max unpooling


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_configs(dilation=False), explicit_size=st.booleans())
def test_max_unpool_matches_torch(dtype, case, explicit_size):
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = distinct_input(shape, dtype, rng)
    pool_config = dict(config)
    unpool_config = {key: config[key] for key in ("kernel_size", "stride", "padding") if key in config}
    assume(not has_all_padding_window(n, shape, config))  # torch's indices there point outside the window
    pooled, indices = TORCH_MAX[n](torch.tensor(x), return_indices=True, **pool_config)
    output_size = shape[-n:] if explicit_size else None
    torch_unpool = getattr(TF, f"max_unpool{n}d")
    ours_unpool = getattr(F, f"max_unpool{n}d")
    src = pooled.detach().numpy().copy()
    t = torch_tensor(src.astype(np.float64))
    try:
        ty = torch_unpool(t, indices, output_size=output_size, **unpool_config)
        if ty.numel() == 0:   # torch returns an empty output whose backward fails; we refuse it up front
            raise ValueError("empty output")
    except (ValueError, RuntimeError):
        # torch refuses this size (or an index beyond its default size): so must we, with ValueError
        with pytest.raises(ValueError):
            ours_unpool(src, indices.detach().numpy(), output_size=output_size, **unpool_config)
        return
    dy = random_upstream(ty.shape, dtype, rng)
    ty.backward(torch.tensor(dy.astype(np.float64)))
    xt = normlab.tensor(src, requires_grad=True)
    y = ours_unpool(xt, indices.detach().numpy(), output_size=output_size, **unpool_config)
    y.backward(dy)
    close(y, ty, dtype, "output")         # unpooling moves values: exact in float32 too
    close(xt.grad, t.grad, dtype, "input gradient")


def test_max_unpool_consumes_our_min_pool_indices_and_puts_values_back():
    rng = np.random.default_rng(0)
    x = distinct_input((2, 3, 6, 6), np.float64, rng)
    y, idx = F.min_pool2d(x, 2, return_indices=True)
    restored = F.max_unpool2d(y, idx, 2).detach().numpy()
    assert restored.shape == x.shape
    np.testing.assert_array_equal(restored[restored != 0], x[restored != 0])
    np.testing.assert_array_equal(np.sort(restored[restored != 0]), np.sort(y.detach().numpy().ravel()))


# ---------------------------------------------------------------- modules


@pytest.mark.parametrize("layer,op", [(nn.MaxPool1d, TF.max_pool1d), (nn.MinPool1d, None)])
def test_pool1d_modules_match_functional(layer, op, rng):
    x = distinct_input((2, 3, 11), np.float64, rng)
    module = layer(3, stride=2, padding=1, return_indices=True, ceil_mode=True)
    y, idx = module(x)
    if op is not None:
        ty, tidx = op(torch.tensor(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    else:
        ty, tidx = TF.max_pool1d(-torch.tensor(x), 3, 2, 1, ceil_mode=True, return_indices=True)
        ty = -ty
    close(y, ty, np.float64, "output")
    np.testing.assert_array_equal(idx.detach().numpy(), tidx.detach().numpy())


def test_pool2d_modules_match_torch_and_pass_options(rng):
    x = tied_input((2, 3, 7, 7), np.float64, rng)
    for tie in ("first", "split"):
        module = nn.MaxPool2d((3, 2), stride=(2, 1), padding=1, dilation=(1, 2), tie=tie)
        t_module = torch.nn.MaxPool2d((3, 2), stride=(2, 1), padding=1, dilation=(1, 2))
        xt = normlab.tensor(x, requires_grad=True)
        y = module(xt)
        close(y, t_module(torch.tensor(x)), np.float64, "output")
        dy = random_upstream(y.shape, np.float64, rng)
        y.backward(dy)
        direct = normlab.tensor(x, requires_grad=True)
        F.max_pool2d(direct, (3, 2), (2, 1), 1, (1, 2), tie=tie).backward(dy)
        np.testing.assert_array_equal(xt.grad, direct.grad)
    unpool = nn.MaxUnpool2d(2)
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    close(unpool(y, idx, output_size=x.shape), TF.max_unpool2d(torch.tensor(y.detach().numpy()), torch.tensor(idx.detach().numpy()), 2,
                                                                output_size=x.shape), np.float64, "unpool")


def test_pool3d_modules_match_torch_and_unpool_round_trips(rng):
    x = distinct_input((2, 3, 5, 6, 7), np.float64, rng)
    module = nn.MaxPool3d((3, 2, 2), stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1), return_indices=True,
                          ceil_mode=True)
    t_module = torch.nn.MaxPool3d((3, 2, 2), stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1),
                                  return_indices=True, ceil_mode=True)
    xt = normlab.tensor(x, requires_grad=True)
    y, idx = module(xt)
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = t_module(tx)
    close(y, ty, np.float64, "output")
    np.testing.assert_array_equal(idx.detach().numpy(), tidx.numpy())     # flat (d * H + h) * W + w, as torch
    dy = random_upstream(y.shape, np.float64, rng)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    close(xt.grad, tx.grad, np.float64, "input gradient")
    # MinPool3d is MaxPool3d of -x, indices included
    y_min, idx_min = nn.MinPool3d(2, return_indices=True)(x)
    ty_min, tidx_min = TF.max_pool3d(-torch.tensor(x), 2, return_indices=True)
    close(y_min, -ty_min, np.float64, "min output")
    np.testing.assert_array_equal(idx_min.detach().numpy(), tidx_min.numpy())
    # MaxUnpool3d puts the maxima back where torch does
    pooled, indices = nn.MaxPool3d(2, return_indices=True)(x)
    t_pooled, t_indices = TF.max_pool3d(torch.tensor(x), 2, return_indices=True)
    restored = nn.MaxUnpool3d(2)(pooled, indices, output_size=x.shape)
    close(restored, torch.nn.MaxUnpool3d(2)(t_pooled, t_indices, output_size=x.shape), np.float64, "unpool")
