"""Normalization layers as one operation over different axes.

Every member of the family -- BatchNorm, LayerNorm, GroupNorm, InstanceNorm,
RMSNorm and Batch Renormalization -- views its input as a 3-D array
``(A, B, K)`` and normalizes each of the B slices over its ``A * K`` values:

    =============  ===========================  ==========================
    layer          input                        (A, B, K)
    =============  ===========================  ==========================
    BatchNorm      (N, C, *spatial)             (N, C, prod(spatial))
    LayerNorm      (*, *normalized_shape)       (1, rows, prod(normalized))
    GroupNorm      (N, C, *spatial), G groups   (1, N*G, C/G * prod(spatial))
    InstanceNorm   (N, C, *spatial)             (1, N*C, prod(spatial))
    RMSNorm        like LayerNorm, no centring  (1, rows, prod(normalized))
    =============  ===========================  ==========================

So there is one statistics-and-normalization core (``normalize_forward`` /
``normalize_backward``: Numba kernels over the rows ``x3[a, b, :]``, in
parallel) and each layer is a reshape around it plus its affine map
``y = weight * x_hat + bias``.  The
affine parameters are handed to the core as a small table
``weight_table[b % rows, k // seg]`` so that the core applies them in the same
pass (BatchNorm: one per channel; LayerNorm: one per normalized element;
GroupNorm: one per channel inside each group).

Numerics: statistics are two-pass (mean first, then the mean of squared
deviations) and accumulated in float64 for float32 input, so a float32 batch
with mean 1e4 and std 1 still normalizes to unit variance (E[x^2] - E[x]^2
would lose every significant digit there).  The saved state is ``x_hat`` and
``rstd = 1/sqrt(var + eps)``, never the variance.

Functions: ``<layer>_forward(x, ...) -> (y, saved)`` and
``<layer>_backward(dy, saved, needs) -> (dx, dweight[, dbias])``;
``update_running_stats`` applies torch's momentum rule in place.

>>> import numpy as np
>>> from normlab.ops.normalization import batch_norm_forward, batch_norm_backward
>>> x = np.random.default_rng(0).standard_normal((8, 3, 4))
>>> y, saved = batch_norm_forward(x, np.ones(3), np.zeros(3), training=True)
>>> saved.x_hat.shape, saved.rstd.shape          # the saved state: x_hat (as (A, B, K)) and rstd
((8, 3, 4), (3,))
>>> dx, dweight, dbias = batch_norm_backward(np.ones_like(y), saved)
>>> bool(np.allclose(dx, 0))   # a constant upstream gradient is invisible to BatchNorm
True
"""
from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

# Reassociation lets LLVM vectorise the float64 reductions (several partial
# sums instead of one serial chain); contraction allows fused multiply-adds.
# No 'nnan'/'ninf': NaN and inf must propagate as they do in torch.
_FASTMATH = {"reassoc", "contract"}

# Every kernel walks the rows x3[a, b, :] (K contiguous values) in memory order,
# parallel over rows. When A == 1 (LayerNorm, GroupNorm, InstanceNorm, RMSNorm)
# a row is a whole reduction set: statistics, normalization and the backward
# reductions are fused in one visit of the row. When A > 1 (BatchNorm: a
# channel's values are spread over N rows) each row's moments are computed
# in-cache and merged across rows (Chan et al.), then a second pass applies
# the per-channel constants -- walking a channel's N strided rows instead is
# slow when the spatial size is small.


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def _row_moments(x3, row_mean, row_m2):
    """Two-pass mean and sum of squared deviations of every row ``x3[a, b, :]`` (float64)."""
    A, B, K = x3.shape
    inv_k = 1.0 / K
    for r in prange(A * B):
        a = r // B
        b = r - a * B
        row = x3[a, b]
        total = 0.0
        for k in range(K):
            total += row[k]
        mu = total * inv_k
        squares = 0.0
        for k in range(K):  # deviations from the row's mean: no cancellation
            deviation = row[k] - mu
            squares += deviation * deviation
        row_mean[a, b] = mu
        row_m2[a, b] = squares


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def _normalize_rows(x3, scale, shift, seg, affine, center, row_stats, save_x_hat, eps, mean, var, rstd,
                    x_hat3, y3):
    """x_hat = (x - mean[b]) * rstd[b] and y = x_hat * scale + shift, row by row.

    ``row_stats`` (only when A == 1): first compute the row's two-pass
    statistics into mean/var/rstd (mean stays 0 without ``center``: RMSNorm).
    ``scale``/``shift`` are float64 tables indexed ``[b % rows, k // seg]``.
    Without ``affine`` the output is x_hat itself (``y3``); with it, x_hat is
    stored in ``x_hat3`` only if ``save_x_hat``.
    """
    A, B, K = x3.shape
    inv_k = 1.0 / K
    rows = scale.shape[0]
    segments = K // seg
    for r in prange(A * B):
        a = r // B
        b = r - a * B
        xr = x3[a, b]
        yr = y3[a, b]
        if row_stats:
            mu = 0.0
            if center:
                total = 0.0
                for k in range(K):
                    total += xr[k]
                mu = total * inv_k
            squares = 0.0
            for k in range(K):  # second pass over the cached row: deviations, no cancellation
                deviation = xr[k] - mu
                squares += deviation * deviation
            v = squares * inv_k
            mean[b] = mu
            var[b] = v
            rstd[b] = 1.0 / np.sqrt(v + eps)
        mu = mean[b]
        rs = rstd[b]
        t = b % rows
        if not affine:
            for k in range(K):
                yr[k] = (xr[k] - mu) * rs
        elif seg == 1:  # one weight per k (LayerNorm, RMSNorm, BatchNorm of (N, C))
            if save_x_hat:
                hr = x_hat3[a, b]
                for k in range(K):
                    xh = (xr[k] - mu) * rs
                    hr[k] = xh
                    yr[k] = xh * scale[t, k] + shift[t, k]
            else:
                for k in range(K):
                    yr[k] = (xr[k] - mu) * rs * scale[t, k] + shift[t, k]
        else:  # one weight per run of `seg` values (BatchNorm, InstanceNorm, GroupNorm)
            for j in range(segments):
                w = scale[t, j]
                s = shift[t, j]
                lo = j * seg
                if save_x_hat:
                    hr = x_hat3[a, b]
                    for k in range(lo, lo + seg):
                        xh = (xr[k] - mu) * rs
                        hr[k] = xh
                        yr[k] = xh * w + s
                else:
                    for k in range(lo, lo + seg):
                        yr[k] = (xr[k] - mu) * rs * w + s


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def _row_sums(dy3, x_hat3, row_dy, row_dy_x_hat):
    """sum(dy) and sum(dy * x_hat) of every row (float64): BatchNorm's backward reductions, merged later."""
    A, B, K = dy3.shape
    for r in prange(A * B):
        a = r // B
        b = r - a * B
        dyr = dy3[a, b]
        hr = x_hat3[a, b]
        s_dy = 0.0
        s_dy_x_hat = 0.0
        for k in range(K):
            s_dy += dyr[k]
            s_dy_x_hat += dyr[k] * hr[k]
        row_dy[a, b] = s_dy
        row_dy_x_hat[a, b] = s_dy_x_hat


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def _combine_rows(dy3, x_hat3, alpha, beta, gamma, dx3):
    """dx = alpha[b] * dy + beta[b] * x_hat + gamma[b]: BatchNorm's dx once its per-channel sums are known."""
    A, B, K = dy3.shape
    for r in prange(A * B):
        a = r // B
        b = r - a * B
        dyr = dy3[a, b]
        hr = x_hat3[a, b]
        dxr = dx3[a, b]
        al = alpha[b]
        be = beta[b]
        ga = gamma[b]
        for k in range(K):
            dxr[k] = al * dyr[k] + be * hr[k] + ga


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def _backward_rows(dy3, x_hat3, rstd, scale, seg, affine, center, batch_stats, want_dx, weight_sums, blocks,
                   dx3, segment_dy, segment_dy_x_hat, column_dy, column_dy_x_hat):
    """A == 1: per row, the reductions of dy and then dx, in one visit. Parallel over ``blocks`` runs of rows.

    ``weight_sums``: 0 none; 1 per-(b, segment) sums of dy and dy * x_hat
    into ``segment_*`` (B, K // seg); 2 per-k partial sums over the rows of
    each block into ``column_*`` (blocks, K) (LayerNorm's weight gradient).
    """
    _, B, K = dy3.shape
    inv_k = 1.0 / K
    rows = scale.shape[0]
    segments = K // seg
    per_k = seg == 1 and weight_sums != 1
    for block in prange(blocks):
        for b in range(block * B // blocks, (block + 1) * B // blocks):
            dyr = dy3[0, b]
            hr = x_hat3[0, b]
            t = b % rows
            sum_g = 0.0
            sum_g_x_hat = 0.0
            if per_k:
                if batch_stats and want_dx:
                    if affine:
                        for k in range(K):
                            g = dyr[k] * scale[t, k]
                            sum_g += g
                            sum_g_x_hat += g * hr[k]
                    else:
                        for k in range(K):
                            sum_g += dyr[k]
                            sum_g_x_hat += dyr[k] * hr[k]
                if weight_sums == 2:
                    for k in range(K):
                        column_dy[block, k] += dyr[k]
                        column_dy_x_hat[block, k] += dyr[k] * hr[k]
            elif (batch_stats and want_dx) or weight_sums == 1:
                for j in range(segments):
                    s_dy = 0.0
                    s_dy_x_hat = 0.0
                    for k in range(j * seg, (j + 1) * seg):
                        s_dy += dyr[k]
                        s_dy_x_hat += dyr[k] * hr[k]
                    w = scale[t, j] if affine else 1.0
                    sum_g += w * s_dy
                    sum_g_x_hat += w * s_dy_x_hat
                    if weight_sums == 1:
                        segment_dy[b, j] = s_dy
                        segment_dy_x_hat[b, j] = s_dy_x_hat
            if not want_dx:
                continue
            rs = rstd[b]
            # With batch statistics x_hat_j = (x_j - mu) * rstd moves with every x_i of the row (n values):
            #   d x_hat_j / d x_i = rstd * (delta_ij - 1/n - x_hat_i * x_hat_j / n)   (through mu and through var)
            #   => dx = rstd * (g_x_hat - mean(g_x_hat) - x_hat * mean(g_x_hat * x_hat)),  g_x_hat = dy * weight.
            # RMSNorm has no mu: mean(g_x_hat) drops. Running statistics (eval): both drop, dx = rstd * g_x_hat.
            mean_g = sum_g * inv_k if (batch_stats and center) else 0.0
            mean_g_x_hat = sum_g_x_hat * inv_k if batch_stats else 0.0
            dxr = dx3[0, b]
            if not affine:
                for k in range(K):
                    dxr[k] = rs * (dyr[k] - mean_g - hr[k] * mean_g_x_hat)
            elif seg == 1:
                for k in range(K):
                    dxr[k] = rs * (dyr[k] * scale[t, k] - mean_g - hr[k] * mean_g_x_hat)
            else:
                for j in range(segments):
                    w = scale[t, j]
                    for k in range(j * seg, (j + 1) * seg):
                        dxr[k] = rs * (dyr[k] * w - mean_g - hr[k] * mean_g_x_hat)


# ----------------------------------------------------------------------------
# The shared core
# ----------------------------------------------------------------------------

_NO_TABLE = np.ones((1, 1))


class NormSaved:
    """What backward needs: ``x_hat``, ``rstd`` and how the affine table was laid out.

    ``batch_mean``/``batch_var``/``count`` are the batch statistics (None in
    eval), kept for the running-stat update only; backward never reads them.
    """

    __slots__ = ("x_shape", "x_hat", "rstd", "scale", "seg", "center", "batch_stats", "sums",
                 "weight_shape", "has_weight", "has_bias", "renorm", "batch_mean", "batch_var", "count")

    def __init__(self, **fields) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))


def _table(values, shape) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(shape))


def affine_tables(weight, bias, shape):
    """(scale, shift, affine): float64 tables of ``shape`` for the core; ``affine`` False when both are None."""
    if weight is None and bias is None:
        return _NO_TABLE, _NO_TABLE, False
    scale = np.ones(shape) if weight is None else _table(weight, shape)
    shift = np.zeros(shape) if bias is None else _table(bias, shape)
    return scale, shift, True


def batch_moments(x3, eps):
    """Per-slice mean, biased variance and rstd of ``x3`` (A, B, K) over axes A and K, float64.

    Each row's moments are two-pass and in-cache; rows are merged with Chan et
    al.'s pairwise rule, M2 = sum(M2_a) + K * sum((mean_a - mean)^2), which
    never subtracts two large sums.
    """
    A, B, K = x3.shape
    row_mean, row_m2 = np.empty((A, B)), np.empty((A, B))
    _row_moments(x3, row_mean, row_m2)
    mean = row_mean.mean(axis=0)
    m2 = row_m2.sum(axis=0) + K * np.square(row_mean - mean).sum(axis=0)
    var = m2 * (1.0 / (A * K))  # the same rounding as the fused row kernel when A == 1
    return mean, var, 1.0 / np.sqrt(var + eps)


def normalize_forward(x3, scale=_NO_TABLE, shift=_NO_TABLE, seg=1, *, affine=False, center=True, eps=1e-5,
                      mean=None, rstd=None, save=True):
    """The shared core: normalize each slice ``x3[:, b, :]`` and apply the affine table.

    With ``mean``/``rstd`` given (running statistics), they are used as they
    are; otherwise they are computed from the slice (two-pass, float64).
    Returns ``(y3, x_hat3, mean, var, rstd)``; ``x_hat3`` is None when not
    ``save``; ``var`` is None when statistics were given.
    """
    x3 = np.ascontiguousarray(x3)
    A, B, K = x3.shape
    var = None
    row_stats = mean is None and A == 1
    if row_stats:
        mean, var, rstd = np.empty(B), np.empty(B), np.empty(B)
    elif mean is None:
        assert center, "uncentred statistics are only computed over rows (A == 1)"
        mean, var, rstd = batch_moments(x3, eps)
    else:
        mean, rstd = np.ascontiguousarray(mean, dtype=np.float64), np.ascontiguousarray(rstd, dtype=np.float64)
    y3 = np.empty_like(x3)
    # Without the affine map the output *is* x_hat: one array, saved once.
    x_hat3 = np.empty_like(x3) if (affine and save) else y3
    _normalize_rows(x3, scale, shift, max(seg, 1), affine, center, row_stats, affine and save, float(eps),
                    mean, var if var is not None else rstd, rstd, x_hat3, y3)
    return y3, (x_hat3 if save else None), mean, var, rstd


def normalize_backward(dy3, saved: NormSaved, want_dx=True, want_weight_sums=True):
    """The shared core's backward: dx3 and the sums of dy and dy * x_hat behind the weight gradients.

    The sums come back as float64 arrays laid out like the weight (summed over
    everything else), or None when not wanted.
    """
    x_hat3 = saved.x_hat
    dy3 = np.ascontiguousarray(np.reshape(dy3, x_hat3.shape), dtype=x_hat3.dtype)
    A, B, K = x_hat3.shape
    seg = max(saved.seg, 1)
    affine = saved.scale is not None
    scale = saved.scale if affine else _NO_TABLE
    if A > 1:  # BatchNorm layout: one weight per slice b, reductions merged over the A rows
        need_sums = want_weight_sums or (want_dx and saved.batch_stats)
        sum_dy = sum_dy_x_hat = None
        if need_sums:
            row_dy, row_dy_x_hat = np.empty((A, B)), np.empty((A, B))
            _row_sums(dy3, x_hat3, row_dy, row_dy_x_hat)
            sum_dy, sum_dy_x_hat = row_dy.sum(axis=0), row_dy_x_hat.sum(axis=0)
        dx3 = None
        if want_dx:
            weight = scale[np.arange(B) % scale.shape[0], 0] if affine else np.ones(B)
            rstd = saved.rstd
            if saved.batch_stats:
                mean_g, mean_g_x_hat = weight * sum_dy / (A * K), weight * sum_dy_x_hat / (A * K)
            else:
                mean_g = mean_g_x_hat = np.zeros(B)
            dx3 = np.empty_like(dy3)
            # x_hat_j = (x_j - mu) * rstd moves with every x_i of the slice, through mu and through var:
            #   d x_hat_j / d x_i = rstd * (delta_ij - 1/n - x_hat_i * x_hat_j / n)
            #   => dx = rstd * (weight * dy - mean(g_x_hat) - x_hat * mean(g_x_hat * x_hat)), per-slice coefficients
            _combine_rows(dy3, x_hat3, rstd * weight, -rstd * mean_g_x_hat, -rstd * mean_g, dx3)
        if not want_weight_sums:
            return dx3, None, None
        size = int(np.prod(saved.weight_shape))
        return dx3, sum_dy.reshape(-1, size).sum(axis=0), sum_dy_x_hat.reshape(-1, size).sum(axis=0)

    mode = (1 if saved.sums == "segments" else 2) if want_weight_sums else 0
    blocks = max(1, min(B, get_num_threads() if mode == 2 else 8 * get_num_threads()))
    segment = np.zeros((B, K // seg) if mode == 1 else (1, 1))
    column = np.zeros((blocks, K) if mode == 2 else (1, 1))
    segment2, column2 = np.zeros_like(segment), np.zeros_like(column)
    dx3 = np.empty_like(dy3) if want_dx else dy3
    _backward_rows(dy3, x_hat3, saved.rstd, scale, seg, affine, saved.center, saved.batch_stats, want_dx,
                   mode, blocks, dx3, segment, segment2, column, column2)
    sum_dy = sum_dy_x_hat = None
    if mode == 1:
        # (B, segments) -> weight layout: InstanceNorm (N*C, 1) and GroupNorm (N*G, C/G)
        # fold their batch copies of the table together; BatchNorm with N == 1 is (C, 1).
        size = int(np.prod(saved.weight_shape))
        sum_dy = segment.reshape(-1, size).sum(axis=0)
        sum_dy_x_hat = segment2.reshape(-1, size).sum(axis=0)
    elif mode == 2:
        sum_dy, sum_dy_x_hat = column.sum(axis=0), column2.sum(axis=0)
    return (dx3 if want_dx else None), sum_dy, sum_dy_x_hat


def _affine_backward(dy, saved: NormSaved, needs):
    """dx, dweight, dbias for every layer of the family (the backward behind each ``*_backward``)."""
    want_dx = bool(needs[0])
    want_weight = bool(saved.has_weight and len(needs) > 1 and needs[1])
    want_bias = bool(saved.has_bias and len(needs) > 2 and needs[2])
    dx3, sum_dy, sum_dy_x_hat = normalize_backward(dy, saved, want_dx, want_weight or want_bias)
    dx = dx3.reshape(saved.x_shape) if want_dx else None
    dweight = dbias = None
    if want_weight:
        # y = weight * x_hat + bias  =>  dweight = sum(dy * x_hat) over all but the weight's axes;
        # batch renorm: y = weight * (x_hat * r + d) + bias  =>  dweight = r * sum(dy * x_hat) + d * sum(dy)
        if saved.renorm is None:
            dweight = sum_dy_x_hat
        else:
            r, d = saved.renorm
            dweight = r * sum_dy_x_hat + d * sum_dy
        dweight = dweight.reshape(saved.weight_shape)
    if want_bias:
        dbias = sum_dy.reshape(saved.weight_shape)  # dbias = sum(dy) over the same axes
    return dx, dweight, dbias


def _empty_guard(x):
    if x.size == 0:
        raise ValueError(f"normalization: expected a non-empty input, got shape {x.shape}")


# ----------------------------------------------------------------------------
# Running statistics
# ----------------------------------------------------------------------------

def update_running_stats(running_mean, running_var, batch_mean, batch_var, count, momentum) -> None:
    """torch's rule, in place: ``new = (1 - momentum) * old + momentum * batch``.

    The batch variance passed in is the biased one used to normalize; the
    running variance receives the unbiased one, ``var * n / (n - 1)``.
    ``batch_mean``/``batch_var`` may be (N, C) per-instance statistics
    (InstanceNorm): each instance's update is averaged over N, as torch does.
    """
    unbiased = batch_var * (count / (count - 1))
    new_mean = (1.0 - momentum) * running_mean + momentum * batch_mean
    new_var = (1.0 - momentum) * running_var + momentum * unbiased
    if new_mean.ndim == 2:
        new_mean, new_var = new_mean.mean(axis=0), new_var.mean(axis=0)
    running_mean[...] = new_mean
    running_var[...] = new_var


def _running_rstd(running_var, eps):
    return 1.0 / np.sqrt(np.asarray(running_var, dtype=np.float64) + eps)


# ----------------------------------------------------------------------------
# BatchNorm
# ----------------------------------------------------------------------------

def batch_norm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, *, training=True,
                       eps=1e-5, save=True):
    """Batch Normalization (Ioffe & Szegedy, 2015) over (N, *spatial) for each channel of (N, C, *spatial).

    ``training``: normalize with the batch's mean and biased variance
    (``saved.batch_mean``/``batch_var`` feed ``update_running_stats``);
    otherwise with ``running_mean``/``running_var``.
    """
    _empty_guard(x)
    n, c = x.shape[0], x.shape[1]
    x3 = x.reshape(n, c, -1)
    spatial = x3.shape[2]
    scale, shift, affine = affine_tables(weight, bias, (c, 1))
    if training:
        y3, x_hat3, mean, var, rstd = normalize_forward(x3, scale, shift, spatial, affine=affine, eps=eps, save=save)
    else:
        y3, x_hat3, mean, var, rstd = normalize_forward(
            x3, scale, shift, spatial, affine=affine, eps=eps, save=save,
            mean=running_mean, rstd=_running_rstd(running_var, eps))
        mean = None
    saved = NormSaved(x_shape=x.shape, x_hat=x_hat3, rstd=rstd, scale=scale if affine else None, seg=spatial,
                      center=True, batch_stats=training, sums="segments", weight_shape=(c,),
                      has_weight=weight is not None, has_bias=bias is not None,
                      batch_mean=mean, batch_var=var, count=n * spatial)
    return y3.reshape(x.shape), saved


def batch_norm_backward(dy, saved: NormSaved, needs=(True, True, True)):
    """(dx, dweight, dbias); the reduction set of each channel is (N, *spatial). Eval: plain affine backward."""
    return _affine_backward(dy, saved, needs)


# ----------------------------------------------------------------------------
# Batch Renormalization
# ----------------------------------------------------------------------------

def batch_renorm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, *, training=True,
                         r_max=3.0, d_max=5.0, eps=1e-5, save=True):
    """Batch Renormalization (Ioffe, 2017): BatchNorm corrected towards the running statistics.

    In training, with sigma = sqrt(running_var + eps) and sigma_B = sqrt(batch_var + eps)::

        r = clip(sigma_B / sigma, 1/r_max, r_max)      d = clip((mu_B - mu) / sigma, -d_max, d_max)
        y = weight * (x_hat * r + d) + bias

    r and d are constants for backward (no gradient flows through them).
    With r_max=1, d_max=0 this is batch_norm exactly. Eval is batch_norm's eval.
    """
    if not training:
        return batch_norm_forward(x, weight, bias, running_mean, running_var, training=False, eps=eps, save=save)
    _empty_guard(x)
    n, c = x.shape[0], x.shape[1]
    x3 = np.ascontiguousarray(x.reshape(n, c, -1))
    spatial = x3.shape[2]
    mean, var, rstd = batch_moments(x3, eps)
    sigma = np.sqrt(np.asarray(running_var, dtype=np.float64) + eps)
    sigma_batch = np.sqrt(var + eps)
    r = np.clip(sigma_batch / sigma, 1.0 / r_max, r_max)
    d = np.clip((mean - np.asarray(running_mean, dtype=np.float64)) / sigma, -d_max, d_max)
    weight64 = np.ones(c) if weight is None else np.asarray(weight, dtype=np.float64)
    bias64 = np.zeros(c) if bias is None else np.asarray(bias, dtype=np.float64)
    # weight * (x_hat * r + d) + bias = x_hat * (weight * r) + (weight * d + bias): one affine table
    scale, shift = _table(weight64 * r, (c, 1)), _table(weight64 * d + bias64, (c, 1))
    y3, x_hat3, _, _, _ = normalize_forward(x3, scale, shift, spatial, affine=True, eps=eps, save=save,
                                            mean=mean, rstd=rstd)
    saved = NormSaved(x_shape=x.shape, x_hat=x_hat3, rstd=rstd, scale=scale, seg=spatial, center=True,
                      batch_stats=True, sums="segments", weight_shape=(c,), has_weight=weight is not None,
                      has_bias=bias is not None, renorm=(r, d), batch_mean=mean, batch_var=var, count=n * spatial)
    return y3.reshape(x.shape), saved


def batch_renorm_backward(dy, saved: NormSaved, needs=(True, True, True)):
    """(dx, dweight, dbias): BatchNorm's backward with g_x_hat = dy * weight * r; r, d held constant."""
    return _affine_backward(dy, saved, needs)


# ----------------------------------------------------------------------------
# LayerNorm and RMSNorm
# ----------------------------------------------------------------------------

def layer_norm_forward(x, weight=None, bias=None, *, normalized_ndim=1, eps=1e-5, save=True):
    """Layer Normalization (Ba et al., 2016) over the last ``normalized_ndim`` dimensions."""
    _empty_guard(x)
    normalized_shape = x.shape[x.ndim - normalized_ndim:]
    size = int(np.prod(normalized_shape))
    x3 = x.reshape(1, -1, size)
    scale, shift, affine = affine_tables(weight, bias, (1, size))
    y3, x_hat3, _, _, rstd = normalize_forward(x3, scale, shift, 1, affine=affine, eps=eps, save=save)
    saved = NormSaved(x_shape=x.shape, x_hat=x_hat3, rstd=rstd, scale=scale if affine else None, seg=1,
                      center=True, batch_stats=True, sums="columns", weight_shape=normalized_shape,
                      has_weight=weight is not None, has_bias=bias is not None)
    return y3.reshape(x.shape), saved


def layer_norm_backward(dy, saved: NormSaved, needs=(True, True, True)):
    """(dx, dweight, dbias); the reduction set of each row is its normalized elements."""
    return _affine_backward(dy, saved, needs)


def rms_norm_forward(x, weight=None, *, normalized_ndim=1, eps=None, save=True):
    """RMS Normalization (Zhang & Sennrich, 2019): x / sqrt(mean(x^2) + eps) * weight; no centring, no bias.

    ``eps=None`` is the machine epsilon of x's dtype, as in torch.
    """
    _empty_guard(x)
    eps = float(np.finfo(x.dtype).eps) if eps is None else eps
    normalized_shape = x.shape[x.ndim - normalized_ndim:]
    size = int(np.prod(normalized_shape))
    scale, shift, affine = affine_tables(weight, None, (1, size))
    y3, x_hat3, _, _, rstd = normalize_forward(x.reshape(1, -1, size), scale, shift, 1, affine=affine,
                                               center=False, eps=eps, save=save)
    saved = NormSaved(x_shape=x.shape, x_hat=x_hat3, rstd=rstd, scale=scale if affine else None, seg=1,
                      center=False, batch_stats=True, sums="columns", weight_shape=normalized_shape,
                      has_weight=weight is not None, has_bias=False)
    return y3.reshape(x.shape), saved


def rms_norm_backward(dy, saved: NormSaved, needs=(True, True)):
    """(dx, dweight); x_hat = x * rrms with rrms = (mean(x^2) + eps)^-1/2, so dx has no mean(g_x_hat) term."""
    dx, dweight, _ = _affine_backward(dy, saved, tuple(needs) + (False,))
    return dx, dweight


# ----------------------------------------------------------------------------
# GroupNorm and InstanceNorm
# ----------------------------------------------------------------------------

def group_norm_forward(x, weight=None, bias=None, *, num_groups, eps=1e-5, save=True):
    """Group Normalization (Wu & He, 2018): LayerNorm within each of ``num_groups`` channel groups."""
    _empty_guard(x)
    n, c = x.shape[0], x.shape[1]
    spatial = int(np.prod(x.shape[2:]))
    group_channels = c // num_groups
    x3 = x.reshape(1, n * num_groups, group_channels * spatial)
    # the weight of channel g * C/G + i sits at table[g, i]; it covers a run of `spatial` values
    scale, shift, affine = affine_tables(weight, bias, (num_groups, group_channels))
    y3, x_hat3, _, _, rstd = normalize_forward(x3, scale, shift, spatial, affine=affine, eps=eps, save=save)
    saved = NormSaved(x_shape=x.shape, x_hat=x_hat3, rstd=rstd, scale=scale if affine else None, seg=spatial,
                      center=True, batch_stats=True, sums="segments", weight_shape=(c,),
                      has_weight=weight is not None, has_bias=bias is not None)
    return y3.reshape(x.shape), saved


def group_norm_backward(dy, saved: NormSaved, needs=(True, True, True)):
    """(dx, dweight, dbias); the reduction set of each (n, group) is its C/G channels times spatial."""
    return _affine_backward(dy, saved, needs)


def instance_norm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, *,
                          use_input_stats=True, eps=1e-5, save=True):
    """Instance Normalization (Ulyanov et al., 2016): each (n, c) plane over its spatial values.

    With ``use_input_stats=False`` the running statistics normalize (as
    BatchNorm's eval). ``saved.batch_mean``/``batch_var`` are (N, C).
    """
    if not use_input_stats:
        return batch_norm_forward(x, weight, bias, running_mean, running_var, training=False, eps=eps, save=save)
    _empty_guard(x)
    n, c = x.shape[0], x.shape[1]
    x3 = x.reshape(1, n * c, -1)
    spatial = x3.shape[2]
    scale, shift, affine = affine_tables(weight, bias, (c, 1))
    y3, x_hat3, mean, var, rstd = normalize_forward(x3, scale, shift, spatial, affine=affine, eps=eps, save=save)
    saved = NormSaved(x_shape=x.shape, x_hat=x_hat3, rstd=rstd, scale=scale if affine else None, seg=spatial,
                      center=True, batch_stats=True, sums="segments", weight_shape=(c,),
                      has_weight=weight is not None, has_bias=bias is not None,
                      batch_mean=mean.reshape(n, c), batch_var=var.reshape(n, c), count=spatial)
    return y3.reshape(x.shape), saved


def instance_norm_backward(dy, saved: NormSaved, needs=(True, True, True)):
    """(dx, dweight, dbias); the reduction set of each (n, c) is its spatial values."""
    return _affine_backward(dy, saved, needs)
