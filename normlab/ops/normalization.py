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
``normalize_backward``, Numba kernels parallel over B) and each layer is a
reshape around it plus its affine map ``y = weight * x_hat + bias``.  The
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
"""
from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

# Reassociation lets LLVM vectorise the float64 reductions (several partial
# sums instead of one serial chain); contraction allows fused multiply-adds.
# No 'nnan'/'ninf': NaN and inf must propagate as they do in torch.
_FASTMATH = {"reassoc", "contract"}


# ----------------------------------------------------------------------------
# Numba kernels: the shared core
# ----------------------------------------------------------------------------

@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def _forward_kernel(x3, scale, shift, seg, affine, center, compute_stats, normalize, save_x_hat,
                    eps, mean, var, rstd, x_hat3, y3):
    """Per slice b: (optionally) two-pass statistics, then x_hat and y = x_hat * scale + shift.

    ``scale``/``shift`` are float64 tables indexed ``[b % rows, k // seg]``;
    ``mean``/``var``/``rstd`` are float64 (B,) arrays, written when
    ``compute_stats`` and read otherwise.  Without ``affine`` the output is
    x_hat itself (``x_hat3``); with it, x_hat is stored only if ``save_x_hat``.
    """
    A, B, K = x3.shape
    inv_count = 1.0 / (A * K)
    rows = scale.shape[0]
    segments = K // seg
    for b in prange(B):
        if compute_stats:
            mu = 0.0
            if center:
                total = 0.0
                for a in range(A):
                    for k in range(K):
                        total += x3[a, b, k]
                mu = total * inv_count
            # second pass over the (cached) slice: deviations from the mean, no cancellation
            squares = 0.0
            for a in range(A):
                for k in range(K):
                    deviation = x3[a, b, k] - mu
                    squares += deviation * deviation
            v = squares * inv_count
            mean[b] = mu
            var[b] = v
            rstd[b] = 1.0 / np.sqrt(v + eps)
        if not normalize:
            continue
        mu = mean[b]
        r = rstd[b]
        row = b % rows
        if not affine:
            for a in range(A):
                for k in range(K):
                    x_hat3[a, b, k] = (x3[a, b, k] - mu) * r
        elif seg == 1:  # one weight per k (LayerNorm, RMSNorm, BatchNorm on (N, C))
            for a in range(A):
                if save_x_hat:
                    for k in range(K):
                        xh = (x3[a, b, k] - mu) * r
                        x_hat3[a, b, k] = xh
                        y3[a, b, k] = xh * scale[row, k] + shift[row, k]
                else:
                    for k in range(K):
                        y3[a, b, k] = (x3[a, b, k] - mu) * r * scale[row, k] + shift[row, k]
        else:  # one weight per run of `seg` consecutive k (BatchNorm, InstanceNorm, GroupNorm)
            for a in range(A):
                for j in range(segments):
                    w = scale[row, j]
                    s = shift[row, j]
                    if save_x_hat:
                        for k in range(j * seg, (j + 1) * seg):
                            xh = (x3[a, b, k] - mu) * r
                            x_hat3[a, b, k] = xh
                            y3[a, b, k] = xh * w + s
                    else:
                        for k in range(j * seg, (j + 1) * seg):
                            y3[a, b, k] = (x3[a, b, k] - mu) * r * w + s


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def _backward_kernel(dy3, x_hat3, rstd, scale, seg, affine, center, batch_stats, want_dx,
                     weight_sums, blocks, dx3, segment_dy, segment_dy_x_hat, column_dy, column_dy_x_hat):
    """Per slice b: the reductions of dy, then dx.  Parallel over ``blocks`` runs of slices.

    ``weight_sums``: 0 none; 1 per-(b, segment) sums of dy and dy*x_hat into
    ``segment_*`` (B, K // seg); 2 per-k sums over all slices into
    ``column_*`` (blocks, K) partials (LayerNorm's weight gradient, summed
    over rows).
    """
    A, B, K = dy3.shape
    inv_count = 1.0 / (A * K)
    rows = scale.shape[0]
    segments = K // seg
    per_k = seg == 1 and weight_sums != 1
    for block in prange(blocks):
        for b in range(block * B // blocks, (block + 1) * B // blocks):
            row = b % rows
            sum_g = 0.0
            sum_g_x_hat = 0.0
            if per_k:
                if batch_stats or weight_sums == 2:
                    for a in range(A):
                        for k in range(K):
                            d = dy3[a, b, k]
                            xh = x_hat3[a, b, k]
                            w = scale[row, k] if affine else 1.0
                            sum_g += d * w
                            sum_g_x_hat += d * w * xh
                            if weight_sums == 2:
                                column_dy[block, k] += d
                                column_dy_x_hat[block, k] += d * xh
            elif batch_stats or weight_sums == 1:
                for j in range(segments):
                    s_dy = 0.0
                    s_dy_x_hat = 0.0
                    for a in range(A):
                        for k in range(j * seg, (j + 1) * seg):
                            d = dy3[a, b, k]
                            s_dy += d
                            s_dy_x_hat += d * x_hat3[a, b, k]
                    w = scale[row, j] if affine else 1.0
                    sum_g += w * s_dy
                    sum_g_x_hat += w * s_dy_x_hat
                    if weight_sums == 1:
                        segment_dy[b, j] = s_dy
                        segment_dy_x_hat[b, j] = s_dy_x_hat
            if not want_dx:
                continue
            r = rstd[b]
            # With batch statistics, x_hat_j = (x_j - mu) * rstd depends on every x_i of the slice:
            #   d x_hat_j / d x_i = rstd * (delta_ij - 1/n - x_hat_i * x_hat_j / n)   (mu and var move with x_i)
            #   => dx = rstd * (g_x_hat - mean(g_x_hat) - x_hat * mean(g_x_hat * x_hat)),  g_x_hat = dy * weight
            # RMSNorm has no mu, so its 1/n term (mean(g_x_hat)) drops; with running statistics (eval) both
            # means drop and dx = rstd * g_x_hat.
            mean_g = sum_g * inv_count if (batch_stats and center) else 0.0
            mean_g_x_hat = sum_g_x_hat * inv_count if batch_stats else 0.0
            if seg == 1:
                for a in range(A):
                    for k in range(K):
                        g_x_hat = dy3[a, b, k] * (scale[row, k] if affine else 1.0)
                        dx3[a, b, k] = r * (g_x_hat - mean_g - x_hat3[a, b, k] * mean_g_x_hat)
            else:
                for a in range(A):
                    for j in range(segments):
                        w = scale[row, j] if affine else 1.0
                        for k in range(j * seg, (j + 1) * seg):
                            g_x_hat = dy3[a, b, k] * w
                            dx3[a, b, k] = r * (g_x_hat - mean_g - x_hat3[a, b, k] * mean_g_x_hat)


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


def normalize_forward(x3, scale=_NO_TABLE, shift=_NO_TABLE, seg=1, *, affine=False, center=True, eps=1e-5,
                      mean=None, rstd=None, save=True, normalize=True):
    """The shared core: normalize each slice ``x3[:, b, :]`` and apply the affine table.

    With ``mean``/``rstd`` given (running statistics), they are used as they
    are; otherwise they are computed from the slice (two-pass, float64).
    Returns ``(y3, x_hat3, mean, var, rstd)``; ``x_hat3`` is None when not
    ``save``; ``var`` is None when statistics were given.
    """
    x3 = np.ascontiguousarray(x3)
    A, B, K = x3.shape
    compute_stats = mean is None
    if compute_stats:
        mean, var, rstd = np.empty(B), np.empty(B), np.empty(B)
    else:
        mean, var, rstd = np.ascontiguousarray(mean, dtype=np.float64), None, np.ascontiguousarray(rstd, dtype=np.float64)
    if not normalize:
        _forward_kernel(x3, scale, shift, max(seg, 1), affine, center, True, False, False, float(eps),
                        mean, var, rstd, x3, x3)
        return None, None, mean, var, rstd
    y3 = np.empty_like(x3)
    # Without the affine map the output *is* x_hat: one array, saved once.
    x_hat3 = y3 if not affine else (np.empty_like(x3) if save else y3)
    _forward_kernel(x3, scale, shift, max(seg, 1), affine, center, compute_stats, True, save and affine,
                    float(eps), mean, var if var is not None else rstd, rstd, x_hat3, y3)
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
    mode = (1 if saved.sums == "segments" else 2) if want_weight_sums else 0
    blocks = max(1, min(B, get_num_threads() if mode == 2 else 8 * get_num_threads()))
    segment = np.zeros((B, K // seg) if mode == 1 else (1, 1))
    column = np.zeros((blocks, K) if mode == 2 else (1, 1))
    segment2, column2 = np.zeros_like(segment), np.zeros_like(column)
    dx3 = np.empty_like(dy3) if want_dx else dy3
    affine = saved.scale is not None
    scale = saved.scale if affine else _NO_TABLE
    _backward_kernel(dy3, x_hat3, saved.rstd, scale, seg, affine, saved.center, saved.batch_stats, want_dx,
                     mode, blocks, dx3, segment, segment2, column, column2)
    sum_dy = sum_dy_x_hat = None
    if mode == 1:
        # (B, segments) -> weight layout: BatchNorm (C, 1); InstanceNorm (N*C, 1) and
        # GroupNorm (N*G, C/G) fold their batch copies of the table together.
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
    _, _, mean, var, rstd = normalize_forward(x3, seg=spatial, eps=eps, normalize=False)
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
