"""Embedding: a learned lookup table from integer ids to vectors."""
from __future__ import annotations

import numpy as np

from normlab._checks import check_positive_int
from normlab.autograd.tensor import Tensor, get_default_dtype
from normlab.nn import init
from normlab.nn.functional.lookup import embedding, padding_index
from normlab.nn.modules.module import Module, Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``, looked up by integer ids (as torch's).

    Shapes: input (*) of integers in [0, num_embeddings) -> output (*, embedding_dim).
    Parameter ``weight`` (num_embeddings, embedding_dim), drawn from N(0, 1);
    the ``padding_idx`` row starts at zero and never receives a gradient (so
    padding tokens stay a zero vector). ``max_norm`` renormalizes looked-up
    rows in place; sparse gradients are not supported.

    >>> import normlab, normlab.nn as nn
    >>> emb = nn.Embedding(10, 4, padding_idx=0)
    >>> emb(normlab.tensor([[1, 2, 0], [4, 0, 0]])).shape
    (2, 3, 4)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, max_norm=None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False, _weight=None,
                 _freeze: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        self.num_embeddings = check_positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int("Embedding", "embedding_dim", embedding_dim)
        self.padding_idx = padding_index("Embedding", padding_idx, num_embeddings)
        if sparse:
            raise ValueError("Embedding: sparse gradients are not supported; use sparse=False")
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            table = np.empty((num_embeddings, embedding_dim), dtype=np.dtype(dtype or get_default_dtype()))
            self.weight = Parameter(table, requires_grad=not _freeze)
            self.reset_parameters()
        else:
            shape = np.shape(_weight._data if isinstance(_weight, Tensor) else _weight)
            if shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: expected _weight of shape ({num_embeddings}, {embedding_dim}), "
                                 f"got {shape}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0
            self.weight._bump_version()

    def forward(self, input):
        return embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                         self.scale_grad_by_freq, self.sparse, _layer="Embedding")

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            text += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            text += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            text += ", scale_grad_by_freq=True"
        return text

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None, max_norm=None, norm_type: float = 2.0,
                        scale_grad_by_freq: bool = False, sparse: bool = False) -> "Embedding":
        """An Embedding whose table is ``embeddings`` (2D, shared, not copied); frozen unless ``freeze=False``.

        >>> import normlab, normlab.nn as nn
        >>> emb = nn.Embedding.from_pretrained(normlab.tensor([[1.0, 2.0], [3.0, 4.0]]))
        >>> emb(normlab.tensor([1])).numpy(), emb.weight.requires_grad
        (array([[3., 4.]], dtype=float32), False)
        """
        shape = np.shape(embeddings._data if isinstance(embeddings, Tensor) else embeddings)
        if len(shape) != 2:
            raise ValueError(f"Embedding.from_pretrained: expected 2D embeddings, got shape {shape}")
        return cls(shape[0], shape[1], padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)
