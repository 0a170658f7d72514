"""Pooling: max / min / average / power-average / adaptive pooling and max-unpooling.

Every op is a pure pair ``<op>_forward(x, ...) -> (y, saved)`` and
``<op>_backward(dy, saved) -> (dx,)`` on NumPy arrays. Inputs are any array
whose last one (``*1d``), two (``*2d``) or three (``*3d``) axes are spatial;
the leading axes (batch, channels, or just channels) are independent *planes*.
One set of loops serves every dimension: a 2d pool is a 3d pool of depth 1.

How the gradient travels (the point of this module), one public backward per
kind, each with its rule written above its one line of work:

* max / min pooling records, in forward, which member of each window won;
  backward hands each output's gradient to that one element and nowhere else.
* average pooling spreads each output's gradient equally over the real
  members of its window, each share divided by the window's divisor.
* power-average (Lp) pooling chains the two through ``x^p``.
* ``routing(kind, x, ...)`` returns that routing as a dense array of weights,
  for pictures; a test checks it against these backwards.

The package's rooms: ``geometry`` (the one definition of a window and of the
divisor), ``kernels`` (the Numba loops), ``routing`` (the dense picture).

Max/min pooling take two rules beyond torch (defaults are torch's):
``tie="first"`` (the first maximum in row-major order takes the gradient) or
``"split"`` (all tied maxima share it equally); ``nan="propagate"`` (a NaN wins
its window; the last NaN's index is kept) or ``"ignore"`` (NaNs never win; an
all-NaN window outputs NaN at its first element).
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from normlab._checks import tuple_of
from normlab.ops.pooling import kernels
from normlab.ops.pooling.geometry import (
    Axis,
    Windows,
    adaptive_windows,
    as_planes,
    fmt,
    normalize_adaptive_output_size,
    normalize_pool_args,
    normalize_stride,
    pool_output_size,
    pool_windows,
    unpool_output_size,
)

__all__ = [
    # forward / backward pairs
    "max_pool1d_forward", "max_pool2d_forward", "max_pool3d_forward",
    "min_pool1d_forward", "min_pool2d_forward", "min_pool3d_forward",
    "adaptive_max_pool1d_forward", "adaptive_max_pool2d_forward", "adaptive_max_pool3d_forward",
    "extremum_pool_backward", "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward",
    "min_pool1d_backward", "min_pool2d_backward", "min_pool3d_backward",
    "adaptive_max_pool1d_backward", "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward",
    "avg_pool1d_forward", "avg_pool2d_forward", "avg_pool3d_forward",
    "adaptive_avg_pool1d_forward", "adaptive_avg_pool2d_forward", "adaptive_avg_pool3d_forward",
    "mean_pool_backward", "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward", "adaptive_avg_pool3d_backward",
    "lp_pool1d_forward", "lp_pool2d_forward", "lp_pool3d_forward", "lp_pool_backward",
    "lp_pool1d_backward", "lp_pool2d_backward", "lp_pool3d_backward",
    "max_unpool1d_forward", "max_unpool2d_forward", "max_unpool3d_forward", "max_unpool_backward",
    "max_unpool1d_backward", "max_unpool2d_backward", "max_unpool3d_backward",
    "ExtremumSaved", "MeanSaved", "LpSaved", "UnpoolSaved", "TIE_RULES", "NAN_RULES",
    # geometry (one definition of a window and of the divisor)
    "Axis", "Windows", "pool_output_size", "pool_windows", "adaptive_windows", "normalize_pool_args",
    "normalize_adaptive_output_size", "unpool_output_size",
    # the dense picture of the routing
    "Routing", "routing", "ROUTED_OPS", "SHORT_NAMES", "ROUTING_MAX_WEIGHTS",
]

TIE_RULES = ("first", "split")
NAN_RULES = ("propagate", "ignore")


def _check_rules(name: str, tie: str, nan: str) -> None:
    if tie not in TIE_RULES:
        raise ValueError(f"{name}: expected tie to be one of {TIE_RULES}, got {tie!r}")
    if nan not in NAN_RULES:
        raise ValueError(f"{name}: expected nan to be one of {NAN_RULES}, got {nan!r}")


def _planes_of(dy: np.ndarray, windows: Windows, input_shape: tuple[int, ...]) -> np.ndarray:
    """dy as (planes, out_d, out_h, out_w), checked first: the kernels index by the windows' sizes."""
    expected = input_shape[:-windows.spatial_dims] + windows.output_size
    if np.shape(dy) != expected:
        raise ValueError(f"pooling backward: expected dy of shape {expected}, got {np.shape(dy)}")
    return as_planes(np.asarray(dy), windows.spatial_dims)


# ============================================================ max / min pooling

class ExtremumSaved(NamedTuple):
    """What max/min pooling keeps for backward: which member of each window won.

    ``winner`` holds member codes ``(a * kernel_h + i) * kernel_w + j`` (one
    byte for windows of up to 256 members), private to the op: ``indices()``
    turns them into torch's flat indices in a fresh array.
    """

    winner: np.ndarray          # (planes, out_d, out_h, out_w) member codes
    windows: Windows
    input_shape: tuple[int, ...]
    tie: str
    x: np.ndarray | None        # only for tie="split": which members tie with the winner

    def indices(self) -> np.ndarray:
        """torch's ``return_indices``: each winner's flat position ``(d * H + h) * W + w`` in its plane (int64, fresh)."""
        positions = kernels.winner_positions(self.windows, self.winner)
        return positions.reshape(self.input_shape[:-self.windows.spatial_dims] + self.windows.output_size)


def _extremum_forward(x, windows: Windows, is_min: bool, tie: str, nan: str):
    """y_o = max (min) of x_j over the real members j of window o; the winner w(o) is recorded.

    torch's rule picks w(o): the first extremum in row-major order, except that
    a NaN wins its window (the last NaN, if several). nan="ignore": NaNs never
    win; a window of NaNs only outputs NaN at its first member.
    """
    y, winner = kernels.extremum_forward(as_planes(x, windows.spatial_dims), windows, is_min, nan == "ignore")
    out_shape = x.shape[:-windows.spatial_dims] + windows.output_size
    return y.reshape(out_shape), ExtremumSaved(winner, windows, x.shape, tie, x if tie == "split" else None)


def extremum_pool_backward(dy: np.ndarray, saved: ExtremumSaved):
    """Backward of max/min pooling (sliding or adaptive).

    y_o = x_{w(o)}, where w(o) is the member of window o recorded in forward
    (the first maximum in row-major order, or the last NaN: torch's rule), so
        dL/dx_j = sum of dy_o over the windows o whose winner is j
    (overlapping windows that share a winner add up; every other x_j gets 0).
    tie="split": the subgradient that treats the m members equal to y_o alike
    gives each of them dy_o / m.
    """
    windows = saved.windows
    dy_planes = _planes_of(dy, windows, saved.input_shape)
    if saved.tie == "split":
        dx = kernels.split_among_tied(dy_planes, as_planes(saved.x, windows.spatial_dims), saved.winner, windows)
    else:
        dx = kernels.scatter_to_winners(dy_planes, saved.winner, windows)
    return (dx.reshape(saved.input_shape),)


def _sliding_extremum(x, n, is_min, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, name):
    _check_rules(name, tie, nan)
    kernel, stride, padding, dilation = normalize_pool_args(name, n, kernel_size, stride, padding, dilation)
    windows = pool_windows(name, x.shape[-n:], kernel, stride, padding, dilation, ceil_mode)
    return _extremum_forward(x, windows, is_min, tie, nan)


def max_pool1d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       tie="first", nan="propagate", _name="max_pool1d"):
    """Max over sliding windows of the last axis; ``saved.indices()`` gives torch's indices."""
    return _sliding_extremum(x, 1, False, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, _name)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       tie="first", nan="propagate", _name="max_pool2d"):
    """Max over sliding windows of the last two axes; ``saved.indices()`` gives torch's flat indices."""
    return _sliding_extremum(x, 2, False, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, _name)


def min_pool1d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       tie="first", nan="propagate", _name="min_pool1d"):
    """Min over sliding windows of the last axis (= -max_pool1d(-x), indices included)."""
    return _sliding_extremum(x, 1, True, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, _name)


def min_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       tie="first", nan="propagate", _name="min_pool2d"):
    """Min over sliding windows of the last two axes (= -max_pool2d(-x), indices included)."""
    return _sliding_extremum(x, 2, True, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, _name)


def max_pool3d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       tie="first", nan="propagate", _name="max_pool3d"):
    """Max over sliding windows of the last three axes; ``saved.indices()`` gives torch's flat indices."""
    return _sliding_extremum(x, 3, False, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, _name)


def min_pool3d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       tie="first", nan="propagate", _name="min_pool3d"):
    """Min over sliding windows of the last three axes (= -max_pool3d(-x), indices included)."""
    return _sliding_extremum(x, 3, True, kernel_size, stride, padding, dilation, ceil_mode, tie, nan, _name)


def _adaptive_extremum(x, n, output_size, tie, nan, name):
    _check_rules(name, tie, nan)
    windows = adaptive_windows(x.shape[-n:], normalize_adaptive_output_size(name, output_size, x.shape[-n:]))
    return _extremum_forward(x, windows, False, tie, nan)


def adaptive_max_pool1d_forward(x, output_size, tie="first", nan="propagate", _name="adaptive_max_pool1d"):
    """Max over torch's adaptive windows of the last axis; ``saved.indices()`` gives torch's indices."""
    return _adaptive_extremum(x, 1, output_size, tie, nan, _name)


def adaptive_max_pool2d_forward(x, output_size, tie="first", nan="propagate", _name="adaptive_max_pool2d"):
    """Max over torch's adaptive windows of the last two axes; ``saved.indices()`` gives torch's indices."""
    return _adaptive_extremum(x, 2, output_size, tie, nan, _name)


def adaptive_max_pool3d_forward(x, output_size, tie="first", nan="propagate", _name="adaptive_max_pool3d"):
    """Max over torch's adaptive windows of the last three axes; ``saved.indices()`` gives torch's indices."""
    return _adaptive_extremum(x, 3, output_size, tie, nan, _name)


max_pool1d_backward = max_pool2d_backward = max_pool3d_backward = extremum_pool_backward
min_pool1d_backward = min_pool2d_backward = min_pool3d_backward = extremum_pool_backward
adaptive_max_pool1d_backward = adaptive_max_pool2d_backward = adaptive_max_pool3d_backward = extremum_pool_backward


# ============================================================ average pooling

class MeanSaved(NamedTuple):
    """Average pooling needs only the geometry: its backward does not depend on x."""

    windows: Windows
    input_shape: tuple[int, ...]
    divisor_override: int | None


def _mean_forward(x, windows: Windows, divisor_override=None):
    """y_o = (1 / D_o) sum of x_j over the real members j of window o (D_o: Windows.divisors)."""
    y = kernels.mean_forward(as_planes(x, windows.spatial_dims), windows, windows.divisors(divisor_override))
    out_shape = x.shape[:-windows.spatial_dims] + windows.output_size
    return y.reshape(out_shape), MeanSaved(windows, x.shape, divisor_override)


def mean_pool_backward(dy: np.ndarray, saved: MeanSaved):
    """Backward of average pooling (sliding or adaptive).

    y_o = (1 / D_o) sum of x_j over the real members j of window o (padding
    adds zeros; D_o is the divisor geometry.Windows.divisors defines), so
        dL/dx_j = sum of dy_o / D_o over the windows o that hold j:
    each output hands an equal share to every real member of its window.
    """
    windows = saved.windows
    dy_planes = _planes_of(dy, windows, saved.input_shape)
    dx = kernels.spread_mean(dy_planes, windows, windows.divisors(saved.divisor_override))
    return (dx.reshape(saved.input_shape),)


def _check_divisor_override(name, divisor_override) -> int | None:
    if divisor_override is None:
        return None
    if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral) or divisor_override == 0:
        # torch accepts any non-zero int (a negative one flips the sign)
        raise ValueError(f"{name}: expected divisor_override to be a non-zero int or None, got {divisor_override!r}")
    return int(divisor_override)


def _sliding_mean(x, n, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, name):
    override = _check_divisor_override(name, divisor_override)
    kernel, stride, padding, dilation = normalize_pool_args(name, n, kernel_size, stride, padding)
    windows = pool_windows(name, x.shape[-n:], kernel, stride, padding, dilation, ceil_mode, count_include_pad)
    return _mean_forward(x, windows, override)


def avg_pool1d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                       _name="avg_pool1d"):
    """Mean over sliding windows of the last axis, with torch's divisor rules."""
    return _sliding_mean(x, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None, _name)


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                       divisor_override=None, _name="avg_pool2d"):
    """Mean over sliding windows of the last two axes, with torch's divisor rules."""
    return _sliding_mean(x, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, _name)


def avg_pool3d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                       divisor_override=None, _name="avg_pool3d"):
    """Mean over sliding windows of the last three axes, with torch's divisor rules."""
    return _sliding_mean(x, 3, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, _name)


def _adaptive_mean(x, n, output_size, name):
    windows = adaptive_windows(x.shape[-n:], normalize_adaptive_output_size(name, output_size, x.shape[-n:]))
    return _mean_forward(x, windows)


def adaptive_avg_pool1d_forward(x, output_size, _name="adaptive_avg_pool1d"):
    """Mean over torch's adaptive windows of the last axis."""
    return _adaptive_mean(x, 1, output_size, _name)


def adaptive_avg_pool2d_forward(x, output_size, _name="adaptive_avg_pool2d"):
    """Mean over torch's adaptive windows of the last two axes."""
    return _adaptive_mean(x, 2, output_size, _name)


def adaptive_avg_pool3d_forward(x, output_size, _name="adaptive_avg_pool3d"):
    """Mean over torch's adaptive windows of the last three axes."""
    return _adaptive_mean(x, 3, output_size, _name)


avg_pool1d_backward = avg_pool2d_backward = avg_pool3d_backward = mean_pool_backward
adaptive_avg_pool1d_backward = adaptive_avg_pool2d_backward = adaptive_avg_pool3d_backward = mean_pool_backward


# ============================================================ power-average (Lp) pooling

class LpSaved(NamedTuple):
    x: np.ndarray
    norm_type: float
    kernel_volume: int
    pooled: np.ndarray | None      # s = avg_pool(x^p): the window's mean of x^p (None for p = +-inf)
    inner: MeanSaved | ExtremumSaved


def _check_norm_type(name, norm_type) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or norm_type == 0 or math.isnan(norm_type):
        raise ValueError(f"{name}: expected norm_type to be a non-zero real number, got {norm_type!r}")
    return norm_type


def lp_scaled(pooled, kernel_volume):
    """v = sign(s) relu(|s|) K: torch's literal expression, so that y = v^(1/p)."""
    return np.sign(pooled) * np.maximum(np.abs(pooled), 0) * kernel_volume


def _lp_forward(x, n, norm_type, kernel_size, stride, ceil_mode, name):
    p = _check_norm_type(name, norm_type)
    kernel = tuple_of(name, "kernel_size", kernel_size, n, minimum=1)
    K = int(np.prod(kernel))
    if math.isinf(p):
        # torch: p = inf is max pooling of |x|, p = -inf is min pooling of |x|.
        y, inner = _sliding_extremum(np.abs(x), n, p < 0, kernel, stride, 0, 1, ceil_mode, "first", "propagate", name)
        return y, LpSaved(x, p, K, None, inner)
    # torch's definition, kept literally so values and gradients match (including its quirks):
    # y = (sign(s) relu(|s|) K)^(1/p) with s = avg_pool(x^p) over the unpadded window; a ceil_mode
    # window cut by the border is therefore scaled by K / (its size), not K / K.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):   # NaN/inf as torch gives them
        powered = x ** p
    pooled, inner = _sliding_mean(powered, n, kernel, stride, 0, ceil_mode, True, None, name)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y = lp_scaled(pooled, K) ** (1.0 / p)
    return y, LpSaved(x, p, K, pooled, inner)


def lp_pool1d_forward(x, norm_type, kernel_size, stride=None, ceil_mode=False, _name="lp_pool1d"):
    """(sum over the window of x^p)^(1/p), torch's power-average pooling on the last axis."""
    return _lp_forward(x, 1, norm_type, kernel_size, stride, ceil_mode, _name)


def lp_pool2d_forward(x, norm_type, kernel_size, stride=None, ceil_mode=False, _name="lp_pool2d"):
    """(sum over the window of x^p)^(1/p), torch's power-average pooling on the last two axes."""
    return _lp_forward(x, 2, norm_type, kernel_size, stride, ceil_mode, _name)


def lp_pool3d_forward(x, norm_type, kernel_size, stride=None, ceil_mode=False, _name="lp_pool3d"):
    """(sum over the window of x^p)^(1/p), torch's power-average pooling on the last three axes."""
    return _lp_forward(x, 3, norm_type, kernel_size, stride, ceil_mode, _name)


def lp_pool_backward(dy: np.ndarray, saved: LpSaved):
    """Backward of Lp pooling, following torch's chain y = v^(1/p), v = sign(s) relu(|s|) K, s = avg(x^p):

        g_v = dy (1/p) v^(1/p - 1)
        g_s = g_v K sign(s) where relu passes (|s| > 0; torch's threshold_backward), else 0
        dx  = avg_pool_backward(g_s) * p x^(p-1)
    so a window whose sum is zero gets gradient 0 instead of inf * 0. p = +-inf:
    y = max (min) |x_j|, so dx_j = sign(x_j) at the winner.
    """
    x, p = saved.x, saved.norm_type
    if saved.pooled is None:
        (g_abs,) = extremum_pool_backward(dy, saved.inner)
        return (g_abs * np.sign(x),)
    s = saved.pooled
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        g_v = dy * ((1.0 / p) * lp_scaled(s, saved.kernel_volume) ** (1.0 / p - 1))
        g_s = np.where(np.abs(s) <= 0, 0, g_v * saved.kernel_volume * np.sign(s)) * np.sign(s)
        (g_power,) = mean_pool_backward(g_s.astype(dy.dtype, copy=False), saved.inner)
        g_x = g_power * (p * x ** (p - 1))
    return (g_x.astype(x.dtype, copy=False),)


lp_pool1d_backward = lp_pool2d_backward = lp_pool3d_backward = lp_pool_backward


# ============================================================ max unpooling

class UnpoolSaved(NamedTuple):
    index: np.ndarray           # (planes, count) flat positions in the output planes: a private copy
    input_shape: tuple[int, ...]


def _unpool_forward(x, indices, n, kernel_size, stride, padding, output_size, name):
    kernel = tuple_of(name, "kernel_size", kernel_size, n, minimum=1)
    stride = normalize_stride(name, n, kernel, stride)
    padding = tuple_of(name, "padding", padding, n, minimum=0)
    out_spatial = unpool_output_size(name, x.shape[-n:], kernel, stride, padding, output_size)
    if np.shape(indices) != x.shape:
        raise ValueError(f"{name}: expected indices of the input's shape {x.shape}, got {np.shape(indices)}")
    # a private int64 copy (the caller may change its array before backward, which gathers through it);
    # an unsigned index too large for int64 turns negative here and is refused below
    index = np.array(indices, dtype=np.int64, order="C").reshape(-1, int(np.prod(x.shape[-n:], dtype=np.int64)))
    # y[index_i] = x_i (zeros elsewhere)
    y, refused = kernels.place_at_indices(np.ascontiguousarray(x).reshape(index.shape), index,
                                          int(np.prod(out_spatial)))
    if refused:
        bad = index[(index < 0) | (index >= y.shape[1])][0]
        raise ValueError(f"{name}: found an invalid max index {bad} (output plane of size {fmt(out_spatial)})")
    return y.reshape(x.shape[:-n] + out_spatial), UnpoolSaved(index, x.shape)


def max_unpool1d_forward(x, indices, kernel_size, stride=None, padding=0, output_size=None, _name="max_unpool1d"):
    """Partial inverse of max_pool1d: put each value at its recorded index, zeros elsewhere."""
    return _unpool_forward(x, indices, 1, kernel_size, stride, padding, output_size, _name)


def max_unpool2d_forward(x, indices, kernel_size, stride=None, padding=0, output_size=None, _name="max_unpool2d"):
    """Partial inverse of max_pool2d: put each value at its recorded flat index, zeros elsewhere."""
    return _unpool_forward(x, indices, 2, kernel_size, stride, padding, output_size, _name)


def max_unpool3d_forward(x, indices, kernel_size, stride=None, padding=0, output_size=None, _name="max_unpool3d"):
    """Partial inverse of max_pool3d: put each value at its recorded flat index, zeros elsewhere."""
    return _unpool_forward(x, indices, 3, kernel_size, stride, padding, output_size, _name)


def max_unpool_backward(dy: np.ndarray, saved: UnpoolSaved):
    """Backward of max unpooling.

    y[index_i] = x_i, so dL/dx_i = dy[index_i]: a gather (a repeated index hands its
    gradient to every input that points at it, as torch's backward does).
    """
    planes = np.ascontiguousarray(dy).reshape(saved.index.shape[0], -1)
    return (kernels.gather_at_indices(planes, saved.index).reshape(saved.input_shape), None)


max_unpool1d_backward = max_unpool2d_backward = max_unpool3d_backward = max_unpool_backward


# last: routing reads the forward functions above
from normlab.ops.pooling.routing import ROUTED_OPS, ROUTING_MAX_WEIGHTS, SHORT_NAMES, Routing, routing  # noqa: E402
