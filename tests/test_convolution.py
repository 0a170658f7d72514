"""conv1d / conv2d / conv3d and Conv1d / Conv2d / Conv3d against PyTorch (the oracle).

float64 against torch in float64; float32 against torch in float64 on the
same values within float32 rounding of the sums involved (see
``tests/conv_oracle.py``), never against torch's float32.
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
from normlab.ops import winograd
from tests.conv_oracle import assert_same_module_layout, compare, compare_modules
from tests.oracle import numerical_gradient, random_upstream

# torch warns that it copies the input for an even 'same' kernel; that is torch's business, not a failure.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")

DTYPES = [np.float64, np.float32]
TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}
OURS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
THEIRS = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}


def check_against_torch(dims, x, w, b, dtype, rng, needs=None, **options):
    """Output, input, weight and bias gradients of conv{dims}d against torch (random upstream gradient)."""
    compare(lambda *t: OURS[dims](*t, **options), lambda *t: THEIRS[dims](*t, **options), [x, w, b], dtype, rng,
            what=f"conv{dims}d {options}", needs=needs)


def algorithm(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """The algorithm conv_forward picks for these arguments (to know which path a test covers)."""
    dims = len(x_shape) - 2
    pairs = F.convolution.padding_pairs(padding if isinstance(padding, str) else
                                        ((padding,) * dims if isinstance(padding, int) else padding),
                                        w_shape[2:], (dilation,) * dims if isinstance(dilation, int) else dilation)
    return conv_ops._geometry(x_shape, w_shape, stride, pairs, dilation, groups, dims).algorithm


# ----------------------------------------------------------------------------
# Hypothesis sweeps over the option matrix
# ----------------------------------------------------------------------------

@st.composite
def conv_case(draw, dims):
    groups_kind = draw(st.sampled_from(["one", "several", "depthwise", "wide"]))
    if groups_kind == "one":
        groups, in_per_group = 1, draw(st.integers(1, 4))
    elif groups_kind == "wide":  # enough channels for Winograd when the kernel is 3x3, stride 1, undilated
        groups, in_per_group = 1, draw(st.integers(8, 10))
    elif groups_kind == "several":
        groups, in_per_group = draw(st.integers(2, 3)), draw(st.integers(1, 3))
    else:
        groups, in_per_group = draw(st.integers(1, 4)), 1
    out_per_group = draw(st.integers(1, 3))
    small = dims == 3  # keep 3-d cases small
    if groups_kind == "wide" and draw(st.booleans()):
        kernel, dilation, stride_kind = (3,) * dims, (1,) * dims, "one"
    else:
        kernel = tuple(draw(st.integers(1, 3 if small else 4)) for _ in range(dims))
        dilation = tuple(draw(st.integers(1, 2 if small else 3)) for _ in range(dims))
        stride_kind = draw(st.sampled_from(["one", "any"]))
    padding_kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    if padding_kind == "same" or stride_kind == "one":
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
        spatial = tuple(draw(st.integers(1, 5 if small else 9)) for _ in range(dims))
    else:
        spatial = tuple(max(1, e - 2 * p) + draw(st.integers(0, 3 if small else 6)) for e, p in zip(extent, pads))
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


@pytest.mark.parametrize("dims", [1, 2, 3])
@given(data=st.data())
@settings(max_examples=40)
def test_conv_matches_torch(dims, data):
    shape, weight_shape, bias, dtype, seed, options = data.draw(conv_case(dims))
    rng, x, w, b = _draw_arrays(shape, weight_shape, bias, dtype, seed)
    check_against_torch(dims, x, w, b, dtype, rng, **options)


def test_the_sweeps_reach_every_algorithm():
    """The option sweep above covers each of the four algorithms (checked on cases it draws)."""
    seen = {algorithm((2, 9, 6, 6), (4, 9, 3, 3), padding=1),               # wide, 3x3: Winograd
            algorithm((2, 3, 6, 6), (4, 3, 1, 1)),                          # 1x1: pointwise
            algorithm((2, 3, 6, 6), (6, 1, 3, 2), groups=3),                # depthwise
            algorithm((2, 3, 6, 6), (4, 3, 3, 3), stride=2)}                # im2col
    assert seen == {"winograd", "pointwise", "depthwise", "im2col"}


# ----------------------------------------------------------------------------
# Winograd F(2x2, 3x3): odd and even sizes, every padding, blocks within a sample
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,padding", [((7, 9), 1), ((6, 6), 0), ((5, 4), 2), ((9, 8), (0, 1)), ((3, 3), 1),
                                          ((8, 11), "same"), ((4, 3), (2, 0))])
def test_winograd_matches_torch(size, padding, dtype, rng):
    x = rng.standard_normal((3, 9) + size)
    w = rng.standard_normal((5, 9, 3, 3)) / 9
    b = rng.standard_normal(5)
    assert algorithm(x.shape, w.shape, padding=padding) == "winograd"
    check_against_torch(2, x, w, b, dtype, rng, padding=padding)
    check_against_torch(2, x, w, None, dtype, rng, needs=[False, True, False], padding=padding)  # dW alone
    check_against_torch(2, x, w, b, dtype, rng, needs=[True, False, False], padding=padding)     # dx alone


@pytest.mark.parametrize("tiles", [1, 5, 40])
def test_winograd_blocks_of_every_size_match_torch(tiles, monkeypatch, rng):
    """One tile per block, part of a tile row, several rows, several samples: all give torch's result."""
    monkeypatch.setattr(winograd, "_BLOCK_TILES_RANGE", (tiles, tiles))
    x = rng.standard_normal((3, 8, 11, 13))
    w = rng.standard_normal((4, 8, 3, 3))
    check_against_torch(2, x, w, rng.standard_normal(4), np.float64, rng, padding=1)


def test_winograd_float32_is_as_accurate_as_float32_rounding_allows(rng):
    """A 64-channel 3x3 layer: float32 within 16 roundings of the sums of |terms| of the exact result."""
    x = rng.standard_normal((2, 64, 14, 14))
    w = rng.standard_normal((32, 64, 3, 3)) / 24
    check_against_torch(2, x, w, rng.standard_normal(32), np.float32, rng, padding=1)


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
    tasks = conv_ops._tiles(3, 4 * 3 * 2, 6, 6, np.dtype(dtype).itemsize)
    tiles = [tile for task in tasks for tile in task]
    covered = sorted((n, row) for start, stop, r0, r1 in tiles for n in range(start, stop) for row in range(r0, r1))
    assert covered == [(n, row) for n in range(3) for row in range(6)]  # every output row exactly once
    assert len(tiles) == {1: 18, 10 ** 6: 1}.get(budget, len(tiles))
    # A sample's tiles stay in one task, in order (col2im adds their overlapping rows in turn).
    for task in tasks:
        assert len({n for start, stop, _, _ in task for n in range(start, stop)}) == (task[0][1] - task[0][0])
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
    expected = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    np.testing.assert_allclose(F.conv2d(x, w, padding=1).numpy(), expected, rtol=1e-12, atol=1e-12)
    x9 = rng.standard_normal((2, 6, 7, 9)).transpose(0, 3, 1, 2)  # Winograd's path, not contiguous
    w9 = rng.standard_normal((4, 9, 3, 3))
    expected = TF.conv2d(torch.tensor(x9), torch.tensor(w9), padding=1).numpy()
    np.testing.assert_allclose(F.conv2d(x9, w9, padding=1).numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape,w_shape,options", [
    ((2, 9, 6, 6), (4, 9, 3, 3), dict(padding=1)),            # Winograd
    ((2, 3, 6, 6), (4, 3, 3, 3), dict(stride=2)),             # im2col
    ((2, 3, 6, 6), (4, 3, 1, 1), {}),                         # pointwise
    ((2, 3, 6, 6), (3, 1, 3, 3), dict(groups=3, padding=1)),  # depthwise
], ids=["winograd", "im2col", "pointwise", "depthwise"])
def test_saved_arrays_are_safe_from_callers(x_shape, w_shape, options, rng):
    """The op keeps x and the weight by reference: a tracked in-place change is refused at backward;
    writing into the returned output, or into the gradients handed back, changes nothing the op keeps."""
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    xn, wn = normlab.tensor(x.copy(), requires_grad=True), normlab.tensor(w.copy(), requires_grad=True)
    y = F.conv2d(xn, wn, **options)
    g = random_upstream(y.shape, np.float64, rng)
    g_before = g.copy()
    np.asarray(y)[...] = 123.0  # the caller scribbles on the output: y is not saved state
    y.backward(g)
    np.testing.assert_array_equal(g, g_before)  # backward left the given gradient alone
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    TF.conv2d(xt, wt, **options).backward(torch.tensor(g))
    np.testing.assert_allclose(np.asarray(xn.grad), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(wn.grad), wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    # In-place changes of a saved input through normlab are caught (torch's version counters).
    xn2 = normlab.tensor(x.copy(), requires_grad=True)
    y2 = F.conv2d(xn2, wn, **options)
    with normlab.no_grad():
        xn2.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y2.backward(g)


def test_read_only_input_and_weight(rng):
    x = rng.standard_normal((2, 9, 6, 6))
    w = rng.standard_normal((4, 9, 3, 3))
    x.flags.writeable = w.flags.writeable = False
    check_against_torch(2, x, w, None, np.float64, rng, padding=1)
    y = F.conv2d(x, w, padding=1)
    assert y.numpy().flags.writeable


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
    np.testing.assert_allclose(np.asarray(w.grad), wt.grad.numpy(), rtol=1e-10, atol=1e-12)


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


MODULES = {1: (nn.Conv1d, torch.nn.Conv1d, 3, (3, 4, 7)), 2: (nn.Conv2d, torch.nn.Conv2d, (3, 2), (3, 4, 7, 6)),
           3: (nn.Conv3d, torch.nn.Conv3d, (2, 3, 2), (2, 4, 4, 5, 3))}


def _module_pair(dims, config, dtype=np.float64):
    ours_cls, torch_cls, kernel, _ = MODULES[dims]
    ours = ours_cls(4, 8, kernel, dtype=dtype, **config)
    theirs = torch_cls(4, 8, kernel, dtype=torch.float64, **config)
    return ours, theirs


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("config", MODULE_CONFIGS, ids=str)
def test_module_state_dict_repr_and_attributes_match_torch(dims, config):
    assert_same_module_layout(*_module_pair(dims, config))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("config", MODULE_CONFIGS, ids=str)
def test_module_forward_backward_match_torch(dims, config, dtype, rng):
    ours, theirs = _module_pair(dims, config, dtype)
    x = rng.standard_normal(MODULES[dims][3])
    compare_modules(ours, theirs, x, dtype, rng)
    compare_modules(ours, theirs, x[0], dtype, rng)  # unbatched


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
    with pytest.raises(ValueError, match="Conv2d: mode 'reflect' needs each pad smaller than its dimension"):
        conv(_x(1, 3, 1, 5))
    with pytest.raises(ValueError, match="Conv1d: mode 'circular' needs each pad at most its dimension"):
        nn.Conv1d(3, 4, 5, padding=3, padding_mode="circular")(_x(1, 3, 2))
    with pytest.raises(TypeError, match="Conv1d: expected a floating-point input"):
        nn.Conv1d(3, 4, 3)(np.zeros((1, 3, 5), np.int32))
    np.testing.assert_array_equal(conv.weight.detach().numpy(), weight)
