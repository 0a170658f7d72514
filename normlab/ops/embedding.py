"""Embedding lookup: rows of a table picked by integer indices, and its scatter-add backward.

``embedding_forward(indices, weight, ...) -> (y, saved)`` with y[..., :] = weight[indices[...], :];
``embedding_backward(dy, saved) -> (None, dweight)``.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _scatter_add_rows(out, rows, values):
    """out[rows[i], :] += values[i, :] for every i, in order (rows repeat: a plain fancy ``+=`` would drop repeats)."""
    for i in range(rows.shape[0]):
        row = rows[i]
        for j in range(values.shape[1]):
            out[row, j] += values[i, j]


def embedding_forward(indices, weight, padding_idx=None, scale_grad_by_freq=False):
    """y = weight[indices]: shape indices.shape + (embedding_dim,). Indices are checked by the caller."""
    y = weight[indices]  # fancy indexing: a fresh array, never a view of the table
    # A copy of the ids: a caller who reuses their array for the next batch must not move this gradient.
    return y, (indices.reshape(-1).copy(), weight.shape, padding_idx, scale_grad_by_freq)


def embedding_backward(dy, saved):
    """Gradient of y = weight[indices] with respect to the table.

    Each output row is a copy of one table row, so row v of the table gets the
    sum of the upstream rows that looked it up:
        dweight[v] = sum_{i : indices[i] = v} dy[i]
    (divided by how often v occurs in the batch with ``scale_grad_by_freq``);
    the ``padding_idx`` row gets no gradient.
    """
    flat_indices, weight_shape, padding_idx, scale_grad_by_freq = saved
    rows_dy = np.ascontiguousarray(dy.reshape(-1, weight_shape[1]))
    if scale_grad_by_freq:
        counts = np.bincount(flat_indices, minlength=weight_shape[0])
        rows_dy = rows_dy / counts[flat_indices][:, None].astype(dy.dtype)
    dweight = np.zeros(weight_shape, dtype=dy.dtype)
    _scatter_add_rows(dweight, flat_indices, rows_dy)
    if padding_idx is not None:
        dweight[padding_idx] = 0
    return None, dweight


def renorm_rows_(weight, indices, max_norm, norm_type):
    """Rescale, in place, each looked-up row whose ``norm_type``-norm exceeds ``max_norm`` to norm ``max_norm``.

    torch's rule: row <- row * max_norm / (norm + 1e-7), each distinct row once.
    """
    rows = np.unique(indices)
    norms = np.linalg.norm(weight[rows].astype(np.float64), ord=norm_type, axis=1)
    too_long = norms > max_norm
    scale = max_norm / (norms[too_long] + 1e-7)
    weight[rows[too_long]] *= scale[:, None].astype(weight.dtype)
