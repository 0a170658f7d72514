"""``embedding`` (a learned lookup table) and ``one_hot``."""
from __future__ import annotations

import numbers

import numpy as np

from normlab._checks import check_float
from normlab.autograd.function import from_op
from normlab.autograd.grad_mode import no_grad
from normlab.autograd.tensor import Tensor, as_tensor
from normlab.ops import embedding as ops

__all__ = ["embedding", "one_hot"]

_Embedding = from_op("Embedding", ops.embedding_forward, ops.embedding_backward)


def _indices(name: str, input) -> np.ndarray:
    indices = np.asarray(input._data if isinstance(input, Tensor) else input)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer indices, got dtype {indices.dtype}")
    return indices.astype(np.int64, copy=False)


def padding_index(name: str, padding_idx, num_embeddings: int):
    """``padding_idx`` as a row index in [0, num_embeddings) (negative counts from the end), or None."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral) or not (
            -num_embeddings <= padding_idx < num_embeddings):
        raise ValueError(f"{name}: expected padding_idx in [-{num_embeddings}, {num_embeddings}) (num_embeddings), "
                         f"got {padding_idx!r}")
    return int(padding_idx) % num_embeddings


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False, _layer: str = "embedding"):
    """Rows of ``weight`` (num_embeddings, embedding_dim) picked by the integer ``input``: shape input.shape + (dim,).

    ``padding_idx``'s row gets no gradient; with ``max_norm`` the rows looked
    up are first rescaled in place to norm at most ``max_norm`` (torch's
    ``embedding_renorm_``); ``scale_grad_by_freq`` divides each row's gradient
    by its count in the batch. Sparse gradients are not supported.

    >>> import normlab, normlab.nn.functional as F
    >>> table = normlab.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]])
    >>> F.embedding(normlab.tensor([[2, 1]]), table).numpy()
    array([[[3., 4.],
            [1., 2.]]], dtype=float32)
    """
    if sparse:
        raise ValueError(f"{_layer}: sparse gradients are not supported; use sparse=False")
    indices = _indices(_layer, input)
    w = as_tensor(weight)
    check_float(_layer, w._data, "weight")
    if w.ndim != 2:
        raise ValueError(f"{_layer}: expected a 2D weight (num_embeddings, embedding_dim), got shape {w.shape}")
    rows = w.shape[0]
    if indices.size and (indices.min() < 0 or indices.max() >= rows):
        bad = indices[(indices < 0) | (indices >= rows)].reshape(-1)[0]
        raise IndexError(f"{_layer}: index {bad} is out of range for {rows} embeddings")
    padding_idx = padding_index(_layer, padding_idx, rows)
    if max_norm is not None:
        with no_grad():
            ops.renorm_rows_(w._data, indices, float(max_norm), float(norm_type))
        w._bump_version()
    return _Embedding.apply(indices, w, padding_idx=padding_idx, scale_grad_by_freq=bool(scale_grad_by_freq))


def one_hot(tensor, num_classes: int = -1):
    """An int64 tensor of shape tensor.shape + (num_classes,) with a 1 at each index.

    ``num_classes=-1`` takes the largest index + 1.

    >>> import normlab, normlab.nn.functional as F
    >>> F.one_hot(normlab.tensor([0, 2])).numpy()
    array([[1, 0, 0],
           [0, 0, 1]])
    """
    indices = _indices("one_hot", tensor)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < -1:
        raise ValueError(f"one_hot: expected num_classes to be a non-negative integer or -1, got {num_classes!r}")
    if num_classes == -1:
        if indices.size == 0:
            raise ValueError("one_hot: can not infer the number of classes from an empty tensor (give num_classes)")
        num_classes = int(indices.max()) + 1
    if indices.size and indices.min() < 0:
        raise ValueError(f"one_hot: class values must be non-negative, got {int(indices.min())}")
    if indices.size and indices.max() >= num_classes:
        raise ValueError(f"one_hot: class values must be smaller than num_classes ({num_classes}), "
                         f"got {int(indices.max())}")
    return Tensor((indices[..., None] == np.arange(num_classes)).astype(np.int64))
