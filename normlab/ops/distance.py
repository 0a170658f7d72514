"""Cosine similarity between vectors: ``cosine_similarity_forward(x1, x2, dim, eps) -> (y, saved)`` and
``cosine_similarity_backward(dy, saved) -> (dx1, dx2)``.

torch's definition: normalize each vector first, then take the dot product,

    y = sum_i u_i v_i,   u = x1 / c1,  v = x2 / c2,   c = max(||x||_2, eps),

so |y| <= 1 up to rounding. The inputs have one shape (``nn.functional``
broadcasts them first, differentiably); the sum runs along ``dim``.

>>> import numpy as np
>>> y, saved = cosine_similarity_forward(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 2.0], [3.0, 3.0]]))
>>> y
array([0., 1.])
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class CosineSaved(NamedTuple):
    x1: np.ndarray              # the inputs (references, never copies)
    x2: np.ndarray
    norm1: np.ndarray           # ||x||_2 along dim (keepdims), and the clamped divisor c = max(||x||, eps)
    norm2: np.ndarray
    c1: np.ndarray
    c2: np.ndarray
    y: np.ndarray               # the similarity (keepdims): a private array, not the one returned
    dim: int


def _norm(x, dim):
    # squares summed in float64: a float32 norm keeps its digits (and cannot overflow)
    return np.sqrt(np.sum(np.square(x, dtype=np.float64), axis=dim, keepdims=True)).astype(x.dtype, copy=False)


def cosine_similarity_forward(x1, x2, dim=1, eps=1e-8):
    """y = sum along ``dim`` of (x1 / max(||x1||, eps)) (x2 / max(||x2||, eps)), x1 and x2 of one shape."""
    norm1, norm2 = _norm(x1, dim), _norm(x2, dim)
    c1, c2 = np.maximum(norm1, eps), np.maximum(norm2, eps)
    y = np.sum((x1 / c1) * (x2 / c2), axis=dim, keepdims=True, dtype=np.float64).astype(x1.dtype, copy=False)
    return np.squeeze(y, axis=dim).copy(), CosineSaved(x1, x2, norm1, norm2, c1, c2, y, dim)


def _direction(x, norm):
    """x / ||x||, the derivative of ||x||; 0 for a zero vector (torch's choice at the kink)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm == 0, 0.0, x / norm)


def cosine_similarity_backward(dy, saved: CosineSaved):
    """Gradients of y = sum(u v), u = x1 / c1, v = x2 / c2.

    torch clamps the norms at eps without recording the clamp: the gradient uses
    c's value but the derivative of the unclamped norm, d||x1||/dx1 = x1 / ||x1||.
    With sum_j x1_j v_j / c1 = y,
        dy/dx1 = v / c1 - (sum_j x1_j v_j / c1^2) x1 / ||x1|| = (v - y x1 / ||x1||) / c1
    and symmetrically for x2.
    """
    s = saved
    g = np.expand_dims(dy, s.dim)
    u, v = s.x1 / s.c1, s.x2 / s.c2
    dx1 = g * (v - s.y * _direction(s.x1, s.norm1)) / s.c1
    dx2 = g * (u - s.y * _direction(s.x2, s.norm2)) / s.c2
    return dx1.astype(s.x1.dtype, copy=False), dx2.astype(s.x2.dtype, copy=False)
