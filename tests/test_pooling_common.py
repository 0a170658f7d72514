"""Shared strategies, input makers and slow reference loops for the pooling tests (plus geometry tests).

Nothing here asks normlab's geometry which configurations are valid: the
window rules are written out again (``reference_output_size``,
``has_all_padding_window``) and checked against torch, so a bug in normlab's
geometry fails a test instead of filtering its examples away.

Tolerances against the float64 reference (torch run in float64, or the slow loops here):

    float64: rtol 1e-10, atol 1e-12   (same sums in the same order; max pooling is exact)
    float32: tests/oracle.py:assert_float32_close, 16 float32 roundings of the magnitudes
             involved (the op applied to |x| and to |dy|); never torch's float32
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, strategies as st

from normlab.ops import pooling as ops
from tests.oracle import assert_close, assert_float32_close, to_numpy

POOL_TOL64 = dict(rtol=1e-10, atol=1e-12)
DTYPES = [np.float64, np.float32]


def close(actual, reference, dtype, what, scale=None):
    """``actual`` (of ``dtype``) against a float64 reference: tight in float64, float32 rounding in float32.

    ``scale`` is the size of what was rounded on the way (see assert_float32_close); by default the
    reference's own magnitude, right for exact ops (max pooling's output) and single roundings.
    """
    if np.dtype(dtype) == np.float64:
        assert to_numpy(actual).dtype == np.float64, f"{what}: expected float64"
        assert_close(actual, reference, dtype=np.float64, what=what, **POOL_TOL64)
    else:
        reference = to_numpy(reference)
        with np.errstate(invalid="ignore"):   # inf - inf where both sides are inf: equal, not an error
            assert_float32_close(actual, reference, scale=np.abs(reference) if scale is None else scale, what=what)


def torch_reference(fn, x, dy, scale_input=None):
    """``fn`` (a torch op) at float64 copies of ``x`` and ``dy``: (y, dx, y_scale, dx_scale).

    The scales are the magnitudes float32 rounding is measured against: ``fn`` at ``scale_input``
    (default ``|x|``: a sum of |terms|) and the input gradient for ``|dy|`` at ``scale_input``.
    Pass ``scale_input=x`` for max/min pooling, whose winners must stay where they are.
    """
    t = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    y = fn(t)
    y.backward(torch.tensor(np.asarray(dy, dtype=np.float64)))
    s = torch.tensor(np.abs(np.asarray(x, dtype=np.float64)) if scale_input is None
                     else np.asarray(scale_input, dtype=np.float64), requires_grad=True)
    y_scale = fn(s)
    y_scale.backward(torch.tensor(np.abs(np.asarray(dy, dtype=np.float64))))
    return y.detach().numpy(), t.grad.detach().numpy(), np.abs(y_scale.detach().numpy()), np.abs(s.grad.detach().numpy())


def as_arg(values: tuple[int, ...], draw):
    """An int when all entries agree and a coin says so, else the tuple: both spellings get tested."""
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return tuple(values)


@st.composite
def pool_configs(draw, dims=None, dilation=True, padding=True, stride=True):
    """A valid sliding-pool configuration and the input shape it applies to."""
    n = dims or draw(st.sampled_from([1, 2, 3]))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(n))
    dil = tuple(draw(st.integers(1, 3)) for _ in range(n)) if dilation else (1,) * n
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel) if padding else (0,) * n
    strides = tuple(draw(st.integers(1, 3)) for _ in range(n)) if stride else None
    if stride and draw(st.integers(0, 4)) == 0:
        strides = None  # stride defaults to the kernel
    ceil_mode = draw(st.booleans())
    spatial = []
    for k, d, p in zip(kernel, dil, pad):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)   # the output has at least one position
        spatial.append(draw(st.integers(smallest, smallest + (6 if n < 3 else 3))))   # 3d: keep volumes small
    batch = draw(st.sampled_from([None, 1, 2, 3]))      # None: an unbatched (C, *spatial) input
    channels = draw(st.integers(1, 3))
    shape = ((channels,) if batch is None else (batch, channels)) + tuple(spatial)
    config = dict(kernel_size=as_arg(kernel, draw), padding=as_arg(pad, draw), ceil_mode=ceil_mode)
    if strides is not None:
        config["stride"] = as_arg(strides, draw)
    if dilation:
        config["dilation"] = as_arg(dil, draw)
    return n, shape, config, draw(st.integers(0, 2**32 - 1))


def distinct_input(shape, dtype, rng) -> np.ndarray:
    """A tie-free input: a random permutation of evenly spaced distinct values (distinct in float32 too)."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) / max(size, 1) * 4).reshape(shape).astype(dtype)


def tied_input(shape, dtype, rng, levels=3, nan_fraction=0.0, inf_fraction=0.0) -> np.ndarray:
    """Few distinct values (many ties), optionally with NaNs and infinities sprinkled in."""
    x = rng.integers(0, levels, size=shape).astype(dtype)
    if inf_fraction:
        x[rng.random(shape) < inf_fraction] = -np.inf
        x[rng.random(shape) < inf_fraction] = np.inf
    if nan_fraction:
        x[rng.random(shape) < nan_fraction] = np.nan
    return x


def torch_tensor(x: np.ndarray, requires_grad=True) -> torch.Tensor:
    return torch.tensor(x, requires_grad=requires_grad)


# ---------------------------------------------------------------- slow references


def reference_output_size(L, k, s, p, d, ceil_mode):
    """torch's formula, written out again independently of normlab.ops.pooling (checked against torch below)."""
    span = L + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else math.floor(span / s)) + 1
    if ceil_mode and (out - 1) * s >= L + p:
        out -= 1
    return out


def reference_members(L, k, s, p, d, o):
    """The real (unpadded) positions of window ``o`` along one axis: o*s - p + j*d for j < k, inside [0, L)."""
    return [o * s - p + j * d for j in range(k) if 0 <= o * s - p + j * d < L]


def config_axes(n, config):
    """(kernel, stride, padding, dilation, ceil_mode) per axis, from a test config, without normlab's help."""
    k = _expand(config["kernel_size"], n)
    stride = config.get("stride")
    s = _expand(config["kernel_size"] if stride is None else stride, n)
    p = _expand(config.get("padding", 0), n)
    d = _expand(config.get("dilation", 1), n)
    return k, s, p, d, config.get("ceil_mode", False)


def has_all_padding_window(n, shape, config) -> bool:
    """True when some window has no real member (only possible with dilation): normlab refuses those.

    torch outputs -inf there with an index outside the window (its backward then writes out of bounds).
    """
    k, s, p, d, ceil_mode = config_axes(n, config)
    for L, *axis in zip(shape[-n:], k, s, p, d):
        out = reference_output_size(L, *axis, ceil_mode)
        if any(not reference_members(L, *axis, o) for o in range(out)):
            return True
    return False


def refused_all_padding(op, n, x, config) -> bool:
    """When the reference says some window is all padding, check that ``op`` refuses it; True if so."""
    if not has_all_padding_window(n, x.shape, config):
        return False
    with pytest.raises(ValueError, match="entirely in the padding"):
        op(x, **config)
    return True


def reference_extremum(x, n, config, dy, is_min=False, tie="first", nan="propagate"):
    """The obvious loop: for each window, list its real members, pick the winner(s), route dy.

    Returns (y, indices, dx). ``tie="first"``: the first member in row-major order
    holding the extremum, except that with ``nan="propagate"`` a NaN wins and the
    last NaN keeps the index (torch). ``tie="split"``: every member equal to the
    output shares (NaN equal to NaN). ``nan="ignore"``: NaNs never win; an all-NaN
    window outputs NaN with its first member as index. Indices are flat in the
    plane (row-major over the n spatial axes).
    """
    spatial = x.shape[-n:]
    xs = x.reshape((-1,) + spatial)
    axes = list(zip(spatial, *config_axes(n, config)[:4]))
    ceil_mode = config.get("ceil_mode", False)
    out_spatial = tuple(reference_output_size(*axis, ceil_mode) for axis in axes)
    g = dy.reshape((-1,) + out_spatial)
    y = np.zeros((xs.shape[0],) + out_spatial, dtype=x.dtype)
    idx = np.zeros(y.shape, dtype=np.int64)
    dx = np.zeros_like(xs)
    for c in range(xs.shape[0]):
        for o in itertools.product(*(range(size) for size in out_spatial)):
            members = list(itertools.product(*(reference_members(*axis, oi) for axis, oi in zip(axes, o))))
            values = [float(xs[(c,) + m]) for m in members]
            nans = [m for m, v in zip(members, values) if math.isnan(v)]
            real = [(m, v) for m, v in zip(members, values) if not math.isnan(v)]
            if nans and (nan == "propagate" or not real):
                out = math.nan
                first = nans[-1] if nan == "propagate" else members[0]
                winners = nans
            else:
                out = (min if is_min else max)(v for _, v in real)
                winners = [m for m, v in real if v == out]
                first = winners[0]
            y[(c,) + o] = out
            idx[(c,) + o] = np.ravel_multi_index(first, spatial)
            if tie == "first":
                dx[(c,) + first] += g[(c,) + o]
            else:
                for m in winners:
                    dx[(c,) + m] += g[(c,) + o] / len(winners)
    out_shape = x.shape[:-n] + out_spatial
    return y.reshape(out_shape), idx.reshape(out_shape), dx.reshape(x.shape)


def reference_average(x, n, config, dy, count_include_pad=True, divisor_override=None):
    """The obvious loop for average pooling: (y, dx) with torch's divisor rules written out again.

    Window o along an axis spans o*s - p .. o*s - p + k - 1; its padded extent is cut at L + p (a
    ceil_mode window never counts what lies past the right padding); without count_include_pad the
    divisor counts only real members. A window's divisor is the product over the axes.
    """
    spatial = x.shape[-n:]
    xs = x.reshape((-1,) + spatial)
    k, s, p, _, ceil_mode = config_axes(n, config)
    axes = list(zip(spatial, k, s, p))
    out_spatial = tuple(reference_output_size(L, kk, ss, pp, 1, ceil_mode) for L, kk, ss, pp in axes)
    g = dy.reshape((-1,) + out_spatial)
    y = np.zeros((xs.shape[0],) + out_spatial)
    dx = np.zeros(xs.shape)
    for o in itertools.product(*(range(size) for size in out_spatial)):
        members = list(itertools.product(*(reference_members(L, kk, ss, pp, 1, oi)
                                           for (L, kk, ss, pp), oi in zip(axes, o))))
        padded = math.prod(min(oi * ss - pp + kk, L + pp) - (oi * ss - pp) for (L, kk, ss, pp), oi in zip(axes, o))
        divisor = divisor_override or (padded if count_include_pad else len(members))
        for m in members:
            y[(slice(None),) + o] += xs[(slice(None),) + m] / divisor
            dx[(slice(None),) + m] += g[(slice(None),) + o] / divisor
    return y.reshape(x.shape[:-n] + out_spatial), dx.reshape(x.shape)


def _expand(value, n):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


# ---------------------------------------------------------------- geometry tests


@given(st.integers(1, 20), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2), st.integers(1, 3), st.booleans())
def test_reference_geometry_is_torchs(L, k, s, p, d, ceil_mode):
    # the reference rules themselves, against torch: its output length, and -inf exactly at the windows
    # the reference calls all-padding (torch's max over no real member)
    assume(p <= k // 2)
    out = reference_output_size(L, k, s, p, d, ceil_mode)
    assume(out >= 1)
    y = torch.nn.functional.max_pool1d(torch.zeros(1, 1, L, dtype=torch.float64), k, s, p, d, ceil_mode=ceil_mode)
    assert y.shape[-1] == out
    empty = [not reference_members(L, k, s, p, d, o) for o in range(out)]
    np.testing.assert_array_equal(np.isneginf(y.detach().numpy()[0, 0]), empty)


@given(st.integers(1, 20), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2), st.integers(1, 3), st.booleans())
def test_output_size_and_refusals_follow_the_reference(L, k, s, p, d, ceil_mode):
    # every example counts: normlab's output length is the reference's, or normlab refuses for the
    # reference's reason (output too small, or a window lying entirely in the padding)
    assume(p <= k // 2)
    out = reference_output_size(L, k, s, p, d, ceil_mode)
    x = np.zeros((1, 1, L))
    config = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    if out < 1:
        with pytest.raises(ValueError, match="too small"):
            ops.max_pool1d_forward(x, **config)
        return
    if has_all_padding_window(1, x.shape, config):
        with pytest.raises(ValueError, match="entirely in the padding"):
            ops.max_pool1d_forward(x, **config)
        return
    assert ops.pool_output_size(L, k, s, p, d, ceil_mode) == out
    assert ops.max_pool1d_forward(x, **config)[0].shape[-1] == out
    if d == 1:
        assert ops.avg_pool1d_forward(x, k, s, p, ceil_mode)[0].shape[-1] == out


@pytest.mark.parametrize("L,k,s,p", [(5, 2, 2, 1), (3, 2, 2, 1), (8, 3, 3, 1), (7, 4, 3, 2), (9, 4, 4, 2)])
def test_ceil_mode_drops_a_window_starting_in_the_right_padding(L, k, s, p):
    # the plain ceil formula counts one more window, whose first element lies in the right padding
    naive = math.ceil((L + 2 * p - k) / s) + 1
    assert (naive - 1) * s - p >= L, "the case must exercise the rule"
    for ceil_mode, expected in ((True, naive - 1), (False, (L + 2 * p - k) // s + 1)):
        assert torch.nn.functional.max_pool1d(torch.zeros(1, 1, L), k, s, p, ceil_mode=ceil_mode).shape[-1] == expected
        assert ops.pool_output_size(L, k, s, p, 1, ceil_mode) == expected


@pytest.mark.parametrize("L,out", [(5, 3), (7, 3), (3, 5), (10, 4), (1, 2)])
def test_adaptive_windows_follow_torchs_rule(L, out):
    w = ops.adaptive_windows((L,), (out,)).width
    for i in range(out):
        assert w.start[i] == math.floor(i * L / out)
        assert w.end[i] == math.ceil((i + 1) * L / out)
