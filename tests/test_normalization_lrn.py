"""LocalResponseNorm / F.local_response_norm and F.normalize against torch.

float64: forward and input gradient (random upstream gradient) within the shared table; float32 against
torch's float64 result on the same float32 input (assert_float32_close); numerical gradients in float64;
shapes, window sizes (odd, even, wider than the channels) and constants swept by hypothesis.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import assert_close, assert_float32_close, numerical_gradient, random_upstream


def _torch_reference(fn, data, g):
    t = torch.tensor(data.astype(np.float64), requires_grad=True)
    y = fn(t)
    y.backward(torch.tensor(np.asarray(g, dtype=np.float64)))
    return y.detach().numpy(), t.grad.numpy()


def _ours(fn, data, g):
    x = normlab.tensor(data, requires_grad=True)
    y = fn(x)
    y.backward(g)
    return y, x.grad


def _compare(dtype, y, dx, y_ref, dx_ref, dx_scale):
    """float64: the shared table; float32: within float32 rounding of |y| and of ``dx_scale`` (computed lazily)."""
    assert y.dtype == dtype and dx.dtype == dtype
    if dtype == np.float64:
        assert_close(y, y_ref, np.float64, "forward")
        assert_close(dx, dx_ref, np.float64, "input gradient")
    else:
        assert_float32_close(y, y_ref, scale=np.abs(y_ref), what="forward")
        assert_float32_close(dx, dx_ref, scale=dx_scale(), what="input gradient")


# ---------------------------------------------------------------- local response normalization


def _lrn_gradient_magnitudes(x, g, size, alpha, beta, k):
    """|dy_j| / d_j + (2 alpha beta / size) |x_j| sum over the windows c holding j of |dy_c x_c| / (d_c u_c).

    The window rule written out again (channels c - size//2 .. c + (size-1)//2), in float64.
    """
    x, g = x.astype(np.float64), np.abs(g.astype(np.float64))
    channels = x.shape[1]
    windows = [[c2 for c2 in range(c - size // 2, c + (size - 1) // 2 + 1) if 0 <= c2 < channels]
               for c in range(channels)]
    u = np.stack([k + alpha / size * sum(x[:, c2] ** 2 for c2 in window) for window in windows], axis=1)
    d = u ** beta
    share = g * np.abs(x) / (d * u)
    reach = np.stack([sum(share[:, c] for c in range(channels) if j in windows[c]) for j in range(channels)], axis=1)
    return g / d + 2 * alpha * beta / size * np.abs(x) * reach


@st.composite
def lrn_cases(draw):
    channels = draw(st.integers(1, 7))
    spatial = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3))))
    shape = (draw(st.integers(1, 3)), channels) + spatial
    size = draw(st.integers(1, channels + 2))           # odd, even, and windows wider than the channels
    alpha = draw(st.sampled_from([1e-4, 0.1, 1.0]))
    beta = draw(st.sampled_from([0.75, 0.5, 1.0, 2.0]))
    k = draw(st.sampled_from([1.0, 2.0, 0.5]))
    return shape, size, alpha, beta, k, draw(st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@given(case=lrn_cases(), module=st.booleans())
def test_local_response_norm_matches_torch(dtype, case, module):
    shape, size, alpha, beta, k, seed = case
    rng = np.random.default_rng(seed)
    data = (rng.standard_normal(shape) * 3).astype(dtype)
    g = random_upstream(shape, dtype, rng)
    theirs = lambda t: TF.local_response_norm(t, size, alpha, beta, k)   # noqa: E731
    ours = nn.LocalResponseNorm(size, alpha, beta, k) if module else (
        lambda t: F.local_response_norm(t, size, alpha, beta, k))
    y_ref, dx_ref = _torch_reference(theirs, data, g)
    y, dx = _ours(ours, data, g)
    # the divisor rounds a few times (a sum of squares, a power); dx sums terms of the sizes computed here
    _compare(dtype, y, dx, y_ref, dx_ref, lambda: _lrn_gradient_magnitudes(data, g, size, alpha, beta, k))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_local_response_norm_numerical_gradient(size, rng):
    data = rng.standard_normal((2, 5, 3))
    g = rng.standard_normal(data.shape)
    op = lambda t: F.local_response_norm(t, size, alpha=0.5, beta=0.75, k=1.5)   # noqa: E731
    _, dx = _ours(op, data, g)
    numeric = numerical_gradient(lambda: float((op(normlab.tensor(data)).numpy() * g).sum()), data)
    np.testing.assert_allclose(np.asarray(dx), numeric, rtol=1e-6, atol=1e-8)


def test_local_response_norm_edge_channels_divide_by_the_whole_window():
    # the rule written out: channel 0's window of size 4 covers channels -2 .. 1, two of them padding
    x = np.arange(1.0, 6.0).reshape(1, 5, 1)
    y = F.local_response_norm(x, 4, alpha=1.0, beta=1.0, k=1.0).numpy()
    expected_first = 1.0 / (1.0 + (1.0 ** 2 + 2.0 ** 2) / 4)
    expected_last = 5.0 / (1.0 + (3.0 ** 2 + 4.0 ** 2 + 5.0 ** 2) / 4)
    np.testing.assert_allclose([y[0, 0, 0], y[0, 4, 0]], [expected_first, expected_last], rtol=1e-15)


def test_local_response_norm_strided_read_only_input_and_writing_into_the_output(rng):
    base = rng.standard_normal((3, 4, 6, 5))
    data = base.transpose(0, 1, 3, 2)[:, :, ::-1]
    data.flags.writeable = False                                       # a read-only strided view
    g = random_upstream(data.shape, np.float64, rng)
    y_ref, dx_ref = _torch_reference(lambda t: TF.local_response_norm(t, 3, 0.3), data, g)
    x = normlab.tensor(data, requires_grad=True)
    y = F.local_response_norm(x, 3, 0.3)
    y.detach().numpy()[...] = 5.0
    y.backward(g)
    assert_close(x.grad, dx_ref, np.float64, "input gradient")


def test_local_response_norm_module_repr_and_empty_batch():
    for args in ((3,), (2, 1e-3, 0.5, 2), (5, 1e-4, 0.75, 2.0)):
        ours, theirs = nn.LocalResponseNorm(*args), torch.nn.LocalResponseNorm(*args)
        assert repr(ours) == repr(theirs)
        assert ours.state_dict() == {} and list(ours.parameters()) == []
    x = normlab.tensor(np.zeros((0, 3, 4)), requires_grad=True)
    y = nn.LocalResponseNorm(2)(x)
    y.backward(np.zeros(y.shape))
    assert y.shape == (0, 3, 4) and x.grad.shape == (0, 3, 4)


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.local_response_norm(np.ones((3, 3)), 2), ValueError,
     r"local_response_norm: expected input \(N, C, \*\) with at least 3 dimensions, got 2D"),
    (lambda: nn.LocalResponseNorm(0), ValueError, r"LocalResponseNorm: expected size to be a positive integer, got 0"),
    (lambda: nn.LocalResponseNorm(2.5), ValueError, r"LocalResponseNorm: expected size to be a positive integer"),
    (lambda: nn.LocalResponseNorm(2, alpha="big")(np.ones((1, 2, 3))), TypeError,
     r"LocalResponseNorm: expected alpha to be a real number"),
    (lambda: nn.LocalResponseNorm(2)(np.ones((1, 2, 3), dtype=np.int32)), TypeError,
     r"LocalResponseNorm: expected a floating-point input"),
    (lambda: F.normalize(np.ones(3)), IndexError, r"normalize: dim 1 is out of range for a 1D input"),
    (lambda: F.normalize(np.ones((2, 3)), p="2"), TypeError, r"normalize: expected p to be a real number"),
    (lambda: F.normalize(np.ones((2, 3), dtype=np.int64)), TypeError, r"normalize: expected a floating-point"),
])
def test_bad_input_is_refused_naming_the_layer(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------- F.normalize


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple), data=st.data(),
       p=st.sampled_from([2.0, 1.0, 3.0, 1.5, math.inf]), eps=st.sampled_from([1e-12, 0.5, 3.0]))
def test_normalize_matches_torch(dtype, shape, data, p, eps):
    ndim = len(shape)
    dim = data.draw(st.one_of(st.integers(-ndim, ndim - 1),
                              st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape)
    x[rng.random(shape) < 0.2] = 0.0                    # zero entries, sometimes whole zero vectors
    x = x.astype(dtype)
    theirs = lambda t: TF.normalize(t, p, dim, eps)     # noqa: E731
    g = random_upstream(shape, dtype, rng)
    y_ref, dx_ref = _torch_reference(theirs, x, g)
    y, dx = _ours(lambda t: F.normalize(t, p, dim, eps), x, g)

    def dx_scale():
        # dx = dy / c - (sum dy x) / c^2 * d||x||/dx: terms up to |dy| / c, summed over the vector
        axes = (dim,) if isinstance(dim, int) else dim
        norm = torch.linalg.vector_norm(torch.tensor(x.astype(np.float64)), p, axes, True).numpy()
        g_abs = np.abs(g.astype(np.float64))
        return (g_abs + g_abs.sum(axis=axes, keepdims=True)) / np.maximum(norm, eps)

    _compare(dtype, y, dx, y_ref, dx_ref, dx_scale)


def test_normalize_numerical_gradient(rng):
    data = rng.standard_normal((3, 4, 2))
    for p, dim in ((2.0, 1), (1.5, (0, 2)), (3.0, -1)):
        g = rng.standard_normal(data.shape)
        _, dx = _ours(lambda t: F.normalize(t, p, dim), data, g)
        numeric = numerical_gradient(lambda: float((F.normalize(data, p, dim).numpy() * g).sum()), data)
        np.testing.assert_allclose(np.asarray(dx), numeric, rtol=1e-6, atol=1e-8)


def test_normalize_makes_unit_vectors_and_leaves_zero_vectors_at_zero():
    x = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1e-20, 0.0, 0.0]], dtype=np.float32)
    y = F.normalize(x, dim=1).numpy()
    np.testing.assert_allclose(np.linalg.norm(y[0]), 1.0, rtol=1e-7)
    assert np.all(y[1] == 0)
    np.testing.assert_allclose(y[2, 0], 1e-20 / 1e-12, rtol=1e-6)       # below eps: divided by eps
