"""Similarity and distance between vectors with torch.nn.functional's names: cosine_similarity, pairwise_distance.

>>> import numpy as np, normlab.nn.functional as F
>>> F.cosine_similarity(np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])).numpy().round(4)
array([0.7071])
>>> F.pairwise_distance(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]), eps=0.0).numpy()
array([5.])
"""
from __future__ import annotations

import numbers

import numpy as np

from normlab._checks import check_float
from normlab.autograd.function import from_op
from normlab.autograd.tensor import Tensor, as_tensor, vector_norm
from normlab.ops import distance as ops

__all__ = ["cosine_similarity", "pairwise_distance"]

_CosineSimilarity = from_op("CosineSimilarity", ops.cosine_similarity_forward, ops.cosine_similarity_backward)


def _pair(name: str, x1, x2) -> tuple[Tensor, Tensor]:
    """Two float Tensors of one dtype whose shapes broadcast (checked before anything is computed)."""
    x1, x2 = as_tensor(x1), as_tensor(x2)
    check_float(name, x1._data, "x1")
    check_float(name, x2._data, "x2")
    if x1.dtype != x2.dtype:
        raise TypeError(f"{name}: expected x1 and x2 of one dtype, got {x1.dtype} and {x2.dtype}")
    try:
        np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise ValueError(f"{name}: expected x1 and x2 of shapes that broadcast, got {tuple(x1.shape)} "
                         f"and {tuple(x2.shape)}") from None
    return x1, x2


def _real(name: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {arg} to be a real number, got {value!r}")
    return float(value)


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8, _layer: str = "cosine_similarity"):
    """Cosine of the angle between x1 and x2 along ``dim``: sum((x1 / c1) (x2 / c2)), c = max(||x||_2, eps).

    The inputs broadcast against each other; the result drops ``dim``. As
    torch, each vector is normalized before the product (|y| <= 1), and the
    clamp at ``eps`` does not enter the gradient (see
    ``normlab.ops.distance``). Same as ``torch.nn.functional.cosine_similarity``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.cosine_similarity(np.ones((2, 3, 4)), -np.ones(4), dim=-1).shape
    (2, 3)
    """
    x1, x2 = _pair(_layer, x1, x2)
    eps = _real(_layer, "eps", eps)
    shape = np.broadcast_shapes(x1.shape, x2.shape)
    ndim = max(len(shape), 1)
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not -ndim <= dim < ndim:
        raise IndexError(f"{_layer}: dim {dim!r} is out of range for inputs broadcast to shape {shape}")
    if x1.shape != shape:
        x1 = x1.expand(shape)
    if x2.shape != shape:
        x2 = x2.expand(shape)
    return _CosineSimilarity.apply(x1, x2, dim=int(dim) % ndim, eps=eps)


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False,
                      _layer: str = "pairwise_distance"):
    """The p-norm of x1 - x2 + eps along the last dimension (torch's definition, eps added to every difference).

    Shapes: x1 and x2 broadcast, e.g. (N, D) and (N, D) or (D,) -> (N,)
    (``keepdim`` keeps the last axis as 1). Built on ``vector_norm``, whose
    backward is torch's norm backward. Same as
    ``torch.nn.functional.pairwise_distance``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.pairwise_distance(np.zeros((2, 3)), np.ones(3), p=1.0, eps=0.0).numpy()
    array([3., 3.])
    """
    x1, x2 = _pair(_layer, x1, x2)
    p, eps = _real(_layer, "p", p), _real(_layer, "eps", eps)
    if x1.ndim == 0 and x2.ndim == 0:
        raise ValueError(f"{_layer}: expected inputs with at least one dimension, got two 0-d inputs")
    return vector_norm(x1 - x2 + eps, p, -1, bool(keepdim))
