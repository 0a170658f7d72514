"""SyncBatchNorm's array pieces: per-channel moments, their merge across processes, normalization, backward.

SyncBatchNorm (``normlab.nn.SyncBatchNorm``) is BatchNorm whose statistics
come from every process's slice of the batch. Between the pieces below sit
the two collectives (an allgather of the moments, an allreduce of the
backward sums); this module does no communication and knows nothing of
autograd. Inputs are viewed as ``x3`` of shape (N, C, K), K the product of
the spatial sizes; kernels split their work by channel (in parallel above
normlab's threshold, see ``ops/_threading.py``) and accumulate in float64
whatever the input dtype, two passes for the moments, so a float32 batch
with mean 1e4 and std 1 keeps its variance.

>>> import numpy as np
>>> x3 = np.random.default_rng(0).normal(5.0, 2.0, (6, 3, 4))
>>> table = np.stack([local_moments(x3[:2]), local_moments(x3[2:])])    # two processes' rows
>>> count, mean, m2 = merge_moments(table)
>>> count, bool(np.allclose(m2 / count, x3.var(axis=(0, 2))))
(24.0, True)
"""
from __future__ import annotations

import numpy as np
from numba import prange

from normlab.ops._threading import parallel_kernel

# Reassociation lets LLVM vectorise the float64 reductions; contraction allows fused
# multiply-adds. No 'nnan'/'ninf': NaN and inf propagate, as in torch.
_FASTMATH = {"reassoc", "contract"}


@parallel_kernel(fastmath=_FASTMATH, error_model="numpy")
def _channel_moments(x3, mean, m2):
    """Two-pass mean and sum of squared deviations of every channel ``x3[:, c, :]`` (float64)."""
    n, channels, k = x3.shape
    inv_count = 1.0 / (n * k)
    for c in prange(channels):
        total = 0.0
        for i in range(n):
            for j in range(k):
                total += x3[i, c, j]
        mu = total * inv_count
        squares = 0.0
        for i in range(n):
            for j in range(k):  # deviations from the channel's mean: no cancellation
                deviation = x3[i, c, j] - mu
                squares += deviation * deviation
        mean[c] = mu
        m2[c] = squares


@parallel_kernel(fastmath=_FASTMATH, error_model="numpy")
def _normalize(x3, mean, rstd, scale, shift, x_hat3, y3):
    """x_hat = (x - mean) * rstd (in float64, then stored) and y = x_hat * scale + shift, per channel."""
    n, channels, k = x3.shape
    for c in prange(channels):
        for i in range(n):
            for j in range(k):
                value = (x3[i, c, j] - mean[c]) * rstd[c]
                x_hat3[i, c, j] = value
                y3[i, c, j] = value * scale[c] + shift[c]


@parallel_kernel(fastmath=_FASTMATH, error_model="numpy")
def _channel_sums(dy3, x_hat3, sum_dy, sum_dy_x_hat):
    """sum(dy) and sum(dy * x_hat) of every channel (float64)."""
    n, channels, k = dy3.shape
    for c in prange(channels):
        total, weighted = 0.0, 0.0
        for i in range(n):
            for j in range(k):
                g = np.float64(dy3[i, c, j])
                total += g
                weighted += g * x_hat3[i, c, j]
        sum_dy[c] = total
        sum_dy_x_hat[c] = weighted


@parallel_kernel(fastmath=_FASTMATH, error_model="numpy")
def _input_gradient(dy3, x_hat3, scale, mean_dy, mean_dy_x_hat, dx3):
    """dx = scale * (dy - mean_dy - x_hat * mean_dy_x_hat), per channel."""
    n, channels, k = dy3.shape
    for c in prange(channels):
        for i in range(n):
            for j in range(k):
                dx3[i, c, j] = scale[c] * (dy3[i, c, j] - mean_dy[c] - x_hat3[i, c, j] * mean_dy_x_hat[c])


def channel_view(array: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) as (N, C, K): each channel's values are the (N, K) plane."""
    return array.reshape(array.shape[0], array.shape[1], int(np.prod(array.shape[2:])))  # -1 fails when N = 0


def local_moments(x3: np.ndarray) -> np.ndarray:
    """This process's row for the merge: [count, mean (C), sum of squared deviations (C)], float64.

    An empty slice (N = 0) contributes count 0.
    """
    channels = x3.shape[1]
    row = np.zeros(1 + 2 * channels, dtype=np.float64)
    row[0] = x3.shape[0] * x3.shape[2]
    if row[0]:
        _channel_moments(x3, row[1:1 + channels], row[1 + channels:], work=2 * x3.size)
    return row


def merge_moments(table: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(count, mean, sum of squared deviations) of the union of the slices whose rows ``table`` holds.

    Chan, Golub & LeVeque (1979), for k slices at once: with n = sum n_r,
        mean = sum n_r mean_r / n
        M2   = sum M2_r + sum n_r (mean_r - mean)^2
    Deviations are taken from the merged mean, never E[x^2] - E[x]^2. The
    rows are summed in rank order, so every process gets the same bits.
    """
    channels = (table.shape[1] - 1) // 2
    counts, means, m2s = table[:, 0], table[:, 1:1 + channels], table[:, 1 + channels:]
    count = float(counts.sum())
    mean = counts @ means / count
    m2 = m2s.sum(axis=0) + counts @ (means - mean) ** 2
    return count, mean, m2


def normalize(x3: np.ndarray, mean: np.ndarray, rstd: np.ndarray, weight, bias) -> tuple[np.ndarray, np.ndarray]:
    """(y3, x_hat3) in x3's dtype: x_hat = (x - mean) * rstd, y = weight * x_hat + bias (each may be None)."""
    channels = x3.shape[1]
    scale = np.ones(channels) if weight is None else np.asarray(weight, dtype=np.float64)
    shift = np.zeros(channels) if bias is None else np.asarray(bias, dtype=np.float64)
    x_hat3, y3 = np.empty_like(x3), np.empty_like(x3)
    if x3.size:
        _normalize(x3, mean, rstd, scale, shift, x_hat3, y3, work=3 * x3.size)
    return y3, x_hat3


def channel_sums(dy3: np.ndarray, x_hat3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum dy, sum dy * x_hat) per channel, float64: this process's part of backward's two sums."""
    channels = dy3.shape[1]
    sum_dy, sum_dy_x_hat = np.zeros(channels), np.zeros(channels)
    if dy3.size:
        _channel_sums(dy3, x_hat3, sum_dy, sum_dy_x_hat, work=2 * dy3.size)
    return sum_dy, sum_dy_x_hat


def input_gradient(dy3: np.ndarray, x_hat3: np.ndarray, scale: np.ndarray, mean_dy: np.ndarray,
                   mean_dy_x_hat: np.ndarray) -> np.ndarray:
    """dx3 = scale * (dy - mean_dy - x_hat * mean_dy_x_hat) per channel, in dy's dtype (see SyncBatchNorm)."""
    dx3 = np.empty_like(dy3)
    if dy3.size:
        _input_gradient(dy3, x_hat3, scale, mean_dy, mean_dy_x_hat, dx3, work=3 * dy3.size)
    return dx3
