"""Pooling: max / min / average / power-average / adaptive pooling and max-unpooling.

Every op is a pure pair ``<op>_forward(x, ...) -> (y, saved)`` and
``<op>_backward(dy, saved) -> (dx,)`` on NumPy arrays. Inputs are any array
whose last one (``*1d``) or two (``*2d``) axes are spatial; the leading axes
(batch, channels, or just channels) are independent *planes*. The hot loops
are Numba kernels that run in parallel over planes.

How the gradient travels (the point of this module):

* max / min pooling records, in forward, the flat index of each window's
  winner inside its plane (``h * W + w``, exactly torch's ``return_indices``);
  backward scatter-adds each output's gradient to that one element and nowhere
  else. Overlapping windows that share a winner add up.
* average pooling spreads each output's gradient equally over the in-bounds
  elements of its window, each share divided by the window's divisor.
* ``routing(kind, x, ...)`` returns that routing as a dense array of weights,
  for pictures; a test checks it against the backward below.

Window geometry is torch's. Along one spatial axis of size ``L`` with kernel
``k``, stride ``s``, padding ``p`` and dilation ``d``:

    out = floor((L + 2p - d(k-1) - 1 [+ s - 1 if ceil_mode]) / s) + 1
    ceil_mode: drop the last window when it would start in the right padding,
               i.e. when (out - 1) * s >= L + p.

Window ``o`` covers ``o*s - p + j*d`` for ``j = 0 .. k-1``; positions outside
``[0, L)`` are padding: -inf for max pooling (so it never wins), +inf for min
pooling, zeros for average pooling (counted in the divisor only with
``count_include_pad``; the part of a ceil_mode window beyond the right
padding is never counted). Padding may be at most half the kernel (torch's
rule, on the undilated kernel size).

One deliberate difference from torch: with dilation, a window can skip over
every real element and lie entirely in the padding (e.g. L=2, k=2, d=3, p=1).
torch then reports -inf with an index outside the window, and its backward
writes outside the input (a crash or a wrong gradient); here it is a
ValueError naming the sizes.

Max/min pooling take two rules beyond torch (defaults are torch's):
``tie="first"`` (the first maximum in row-major order takes the gradient) or
``"split"`` (all tied maxima share it equally); ``nan="propagate"`` (a NaN wins
its window; the last NaN's index is kept) or ``"ignore"`` (NaNs never win; an
all-NaN window outputs NaN at its first element).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from normlab._checks import tuple_of

TIE_RULES = ("first", "split")
NAN_RULES = ("propagate", "ignore")


# ============================================================ window geometry

class Windows(NamedTuple):
    """Where each output's window lies along every spatial axis (one entry per axis).

    ``starts[a][o]`` is the first in-bounds element of window ``o`` along axis
    ``a``, ``ends[a][o]`` one past its last possible element (clamped to the
    input), ``steps[a]`` the dilation. ``divisors[a][o]`` is the window's
    count along that axis as average pooling divides by it (None for sliding
    max/min windows).
    """

    starts: tuple[np.ndarray, ...]
    ends: tuple[np.ndarray, ...]
    steps: tuple[int, ...]
    divisors: tuple[np.ndarray, ...] | None
    input_size: tuple[int, ...]
    output_size: tuple[int, ...]


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """torch's pooling output length along one axis (may be < 1: the caller raises)."""
    numerator = size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1  # floor division rounds toward -inf, as torch's div_rtn
    # A last window that would start in the right padding covers no input: drop it.
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _axis_names(n: int) -> tuple[str, ...]:
    return ("length",) if n == 1 else ("height", "width")


def _fmt(values: tuple[int, ...]):
    return values[0] if len(values) == 1 else values


def normalize_pool_args(name: str, n: int, kernel_size, stride, padding, dilation=1):
    """Expand int-or-tuple arguments into n-tuples and check their ranges (stride None/empty = kernel)."""
    kernel = tuple_of(name, "kernel_size", kernel_size, n, minimum=1)
    if stride is None or (not isinstance(stride, numbers.Integral) and len(tuple(stride)) == 0):
        stride = kernel
    stride = tuple_of(name, "stride", stride, n, minimum=1)
    padding = tuple_of(name, "padding", padding, n, minimum=0)
    dilation = tuple_of(name, "dilation", dilation, n, minimum=1)
    for k, p in zip(kernel, padding):
        # torch's rule compares with the kernel size itself, not the dilated extent.
        if p > k // 2:
            raise ValueError(
                f"{name}: padding should be at most half of kernel_size, got padding={_fmt(padding)} "
                f"and kernel_size={_fmt(kernel)}"
            )
    return kernel, stride, padding, dilation


def pool_windows(name: str, input_size: tuple[int, ...], kernel, stride, padding, dilation,
                 ceil_mode: bool, count_include_pad: bool = True, with_divisors: bool = False) -> Windows:
    """The windows of a sliding pool over ``input_size``; raises ValueError when the output would be empty."""
    n = len(input_size)
    out_size = tuple(pool_output_size(L, k, s, p, d, ceil_mode)
                     for L, k, s, p, d in zip(input_size, kernel, stride, padding, dilation))
    if any(o < 1 for o in out_size):
        raise ValueError(
            f"{name}: input of spatial size {_fmt(tuple(input_size))} is too small for kernel_size={_fmt(kernel)} "
            f"(dilation={_fmt(dilation)}, padding={_fmt(padding)}, stride={_fmt(stride)}): "
            f"the output size would be {_fmt(out_size)}"
        )
    starts, ends, divisors = [], [], []
    for axis, (L, k, s, p, d, out) in enumerate(zip(input_size, kernel, stride, padding, dilation, out_size)):
        first = np.arange(out, dtype=np.int64) * s - p          # window start, possibly in the left padding
        last_excl = np.minimum(first + (k - 1) * d + 1, L)       # one past the last in-bounds position
        # Skip the left padding in whole dilation steps so the first element is a real window member.
        skip = np.where(first < 0, (-first + d - 1) // d, 0)
        start = first + skip * d
        if np.any(start >= last_excl):
            # Only possible with dilation: every member of the window lies in the padding.
            # (torch returns -inf with an index outside the window and corrupts memory in backward.)
            bad = int(np.argmax(start >= last_excl))
            raise ValueError(
                f"{name}: window {bad} along {_axis_names(n)[axis]} lies entirely in the padding "
                f"(input size {L}, kernel_size={k}, dilation={d}, padding={p}, stride={s}); reduce padding or dilation"
            )
        starts.append(start)
        ends.append(last_excl)
        if with_divisors:
            # torch: the padded window is cut at L + p (a ceil_mode window's overhang past the right
            # padding never counts); count_include_pad counts that padded extent, otherwise only the
            # in-bounds part.
            padded = np.minimum(first + k, L + p) - first
            inside = np.minimum(first + k, L) - np.maximum(first, 0)
            divisors.append((padded if count_include_pad else inside).astype(np.int64))
    return Windows(tuple(starts), tuple(ends), tuple(dilation), tuple(divisors) if with_divisors else None,
                   tuple(input_size), out_size)


def adaptive_windows(input_size: tuple[int, ...], output_size: tuple[int, ...]) -> Windows:
    """torch's adaptive windows: output i covers floor(i*L/out) .. ceil((i+1)*L/out) - 1."""
    starts, ends, divisors = [], [], []
    for L, out in zip(input_size, output_size):
        i = np.arange(out, dtype=np.int64)
        start = (i * L) // out
        end = ((i + 1) * L + out - 1) // out
        starts.append(start)
        ends.append(end)
        divisors.append(end - start)
    return Windows(tuple(starts), tuple(ends), (1,) * len(input_size), tuple(divisors),
                   tuple(input_size), tuple(output_size))


def normalize_adaptive_output_size(name: str, output_size, input_size: tuple[int, ...]) -> tuple[int, ...]:
    """An int or a tuple with None entries (None keeps that input size), checked positive."""
    n = len(input_size)
    if output_size is None or isinstance(output_size, numbers.Integral):
        values = (output_size,) * n
    else:
        try:
            values = tuple(output_size)
        except TypeError:
            raise TypeError(f"{name}: expected output_size to be an int or a tuple of {n}, got {output_size!r}") from None
        if len(values) != n:
            raise ValueError(f"{name}: expected output_size to be an int or a tuple of {n}, got {output_size!r}")
    result = []
    for v, L in zip(values, input_size):
        if v is None:
            result.append(L)
        elif isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0:
            result.append(int(v))
        else:
            raise ValueError(f"{name}: expected output_size entries to be positive ints or None, got {output_size!r}")
    return tuple(result)


def _as_planes(x: np.ndarray, n: int):
    """View ``x`` as (planes, H, W) (a 1d input gets H = 1); returns the view and the leading shape."""
    lead = x.shape[:-n]
    spatial = x.shape[-n:]
    if n == 1:
        spatial = (1,) + spatial
    return np.ascontiguousarray(x).reshape((-1,) + spatial), lead


def _windows_2d(w: Windows):
    """The four start/end arrays and two steps of a 2d kernel call (a 1d pool is one row of height 1)."""
    if len(w.starts) == 1:
        zero, one = np.zeros(1, np.int64), np.ones(1, np.int64)
        return zero, one, 1, w.starts[0], w.ends[0], w.steps[0]
    return w.starts[0], w.ends[0], w.steps[0], w.starts[1], w.ends[1], w.steps[1]


def _divisors_2d(w: Windows, dtype):
    """The per-axis divisors in the data's dtype (small integers: exact), so a float32 share stays float32."""
    if len(w.divisors) == 1:
        return np.ones(1, dtype), w.divisors[0].astype(dtype)
    return w.divisors[0].astype(dtype), w.divisors[1].astype(dtype)


def _check_rules(name: str, tie: str, nan: str) -> None:
    if tie not in TIE_RULES:
        raise ValueError(f"{name}: expected tie to be one of {TIE_RULES}, got {tie!r}")
    if nan not in NAN_RULES:
        raise ValueError(f"{name}: expected nan to be one of {NAN_RULES}, got {nan!r}")


# ============================================================ Numba kernels
# All kernels take (planes, H, W) contiguous arrays and run in parallel over planes;
# each plane's gradient is written by one thread only, so scatter-adds never race.

@njit(cache=True, inline="always")
def _window_extremum(xp, W, h0, h1, h_step, w0, w1, w_step, is_min, ignore_nan):
    """The winner of one window of the flat plane ``xp``: (value, flat index)."""
    best_index = h0 * W + w0                     # torch's start: the window's first in-bounds member
    best = xp[best_index]
    if ignore_nan:
        found = best == best
        for h in range(h0, h1, h_step):
            row = h * W
            for w in range(w0, w1, w_step):
                v = xp[row + w]
                # NaNs never take the window; strict comparison keeps the first of tied elements.
                take = (v == v) & ((not found) | ((v < best) if is_min else (v > best)))
                best = v if take else best
                best_index = row + w if take else best_index
                found = found | take
        # An all-NaN window has no extremum: it outputs NaN (best is that NaN) at its first member.
        return best, best_index
    for h in range(h0, h1, h_step):
        row = h * W
        for w in range(w0, w1, w_step):
            v = xp[row + w]
            # torch's rule: strictly better, or NaN (so a NaN wins, and the last NaN keeps the index).
            # Written as a select, not a branch: the compiler emits conditional moves.
            take = ((v < best) if is_min else (v > best)) | (v != v)
            best = v if take else best
            best_index = row + w if take else best_index
    return best, best_index


@njit(cache=True, inline="always")
def _plane_extremum(xp, yp, ap, W, h_start, h_end, h_step, w_start, w_end, w_step, is_min, ignore_nan):
    for oh in range(h_start.shape[0]):
        h0, h1 = h_start[oh], h_end[oh]
        for ow in range(w_start.shape[0]):
            best, best_index = _window_extremum(xp, W, h0, h1, h_step, w_start[ow], w_end[ow], w_step,
                                                is_min, ignore_nan)
            yp[oh, ow] = best
            ap[oh, ow] = best_index


@njit(cache=True, parallel=True)
def _extremum_forward_kernel(x, h_start, h_end, h_step, w_start, w_end, w_step, is_min, ignore_nan):
    planes, H, W = x.shape
    OH, OW = h_start.shape[0], w_start.shape[0]
    y = np.empty((planes, OH, OW), dtype=x.dtype)
    argmax = np.empty((planes, OH, OW), dtype=np.int64)
    dense = h_step == 1 and w_step == 1
    for plane in prange(planes):
        xp = x[plane].ravel()
        if dense:  # literal unit steps: the common undilated case compiles to tighter loops
            _plane_extremum(xp, y[plane], argmax[plane], W, h_start, h_end, 1, w_start, w_end, 1,
                            is_min, ignore_nan)
        else:
            _plane_extremum(xp, y[plane], argmax[plane], W, h_start, h_end, h_step, w_start, w_end, w_step,
                            is_min, ignore_nan)
    return y, argmax


@njit(cache=True, parallel=True)
def _scatter_add_kernel(dy, index, H, W):
    planes, OH, OW = dy.shape
    dx = np.empty((planes, H * W), dtype=dy.dtype)
    for plane in prange(planes):
        flat = dx[plane]
        flat[:] = 0                     # zero this plane here: it is still in cache for the scatter
        g = dy[plane].ravel()
        idx = index[plane].ravel()
        for o in range(OH * OW):
            flat[idx[o]] += g[o]
    return dx


@njit(cache=True, parallel=True)
def _extremum_split_backward_kernel(dy, x, argmax, h_start, h_end, h_step, w_start, w_end, w_step):
    planes, H, W = x.shape
    OH, OW = dy.shape[1], dy.shape[2]
    dx = np.empty((planes, H * W), dtype=dy.dtype)
    for plane in prange(planes):
        xp = x[plane].ravel()
        flat = dx[plane]
        flat[:] = 0
        for oh in range(OH):
            h0, h1 = h_start[oh], h_end[oh]
            for ow in range(OW):
                w0, w1 = w_start[ow], w_end[ow]
                target = xp[argmax[plane, oh, ow]]      # the window's value, read back at its first winner
                target_is_nan = target != target
                winners = 0
                for h in range(h0, h1, h_step):
                    for w in range(w0, w1, w_step):
                        v = xp[h * W + w]
                        if v == target or (target_is_nan and v != v):
                            winners += 1
                share = dy[plane, oh, ow] / winners
                for h in range(h0, h1, h_step):
                    for w in range(w0, w1, w_step):
                        v = xp[h * W + w]
                        if v == target or (target_is_nan and v != v):
                            flat[h * W + w] += share
    return dx


@njit(cache=True, parallel=True)
def _mean_forward_kernel(x, h_start, h_end, w_start, w_end, h_divisor, w_divisor, divisor_override):
    planes, H, W = x.shape
    OH, OW = h_start.shape[0], w_start.shape[0]
    y = np.empty((planes, OH, OW), dtype=x.dtype)
    for plane in prange(planes):
        xp = x[plane].ravel()
        for oh in range(OH):
            h0, h1 = h_start[oh], h_end[oh]
            for ow in range(OW):
                w0, w1 = w_start[ow], w_end[ow]
                total = 0.0                      # float64 accumulator, also for float32 input
                for h in range(h0, h1):
                    row = h * W
                    for w in range(w0, w1):
                        total += xp[row + w]
                divisor = divisor_override if divisor_override != 0 else h_divisor[oh] * w_divisor[ow]
                y[plane, oh, ow] = total / divisor
    return y


@njit(cache=True, parallel=True)
def _mean_backward_kernel(dy, h_start, h_end, w_start, w_end, h_divisor, w_divisor, divisor_override, H, W):
    planes, OH, OW = dy.shape
    dx = np.empty((planes, H * W), dtype=dy.dtype)
    for plane in prange(planes):
        flat = dx[plane]
        flat[:] = 0
        for oh in range(OH):
            h0, h1 = h_start[oh], h_end[oh]
            for ow in range(OW):
                w0, w1 = w_start[ow], w_end[ow]
                divisor = divisor_override if divisor_override != 0 else h_divisor[oh] * w_divisor[ow]
                share = dy[plane, oh, ow] / divisor      # in the input's dtype, as torch
                for h in range(h0, h1):
                    row = h * W
                    for w in range(w0, w1):
                        flat[row + w] += share
    return dx


@njit(cache=True, parallel=True)
def _unpool_kernel(x, index, size):
    planes, count = x.shape
    y = np.empty((planes, size), dtype=x.dtype)
    for plane in prange(planes):
        y[plane] = 0
        for i in range(count):          # in order: with repeated indices the last write wins, as in torch
            y[plane, index[plane, i]] = x[plane, i]
    return y


@njit(cache=True, parallel=True)
def _gather_kernel(dy, index):
    planes, count = index.shape
    dx = np.empty((planes, count), dtype=dy.dtype)
    for plane in prange(planes):
        for i in range(count):
            dx[plane, i] = dy[plane, index[plane, i]]
    return dx


# ============================================================ max / min pooling

class ExtremumSaved(NamedTuple):
    """What max/min pooling keeps for backward: the winners' flat indices, and (tie="split") x."""

    argmax: np.ndarray          # (..., *out) int64, flat per plane: torch's return_indices
    input_shape: tuple[int, ...]
    spatial_dims: int
    tie: str
    windows: Windows
    x: np.ndarray | None        # only for tie="split": which elements tie with the winner


def _extremum_forward(x, n, is_min, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, name):
    _check_rules(name, tie, nan)
    kernel, stride, padding, dilation = normalize_pool_args(name, n, kernel_size, stride, padding, dilation)
    windows = pool_windows(name, x.shape[-n:], kernel, stride, padding, dilation, ceil_mode)
    planes, lead = _as_planes(x, n)
    y, argmax = _extremum_forward_kernel(planes, *_windows_2d(windows), is_min, nan == "ignore")
    out_shape = lead + windows.output_size
    y, argmax = y.reshape(out_shape), argmax.reshape(out_shape)
    split = tie == "split"
    return y, ExtremumSaved(argmax, x.shape, n, tie, windows, x if split else None)


def extremum_pool_backward(dy: np.ndarray, saved: ExtremumSaved):
    """Backward of max/min pooling (and adaptive max pooling): route each output's gradient to its winner(s)."""
    n = saved.spatial_dims
    H, W = ((1,) + saved.input_shape[-1:]) if n == 1 else saved.input_shape[-2:]
    dy_planes = np.ascontiguousarray(dy).reshape((-1,) + ((1,) if n == 1 else ()) + dy.shape[-n:])
    if saved.tie == "split":
        # y = max_j x_j: every j with x_j == y (a NaN output: every NaN) is a winner; with m winners,
        # the subgradient that shares equally is dy/dx_j = 1/m.
        x_planes, _ = _as_planes(saved.x, n)
        dx = _extremum_split_backward_kernel(dy_planes, x_planes, saved.argmax.reshape(dy_planes.shape),
                                             *_windows_2d(saved.windows))
    else:
        # y = x[argmax]  =>  dy/dx_j = 1 if j == argmax else 0: scatter dy to the recorded index
        # (torch's rule; overlapping windows that share a winner add up).
        dx = _scatter_add_kernel(dy_planes, saved.argmax.reshape(dy_planes.shape), H, W)
    return (dx.reshape(saved.input_shape),)


def max_pool1d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       tie="first", nan="propagate", _name="max_pool1d"):
    """Max over sliding windows of the last axis; ``saved.argmax`` holds torch's indices."""
    return _extremum_forward(x, 1, False, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, _name)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       tie="first", nan="propagate", _name="max_pool2d"):
    """Max over sliding windows of the last two axes; ``saved.argmax`` holds torch's flat indices."""
    return _extremum_forward(x, 2, False, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, _name)


def min_pool1d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       tie="first", nan="propagate", _name="min_pool1d"):
    """Min over sliding windows of the last axis (= -max_pool1d(-x), indices included)."""
    return _extremum_forward(x, 1, True, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, _name)


def min_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       tie="first", nan="propagate", _name="min_pool2d"):
    """Min over sliding windows of the last two axes (= -max_pool2d(-x), indices included)."""
    return _extremum_forward(x, 2, True, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, _name)


max_pool1d_backward = max_pool2d_backward = extremum_pool_backward
min_pool1d_backward = min_pool2d_backward = extremum_pool_backward


# ============================================================ average pooling

class MeanSaved(NamedTuple):
    """Average pooling needs only the geometry: its backward does not depend on x."""

    input_shape: tuple[int, ...]
    spatial_dims: int
    windows: Windows
    divisor_override: int


def _mean_forward(x, n, windows, divisor_override):
    planes, lead = _as_planes(x, n)
    h_divisor, w_divisor = _divisors_2d(windows, x.dtype)
    h0, h1, _, w0, w1, _ = _windows_2d(windows)
    y = _mean_forward_kernel(planes, h0, h1, w0, w1, h_divisor, w_divisor, x.dtype.type(divisor_override))
    return y.reshape(lead + windows.output_size), MeanSaved(x.shape, n, windows, divisor_override)


def mean_pool_backward(dy: np.ndarray, saved: MeanSaved):
    """Backward of average pooling (and adaptive average pooling)."""
    n = saved.spatial_dims
    H, W = ((1,) + saved.input_shape[-1:]) if n == 1 else saved.input_shape[-2:]
    dy_planes = np.ascontiguousarray(dy).reshape((-1,) + ((1,) if n == 1 else ()) + dy.shape[-n:])
    h_divisor, w_divisor = _divisors_2d(saved.windows, dy.dtype)
    h0, h1, _, w0, w1, _ = _windows_2d(saved.windows)
    # y_o = (1/D_o) sum_{j in window o} x_j  =>  dL/dx_j = sum_{o : j in window o} dy_o / D_o:
    # each output hands an equal share to every in-bounds member (padding takes its share away).
    dx = _mean_backward_kernel(dy_planes, h0, h1, w0, w1, h_divisor, w_divisor, dy.dtype.type(saved.divisor_override), H, W)
    return (dx.reshape(saved.input_shape),)


def _check_divisor_override(name, divisor_override) -> int:
    if divisor_override is None:
        return 0
    if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral) or divisor_override == 0:
        # torch accepts any non-zero int (a negative one flips the sign); 0 means "no override" in the kernels.
        raise ValueError(f"{name}: expected divisor_override to be a non-zero int or None, got {divisor_override!r}")
    return int(divisor_override)


def avg_pool1d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                       _name="avg_pool1d"):
    """Mean over sliding windows of the last axis, with torch's divisor rules."""
    kernel, stride, padding, dilation = normalize_pool_args(_name, 1, kernel_size, stride, padding)
    windows = pool_windows(_name, x.shape[-1:], kernel, stride, padding, dilation, ceil_mode,
                           count_include_pad, with_divisors=True)
    return _mean_forward(x, 1, windows, 0)


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                       divisor_override=None, _name="avg_pool2d"):
    """Mean over sliding windows of the last two axes, with torch's divisor rules."""
    override = _check_divisor_override(_name, divisor_override)
    kernel, stride, padding, dilation = normalize_pool_args(_name, 2, kernel_size, stride, padding)
    windows = pool_windows(_name, x.shape[-2:], kernel, stride, padding, dilation, ceil_mode,
                           count_include_pad, with_divisors=True)
    return _mean_forward(x, 2, windows, override)


avg_pool1d_backward = avg_pool2d_backward = mean_pool_backward


# ============================================================ adaptive pooling

def _adaptive_avg_forward(x, n, output_size, name):
    windows = adaptive_windows(x.shape[-n:], normalize_adaptive_output_size(name, output_size, x.shape[-n:]))
    return _mean_forward(x, n, windows, 0)


def adaptive_avg_pool1d_forward(x, output_size, _name="adaptive_avg_pool1d"):
    """Mean over torch's adaptive windows of the last axis."""
    return _adaptive_avg_forward(x, 1, output_size, _name)


def adaptive_avg_pool2d_forward(x, output_size, _name="adaptive_avg_pool2d"):
    """Mean over torch's adaptive windows of the last two axes."""
    return _adaptive_avg_forward(x, 2, output_size, _name)


def _adaptive_max_forward(x, n, output_size, name, is_min=False, tie="first", nan="propagate"):
    _check_rules(name, tie, nan)
    windows = adaptive_windows(x.shape[-n:], normalize_adaptive_output_size(name, output_size, x.shape[-n:]))
    planes, lead = _as_planes(x, n)
    y, argmax = _extremum_forward_kernel(planes, *_windows_2d(windows), is_min, nan == "ignore")
    out_shape = lead + windows.output_size
    y, argmax = y.reshape(out_shape), argmax.reshape(out_shape)
    split = tie == "split"
    return y, ExtremumSaved(argmax, x.shape, n, tie, windows, x if split else None)


def adaptive_max_pool1d_forward(x, output_size, tie="first", nan="propagate", _name="adaptive_max_pool1d"):
    """Max over torch's adaptive windows of the last axis; ``saved.argmax`` holds torch's indices."""
    return _adaptive_max_forward(x, 1, output_size, _name, tie=tie, nan=nan)


def adaptive_max_pool2d_forward(x, output_size, tie="first", nan="propagate", _name="adaptive_max_pool2d"):
    """Max over torch's adaptive windows of the last two axes; ``saved.argmax`` holds torch's indices."""
    return _adaptive_max_forward(x, 2, output_size, _name, tie=tie, nan=nan)


adaptive_avg_pool1d_backward = adaptive_avg_pool2d_backward = mean_pool_backward
adaptive_max_pool1d_backward = adaptive_max_pool2d_backward = extremum_pool_backward


# ============================================================ power-average (Lp) pooling

class LpSaved(NamedTuple):
    x: np.ndarray
    norm_type: float
    kernel_volume: int
    pooled: np.ndarray | None      # s = avg_pool(x^p): the window's mean of x^p
    scaled: np.ndarray | None      # v = sign(s) relu(|s|) K, so that y = v^(1/p)
    inner: MeanSaved | ExtremumSaved


def _check_norm_type(name, norm_type) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or norm_type == 0 or math.isnan(norm_type):
        raise ValueError(f"{name}: expected norm_type to be a non-zero real number, got {norm_type!r}")
    return norm_type


def _lp_forward(x, n, norm_type, kernel_size, stride, ceil_mode, name):
    p = _check_norm_type(name, norm_type)
    kernel = tuple_of(name, "kernel_size", kernel_size, n, minimum=1)
    K = int(np.prod(kernel))
    if math.isinf(p):
        # torch: p = inf is max pooling of |x|, p = -inf is min pooling of |x|.
        y, inner = _extremum_forward(np.abs(x), n, p < 0, kernel, stride, 0, 1, ceil_mode, "first", "propagate", name)
        return y, LpSaved(x, p, K, None, None, inner)
    # torch's definition, kept literally so values and gradients match (including its quirks):
    # y = (sign(s) relu(|s|) K)^(1/p) with s = avg_pool(x^p) over the unpadded window; a ceil_mode
    # window cut by the border is therefore scaled by K / (its size), not K / K.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):   # NaN/inf as torch gives them
        powered = x ** p
    pooled, inner = (avg_pool1d_forward if n == 1 else avg_pool2d_forward)(
        powered, kernel, stride, 0, ceil_mode, _name=name)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        scaled = np.sign(pooled) * np.maximum(np.abs(pooled), 0) * K
        y = scaled ** (1.0 / p)
    return y, LpSaved(x, p, K, pooled, scaled, inner)


def lp_pool1d_forward(x, norm_type, kernel_size, stride=None, ceil_mode=False, _name="lp_pool1d"):
    """(sum over the window of x^p)^(1/p), torch's power-average pooling on the last axis."""
    return _lp_forward(x, 1, norm_type, kernel_size, stride, ceil_mode, _name)


def lp_pool2d_forward(x, norm_type, kernel_size, stride=None, ceil_mode=False, _name="lp_pool2d"):
    """(sum over the window of x^p)^(1/p), torch's power-average pooling on the last two axes."""
    return _lp_forward(x, 2, norm_type, kernel_size, stride, ceil_mode, _name)


def lp_pool_backward(dy: np.ndarray, saved: LpSaved):
    """Backward of Lp pooling, following torch's chain step by step."""
    x, p = saved.x, saved.norm_type
    if saved.pooled is None:
        # y = max |x_j|  =>  dy/dx_j = sign(x_j) at the winner
        (g_abs,) = extremum_pool_backward(dy, saved.inner)
        return (g_abs * np.sign(x),)
    s, v = saved.pooled, saved.scaled
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # y = v^(1/p)                     =>  g_v = dy (1/p) v^(1/p - 1)
        g_v = dy * ((1.0 / p) * v ** (1.0 / p - 1))
        # v = sign(s) relu(|s|) K, sign has zero derivative; relu passes where relu(|s|) > 0 (torch's
        # threshold_backward), so an all-zero window gets gradient 0 instead of inf * 0.
        g_u = g_v * saved.kernel_volume
        g_s = np.where(np.maximum(np.abs(s), 0) <= 0, 0, g_u * np.sign(s)).astype(dy.dtype, copy=False) * np.sign(s)
        (g_power,) = mean_pool_backward(g_s.astype(dy.dtype, copy=False), saved.inner)
        # s averages x^p  =>  d(x^p)/dx = p x^(p-1)
        g_x = g_power * (p * x ** (p - 1))
    return (g_x.astype(x.dtype, copy=False),)


lp_pool1d_backward = lp_pool2d_backward = lp_pool_backward


# ============================================================ max unpooling

class UnpoolSaved(NamedTuple):
    index: np.ndarray           # (planes, count) flat positions in the output planes
    input_shape: tuple[int, ...]


def unpool_output_size(name, input_spatial, kernel, stride, padding, output_size):
    """torch's ``_unpool_output_size``: the default size, or a checked explicit one."""
    n = len(kernel)
    default = tuple((L - 1) * s + k - 2 * p for L, k, s, p in zip(input_spatial, kernel, stride, padding))
    if output_size is None:
        size = default
    else:
        size = tuple(output_size)
        if len(size) == n + 2:
            size = size[2:]
        if len(size) != n:
            raise ValueError(f"{name}: expected output_size with {n} or {n + 2} elements, got {tuple(output_size)}")
        for d in range(n):
            low, high = default[d] - stride[d], default[d] + stride[d]
            if not low < size[d] < high:
                raise ValueError(
                    f"{name}: invalid output_size {tuple(output_size)} (dim {d} must be between {low} and {high}, exclusive)"
                )
        size = tuple(int(v) for v in size)
    if any(v < 1 for v in size):
        raise ValueError(f"{name}: the output size would be {_fmt(size)}; it must be positive")
    return size


def _unpool_forward(x, indices, n, kernel_size, stride, padding, output_size, name):
    kernel = tuple_of(name, "kernel_size", kernel_size, n, minimum=1)
    if stride is None or (not isinstance(stride, numbers.Integral) and len(tuple(stride)) == 0):
        stride = kernel
    stride = tuple_of(name, "stride", stride, n, minimum=1)
    padding = tuple_of(name, "padding", padding, n, minimum=0)
    out_spatial = unpool_output_size(name, x.shape[-n:], kernel, stride, padding, output_size)
    size = int(np.prod(out_spatial))
    if np.shape(indices) != x.shape:
        raise ValueError(f"{name}: expected indices of the input's shape {x.shape}, got {np.shape(indices)}")
    # a private copy: the caller may change its indices before backward, which gathers through them
    index = np.array(indices, dtype=np.int64, order="C", copy=True).reshape(-1, int(np.prod(x.shape[-n:], dtype=np.int64)))
    if index.size and (index.min() < 0 or index.max() >= size):
        bad = index.min() if index.min() < 0 else index.max()
        raise ValueError(f"{name}: found an invalid max index {bad} (output plane of size {_fmt(out_spatial)})")
    planes = np.ascontiguousarray(x).reshape(index.shape)
    # y[index_i] = x_i (zeros elsewhere)
    y = _unpool_kernel(planes, index, size)
    return y.reshape(x.shape[:-n] + out_spatial), UnpoolSaved(index, x.shape)


def max_unpool1d_forward(x, indices, kernel_size, stride=None, padding=0, output_size=None, _name="max_unpool1d"):
    """Partial inverse of max_pool1d: put each value at its recorded index, zeros elsewhere."""
    return _unpool_forward(x, indices, 1, kernel_size, stride, padding, output_size, _name)


def max_unpool2d_forward(x, indices, kernel_size, stride=None, padding=0, output_size=None, _name="max_unpool2d"):
    """Partial inverse of max_pool2d: put each value at its recorded flat index, zeros elsewhere."""
    return _unpool_forward(x, indices, 2, kernel_size, stride, padding, output_size, _name)


def max_unpool_backward(dy: np.ndarray, saved: UnpoolSaved):
    # y[index_i] = x_i  =>  dL/dx_i = dy[index_i]: gather (a repeated index hands its gradient to
    # every input that points at it, as torch's backward does).
    planes = np.ascontiguousarray(dy).reshape(saved.index.shape[0], -1)
    return (_gather_kernel(planes, saved.index).reshape(saved.input_shape), None)


max_unpool1d_backward = max_unpool2d_backward = max_unpool_backward


# ============================================================ visible routing

_ROUTING_KINDS = {
    "max": "max_pool2d", "min": "min_pool2d", "avg": "avg_pool2d", "lp": "lp_pool2d",
    "adaptive_max": "adaptive_max_pool2d", "adaptive_avg": "adaptive_avg_pool2d",
}
_ROUTED_OPS = ("max_pool1d", "max_pool2d", "min_pool1d", "min_pool2d", "avg_pool1d", "avg_pool2d",
               "lp_pool1d", "lp_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
               "adaptive_avg_pool1d", "adaptive_avg_pool2d")
#: routing() builds a dense array; beyond this many weights the input is not "small".
ROUTING_MAX_WEIGHTS = 20_000_000


@dataclass(frozen=True)
class Routing:
    """Where each pooled output's gradient goes: ``weights[..., o, i] = d output[..., o] / d input[..., i]``.

    ``weights`` has shape ``output.shape + input spatial shape``: the leading
    (batch, channel) axes are shared, because pooling never mixes planes.
    For a 2d pool, ``weights[n, c, oh, ow]`` is an (H, W) picture of the input
    plane: 1 at the max's winner, 1/divisor over an average's window, 0
    elsewhere. ``edges()`` lists the same as (output index, input index, weight)
    triples; ``input_gradient(dy)`` applies the routing to an upstream gradient
    (and equals the op's backward).
    """

    kind: str
    output: np.ndarray
    weights: np.ndarray

    @property
    def spatial_dims(self) -> int:
        return self.weights.ndim - self.output.ndim

    def input_gradient(self, dy: np.ndarray) -> np.ndarray:
        """dL/dx[..., i] = sum_o dy[..., o] * weights[..., o, i]."""
        n = self.spatial_dims
        lead = self.output.shape[:-n]
        out_count = int(np.prod(self.output.shape[-n:]))
        in_spatial = self.weights.shape[self.output.ndim:]
        w = self.weights.reshape(lead + (out_count, int(np.prod(in_spatial))))
        g = np.asarray(dy).reshape(lead + (out_count,))
        return np.einsum("...o,...oi->...i", g, w).reshape(lead + in_spatial)

    def edges(self, tol: float = 0.0) -> list[tuple[tuple[int, ...], tuple[int, ...], float]]:
        """(output index, input index, weight) for every weight with |weight| > tol; both indices are full."""
        n = self.spatial_dims
        lead_ndim = self.output.ndim - n
        result = []
        for index in zip(*np.nonzero(np.abs(self.weights) > tol)):
            index = tuple(int(i) for i in index)
            out_index = index[:self.output.ndim]
            in_index = index[:lead_ndim] + index[self.output.ndim:]
            result.append((out_index, in_index, float(self.weights[index])))
        return result


def _sliding_membership(L, k, s, p, d, out):
    """member[o, i]: input position i is a (real, unpadded) member of window o along one axis."""
    offset = np.arange(L)[None, :] - (np.arange(out) * s - p)[:, None]
    return (offset >= 0) & (offset % d == 0) & (offset // d < k)


def _adaptive_membership(L, out):
    o, i = np.arange(out)[:, None], np.arange(L)[None, :]
    # floor(o L/out) <= i  <=>  (i + 1) out > o L;   i < ceil((o+1) L/out)  <=>  i out < (o+1) L
    return ((i + 1) * out > o * L) & (i * out < (o + 1) * L)


def _window_mask(memberships):
    """mask[o..., i...] for 1 or 2 axes: the outer product of per-axis memberships."""
    if len(memberships) == 1:
        return memberships[0]
    mh, mw = memberships
    return mh[:, None, :, None] & mw[None, :, None, :]


def _one_hot_routing(argmax, in_spatial, dtype):
    flat = np.zeros(argmax.shape + (int(np.prod(in_spatial)),), dtype=dtype)
    np.put_along_axis(flat, argmax[..., None], 1, axis=-1)
    return flat.reshape(argmax.shape + tuple(in_spatial))


def _spread(x, n, out_ndim_extra):
    """x with singleton output axes inserted before its spatial axes (for broadcasting against y)."""
    lead = x.shape[:-n]
    return x.reshape(lead + (1,) * out_ndim_extra + x.shape[-n:])


def _split_routing(x, y, n, mask):
    # winners: real window members equal to the output (NaN counts as equal to a NaN output)
    xb = _spread(x, n, n)
    yb = y.reshape(y.shape + (1,) * n)
    win = mask & ((xb == yb) | (np.isnan(xb) & np.isnan(yb)))
    counts = win.sum(axis=tuple(range(-n, 0)), keepdims=True)
    return (win / counts).astype(x.dtype)


def routing(kind: str, x, *args, **kwargs) -> Routing:
    """The gradient routing of a pooling op on a small input, as a dense array of weights.

    ``kind`` is a functional name (``"max_pool2d"``, ``"avg_pool1d"``,
    ``"adaptive_max_pool2d"``, ``"lp_pool2d"``, ...) or a short name for the 2d
    op (``"max"``, ``"min"``, ``"avg"``, ``"lp"``, ``"adaptive_max"``,
    ``"adaptive_avg"``); ``args``/``kwargs`` are that op's arguments
    (``tie``/``nan`` included for max/min). ``x`` is any array whose last one
    (1d) or two (2d) axes are spatial -- a single (H, W) image works.

    The weights are built from the window geometry (and, for max/min, from the
    recorded indices or the tied winners), not by running backward; a test
    checks that ``input_gradient`` equals the op's backward.

    >>> import numpy as np
    >>> r = routing("max", np.array([[1., 5.], [3., 2.]]), 2)
    >>> r.output
    array([[5.]])
    >>> r.weights[0, 0]
    array([[0., 1.],
           [0., 0.]])
    >>> r.edges()
    [((0, 0), (0, 1), 1.0)]
    """
    op = _ROUTING_KINDS.get(kind, kind)
    if op not in _ROUTED_OPS:
        raise ValueError(f"routing: unknown kind {kind!r}; expected one of {sorted(_ROUTING_KINDS)} or {_ROUTED_OPS}")
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    n = 1 if op.endswith("1d") else 2
    if x.ndim < n:
        raise ValueError(f"routing: {op} needs at least {n} spatial axes, got an input of shape {x.shape}")
    y, saved = globals()[op + "_forward"](x, *args, **kwargs)
    in_spatial = x.shape[-n:]
    if y.size * int(np.prod(in_spatial)) > ROUTING_MAX_WEIGHTS:
        raise ValueError(f"routing: input of shape {x.shape} is too large for a dense routing "
                         f"({y.size} outputs x {int(np.prod(in_spatial))} inputs)")
    base = op[:-2]
    if base in ("max_pool", "min_pool", "adaptive_max_pool"):
        weights = _extremum_routing(x, y, saved, n)
    elif base == "adaptive_avg_pool":
        mask = _window_mask([_adaptive_membership(L, o) for L, o in zip(in_spatial, y.shape[-n:])])
        weights = _mean_routing(mask, mask.sum(axis=tuple(range(-n, 0))), y, x.dtype)
    elif base == "avg_pool":
        weights = _avg_routing(op, x, y, n, *args, **kwargs)
    else:
        weights = _lp_routing(op, x, y, saved, n, *args, **kwargs)
    return Routing(kind, y, weights)


def _extremum_routing(x, y, saved: ExtremumSaved, n):
    if saved.tie == "first":
        return _one_hot_routing(saved.argmax, x.shape[-n:], x.dtype)
    w = saved.windows
    if w.divisors is None:   # sliding windows (adaptive windows carry their sizes as divisors)
        memberships = [
            _member_from_windows(L, start, end, step) for L, start, end, step in zip(w.input_size, w.starts, w.ends, w.steps)
        ]
    else:
        memberships = [_adaptive_membership(L, o) for L, o in zip(w.input_size, w.output_size)]
    return _split_routing(x, y, n, _window_mask(memberships))


def _member_from_windows(L, start, end, step):
    i = np.arange(L)[None, :]
    return (i >= start[:, None]) & (i < end[:, None]) & ((i - start[:, None]) % step == 0)


def _mean_routing(mask, divisor, y, dtype):
    n = mask.ndim // 2
    lead = y.shape[:-n]
    weights = mask / divisor.reshape(divisor.shape + (1,) * n)
    return np.broadcast_to(weights.astype(dtype), lead + weights.shape).copy()


def _avg_routing(op, x, y, n, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
    kernel, stride, padding, _ = normalize_pool_args(op, n, kernel_size, stride, padding)
    in_spatial, out_spatial = x.shape[-n:], y.shape[-n:]
    memberships = [_sliding_membership(L, k, s, p, 1, o)
                   for L, k, s, p, o in zip(in_spatial, kernel, stride, padding, out_spatial)]
    mask = _window_mask(memberships)
    if divisor_override is not None:
        divisor = np.full(out_spatial, divisor_override)
    else:
        per_axis = []
        for L, k, s, p, o, m in zip(in_spatial, kernel, stride, padding, out_spatial, memberships):
            # the padded window, never beyond the right padding; or only its real members
            start = np.arange(o) * s - p
            per_axis.append(np.minimum(k, L + p - start) if count_include_pad else m.sum(axis=1))
        divisor = per_axis[0] if n == 1 else per_axis[0][:, None] * per_axis[1][None, :]
    return _mean_routing(mask, divisor, y, x.dtype)


def _lp_routing(op, x, y, saved: LpSaved, n, norm_type, kernel_size, stride=None, ceil_mode=False):
    if saved.pooled is None:   # p = +-inf: max/min pooling of |x|, times sign(x)
        return _one_hot_routing(saved.inner.argmax, x.shape[-n:], x.dtype) * _spread(np.sign(x), n, n)
    p, s, v = saved.norm_type, saved.pooled, saved.scaled
    avg = _avg_routing(op, x, y, n, kernel_size, stride, 0, ceil_mode)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        dy_ds = np.where(np.abs(s) <= 0, 0, (1.0 / p) * v ** (1.0 / p - 1) * saved.kernel_volume * np.sign(s)) * np.sign(s)
        return avg * dy_ds.reshape(dy_ds.shape + (1,) * n) * _spread(p * x ** (p - 1), n, n)
