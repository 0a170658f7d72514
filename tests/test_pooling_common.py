"""Shared strategies, input makers and slow reference loops for the pooling tests (plus geometry tests).

Tolerances (relative, absolute) for pooling against torch, tighter in float64 than the global table:

    float64: rtol 1e-10, atol 1e-12   (same sums in the same order; max pooling is exact)
    float32: rtol 2e-5,  atol 2e-6
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, strategies as st

from normlab.ops import pooling as ops
from tests.oracle import assert_close

POOL_TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12), np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6)}
DTYPES = [np.float64, np.float32]
TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}


def close(actual, expected, dtype, what):
    assert_close(actual, expected, dtype=dtype, what=what, **POOL_TOL[np.dtype(dtype)])


def as_arg(values: tuple[int, ...], draw):
    """An int when all entries agree and a coin says so, else the tuple: both spellings get tested."""
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return tuple(values)


@st.composite
def pool_configs(draw, dims=None, dilation=True, padding=True, stride=True):
    """A valid sliding-pool configuration and the input shape it applies to."""
    n = dims or draw(st.sampled_from([1, 2]))
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
        spatial.append(draw(st.integers(smallest, smallest + 6)))
    batch = draw(st.sampled_from([None, 1, 2, 3]))      # None: an unbatched (C, *spatial) input
    channels = draw(st.integers(1, 3))
    shape = ((channels,) if batch is None else (batch, channels)) + tuple(spatial)
    config = dict(kernel_size=as_arg(kernel, draw), padding=as_arg(pad, draw), ceil_mode=ceil_mode)
    if strides is not None:
        config["stride"] = as_arg(strides, draw)
    if dilation:
        config["dilation"] = as_arg(dil, draw)
    return n, shape, config, draw(st.integers(0, 2**32 - 1))


def windows_are_valid(n, shape, config) -> bool:
    """False when some dilated window lies entirely in the padding (normlab raises; torch corrupts memory)."""
    try:
        kernel, stride, padding, dilation = ops.normalize_pool_args("t", n, config["kernel_size"], config.get("stride"),
                                                                    config["padding"], config.get("dilation", 1))
        ops.pool_windows("t", shape[-n:], kernel, stride, padding, dilation, config["ceil_mode"])
        return True
    except ValueError as error:
        assert "entirely in the padding" in str(error)
        return False


def torch_window_in_padding(n, shape, config) -> bool:
    """True when torch's window geometry puts some window entirely in the padding.

    Written from torch's documented output-size rule, independently of normlab:
    out = floor_or_ceil((L + 2p - d(k-1) - 1) / s) + 1, and with ceil_mode the
    last window is dropped when it would start in the right padding.
    """
    def per_dim(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n

    kernel = per_dim(config["kernel_size"])
    stride = per_dim(config.get("stride") or config["kernel_size"])
    padding = per_dim(config["padding"])
    dilation = per_dim(config.get("dilation", 1))
    for size, k, s, p, d in zip(shape[-n:], kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        steps = (size + 2 * p - span) / s
        out = (int(np.ceil(steps)) if config["ceil_mode"] else int(np.floor(steps))) + 1
        if config["ceil_mode"] and (out - 1) * s >= size + p:
            out -= 1
        for o in range(out):
            start = o * s - p
            if all(not 0 <= start + j * d < size for j in range(k)):
                return True
    return False


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
    """torch's formula, written out again independently of normlab.ops.pooling."""
    span = L + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else math.floor(span / s)) + 1
    if ceil_mode and (out - 1) * s >= L + p:
        out -= 1
    return out


def reference_extremum(x, n, config, dy, is_min=False, tie="first", nan="propagate"):
    """The obvious loop: for each window, list its real members, pick the winner(s), route dy.

    Returns (y, indices, dx). ``tie="first"``: the first member in row-major order
    holding the extremum, except that with ``nan="propagate"`` a NaN wins and the
    last NaN keeps the index (torch). ``tie="split"``: every member equal to the
    output shares (NaN equal to NaN). ``nan="ignore"``: NaNs never win; an all-NaN
    window outputs NaN with its first member as index.
    """
    xs = x.reshape((-1,) + ((1,) if n == 1 else ()) + x.shape[-n:])
    g = dy.reshape((-1,) + ((1,) if n == 1 else ()) + dy.shape[-n:])
    k = _expand(config["kernel_size"], n)
    s = _expand(config.get("stride") or config["kernel_size"], n)
    p = _expand(config.get("padding", 0), n)
    d = _expand(config.get("dilation", 1), n)
    if n == 1:
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    planes, H, W = xs.shape
    OH = reference_output_size(H, k[0], s[0], p[0], d[0], config.get("ceil_mode", False))
    OW = reference_output_size(W, k[1], s[1], p[1], d[1], config.get("ceil_mode", False))
    y = np.zeros((planes, OH, OW), dtype=x.dtype)
    idx = np.zeros((planes, OH, OW), dtype=np.int64)
    dx = np.zeros_like(xs)
    for c in range(planes):
        for oh in range(OH):
            for ow in range(OW):
                members = [(oh * s[0] - p[0] + i * d[0], ow * s[1] - p[1] + j * d[1])
                           for i in range(k[0]) for j in range(k[1])]
                members = [(h, w) for h, w in members if 0 <= h < H and 0 <= w < W]
                values = [float(xs[c, h, w]) for h, w in members]
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
                y[c, oh, ow] = out
                idx[c, oh, ow] = first[0] * W + first[1]
                if tie == "first":
                    dx[c][first] += g[c, oh, ow]
                else:
                    for m in winners:
                        dx[c][m] += g[c, oh, ow] / len(winners)
    out_shape = x.shape[:-n] + ((OW,) if n == 1 else (OH, OW))
    return y.reshape(out_shape), idx.reshape(out_shape), dx.reshape(x.shape)


def _expand(value, n):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


# ---------------------------------------------------------------- geometry tests


@given(st.integers(1, 20), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2), st.integers(1, 3), st.booleans())
def test_output_size_formula_matches_reference(L, k, s, p, d, ceil_mode):
    assume(p <= k // 2)
    expected = reference_output_size(L, k, s, p, d, ceil_mode)
    assert ops.pool_output_size(L, k, s, p, d, ceil_mode) == expected


def test_ceil_mode_drops_a_window_starting_in_the_right_padding():
    # L=5, k=2, s=2, p=1: ceil would give 4 windows, the 4th starting at 2*3-1 = 5 = L (right padding)
    assert ops.pool_output_size(5, 2, 2, 1, 1, True) == 3
    assert torch.nn.functional.max_pool1d(torch.zeros(1, 1, 5), 2, 2, 1, ceil_mode=True).shape[-1] == 3
    # without the padding the 3rd window starts inside the input and is kept
    assert ops.pool_output_size(5, 2, 2, 0, 1, True) == 3
    assert ops.pool_output_size(5, 2, 2, 0, 1, False) == 2


@pytest.mark.parametrize("L,out", [(5, 3), (7, 3), (3, 5), (10, 4), (1, 2)])
def test_adaptive_windows_follow_torchs_rule(L, out):
    w = ops.adaptive_windows((L,), (out,))
    for i in range(out):
        assert w.starts[0][i] == math.floor(i * L / out)
        assert w.ends[0][i] == math.ceil((i + 1) * L / out)
