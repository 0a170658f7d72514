"""Normalization layers: BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm and Batch Renormalization.

Every layer normalizes sets of values and then applies an affine map::

    x_hat = (x - mean) * rstd,   rstd = 1 / sqrt(var + eps),   y = weight * x_hat + bias

(RMSNorm: mean = 0 and var = mean(x^2); no bias). The layers differ only in
which values form one set, and so in how the kernels walk memory:

    ============  ======================  ================================  =============
    layer         input                   one set of values                 kernels
    ============  ======================  ================================  =============
    BatchNorm     (N, C, *spatial)        channel c over (N, *spatial)      channel tiles
    LayerNorm     (*, *normalized_shape)  one row of prod(normalized_shape)  rows
    RMSNorm       as LayerNorm            one row, not centred               rows
    GroupNorm     (N, C, *spatial)        (n, group): C/G * prod(spatial)   rows
    InstanceNorm  (N, C, *spatial)        (n, c): prod(spatial)             rows
    ============  ======================  ================================  =============

Each layer has one public function per direction, ``<layer>_forward(x, ...)
-> (y, saved)`` and ``<layer>_backward(dy, saved, needs) -> gradients``. The
math sits in ``batch_norm_backward`` (BatchNorm, its renormalization and its
mask) and ``row_norm_backward`` (the four row layers), the derivation written
above the closed form; the Numba kernels they call sit at the end of the
file under plain names and are called with named arguments.

Saved state: the input itself (a reference, never a copy, unless the input
was not contiguous), the float64 ``mean`` and ``rstd`` of each set -- never
x_hat, which backward recomputes on the fly for free, and never the output,
which belongs to the caller.

Numerics: statistics are two-pass (mean, then the mean of squared
deviations) over pieces that sit in cache -- a row, a block of samples --
merged by Chan et al.'s rule, all in float64 for float32 input, so a float32
batch with mean 1e4 and std 1 still normalizes to unit variance (E[x^2] -
E[x]^2 loses every digit there).

Memory: BatchNorm works on tiles of whole channels sized to stay in the L2
cache, so that each kernel reads its input from memory once and repeats its
second pass (statistics, then output; sums, then dx) from cache. The row
kernels visit each set once for the same reason. Tiles and blocks are cut
by the input's geometry alone, never by the thread count: serial and
parallel runs give the same bits (see ``_threading``).

>>> import numpy as np
>>> from normlab.ops.normalization import batch_norm_forward, batch_norm_backward
>>> x = np.random.default_rng(0).standard_normal((8, 3, 4))
>>> y, saved = batch_norm_forward(x, np.ones(3), np.zeros(3), training=True)
>>> bool(np.shares_memory(saved.x3, x)), saved.mean.shape, saved.rstd.shape   # x itself, mean and rstd
(True, (3,), (3,))
>>> dx, dweight, dbias = batch_norm_backward(np.ones_like(y), saved)
>>> bool(np.allclose(dx, 0))   # a constant upstream gradient is invisible to BatchNorm
True
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from normlab.ops._threading import parallel_kernel

# Reassociation lets LLVM vectorise the float64 reductions (several partial
# sums instead of one serial chain); contraction allows fused multiply-adds.
# No 'nnan'/'ninf': NaN and inf must propagate as they do in torch.
_FASTMATH = {"reassoc", "contract"}

#: Bytes of input per BatchNorm tile: small enough that a tile of x and dy (backward) stays in a 2 MiB L2 ...
TILE_BYTES = 1 << 19
#: ... unless that would leave fewer contiguous bytes per sample than this: a tile of a tall input (many
#: samples, few values each, as BatchNorm1d on (4096, 1024)) then outgrows the cache, because reading a
#: few cache lines every few kilobytes defeats the prefetcher (measured: 32 channels per tile 13.5 ms,
#: 512 channels 6.9 ms, forward of (4096, 1024)).
MIN_RUN_BYTES = 1 << 11
#: Below this many positions per channel (L), BatchNorm walks columns (C * L contiguous values per sample)
#: instead of rows (L contiguous values per channel): a row of a few values does not vectorise.
COLUMNS_BELOW = 32
#: Values per block of samples whose column statistics are merged at once (the block stays in L1/L2).
BLOCK_VALUES = 1 << 14
#: The row kernels' weight gradients are summed per block of rows (at most this many blocks, each of at
#: least ``BLOCK_ELEMENTS`` values), then the blocks are added: a fixed split, so any thread count gives
#: the same bits.
MAX_BLOCKS = 64
BLOCK_ELEMENTS = 1 << 16


# ============================================================================
# BatchNorm (and Batch Renormalization, and masked BatchNorm)
# ============================================================================

@dataclass(slots=True)
class BatchNormSaved:
    """What ``batch_norm_backward`` needs, and what ``update_running_stats`` reads after the forward."""

    x3: np.ndarray                # the input as (N, C, L): the caller's array when it was contiguous
    mask: np.ndarray | None       # (N, L) bool, True where a position counts; None: all do
    mean: np.ndarray              # (C,) float64: the mean that normalized x (the batch's, or running_mean)
    rstd: np.ndarray              # (C,) float64
    weight: np.ndarray            # (C,) weight (float64 times r for batch renorm); ones without a weight
    has_weight: bool
    has_bias: bool
    batch_statistics: bool        # mean and rstd came from this batch, so every x moved them (training)
    batch_var: np.ndarray | None  # (C,) biased batch variance, for the running statistics (None in eval)
    count: int                    # values per channel that counted
    renorm: tuple | None = None   # (r, d) of batch renormalization, constants for backward


def _as_channels(x: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) as a C-contiguous (N, C, L) view (a copy only when x is strided)."""
    n, c = x.shape[0], x.shape[1]
    return np.ascontiguousarray(x).reshape(n, c, math.prod(x.shape[2:]))


def _channel_tiles(x3: np.ndarray, mask=None) -> tuple[int, bool]:
    """(channels per tile, walk columns?) for the BatchNorm kernels, from the geometry alone (a mask walks rows)."""
    n, c, length = x3.shape
    row_bytes = max(1, length * x3.itemsize)
    per_tile = max(TILE_BYTES // max(1, n * row_bytes), -(-MIN_RUN_BYTES // row_bytes))
    return max(1, min(c, per_tile)), length < COLUMNS_BELOW and mask is None


def _channel_kernels_for(columns: bool):
    """(forward, gradients, view): the kernels of a loop order and the view of an (N, C, L) array they walk."""
    if columns:
        return (*_COLUMNS_KERNELS, lambda a: a.reshape(a.shape[0], -1))
    return (*_ROWS_KERNELS, lambda a: a)


def batch_norm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, *, training=True,
                       eps=1e-5, mask=None):
    """Batch Normalization (Ioffe & Szegedy, 2015): normalize each channel of (N, C, *spatial) over (N, *spatial).

    ``training``: mean and biased variance of this batch (``saved.mean`` and
    ``saved.batch_var`` feed ``update_running_stats``); otherwise
    ``running_mean`` and ``running_var``. ``mask`` (N, L) for input (N, C, L):
    only positions where it is True count in the statistics; the output is 0
    at the others. Then ``y = weight * x_hat + bias`` per channel.

    Shapes: x (N, C, *spatial) -> y (same); weight, bias, running stats (C,); mask (N, L) for x (N, C, L).
    """
    x3 = _as_channels(x)
    n, channels, length = x3.shape
    count = n * length if mask is None else int(np.count_nonzero(mask))
    has_weight = weight is not None
    weight = np.ones(channels) if weight is None else weight  # saved as given: backward checks it is unchanged
    y3 = np.empty_like(x3)
    tile, columns = _channel_tiles(x3, mask)
    forward, _, view = _channel_kernels_for(columns)
    if training:
        mean, var, rstd = np.zeros(channels), np.zeros(channels), np.zeros(channels)
        statistics = True
    else:
        mean = np.array(running_mean, dtype=np.float64)  # a copy: later updates must not reach this backward
        rstd = 1.0 / np.sqrt(np.asarray(running_var, dtype=np.float64) + eps)
        var, statistics = np.zeros(channels), False
    if count > 0 or not training:
        forward(x=view(x3), mask=mask, count=count, weight=_per_channel(weight, channels, 1.0),
                bias=_per_channel(bias, channels, 0.0), eps=eps, statistics=statistics, normalize=True, tile=tile,
                mean=mean, var=var, rstd=rstd, y=view(y3), work=2 * x3.size)
    if not training or count == 0:  # eval; or an empty batch: torch leaves the running statistics alone
        var = None
    saved = BatchNormSaved(x3=x3, mask=mask, mean=mean, rstd=rstd, weight=weight, has_weight=has_weight,
                           has_bias=bias is not None,
                           batch_statistics=bool(training), batch_var=var, count=count)
    return y3.reshape(x.shape), saved


def batch_norm_backward(dy, saved: BatchNormSaved, needs=(True, True, True)):
    """Gradients of y = weight * x_hat + bias, x_hat = (x - mean) * rstd, over the m values of each channel.

    With g = dy * weight (the gradient reaching x_hat) and sums over the channel's m values:

        dbias   = sum(dy)
        dweight = sum(dy * x_hat)
        dx      = rstd * (g - mean(g) - x_hat * mean(g * x_hat))       (training)
        dx      = rstd * g                                             (eval: running statistics)

    In training x moves x_hat directly (rstd), through the mean (each value
    shifts it by 1/m, hence -mean(g)) and through the variance (d var / d x_i
    = 2 (x_i - mean) / m, hence -x_hat * mean(g * x_hat)). With
    xc = x - mean the kernel evaluates dx = alpha * dy + beta * xc + gamma per
    channel, alpha = rstd * weight, beta = -rstd^3 * weight * sum(dy * xc) / m,
    gamma = -rstd * weight * sum(dy) / m -- the line above, expanded.
    Batch renormalization passes weight * r as ``weight``; masked positions
    get dx = 0 and add nothing to the sums.
    """
    want_dx, want_weight, want_bias = _wanted(needs, saved.has_weight, saved.has_bias)
    x3 = saved.x3
    n, channels, length = x3.shape
    dy3 = np.ascontiguousarray(np.reshape(dy, x3.shape), dtype=x3.dtype)
    sum_dy, sum_dy_xc = np.zeros(channels), np.zeros(channels)
    dx3 = np.empty_like(x3) if want_dx else None
    if saved.count > 0:
        tile, columns = _channel_tiles(x3, saved.mask)
        _, gradients, view = _channel_kernels_for(columns)
        gradients(dy=view(dy3), x=view(x3), mask=saved.mask, count=saved.count, mean=saved.mean, rstd=saved.rstd,
                  weight=_per_channel(saved.weight, channels, 1.0), batch_statistics=saved.batch_statistics,
                  want_dx=want_dx, tile=tile, sum_dy=sum_dy, sum_dy_xc=sum_dy_xc,
                  dx=view(dx3 if want_dx else np.empty((1, 1, 1), x3.dtype)), work=(3 if want_dx else 2) * x3.size)
    elif want_dx:
        dx3[...] = 0
    dweight = dbias = None
    if want_weight:
        dweight = saved.rstd * sum_dy_xc                      # sum(dy * x_hat)
        if saved.renorm is not None:                          # y = weight * (x_hat * r + d) + bias
            r, d = saved.renorm
            dweight = r * dweight + d * sum_dy
    if want_bias:
        dbias = sum_dy
    return (dx3.reshape(np.shape(dy)) if want_dx else None), dweight, dbias


def batch_renorm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, *, training=True,
                         r_max=3.0, d_max=5.0, eps=1e-5):
    """Batch Renormalization (Ioffe, 2017): BatchNorm corrected towards the running statistics.

    In training, with sigma = sqrt(running_var + eps) and sigma_B = sqrt(batch_var + eps)::

        r = clip(sigma_B / sigma, 1/r_max, r_max)      d = clip((mu_B - mu) / sigma, -d_max, d_max)
        y = weight * (x_hat * r + d) + bias  =  x_hat * (weight * r) + (weight * d + bias)

    r and d are constants for backward (no gradient flows through them).
    With r_max=1, d_max=0 this is batch_norm exactly. Eval is batch_norm's eval.
    """
    if not training:
        return batch_norm_forward(x, weight, bias, running_mean, running_var, training=False, eps=eps)
    x3 = _as_channels(x)
    n, channels, length = x3.shape
    count = n * length
    tile, columns = _channel_tiles(x3)
    forward, _, view = _channel_kernels_for(columns)
    mean, var, rstd = np.zeros(channels), np.zeros(channels), np.zeros(channels)
    y3 = np.empty_like(x3)
    weight64, bias64 = _per_channel(weight, channels, 1.0), _per_channel(bias, channels, 0.0)
    if count > 0:  # the batch statistics, then (r and d known) the output: two calls of the forward kernel
        forward(x=view(x3), mask=None, count=count, weight=weight64, bias=bias64, eps=eps, statistics=True,
                normalize=False, tile=tile, mean=mean, var=var, rstd=rstd, y=view(y3), work=x3.size)
    sigma = np.sqrt(np.asarray(running_var, dtype=np.float64) + eps)
    r = np.clip(np.sqrt(var + eps) / sigma, 1.0 / r_max, r_max)
    d = np.clip((mean - np.asarray(running_mean, dtype=np.float64)) / sigma, -d_max, d_max)
    forward(x=view(x3), mask=None, count=count, weight=weight64 * r, bias=weight64 * d + bias64, eps=eps,
            statistics=False, normalize=True, tile=tile, mean=mean, var=var, rstd=rstd, y=view(y3), work=2 * x3.size)
    saved = BatchNormSaved(x3=x3, mask=None, mean=mean, rstd=rstd, weight=weight64 * r, has_weight=weight is not None,
                           has_bias=bias is not None, batch_statistics=True, batch_var=var if count > 0 else None,
                           count=count, renorm=(r, d))
    return y3.reshape(x.shape), saved


def batch_renorm_backward(dy, saved: BatchNormSaved, needs=(True, True, True)):
    """(dx, dweight, dbias): ``batch_norm_backward`` with g = dy * weight * r; dweight = r sum(dy x_hat) + d sum(dy)."""
    return batch_norm_backward(dy, saved, needs)


def update_running_stats(running_mean, running_var, batch_mean, batch_var, count, momentum) -> None:
    """torch's rule, in place: ``new = (1 - momentum) * old + momentum * batch``.

    The batch variance passed in is the biased one used to normalize; the
    running variance receives the unbiased one, ``var * n / (n - 1)``.
    ``batch_mean``/``batch_var`` may be (N, C) per-instance statistics
    (InstanceNorm): each instance's update is averaged over N, as torch does.
    An empty batch (``batch_var`` None) changes nothing, as in torch.
    """
    if batch_var is None:
        return
    unbiased = batch_var * (count / (count - 1))
    if batch_mean.ndim == 2:  # the update is linear: averaging the updates = updating with the averages
        batch_mean, unbiased = batch_mean.mean(axis=0), unbiased.mean(axis=0)
    for running, batch in ((running_mean, batch_mean), (running_var, unbiased)):
        # in float64, then rounded once into the buffer's dtype (NumPy: a few channels need no compiled kernel)
        running[...] = (1.0 - momentum) * running.astype(np.float64) + momentum * batch


# ============================================================================
# LayerNorm, RMSNorm, GroupNorm, InstanceNorm: one set per row
# ============================================================================

@dataclass(slots=True)
class RowNormSaved:
    """What the row layers' backward needs: the input as rows, each row's mean and rstd, the weight table.

    Row b's values come in ``J`` runs of equal length; run j is scaled by
    ``weight_table[b % P, j]`` (P x J table; ones without a weight): LayerNorm
    (1, K) runs of 1, GroupNorm (G, C/G) runs of prod(spatial), InstanceNorm (C, 1).
    """

    x2: np.ndarray                    # (B, K): the caller's array when it was contiguous
    mean: np.ndarray                  # (B,) float64 (0 for RMSNorm)
    rstd: np.ndarray                  # (B,) float64
    weight_table: np.ndarray          # (P, J) float64
    has_weight: bool
    has_bias: bool
    centered: bool                    # False for RMSNorm: x_hat = x * rstd
    weight_shape: tuple               # the shape of dweight and dbias
    var: np.ndarray | None = None     # (B,) biased variance: InstanceNorm's running statistics read it


def _table(values, shape, default: float) -> np.ndarray:
    if values is None:
        return np.full(shape, default)
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(shape))


def row_norm_forward(x2, weight, bias, table_shape, *, centered, eps):
    """Forward of every row layer: each row of x2 (B, K) is one set, x_hat = (x - mean) * rstd over its K values.

    Returns (x2, y2, mean, var, rstd, weight table); ``weight``/``bias`` are laid
    out as a ``table_shape`` (P, J) table (``RowNormSaved``); ``centered=False``
    is RMSNorm (mean 0, var = mean(x^2)).
    """
    x2 = np.ascontiguousarray(x2)
    rows = x2.shape[0]
    mean, var, rstd = np.zeros(rows), np.zeros(rows), np.zeros(rows)
    y2 = np.empty_like(x2)
    weight_table = _table(weight, table_shape, 1.0)
    _rows_forward(x2=x2, weight_table=weight_table, bias_table=_table(bias, table_shape, 0.0), centered=centered,
                  eps=float(eps), mean=mean, var=var, rstd=rstd, y2=y2, work=2 * x2.size)
    return x2, y2, mean, var, rstd, weight_table


def row_norm_backward(dy, saved: RowNormSaved, needs):
    """Gradients of y = weight * x_hat + bias with x_hat = (x - mean(x)) * rstd over each row of K values.

    With g = dy * weight (the gradient reaching x_hat), per row:

        dx      = rstd * (g - mean(g) - x_hat * mean(g * x_hat))     (RMSNorm: without -mean(g))
        dweight = sum of dy * x_hat over every value the weight scales,   dbias = sum of dy likewise

    x_j moves x_hat_j directly (rstd), through the row's mean (1/K each:
    -mean(g); RMSNorm has no mean) and through its variance (or mean square:
    -x_hat * mean(g * x_hat)). The weight sums are gathered per block of rows
    into the table's shape, then added and folded into the weight's shape.
    """
    want_dx, want_weight, want_bias = _wanted(needs, saved.has_weight, saved.has_bias)
    x2 = saved.x2
    rows = x2.shape[0]
    dy2 = np.ascontiguousarray(np.reshape(dy, x2.shape), dtype=x2.dtype)
    want_sums = want_weight or want_bias
    blocks = max(1, min(MAX_BLOCKS, rows, x2.size // BLOCK_ELEMENTS)) if want_sums else 1
    table_dy = np.zeros((blocks,) + saved.weight_table.shape)
    table_dy_x_hat = np.zeros_like(table_dy)
    dx2 = np.empty_like(x2) if want_dx else np.empty((1, x2.shape[1]), x2.dtype)  # unused without want_dx
    _rows_gradients(dy2=dy2, x2=x2, mean=saved.mean, rstd=saved.rstd, weight_table=saved.weight_table,
                    centered=saved.centered, want_dx=want_dx, want_sums=want_sums, blocks=blocks, dx2=dx2,
                    table_dy=table_dy, table_dy_x_hat=table_dy_x_hat, work=(3 if want_dx else 2) * x2.size)
    size = math.prod(saved.weight_shape)
    # (P, J) table -> weight: LayerNorm's table is the weight; GroupNorm's (G, C/G) is (C,) in order;
    # InstanceNorm's rows repeat the channels N times, so its table (C, 1) already folds them.
    dweight = table_dy_x_hat.sum(axis=0).reshape(-1, size).sum(axis=0).reshape(saved.weight_shape) \
        if want_weight else None
    dbias = table_dy.sum(axis=0).reshape(-1, size).sum(axis=0).reshape(saved.weight_shape) if want_bias else None
    return (dx2.reshape(np.shape(dy)) if want_dx else None), dweight, dbias


def layer_norm_forward(x, weight=None, bias=None, *, normalized_ndim=1, eps=1e-5):
    """Layer Normalization (Ba et al., 2016): each row of the last ``normalized_ndim`` dimensions, one set.

    Shapes: x (*, *normalized_shape) -> y (same); weight, bias ``normalized_shape``.
    """
    normalized_shape = tuple(x.shape[x.ndim - normalized_ndim:])
    size = math.prod(normalized_shape)
    x2, y2, mean, _, rstd, table = row_norm_forward(x.reshape(-1, size), weight, bias, (1, size),
                                                   centered=True, eps=eps)
    saved = RowNormSaved(x2=x2, mean=mean, rstd=rstd, weight_table=table, has_weight=weight is not None,
                         has_bias=bias is not None,
                         centered=True, weight_shape=normalized_shape)
    return y2.reshape(x.shape), saved


def layer_norm_backward(dy, saved: RowNormSaved, needs=(True, True, True)):
    """(dx, dweight, dbias) of LayerNorm: ``row_norm_backward``, which carries the derivation."""
    return row_norm_backward(dy, saved, needs)


def rms_norm_forward(x, weight=None, *, normalized_ndim=1, eps=None):
    """RMS Normalization (Zhang & Sennrich, 2019): x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps); no bias.

    ``eps=None`` is the machine epsilon of x's dtype, as in torch.
    Shapes: x (*, *normalized_shape) -> y (same); weight ``normalized_shape``.
    """
    eps = float(np.finfo(x.dtype).eps) if eps is None else eps
    normalized_shape = tuple(x.shape[x.ndim - normalized_ndim:])
    size = math.prod(normalized_shape)
    x2, y2, mean, _, rstd, table = row_norm_forward(x.reshape(-1, size), weight, None, (1, size),
                                                   centered=False, eps=eps)
    saved = RowNormSaved(x2=x2, mean=mean, rstd=rstd, weight_table=table, has_weight=weight is not None,
                         has_bias=False, centered=False, weight_shape=normalized_shape)
    return y2.reshape(x.shape), saved


def rms_norm_backward(dy, saved: RowNormSaved, needs=(True, True)):
    """(dx, dweight): ``row_norm_backward`` without the mean term (x_hat = x * rstd moves through mean(x^2) only)."""
    dx, dweight, _ = row_norm_backward(dy, saved, tuple(needs)[:2] + (False,))
    return dx, dweight


def group_norm_forward(x, weight=None, bias=None, *, num_groups, eps=1e-5):
    """Group Normalization (Wu & He, 2018): each (sample, group of C/G channels) with its spatial values, one set.

    Shapes: x (N, C, *spatial) -> y (same); weight, bias (C,).
    """
    n, channels = x.shape[0], x.shape[1]
    spatial = math.prod(x.shape[2:])
    group_channels = channels // num_groups
    # row (n, g) holds C/G runs of `spatial` values; run i is channel g * C/G + i: weight table[g, i]
    x2, y2, mean, _, rstd, table = row_norm_forward(x.reshape(n * num_groups, group_channels * spatial), weight,
                                                   bias, (num_groups, group_channels), centered=True, eps=eps)
    saved = RowNormSaved(x2=x2, mean=mean, rstd=rstd, weight_table=table, has_weight=weight is not None,
                         has_bias=bias is not None, centered=True, weight_shape=(channels,))
    return y2.reshape(x.shape), saved


def group_norm_backward(dy, saved: RowNormSaved, needs=(True, True, True)):
    """(dx, dweight, dbias): see ``row_norm_backward``; each weight covers C/G channels' spatial values per sample."""
    return row_norm_backward(dy, saved, needs)


def instance_norm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, *,
                          use_input_stats=True, eps=1e-5):
    """Instance Normalization (Ulyanov et al., 2016): each (n, c) plane over its spatial values, one set.

    With ``use_input_stats=False`` the running statistics normalize (BatchNorm's
    eval, and its saved record). Otherwise ``saved.mean``/``saved.var`` hold the
    (N * C,) per-instance statistics for the running-stat update.
    Shapes: x (N, C, *spatial) -> y (same); weight, bias, running stats (C,).
    """
    if not use_input_stats:
        return batch_norm_forward(x, weight, bias, running_mean, running_var, training=False, eps=eps)
    n, channels = x.shape[0], x.shape[1]
    spatial = math.prod(x.shape[2:])
    x2, y2, mean, var, rstd, table = row_norm_forward(x.reshape(n * channels, spatial), weight, bias, (channels, 1),
                                                     centered=True, eps=eps)
    saved = RowNormSaved(x2=x2, mean=mean, rstd=rstd, weight_table=table, has_weight=weight is not None,
                         has_bias=bias is not None, centered=True, weight_shape=(channels,), var=var)
    return y2.reshape(x.shape), saved


def instance_norm_backward(dy, saved, needs=(True, True, True)):
    """(dx, dweight, dbias): ``row_norm_backward`` per (n, c) plane, or BatchNorm's eval backward with running stats."""
    if isinstance(saved, BatchNormSaved):
        return batch_norm_backward(dy, saved, needs)
    return row_norm_backward(dy, saved, needs)


# ============================================================================
# Small helpers
# ============================================================================

def _wanted(needs, has_weight: bool, has_bias: bool) -> tuple[bool, bool, bool]:
    """(dx, dweight, dbias) wanted: asked for in ``needs`` (one flag per input) and the parameter exists."""
    needs = tuple(needs) + (False,) * (3 - len(needs))
    return bool(needs[0]), bool(needs[1] and has_weight), bool(needs[2] and has_bias)


def _per_channel(values, channels: int, default: float) -> np.ndarray:
    """A per-channel parameter as the float64 array the BatchNorm kernels take, ``default`` where None.

    float64 whatever the parameter's dtype (the kernels compute in float64
    anyway), so that one compiled variant serves every model: fewer
    compilations for a new user to wait for.
    """
    if values is None:
        return np.full(channels, default)
    return np.ascontiguousarray(values, dtype=np.float64)


# ============================================================================
# Kernels: BatchNorm over tiles of whole channels
#
# x3 is (N, C, L) and C-contiguous; a tile is channels c0..c1 of every sample.
# "rows" walks each (n, c) row of L values (a vectorised reduction per row);
# "columns" walks each sample's C * L values as columns of the (N, C * L)
# view (a vectorised update of per-column float64 sums), which is what a
# small L needs -- L == 1 is BatchNorm1d on (N, C). A mask always walks
# rows. The first pass over a tile reads memory; the later ones find the
# tile in cache.
#
# Compile time: the helpers called by one kernel are inlined into it at
# Numba's level (inline="always"); compiled on their own, each would be
# optimised and turned into machine code twice (alone, then again inside
# the kernel). With ``_channel_kernels`` compiling one loop order only, a
# new user's first BatchNorm1d forward + backward compiles in ~1.5 s of CPU
# instead of 4.3 s.
# ============================================================================

@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _rows_moments(x3, mask, c0, c1, count, mean, var):
    """Mean and biased variance of channels c0..c1 in one read: each (n, c) row's two-pass mean and M2
    (in cache), merged into its channel's by Chan et al.'s rule; masked positions skipped."""
    N, _, L = x3.shape
    merged = np.zeros(c1 - c0)  # values merged into each channel so far; var holds M2 until the end
    for n in range(N):
        valid = L
        if mask is not None:
            valid = 0
            for i in range(L):
                valid += mask[n, i]
        if valid == 0:
            continue
        for c in range(c0, c1):
            row = x3[n, c]
            total = 0.0
            if mask is None:
                for i in range(L):
                    total += row[i]
            else:
                for i in range(L):
                    if mask[n, i]:
                        total += row[i]
            row_mean = total / valid
            squares = 0.0
            if mask is None:
                for i in range(L):
                    squares += (row[i] - row_mean) * (row[i] - row_mean)
            else:
                for i in range(L):
                    if mask[n, i]:
                        squares += (row[i] - row_mean) * (row[i] - row_mean)
            seen = merged[c - c0]
            merged[c - c0] = seen + valid
            delta = row_mean - mean[c]
            mean[c] += delta * (valid / (seen + valid))
            var[c] += squares + delta * delta * (seen * valid / (seen + valid))
    for c in range(c0, c1):
        var[c] /= count


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _per_column(values, c0, c1, L):
    """values[c] repeated for each of channel c's L columns, c0..c1: the tile's columns get their channel's value."""
    out = np.empty((c1 - c0) * L)
    for c in range(c1 - c0):
        out[c * L:(c + 1) * L] = values[c0 + c]
    return out


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _add_columns_to_channels(column, c0, c1, L, out):
    """out[c] += the sum of channel c's L columns, c0..c1."""
    for c in range(c1 - c0):
        total = 0.0
        part = column[c * L:(c + 1) * L]
        for i in range(L):
            total += part[i]
        out[c0 + c] += total


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _columns_moments(x2, c0, c1, count, mean, var):
    """Mean and biased variance of channels c0..c1 in one read, as columns: per block of samples, each
    column's two-pass mean and M2 (the block in cache), merged by Chan et al.'s rule; then each channel
    merges its L columns."""
    N, L = x2.shape[0], x2.shape[1] // mean.shape[0]
    width = (c1 - c0) * L
    block = max(1, BLOCK_VALUES // width)
    # Indices start at 0 in every hot loop (views of the tile): Numba then drops its negative-index
    # test and LLVM vectorises.
    column_mean, column_m2 = np.zeros(width), np.zeros(width)
    block_mean, block_m2 = np.empty(width), np.empty(width)
    seen = 0
    for start in range(0, N, block):
        stop = min(N, start + block)
        rows = stop - start
        block_mean[:] = 0.0
        for n in range(start, stop):
            row = x2[n, c0 * L:c1 * L]
            for i in range(width):
                block_mean[i] += row[i]
        for i in range(width):
            block_mean[i] /= rows
        block_m2[:] = 0.0
        for n in range(start, stop):
            row = x2[n, c0 * L:c1 * L]
            for i in range(width):
                block_m2[i] += (row[i] - block_mean[i]) * (row[i] - block_mean[i])
        share, weight = rows / (seen + rows), seen * rows / (seen + rows)
        for i in range(width):
            delta = block_mean[i] - column_mean[i]
            column_mean[i] += delta * share
            column_m2[i] += block_m2[i] + delta * delta * weight
        seen += rows
    for c in range(c1 - c0):  # L columns of N values each: mean of means, M2 = sum M2 + N sum (mean_l - mean)^2
        means, m2s = column_mean[c * L:(c + 1) * L], column_m2[c * L:(c + 1) * L]
        mu = 0.0
        for i in range(L):
            mu += means[i]
        mu /= L
        m2 = 0.0
        for i in range(L):
            m2 += m2s[i] + N * (means[i] - mu) * (means[i] - mu)
        mean[c0 + c] = mu
        var[c0 + c] = m2 / count


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _scale_and_shift(mean, rstd, weight, bias, c0, c1, scale, shift):
    """weight * x_hat + bias = x * scale + shift: scale = rstd * weight, shift = bias - mean * scale (c0..c1)."""
    for c in range(c0, c1):
        scale[c] = rstd[c] * weight[c]
        shift[c] = bias[c] - mean[c] * scale[c]


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _rows_affine(x3, mask, c0, c1, scale, shift, y3):
    """y = x * scale[c] + shift[c] for channels c0..c1 (0 at masked positions)."""
    N, _, L = x3.shape
    for n in range(N):
        for c in range(c0, c1):
            row, out = x3[n, c], y3[n, c]
            a, b = scale[c], shift[c]
            if mask is None:
                for i in range(L):
                    out[i] = row[i] * a + b
            else:
                valid = mask[n]
                for i in range(L):
                    out[i] = row[i] * a + b if valid[i] else 0.0


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _columns_affine(x2, c0, c1, scale, shift, y2):
    """y = x * scale[c] + shift[c] for channels c0..c1, as columns."""
    N, L = x2.shape[0], x2.shape[1] // scale.shape[0]
    width = (c1 - c0) * L
    column_scale, column_shift = _per_column(scale, c0, c1, L), _per_column(shift, c0, c1, L)
    for n in range(N):
        row, out = x2[n, c0 * L:c1 * L], y2[n, c0 * L:c1 * L]
        for i in range(width):
            out[i] = row[i] * column_scale[i] + column_shift[i]


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _rows_gradient_sums(dy3, x3, mask, c0, c1, mean, sum_dy, sum_dy_xc):
    """sum(dy) and sum(dy * (x - mean)) of channels c0..c1, row by row."""
    N, _, L = x3.shape
    for n in range(N):
        for c in range(c0, c1):
            row, grad = x3[n, c], dy3[n, c]
            mu = mean[c]
            s_dy = 0.0
            s_dy_xc = 0.0
            if mask is None:
                for i in range(L):
                    s_dy += grad[i]
                    s_dy_xc += grad[i] * (row[i] - mu)
            else:
                valid = mask[n]
                for i in range(L):
                    if valid[i]:
                        s_dy += grad[i]
                        s_dy_xc += grad[i] * (row[i] - mu)
            sum_dy[c] += s_dy
            sum_dy_xc[c] += s_dy_xc


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _columns_gradient_sums(dy2, x2, c0, c1, mean, sum_dy, sum_dy_xc):
    """sum(dy) and sum(dy * (x - mean)) of channels c0..c1, as columns."""
    N, L = x2.shape[0], x2.shape[1] // mean.shape[0]
    width = (c1 - c0) * L
    column_mean = _per_column(mean, c0, c1, L)
    column_dy, column_dy_xc = np.zeros(width), np.zeros(width)
    for n in range(N):
        row, grad = x2[n, c0 * L:c1 * L], dy2[n, c0 * L:c1 * L]
        for i in range(width):
            column_dy[i] += grad[i]
            column_dy_xc[i] += grad[i] * (row[i] - column_mean[i])
    _add_columns_to_channels(column_dy, c0, c1, L, sum_dy)
    _add_columns_to_channels(column_dy_xc, c0, c1, L, sum_dy_xc)


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _rows_input_gradient(dy3, x3, mask, c0, c1, mean, alpha, beta, gamma, dx3):
    """dx = alpha[c] * dy + beta[c] * (x - mean[c]) + gamma[c] for channels c0..c1 (0 at masked positions)."""
    N, _, L = x3.shape
    for n in range(N):
        for c in range(c0, c1):
            row, grad, out = x3[n, c], dy3[n, c], dx3[n, c]
            a, b, g, mu = alpha[c], beta[c], gamma[c], mean[c]
            if mask is None:
                for i in range(L):
                    out[i] = a * grad[i] + b * (row[i] - mu) + g
            else:
                valid = mask[n]
                for i in range(L):
                    out[i] = a * grad[i] + b * (row[i] - mu) + g if valid[i] else 0.0


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _columns_input_gradient(dy2, x2, c0, c1, mean, alpha, beta, gamma, dx2):
    """dx = alpha[c] * dy + beta[c] * (x - mean[c]) + gamma[c] for channels c0..c1, as columns."""
    N, L = x2.shape[0], x2.shape[1] // mean.shape[0]
    width = (c1 - c0) * L
    a, b = _per_column(alpha, c0, c1, L), _per_column(beta, c0, c1, L)
    g, mu = _per_column(gamma, c0, c1, L), _per_column(mean, c0, c1, L)
    for n in range(N):
        row, grad, out = x2[n, c0 * L:c1 * L], dy2[n, c0 * L:c1 * L], dx2[n, c0 * L:c1 * L]
        for i in range(width):
            out[i] = a[i] * grad[i] + b[i] * (row[i] - mu[i]) + g[i]


def _channel_kernels(columns: bool):
    """BatchNorm's two kernels, ``(forward, gradients)``, for one loop order: columns or rows.

    One source for both orders; ``columns`` is a constant of the kernels'
    closure, so Numba compiles only the helpers of the order taken (and
    caches each order under its own key, the closure being part of it): a
    user whose inputs all take one order never waits for the other's
    compilation. ``x``, ``y``, ``dy`` and ``dx`` are (N, C * L) views for
    columns and (N, C, L) arrays for rows; ``mask`` is None for columns.
    """
    @parallel_kernel(fastmath=_FASTMATH, error_model="numpy")
    def forward(x, mask, count, weight, bias, eps, statistics, normalize, tile, mean, var, rstd, y):
        """Per tile: with ``statistics`` the batch mean, biased variance and rstd (else ``mean`` and
        ``rstd`` are given: eval); with ``normalize`` y = x_hat * weight + bias, the tile still in cache."""
        C = mean.shape[0]
        for t in prange((C + tile - 1) // tile):
            c0, c1 = t * tile, min(C, (t + 1) * tile)
            if statistics:
                if columns:
                    _columns_moments(x, c0, c1, count, mean, var)
                else:
                    _rows_moments(x, mask, c0, c1, count, mean, var)
                for c in range(c0, c1):
                    rstd[c] = 1.0 / np.sqrt(var[c] + eps)
            if normalize:
                scale, shift = np.empty(C), np.empty(C)
                _scale_and_shift(mean, rstd, weight, bias, c0, c1, scale, shift)
                if columns:
                    _columns_affine(x, c0, c1, scale, shift, y)
                else:
                    _rows_affine(x, mask, c0, c1, scale, shift, y)

    @parallel_kernel(fastmath=_FASTMATH, error_model="numpy")
    def gradients(dy, x, mask, count, mean, rstd, weight, batch_statistics, want_dx, tile, sum_dy, sum_dy_xc, dx):
        """Per tile: sum(dy) and sum(dy * (x - mean)), then dx (batch_norm_backward's closed form) from cache."""
        C = mean.shape[0]
        for t in prange((C + tile - 1) // tile):
            c0, c1 = t * tile, min(C, (t + 1) * tile)
            if columns:
                _columns_gradient_sums(dy, x, c0, c1, mean, sum_dy, sum_dy_xc)
            else:
                _rows_gradient_sums(dy, x, mask, c0, c1, mean, sum_dy, sum_dy_xc)
            if not want_dx:
                continue
            alpha, beta, gamma = np.empty(C), np.zeros(C), np.zeros(C)
            for c in range(c0, c1):
                alpha[c] = rstd[c] * weight[c]
                if batch_statistics:
                    beta[c] = -alpha[c] * rstd[c] * rstd[c] * sum_dy_xc[c] / count
                    gamma[c] = -alpha[c] * sum_dy[c] / count
            if columns:
                _columns_input_gradient(dy, x, c0, c1, mean, alpha, beta, gamma, dx)
            else:
                _rows_input_gradient(dy, x, mask, c0, c1, mean, alpha, beta, gamma, dx)

    return forward, gradients


_COLUMNS_KERNELS = _channel_kernels(columns=True)
_ROWS_KERNELS = _channel_kernels(columns=False)


# ============================================================================
# Kernels: one set per row (LayerNorm, RMSNorm, GroupNorm, InstanceNorm)
#
# Row b of x2 (B, K) is visited once: its statistics, then its output, with
# the row in cache. Its K values come in J runs; run j is scaled by
# weight_table[b % P, j]. Runs of one value (LayerNorm) take the per-value path.
# ============================================================================

@parallel_kernel(fastmath=_FASTMATH, error_model="numpy")
def _rows_forward(x2, weight_table, bias_table, centered, eps, mean, var, rstd, y2):
    """Per row: two-pass mean (0 when not centred) and variance, then y = x_hat * weight + bias."""
    B, K = x2.shape
    P, J = weight_table.shape
    run = K // J
    x3, y3 = x2.reshape(B, J, run), y2.reshape(B, J, run)  # run j of row b: x3[b, j], indexed from 0
    for b in prange(B):
        mu = 0.0
        if centered:
            total = 0.0
            for k in range(K):
                total += x2[b, k]
            mu = total / K
        squares = 0.0
        for k in range(K):  # the second pass reads the row from cache: deviations, no cancellation
            squares += (x2[b, k] - mu) * (x2[b, k] - mu)
        mean[b] = mu
        var[b] = squares / K
        rs = 1.0 / np.sqrt(var[b] + eps)
        rstd[b] = rs
        t = b % P
        if run == 1:  # one weight per value (LayerNorm, RMSNorm)
            for k in range(K):
                y2[b, k] = (x2[b, k] - mu) * rs * weight_table[t, k] + bias_table[t, k]
        else:  # one weight per run (GroupNorm: per channel; InstanceNorm: per row)
            for j in range(J):
                scale = rs * weight_table[t, j]
                shift = bias_table[t, j] - mu * scale
                values, out = x3[b, j], y3[b, j]
                for i in range(run):
                    out[i] = values[i] * scale + shift


@parallel_kernel(fastmath=_FASTMATH, error_model="numpy")
def _rows_gradients(dy2, x2, mean, rstd, weight_table, centered, want_dx, want_sums, blocks, dx2,
                    table_dy, table_dy_x_hat):
    """Per row: sum(g) and sum(g * x_hat), then dx (``row_norm_backward``'s closed form) from cache.

    ``want_sums``: also add dy and dy * x_hat into ``table_dy[block, b % P, j]``
    and ``table_dy_x_hat`` (block = the fixed run of rows b belongs to).
    """
    B, K = x2.shape
    P, J = weight_table.shape
    run = K // J
    x3, dy3, dx3 = x2.reshape(B, J, run), dy2.reshape(B, J, run), dx2.reshape(dx2.shape[0], J, run)
    for block in prange(blocks):
        for b in range(block * B // blocks, (block + 1) * B // blocks):
            mu, rs = mean[b], rstd[b]
            t = b % P
            sum_g = 0.0
            sum_g_x_hat = 0.0
            if run == 1:  # 2-D indexing, no per-row views: rows of LayerNorm(64) are short
                for k in range(K):
                    x_hat = (x2[b, k] - mu) * rs
                    g = dy2[b, k] * weight_table[t, k]
                    sum_g += g
                    sum_g_x_hat += g * x_hat
                if want_sums:
                    for k in range(K):
                        table_dy[block, t, k] += dy2[b, k]
                        table_dy_x_hat[block, t, k] += dy2[b, k] * (x2[b, k] - mu) * rs
            else:
                for j in range(J):
                    values, grads = x3[b, j], dy3[b, j]
                    s_dy = 0.0
                    s_dy_xc = 0.0
                    for i in range(run):
                        s_dy += grads[i]
                        s_dy_xc += grads[i] * (values[i] - mu)
                    sum_g += weight_table[t, j] * s_dy
                    sum_g_x_hat += weight_table[t, j] * s_dy_xc * rs
                    if want_sums:
                        table_dy[block, t, j] += s_dy
                        table_dy_x_hat[block, t, j] += s_dy_xc * rs
            if not want_dx:
                continue
            # dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), expanded: rstd * g + a * x + c
            mean_g = sum_g / K if centered else 0.0
            a = -rs * rs * sum_g_x_hat / K
            c = -rs * mean_g - a * mu
            if run == 1:
                for k in range(K):
                    dx2[b, k] = rs * dy2[b, k] * weight_table[t, k] + a * x2[b, k] + c
            else:
                for j in range(J):
                    values, grads, out = x3[b, j], dy3[b, j], dx3[b, j]
                    w_rs = rs * weight_table[t, j]
                    for i in range(run):
                        out[i] = w_rs * grads[i] + a * values[i] + c
