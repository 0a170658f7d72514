"""conv1d / conv2d and Conv1d / Conv2d against PyTorch (the oracle).

Tolerances used here:

    float64: rtol 1e-10, atol 1e-12  (tighter than the shared table's 1e-9)
    float32: rtol 2e-5,  atol 2e-5 * rms(torch's result)

The float32 atol is scaled because an element that is the small difference of
large terms carries the rounding error of those terms, not of itself; the
scale is the root-mean-square of the reference array (a few summands' worth).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.ops import convolution as conv_ops
from tests.oracle import numerical_gradient, random_upstream, to_numpy

# torch warns that it copies the input for an even 'same' kernel; that is torch's business, not a failure.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")

DTYPES = [np.float64, np.float32]
TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}


def assert_matches(actual, expected, dtype, what):
    a, e = to_numpy(actual), to_numpy(expected)
    assert a is not None, f"{what}: normlab gave None"
    assert a.shape == e.shape, f"{what}: shape {a.shape} != torch's {e.shape}"
    if np.dtype(dtype) == np.float64:
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12, err_msg=what)
    else:
        scale = float(np.sqrt(np.mean(np.square(e.astype(np.float64))))) if e.size else 1.0
        np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-5 * max(scale, 1e-3), err_msg=what)


def run_both(dims, x, w, b, dtype, rng, **options):
    """Forward and backward (random upstream gradient) in normlab and torch; returns both sets of results."""
    ours_fn, torch_fn = (F.conv1d, TF.conv1d) if dims == 1 else (F.conv2d, TF.conv2d)
    xn = normlab.tensor(x, requires_grad=True)
    wn = normlab.tensor(w, requires_grad=True)
    bn = normlab.tensor(b, requires_grad=True) if b is not None else None
    y = ours_fn(xn, wn, bn, **options)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if b is not None else None
    yt = torch_fn(xt, wt, bt, **options)
    g = random_upstream(tuple(yt.shape), dtype, rng)
    y.backward(g)
    yt.backward(torch.tensor(g))
    ours = (y, xn.grad, wn.grad, bn.grad if bn is not None else None)
    theirs = (yt, xt.grad, wt.grad, bt.grad if bt is not None else None)
    return ours, theirs


def check_against_torch(dims, x, w, b, dtype, rng, **options):
    ours, theirs = run_both(dims, x, w, b, dtype, rng, **options)
    for name, a, e in zip(("output", "input grad", "weight grad", "bias grad"), ours, theirs):
        if e is None:
            assert a is None, f"{name}: torch has none, normlab has one"
            continue
        assert a.dtype == np.dtype(dtype), f"{name}: dtype {a.dtype} != {np.dtype(dtype)}"
        assert_matches(a, e, dtype, f"{name} ({options})")


# ----------------------------------------------------------------------------
# Hypothesis sweeps over the option matrix
# ----------------------------------------------------------------------------

@st.composite
def conv_case(draw, dims):
    groups_kind = draw(st.sampled_from(["one", "several", "depthwise"]))
    if groups_kind == "one":
        groups, in_per_group = 1, draw(st.integers(1, 4))
    elif groups_kind == "several":
        groups, in_per_group = draw(st.integers(2, 3)), draw(st.integers(1, 3))
    else:
        groups, in_per_group = draw(st.integers(1, 4)), 1
    out_per_group = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    padding_kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    if padding_kind == "same":
        stride = (1,) * dims
    else:
        stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    if padding_kind == "int":
        padding = draw(st.integers(0, 3))
        pads = (padding,) * dims
    elif padding_kind == "tuple":
        pads = tuple(draw(st.integers(0, 3)) for _ in range(dims))
        padding = pads
    else:
        padding, pads = padding_kind, (0,) * dims
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if padding == "same":
        spatial = tuple(draw(st.integers(1, 9)) for _ in range(dims))
    else:
        spatial = tuple(max(1, e - 2 * p) + draw(st.integers(0, 6)) for e, p in zip(extent, pads))
    batch = draw(st.sampled_from([None, 1, 2, 3]))  # None: unbatched input
    bias = draw(st.booleans())
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2 ** 16))
    channels = groups * in_per_group
    shape = ((batch,) if batch is not None else ()) + (channels,) + spatial
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if draw(st.booleans()):  # a plain int where every dimension agrees, as well as tuples
        options.update({k: v[0] for k, v in (("stride", stride), ("dilation", dilation)) if len(set(v)) == 1})
    return shape, (groups * out_per_group, in_per_group) + kernel, bias, dtype, seed, options


def _draw_arrays(shape, weight_shape, bias, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(weight_shape).astype(dtype)
    b = rng.standard_normal(weight_shape[0]).astype(dtype) if bias else None
    return rng, x, w, b


@given(conv_case(2))
@settings(max_examples=60)
def test_conv2d_matches_torch(case):
    shape, weight_shape, bias, dtype, seed, options = case
    rng, x, w, b = _draw_arrays(shape, weight_shape, bias, dtype, seed)
    check_against_torch(2, x, w, b, dtype, rng, **options)


@given(conv_case(1))
@settings(max_examples=40)
def test_conv1d_matches_torch(case):
    shape, weight_shape, bias, dtype, seed, options = case
    rng, x, w, b = _draw_arrays(shape, weight_shape, bias, dtype, seed)
    check_against_torch(1, x, w, b, dtype, rng, **options)


# ----------------------------------------------------------------------------
# The tiling of the columns: whole samples per GEMM, or one sample cut in row blocks
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [1, 700, 5_000, 10 ** 6])
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_every_tiling_matches_torch(budget, dtype, monkeypatch, rng):
    """A budget of 1 byte gives one output row per tile; a large one several samples per GEMM."""
    monkeypatch.setattr(conv_ops, "_COLUMN_BUDGET_BYTES", budget)
    x = rng.standard_normal((3, 4, 11, 9)).astype(dtype)
    w = rng.standard_normal((6, 2, 3, 2)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    tiles = conv_ops._tiles(3, 4 * 3 * 2, 6, 6, np.dtype(dtype).itemsize)
    covered = sorted((n, row) for start, stop, r0, r1 in tiles for n in range(start, stop) for row in range(r0, r1))
    assert covered == [(n, row) for n in range(3) for row in range(6)]  # every output row exactly once
    assert len(tiles) == {1: 18, 10 ** 6: 1}.get(budget, len(tiles))
    check_against_torch(2, x, w, b, dtype, rng, stride=(2, 2), padding=(1, 2), dilation=(1, 2), groups=2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pointwise_conv_without_im2col_matches_torch(dtype, rng):
    """A 1x1 kernel with stride 1 and no padding skips im2col: the input is its own column matrix."""
    x = rng.standard_normal((3, 6, 5, 7)).astype(dtype)
    w = rng.standard_normal((4, 3, 1, 1)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    check_against_torch(2, x, w, b, dtype, rng, groups=2)
    check_against_torch(2, x, w[:, :1].repeat(6, axis=1), b, dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_larger_conv2d_matches_torch(dtype, rng):
    """A ResNet-like layer large enough for several tiles and long GEMM sums."""
    x = rng.standard_normal((4, 16, 20, 20)).astype(dtype)
    w = (rng.standard_normal((24, 16, 3, 3)) / 12).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    check_against_torch(2, x, w, b, dtype, rng, padding=1)
    check_against_torch(2, x, w, b, dtype, rng, stride=2, padding=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multiplier,stride,padding,dilation", [
    (1, 1, 1, 1), (2, 2, (2, 0), (1, 3)), (3, (1, 2), "same", 2), (1, 3, "valid", 1)])
def test_depthwise_matches_torch(multiplier, stride, padding, dilation, dtype, rng):
    """groups == in_channels takes the direct depthwise loops (output channel o reads channel o // multiplier)."""
    x = rng.standard_normal((2, 4, 9, 10)).astype(dtype)
    w = rng.standard_normal((4 * multiplier, 1, 3, 2)).astype(dtype)
    b = rng.standard_normal(4 * multiplier).astype(dtype)
    if padding == "same":
        stride = 1
    check_against_torch(2, x, w, b, dtype, rng, stride=stride, padding=padding, dilation=dilation, groups=4)
    dilation_1d = dilation if isinstance(dilation, int) else dilation[1]
    check_against_torch(1, x[:, :, 0], w[:, :, 0], b, dtype, rng, stride=1, padding=1, dilation=dilation_1d, groups=4)


def test_depthwise_float32_weight_grad_is_accumulated_in_float64(rng):
    """dW sums N * H_out * W_out products; the float32 result must stay within float32 rounding of the exact sum."""
    x = rng.standard_normal((8, 3, 64, 64)).astype(np.float32)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    g = rng.standard_normal((8, 3, 64, 64)).astype(np.float32)
    wn = normlab.tensor(w, requires_grad=True)
    F.conv2d(x, wn, padding=1, groups=3).backward(g)
    wt = torch.tensor(w.astype(np.float64), requires_grad=True)
    TF.conv2d(torch.tensor(x.astype(np.float64)), wt, padding=1, groups=3).backward(torch.tensor(g.astype(np.float64)))
    exact = wt.grad.detach().numpy()
    # Within a few float32 roundings of the largest entry: a float32 running sum over these
    # 32768 terms (torch's float32 result) misses by about 40 roundings here.
    error = np.abs(wn.grad - exact).max()
    assert error <= 4 * np.finfo(np.float32).eps * np.abs(exact).max(), error


def test_non_contiguous_and_plain_array_inputs(rng):
    x = rng.standard_normal((2, 5, 6, 3)).transpose(0, 3, 1, 2)  # (2, 3, 5, 6), not contiguous
    w = rng.standard_normal((4, 3, 2, 2))
    expected = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1)
    assert_matches(F.conv2d(x, w, padding=1), expected, np.float64, "non-contiguous input")


def test_empty_batch_gives_empty_output_and_zero_weight_grad(rng):
    x = np.zeros((0, 3, 5, 5))
    w = normlab.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    assert y.shape == tuple(TF.conv2d(torch.tensor(x), torch.tensor(w.detach().numpy()), padding=1).shape)
    y.backward(np.zeros(y.shape))
    np.testing.assert_array_equal(w.grad, np.zeros(w.shape))


def test_only_the_requested_gradients_are_computed(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    w = normlab.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    b = normlab.tensor(rng.standard_normal(4), requires_grad=False)
    xn = normlab.tensor(x)  # no gradient wanted: col2im is skipped
    y = F.conv2d(xn, w, b, padding=1)
    g = random_upstream(y.shape, np.float64, rng)
    y.backward(g)
    wt = torch.tensor(w.detach().numpy(), requires_grad=True)
    TF.conv2d(torch.tensor(x), wt, torch.tensor(b.detach().numpy()), padding=1).backward(torch.tensor(g))
    assert xn.grad is None and b.grad is None
    assert_matches(w.grad, wt.grad, np.float64, "weight grad")


# ----------------------------------------------------------------------------
# 'same' padding: torch's asymmetric split
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("kernel,dilation", [(2, 1), (4, 1), (3, 2), (2, 3), (5, 1)])
def test_same_padding_puts_the_odd_pixel_after(kernel, dilation, rng):
    """total = d (k - 1); torch pads total // 2 before and the rest after."""
    total = dilation * (kernel - 1)
    assert conv_ops.same_padding(kernel, dilation) == (total // 2, total - total // 2)
    x = rng.standard_normal((2, 2, 7, 8))
    w = rng.standard_normal((3, 2, kernel, kernel))
    check_against_torch(2, x, w, None, np.float64, rng, padding="same", dilation=dilation)
    check_against_torch(1, x[:, :, 0], w[:, :, 0], None, np.float64, rng, padding="same", dilation=dilation)


# ----------------------------------------------------------------------------
# Numerical gradients (float64)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("dims", [1, 2])
def test_numerical_gradient(dims, rng):
    spatial = (5,) if dims == 1 else (5, 4)
    kernel = (3,) if dims == 1 else (3, 2)
    x = rng.standard_normal((2, 4) + spatial)
    w = rng.standard_normal((4, 2) + kernel)
    b = rng.standard_normal(4)
    options = dict(stride=2, padding=1, dilation=1, groups=2) if dims == 1 else \
        dict(stride=(1, 2), padding=(2, 1), dilation=(1, 2), groups=2)
    fn = F.conv1d if dims == 1 else F.conv2d
    y0 = fn(x, w, b, **options)
    g = random_upstream(y0.shape, np.float64, rng)

    def loss():
        return float((fn(x, w, b, **options).detach().numpy() * g).sum())

    tensors = [normlab.tensor(a, requires_grad=True) for a in (x, w, b)]
    fn(*tensors, **options).backward(g)
    for name, array, t in zip(("input", "weight", "bias"), (x, w, b), tensors):
        np.testing.assert_allclose(t.grad, numerical_gradient(loss, array), rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_numerical_gradient_through_padding_modes(mode, rng):
    conv = nn.Conv2d(2, 3, 3, padding=(2, 1), padding_mode=mode, dtype=np.float64)
    x = rng.standard_normal((1, 2, 4, 5))
    g = random_upstream(conv(x).shape, np.float64, rng)
    xn = normlab.tensor(x, requires_grad=True)
    conv(xn).backward(g)
    numeric = numerical_gradient(lambda: float((conv(x).detach().numpy() * g).sum()), x)
    np.testing.assert_allclose(xn.grad, numeric, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------

MODULE_CONFIGS = [
    dict(),
    dict(stride=2, padding=1),
    dict(padding="same", dilation=2),
    dict(padding="valid", groups=2, bias=False),
    dict(padding=2, groups=4, padding_mode="reflect"),
    dict(padding="same", padding_mode="replicate"),
    dict(padding=1, stride=2, padding_mode="circular"),
]


def _module_pair(dims, config, dtype=np.float64):
    ours_cls, torch_cls = (nn.Conv1d, torch.nn.Conv1d) if dims == 1 else (nn.Conv2d, torch.nn.Conv2d)
    kernel = 3 if dims == 1 else (3, 2)
    ours = ours_cls(4, 8, kernel, dtype=dtype, **config)
    theirs = torch_cls(4, 8, kernel, dtype=TORCH_DTYPE[np.dtype(dtype)], **config)
    return ours, theirs


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("config", MODULE_CONFIGS, ids=str)
def test_module_state_dict_repr_and_attributes_match_torch(dims, config):
    ours, theirs = _module_pair(dims, config)
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key in theirs_state:
        assert ours_state[key].shape == tuple(theirs_state[key].shape), key
    assert repr(ours) == repr(theirs)
    for attribute in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                      "padding_mode", "output_padding", "transposed", "_reversed_padding_repeated_twice"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("config", MODULE_CONFIGS, ids=str)
def test_module_forward_backward_match_torch(dims, config, dtype, rng):
    ours, theirs = _module_pair(dims, config, dtype)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    shape = (3, 4, 7) if dims == 1 else (3, 4, 7, 6)
    x = rng.standard_normal(shape).astype(dtype)
    for batched in (True, False):
        xi = x if batched else x[0]
        xn, xt = normlab.tensor(xi, requires_grad=True), torch.tensor(xi, requires_grad=True)
        ours.zero_grad()
        theirs.zero_grad()
        y, yt = ours(xn), theirs(xt)
        g = random_upstream(tuple(yt.shape), dtype, rng)
        y.backward(g)
        yt.backward(torch.tensor(g))
        assert_matches(y, yt, dtype, "output")
        assert_matches(xn.grad, xt.grad, dtype, "input grad")
        assert_matches(ours.weight.grad, theirs.weight.grad, dtype, "weight grad")
        if theirs.bias is not None:
            assert_matches(ours.bias.grad, theirs.bias.grad, dtype, "bias grad")


@pytest.mark.parametrize("cls,kernel", [(nn.Conv1d, 5), (nn.Conv2d, (3, 4))])
def test_default_init_follows_torch(cls, kernel):
    """kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the weight; the same bound on the bias."""
    conv = cls(48, 64, kernel, groups=2, dtype=np.float64)
    fan_in = 24 * int(np.prod(kernel))
    bound = 1 / np.sqrt(fan_in)
    weight, bias = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    assert np.abs(weight).max() <= bound and np.abs(bias).max() <= bound
    assert abs(weight.std() - bound / np.sqrt(3)) < 0.05 * bound / np.sqrt(3)
    assert np.abs(weight).max() > 0.95 * bound
    assert conv.weight.dtype == np.float64 and nn.Conv2d(2, 2, 1).weight.dtype == np.float32


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------

def _x(*shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


BAD_FUNCTIONAL = [
    ("integer input", lambda: F.conv2d(np.zeros((1, 2, 4, 4), np.int64), _x(3, 2, 3, 3)), TypeError,
     "conv2d: expected a floating-point input"),
    ("dtype mismatch", lambda: F.conv2d(_x(1, 2, 4, 4), _x(3, 2, 3, 3, dtype=np.float64)), TypeError,
     "conv2d: expected weight of the input's dtype float32, got float64"),
    ("bias dtype", lambda: F.conv1d(_x(1, 2, 4), _x(3, 2, 3), _x(3, dtype=np.float64)), TypeError,
     "conv1d: expected bias of the input's dtype"),
    ("input rank", lambda: F.conv2d(_x(2, 4, 4, 4, 1), _x(3, 2, 3, 3)), ValueError,
     "conv2d: expected 3D or 4D input"),
    ("input rank 1d", lambda: F.conv1d(_x(4, 4, 4, 4), _x(3, 4, 3)), ValueError, "conv1d: expected 2D or 3D input"),
    ("weight rank", lambda: F.conv2d(_x(1, 2, 4, 4), _x(3, 2, 3)), ValueError, "conv2d: expected 4D weight"),
    ("channels", lambda: F.conv2d(_x(1, 5, 4, 4), _x(3, 2, 3, 3)), ValueError,
     "conv2d: expected input with 2 channels (weight.shape[1]=2 x groups=1), got 5 channels"),
    ("channels with groups", lambda: F.conv1d(_x(1, 4, 6), _x(4, 2, 3), groups=3), ValueError,
     "conv1d: expected input with 6 channels (weight.shape[1]=2 x groups=3), got 4"),
    ("out channels vs groups", lambda: F.conv2d(_x(1, 4, 4, 4), _x(3, 2, 3, 3), groups=2), ValueError,
     "conv2d: expected out_channels (weight.shape[0]=3) to be divisible by groups=2"),
    ("groups zero", lambda: F.conv2d(_x(1, 2, 4, 4), _x(3, 2, 3, 3), groups=0), ValueError,
     "conv2d: expected groups to be a positive integer, got 0"),
    ("bias shape", lambda: F.conv2d(_x(1, 2, 4, 4), _x(3, 2, 3, 3), _x(4)), ValueError,
     "conv2d: expected bias of shape (3,), got (4,)"),
    ("kernel too large", lambda: F.conv2d(_x(1, 2, 4, 4), _x(3, 2, 5, 3)), ValueError,
     "conv2d: expected the dilated kernel (5, 3) to fit in the padded input (4, 4)"),
    ("dilated kernel too large", lambda: F.conv1d(_x(1, 2, 6), _x(3, 2, 3), dilation=3), ValueError,
     "conv1d: expected the dilated kernel (7,) to fit in the padded input (6,)"),
    ("bad padding string", lambda: F.conv2d(_x(1, 2, 4, 4), _x(3, 2, 3, 3), padding="full"), ValueError,
     "conv2d: expected padding to be 'same', 'valid', an int or a tuple of 2 ints, got 'full'"),
    ("same with stride", lambda: F.conv2d(_x(1, 2, 4, 4), _x(3, 2, 3, 3), stride=2, padding="same"), ValueError,
     "conv2d: padding='same' is not supported for strided convolutions"),
    ("negative padding", lambda: F.conv2d(_x(1, 2, 4, 4), _x(3, 2, 3, 3), padding=-1), ValueError,
     "conv2d: expected every padding to be >= 0"),
    ("zero stride", lambda: F.conv1d(_x(1, 2, 4), _x(3, 2, 3), stride=0), ValueError,
     "conv1d: expected every stride to be >= 1"),
    ("stride tuple length", lambda: F.conv2d(_x(1, 2, 4, 4), _x(3, 2, 3, 3), stride=(1, 1, 1)), ValueError,
     "conv2d: expected stride to be an int or a tuple of 2 ints"),
    ("empty spatial", lambda: F.conv2d(_x(1, 2, 0, 4), _x(3, 2, 1, 1)), ValueError,
     "conv2d: expected non-zero channel and spatial sizes"),
]


@pytest.mark.parametrize("what,call,error,message", BAD_FUNCTIONAL, ids=[c[0] for c in BAD_FUNCTIONAL])
def test_functional_bad_input(what, call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


BAD_MODULE = [
    ("groups divide in", lambda: nn.Conv2d(3, 4, 3, groups=2), "Conv2d: expected in_channels=3 to be divisible by groups=2"),
    ("groups divide out", lambda: nn.Conv1d(4, 3, 3, groups=2), "Conv1d: expected out_channels=3 to be divisible by groups=2"),
    ("groups positive", lambda: nn.Conv2d(4, 4, 3, groups=0), "Conv2d: expected groups to be a positive integer"),
    ("padding mode", lambda: nn.Conv2d(2, 2, 3, padding_mode="mirror"), "Conv2d: expected padding_mode to be one of"),
    ("same strided", lambda: nn.Conv1d(2, 2, 3, stride=2, padding="same"),
     "Conv1d: padding='same' is not supported for strided convolutions"),
    ("padding string", lambda: nn.Conv2d(2, 2, 3, padding="half"), "Conv2d: expected padding to be 'same', 'valid'"),
    ("kernel size", lambda: nn.Conv2d(2, 2, 0), "Conv2d: expected every kernel_size to be >= 1"),
    ("channels", lambda: nn.Conv2d(0, 2, 3), "Conv2d: expected in_channels to be a positive integer"),
    ("device", lambda: nn.Conv2d(2, 2, 3, device="cuda"), "Conv2d: normlab runs on the CPU only"),
]


@pytest.mark.parametrize("what,call,message", BAD_MODULE, ids=[c[0] for c in BAD_MODULE])
def test_module_bad_arguments(what, call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)


def test_module_bad_input_names_the_module_and_leaves_parameters_alone():
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
    weight = conv.weight.detach().numpy().copy()
    with pytest.raises(ValueError, match="Conv2d: expected input with 3 channels"):
        conv(_x(1, 2, 5, 5))
    with pytest.raises(ValueError, match="Conv2d: expected 3D or 4D input"):
        conv(_x(5, 5))
    with pytest.raises(ValueError, match="Conv2d: padding_mode='reflect' needs padding smaller than the input size"):
        conv(_x(1, 3, 1, 5))
    with pytest.raises(ValueError, match="Conv1d: padding_mode='circular' needs padding at most the input size"):
        nn.Conv1d(3, 4, 5, padding=3, padding_mode="circular")(_x(1, 3, 2))
    with pytest.raises(TypeError, match="Conv1d: expected a floating-point input"):
        nn.Conv1d(3, 4, 3)(np.zeros((1, 3, 5), np.int32))
    np.testing.assert_array_equal(conv.weight.detach().numpy(), weight)
