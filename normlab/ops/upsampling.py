"""Resizing by interpolation: nearest, nearest-exact, linear / bilinear / trilinear (torch's ``F.interpolate``).

Every mode here is separable: resizing (D, H, W) is resizing W, then H,
then D, each a 1-d map along one axis. Along an axis of ``size`` inputs and
``out`` outputs, output o reads

    nearest          x[min(floor(o * scale), size - 1)]
    nearest-exact    x[min(floor((o + 1/2) * scale), size - 1)]
    linear           (1 - lam) x[i0] + lam x[i1],   i0 = floor(s), i1 = min(i0 + 1, size - 1), lam = s - i0

where ``scale`` is 1 / scale_factor when the caller gave one (torch's rule),
else size / out, and the source coordinate s is ``o * (size - 1) / (out - 1)``
with align_corners (the corner pixels' centres coincide), else
``max(0, (o + 1/2) * scale - 1/2)`` (the corners' edges coincide).
Applying W first and H second reproduces torch's bilinear grouping
``h0 (w0 x00 + w1 x01) + h1 (w0 x10 + w1 x11)``.

Each map is a sparse matrix with non-decreasing column indices, so its
transpose (the gradient) is a run-wise sum: ``np.add.reduceat`` adds the
output gradients of each run of equal source index, and the sums land on
those sources.

>>> import numpy as np
>>> interpolate_forward(np.array([[[0.0, 1.0]]]), (4,), "linear", align_corners=True)[0]
array([[[0.        , 0.33333333, 0.66666667, 1.        ]]])
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["axis_map", "interpolate_forward", "interpolate_backward", "output_size"]

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear")


def axis_map(size: int, out: int, mode: str, align_corners: bool, scale_factor):
    """The sources of one axis: ((index, weight), ...) with y[o] = sum of weight[o] x[index[o]].

    ``scale_factor`` is the caller's factor for this axis (or None): torch
    maps coordinates with its inverse when given, with size / out otherwise.
    """
    o = np.arange(out)
    if mode == "nearest" and out in (size, 2 * size):
        return ((o * size // out, None),)  # torch's exact shortcuts for the same size and twice it
    if mode in ("nearest", "nearest-exact"):
        # torch computes these indices in float32 arithmetic; so do we, to pick the same pixels.
        scale = np.float32(1.0 / scale_factor) if scale_factor else np.float32(size) / np.float32(out)
        if mode == "nearest":
            position = o.astype(np.float32) * scale
        else:
            position = ((o + 0.5) * np.float64(scale)).astype(np.float32)
        index = np.minimum(np.floor(position).astype(np.int64), size - 1)
        return ((index, None),)
    if align_corners:
        source = o * ((size - 1) / (out - 1)) if out > 1 else np.zeros(out)
    else:
        scale = 1.0 / scale_factor if scale_factor else size / out
        source = np.maximum((o + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), size - 1)
    high = np.minimum(low + 1, size - 1)
    lam = source - low
    return ((low, 1.0 - lam), (high, lam))


def interpolate_forward(x, size, mode: str, align_corners: bool = False, scale_factor=None):
    """Resize the spatial dimensions of x (N, C, *spatial) to ``size`` (one int per spatial dimension).

    ``scale_factor``: the caller's factor per dimension, or None (see ``axis_map``).
    Returns (y, saved).
    """
    dims = x.ndim - 2
    factors = scale_factor if scale_factor is not None else (None,) * dims
    maps = tuple(axis_map(n, out, mode, align_corners, f) for n, out, f in zip(x.shape[2:], size, factors))
    y = x
    for d in reversed(range(dims)):  # W first, then H, then D: torch's grouping of the products
        axis, terms = 2 + d, maps[d]
        shape = [1] * x.ndim
        shape[axis] = -1
        result = None
        for index, weight in terms:
            part = np.take(y, index, axis=axis)
            if weight is not None:
                part *= weight.astype(x.dtype).reshape(shape)
            result = part if result is None else result + part
        y = result
    if y is x:
        y = x.copy()  # no spatial dimension: still never hand out the input
    return y, (x.shape, maps)


def _sum_runs(g, index, size: int, axis: int):
    """dx with dx[i] = sum over o with index[o] = i of g[o] along ``axis`` (``index`` non-decreasing)."""
    values, starts = np.unique(index, return_index=True)
    shape = list(g.shape)
    shape[axis] = size
    dx = np.zeros(shape, dtype=g.dtype)
    target = [slice(None)] * g.ndim
    target[axis] = values
    dx[tuple(target)] = np.add.reduceat(g, starts, axis=axis)
    return dx


def interpolate_backward(dy, saved):
    """Gradient of ``interpolate_forward``: each axis's map transposed, in the reverse order."""
    shape, maps = saved
    g = dy
    # y = M_D (M_H (M_W x)) per axis  =>  dx = M_W^T (M_H^T (M_D^T dy)).
    for d in range(len(maps)):
        axis, terms = 2 + d, maps[d]
        size = shape[axis]
        weight_shape = [1] * g.ndim
        weight_shape[axis] = -1
        result = None
        for index, weight in terms:
            part = g if weight is None else g * weight.astype(dy.dtype).reshape(weight_shape)
            part = _sum_runs(part, index, size, axis)
            result = part if result is None else result + part
        g = result
    return (g if g is not dy else dy.copy(),)


def output_size(spatial, size, scale_factor) -> tuple[int, ...]:
    """torch's output size: ``size``, else floor(input size * scale factor) per dimension."""
    if size is not None:
        return tuple(int(s) for s in size)
    return tuple(int(math.floor(float(n) * float(f))) for n, f in zip(spatial, scale_factor))
