"""Distance modules: thin wrappers over ``nn.functional``'s cosine_similarity and pairwise_distance."""
from __future__ import annotations

from normlab.nn import functional as F
from normlab.nn.modules.module import Module

__all__ = ["CosineSimilarity", "PairwiseDistance"]


class CosineSimilarity(Module):
    """Cosine similarity of two inputs along ``dim``.  Same as ``torch.nn.CosineSimilarity``.

    Shapes: x1 (*, D, *) and x2 broadcasting to it -> the broadcast shape without ``dim``.

    >>> import normlab, normlab.nn as nn
    >>> nn.CosineSimilarity(dim=1)(normlab.randn(4, 8), normlab.randn(4, 8)).shape
    (4,)
    """

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps, _layer="CosineSimilarity")


class PairwiseDistance(Module):
    """p-norm distance ||x1 - x2 + eps||_p along the last dimension.  Same as ``torch.nn.PairwiseDistance``.

    >>> import normlab, normlab.nn as nn
    >>> nn.PairwiseDistance()(normlab.randn(4, 8), normlab.randn(4, 8)).shape
    (4,)
    """

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1, x2):
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim, _layer="PairwiseDistance")
