"""Where a pooling op sends each output's gradient, as a dense array of weights (for pictures and teaching).

The weights come from the op's own windows (``geometry``: one definition of
a window and of the divisor) and, for max/min pooling, from the winners its
forward recorded -- not from running backward; a test checks that applying
them to an upstream gradient equals the op's backward.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from normlab.ops import pooling as ops
from normlab.ops.pooling.geometry import Windows

SHORT_NAMES = {
    "max": "max_pool2d", "min": "min_pool2d", "avg": "avg_pool2d", "lp": "lp_pool2d",
    "adaptive_max": "adaptive_max_pool2d", "adaptive_avg": "adaptive_avg_pool2d",
}
ROUTED_OPS = tuple(f"{kind}_pool{n}d" for kind in ("max", "min", "avg", "lp", "adaptive_max", "adaptive_avg")
                   for n in (1, 2, 3))
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


def routing(kind: str, x, *args, **kwargs) -> Routing:
    """The gradient routing of a pooling op on a small input, as a dense array of weights.

    ``kind`` is a functional name (``"max_pool2d"``, ``"avg_pool1d"``,
    ``"adaptive_max_pool2d"``, ``"lp_pool2d"``, ...) or a short name for the 2d
    op (``"max"``, ``"min"``, ``"avg"``, ``"lp"``, ``"adaptive_max"``,
    ``"adaptive_avg"``); ``args``/``kwargs`` are that op's arguments
    (``tie``/``nan`` included for max/min). ``x`` is any array whose last one
    (1d), two (2d) or three (3d) axes are spatial -- a single (H, W) image works.

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
    op = SHORT_NAMES.get(kind, kind)
    if op not in ROUTED_OPS:
        raise ValueError(f"routing: unknown kind {kind!r}; expected one of {sorted(SHORT_NAMES)} or {ROUTED_OPS}")
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    n = int(op[-2])
    if x.ndim < n:
        raise ValueError(f"routing: {op} needs at least {n} spatial axes, got an input of shape {x.shape}")
    y, saved = getattr(ops, op + "_forward")(x, *args, **kwargs)
    in_spatial = x.shape[-n:]
    if y.size * int(np.prod(in_spatial)) > ROUTING_MAX_WEIGHTS:
        raise ValueError(f"routing: input of shape {x.shape} is too large for a dense routing "
                         f"({y.size} outputs x {int(np.prod(in_spatial))} inputs)")
    if isinstance(saved, ops.ExtremumSaved):
        weights = _extremum_weights(x, y, saved)
    elif isinstance(saved, ops.MeanSaved):
        weights = _mean_weights(saved, y.shape, x.dtype)
    else:
        weights = _lp_weights(x, saved, y.shape)
    return Routing(kind, y, weights)


def _members(windows: Windows) -> np.ndarray:
    """mask[o..., i...]: input position i is a real member of window o (the product of the axes' memberships)."""
    mask = np.ones((), dtype=bool)
    for axis in windows.axes:
        # append this axis's output index before the input indices and its input index at the end
        n = mask.ndim // 2
        mask = mask.reshape(mask.shape[:n] + (1,) + mask.shape[n:] + (1,)) & (
            axis.membership().reshape((1,) * n + (axis.out,) + (1,) * n + (axis.size,)))
    return mask


def _per_window(values: np.ndarray, n: int) -> np.ndarray:
    """A per-output array with singleton input axes appended (to broadcast against the weights)."""
    return values.reshape(values.shape + (1,) * n)


def _per_input(x: np.ndarray, n: int) -> np.ndarray:
    """x with singleton output axes inserted before its spatial axes (to broadcast against the weights)."""
    return x.reshape(x.shape[:-n] + (1,) * n + x.shape[-n:])


def _extremum_weights(x, y, saved: ops.ExtremumSaved) -> np.ndarray:
    n = saved.windows.spatial_dims
    if saved.tie == "first":
        # 1 at the recorded winner
        indices = saved.indices()
        flat = np.zeros(indices.shape + (int(np.prod(x.shape[-n:])),), dtype=x.dtype)
        np.put_along_axis(flat, indices[..., None], 1, axis=-1)
        return flat.reshape(indices.shape + x.shape[-n:])
    # 1/m at each of the m members equal to the output (NaN counts as equal to a NaN output)
    xb, yb = _per_input(x, n), _per_window(y, n)
    tied = _members(saved.windows) & ((xb == yb) | (np.isnan(xb) & np.isnan(yb)))
    return (tied / tied.sum(axis=tuple(range(-n, 0)), keepdims=True)).astype(x.dtype)


def _mean_weights(saved: ops.MeanSaved, out_shape, dtype) -> np.ndarray:
    # 1/D_o at each real member of window o
    windows = saved.windows
    n = windows.spatial_dims
    divisors = windows.divisors(saved.divisor_override).reshape(windows.output_size)
    weights = _members(windows) / _per_window(divisors, n)
    return np.broadcast_to(weights.astype(dtype), out_shape[:-n] + weights.shape).copy()


def _lp_weights(x, saved: ops.LpSaved, out_shape) -> np.ndarray:
    n = saved.inner.windows.spatial_dims
    if saved.pooled is None:   # p = +-inf: max/min pooling of |x|, times sign(x)
        return _extremum_weights(np.abs(x), None, saved.inner) * _per_input(np.sign(x), n)
    # the chain rule of lp_pool_backward, one factor per step: dy/ds * ds/d(x^p) * d(x^p)/dx
    p, s, K = saved.norm_type, saved.pooled, saved.kernel_volume
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        dy_dv = (1.0 / p) * ops.lp_scaled(s, K) ** (1.0 / p - 1)
        dy_ds = np.where(np.abs(s) <= 0, 0, dy_dv * K * np.sign(s)) * np.sign(s)
        return (_mean_weights(saved.inner, out_shape, x.dtype) * _per_window(dy_ds, n)
                * _per_input(p * x ** (p - 1), n))
