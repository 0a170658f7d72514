"""conv_transpose1d/2d/3d and ConvTranspose1d/2d/3d against PyTorch (the oracle).

float64 against torch in float64; float32 against torch in float64 on the
same values within float32 rounding (``tests/conv_oracle.py``).
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
from tests.conv_oracle import assert_same_module_layout, compare, compare_modules
from tests.oracle import numerical_gradient, random_upstream

DTYPES = [np.float64, np.float32]
OURS = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
THEIRS = {1: TF.conv_transpose1d, 2: TF.conv_transpose2d, 3: TF.conv_transpose3d}


def check_against_torch(dims, x, w, b, dtype, rng, needs=None, **options):
    compare(lambda *t: OURS[dims](*t, **options), lambda *t: THEIRS[dims](*t, **options), [x, w, b], dtype, rng,
            what=f"conv_transpose{dims}d {options}", needs=needs)


@st.composite
def transpose_case(draw, dims):
    """Channels, groups (incl. depthwise and Winograd-sized), kernel, stride, padding, dilation, output_padding."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    in_per_group = draw(st.integers(1, 3)) if draw(st.booleans()) else 9
    out_per_group = draw(st.sampled_from([1, 2, 3, 9]))
    small = dims == 3
    if draw(st.booleans()):
        kernel, stride, dilation = (3,) * dims, (1,) * dims, (1,) * dims  # the Winograd path when wide enough
    else:
        kernel = tuple(draw(st.integers(1, 3 if small else 4)) for _ in range(dims))
        stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
        dilation = tuple(draw(st.integers(1, 2 if small else 3)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, (d * (k - 1)) // 2 + 1)) for k, d in zip(kernel, dilation))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    spatial = tuple(draw(st.integers(1, 4 if small else 6)) for _ in range(dims))
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                for n, s, p, d, k, op in zip(spatial, stride, padding, dilation, kernel, output_padding))
    if any(o <= 0 for o in out):  # torch refuses an empty output; so do we (tested below)
        padding = (0,) * dims
    batch = draw(st.sampled_from([None, 1, 2]))
    shape = ((batch,) if batch is not None else ()) + (groups * in_per_group,) + spatial
    weight_shape = (groups * in_per_group, out_per_group) + kernel
    options = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    return shape, weight_shape, draw(st.booleans()), draw(st.sampled_from(DTYPES)), draw(st.integers(0, 2 ** 16)), options


@pytest.mark.parametrize("dims", [1, 2, 3])
@given(data=st.data())
@settings(max_examples=30)
def test_conv_transpose_matches_torch(dims, data):
    shape, weight_shape, bias, dtype, seed, options = data.draw(transpose_case(dims))
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(shape), rng.standard_normal(weight_shape)
    b = rng.standard_normal(weight_shape[1] * options["groups"]) if bias else None
    check_against_torch(dims, x, w, b, dtype, rng, **options)


@pytest.mark.parametrize("dtype", DTYPES)
def test_decoder_upsampling_layer_matches_torch(dtype, rng):
    """The usual decoder layer: 3x3, stride 2, padding 1, output_padding 1 doubles the size."""
    x = rng.standard_normal((4, 16, 7, 7))
    w = rng.standard_normal((16, 8, 3, 3)) / 12
    check_against_torch(2, x, w, rng.standard_normal(8), dtype, rng, stride=2, padding=1, output_padding=1)


@pytest.mark.parametrize("needs", [[True, False, False], [False, True, True], [False, False, True]])
def test_only_the_requested_gradients_are_computed(needs, rng):
    x = rng.standard_normal((2, 9, 5, 6))
    w = rng.standard_normal((9, 4, 3, 3))
    check_against_torch(2, x, w, rng.standard_normal(4), np.float64, rng, needs=needs, padding=1)


def test_numerical_gradient(rng):
    x = rng.standard_normal((2, 4, 3, 4))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(6)
    options = dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2))
    y0 = F.conv_transpose2d(x, w, b, **options)
    g = random_upstream(y0.shape, np.float64, rng)
    tensors = [normlab.tensor(a, requires_grad=True) for a in (x, w, b)]
    F.conv_transpose2d(*tensors, **options).backward(g)
    for name, array, t in zip(("input", "weight", "bias"), (x, w, b), tensors):
        numeric = numerical_gradient(lambda: float((F.conv_transpose2d(x, w, b, **options).numpy() * g).sum()), array)
        np.testing.assert_allclose(t.grad, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_transpose_is_the_adjoint_of_the_convolution(rng):
    """<conv(x), y> = <x, conv_transpose(y)> for the same weight and options (the definition)."""
    x = rng.standard_normal((2, 6, 11, 10))  # width 10: the last column is reached only with output_padding 1
    w = rng.standard_normal((4, 3, 3, 2))
    options = dict(stride=2, padding=1, dilation=(1, 2), groups=2)
    y = F.conv2d(x, w, **options).numpy()
    v = rng.standard_normal(y.shape)
    back = F.conv_transpose2d(v, w, output_padding=(0, 1), **options).numpy()
    assert back.shape == x.shape
    np.testing.assert_allclose((y * v).sum(), (x * back).sum(), rtol=1e-10)


# ----------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------

MODULES = {1: (nn.ConvTranspose1d, torch.nn.ConvTranspose1d, 3, (3, 4, 5)),
           2: (nn.ConvTranspose2d, torch.nn.ConvTranspose2d, (3, 2), (3, 4, 5, 4)),
           3: (nn.ConvTranspose3d, torch.nn.ConvTranspose3d, (2, 3, 2), (2, 4, 3, 4, 3))}
MODULE_CONFIGS = [
    dict(),
    dict(stride=2, padding=1, output_padding=1),
    dict(groups=2, bias=False, dilation=2),
    dict(stride=3, padding=2, output_padding=2),
]


def _pair(dims, config, dtype=np.float64):
    ours_cls, torch_cls, kernel, _ = MODULES[dims]
    ours = ours_cls(4, 6, kernel, dtype=dtype, **config)
    theirs = torch_cls(4, 6, kernel, dtype=torch.float64, **config)
    return ours, theirs


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("config", MODULE_CONFIGS, ids=str)
def test_module_state_dict_repr_and_attributes_match_torch(dims, config):
    assert_same_module_layout(*_pair(dims, config))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("config", MODULE_CONFIGS, ids=str)
def test_module_forward_backward_match_torch(dims, config, dtype, rng):
    ours, theirs = _pair(dims, config, dtype)
    x = rng.standard_normal(MODULES[dims][3])
    compare_modules(ours, theirs, x, dtype, rng)
    compare_modules(ours, theirs, x[0], dtype, rng)  # unbatched


@pytest.mark.parametrize("output_size", [[9, 9], [10, 10], [9, 10], [1, 6, 10, 9], (10, 9)])
def test_output_size_picks_the_output_padding(output_size, rng):
    ours = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, dtype=np.float64)
    theirs = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, dtype=torch.float64)
    y = compare_modules(ours, theirs, rng.standard_normal((1, 4, 5, 5)), np.float64, rng, output_size)
    assert y.shape[-2:] == tuple(output_size[-2:])
    assert ours.output_padding == (0, 0)  # the module's own setting is left alone


def test_default_init_follows_torch():
    """fan_in of a transposed weight (in, out / groups, *k) is (out / groups) prod(k), as torch computes it."""
    conv = nn.ConvTranspose2d(48, 64, (3, 4), groups=2, dtype=np.float64)
    assert conv.weight.shape == (48, 32, 3, 4) and conv.bias.shape == (64,)
    bound = 1 / np.sqrt(32 * 12)
    weight, bias = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    assert np.abs(weight).max() <= bound and np.abs(bias).max() <= bound
    assert np.abs(weight).max() > 0.95 * bound and np.abs(bias).max() > 0.5 * bound


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------

def _x(*shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


BAD = [
    ("output_padding too large", lambda: F.conv_transpose2d(_x(1, 4, 5, 5), _x(4, 2, 3, 3), stride=2,
                                                            output_padding=2), ValueError,
     "conv_transpose2d: expected output_padding smaller than either stride or dilation"),
    ("same padding", lambda: F.conv_transpose1d(_x(1, 4, 5), _x(4, 2, 3), padding="same"), TypeError,
     "conv_transpose1d: expected padding to be an int or a tuple of 1 ints"),
    ("channels", lambda: F.conv_transpose2d(_x(1, 3, 5, 5), _x(4, 2, 3, 3)), ValueError,
     "conv_transpose2d: expected input with 4 channels (weight.shape[0]), got 3"),
    ("groups", lambda: F.conv_transpose2d(_x(1, 4, 5, 5), _x(4, 2, 3, 3), groups=3), ValueError,
     "conv_transpose2d: expected weight.shape[0]=4 (in_channels) to be divisible by groups=3"),
    ("bias size", lambda: F.conv_transpose2d(_x(1, 4, 5, 5), _x(4, 2, 3, 3), _x(2), groups=2), ValueError,
     "conv_transpose2d: expected bias of shape (4,), got (2,)"),
    ("empty output", lambda: F.conv_transpose2d(_x(1, 4, 2, 2), _x(4, 2, 3, 3), padding=3), ValueError,
     "conv_transpose2d: the output would be empty"),
    ("dtypes", lambda: F.conv_transpose3d(_x(1, 2, 3, 3, 3, dtype=np.float64), _x(2, 2, 1, 1, 1)), TypeError,
     "conv_transpose3d: expected weight of the input's dtype float64, got float32"),
    ("rank", lambda: F.conv_transpose2d(_x(4, 5, 5), _x(4, 2, 3)), ValueError, "conv_transpose2d: expected 4D weight"),
    ("integer", lambda: F.conv_transpose1d(np.zeros((1, 4, 5), np.int32), _x(4, 2, 3)), TypeError,
     "conv_transpose1d: expected a floating-point input"),
]


@pytest.mark.parametrize("what,call,error,message", BAD, ids=[c[0] for c in BAD])
def test_functional_bad_input(what, call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


def test_module_bad_arguments_and_input_leave_parameters_alone():
    with pytest.raises(ValueError, match="ConvTranspose2d: only padding_mode='zeros' is supported"):
        nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="ConvTranspose1d: expected padding to be an int"):
        nn.ConvTranspose1d(2, 2, 3, padding="same")
    conv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    weight = conv.weight.detach().numpy().copy()
    with pytest.raises(ValueError, match=r"ConvTranspose2d: requested an output size of \[12, 12\], but valid "
                                         r"sizes range from \[9, 9\] to \[10, 10\]"):
        conv(_x(1, 4, 5, 5), output_size=[12, 12])
    with pytest.raises(ValueError, match="ConvTranspose2d: for 4D input, expected output_size with 2 or 4"):
        conv(_x(1, 4, 5, 5), output_size=[3, 10, 10])
    with pytest.raises(ValueError, match="ConvTranspose2d: expected input with 4 channels"):
        conv(_x(1, 3, 5, 5))
    with pytest.raises(TypeError, match="ConvTranspose2d: expected weight of the input's dtype float64, got float32"):
        conv(_x(1, 4, 5, 5, dtype=np.float64))
    np.testing.assert_array_equal(conv.weight.detach().numpy(), weight)
