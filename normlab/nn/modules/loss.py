"""Loss modules (wrappers over ``nn.functional``) with torch's constructor signatures."""
from __future__ import annotations

from normlab.nn import functional as F
from normlab.nn.functional.loss import _reduction
from normlab.nn.modules.module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss", "MarginRankingLoss", "HingeEmbeddingLoss", "CosineEmbeddingLoss",
           "TripletMarginLoss", "PoissonNLLLoss", "GaussianNLLLoss"]


class _Loss(Module):
    """Holds ``reduction`` ('mean', 'sum', 'none'); torch's legacy ``size_average``/``reduce`` flags map onto it."""

    _reductions = ("none", "mean", "sum")

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction(type(self).__name__, size_average, reduce, reduction, self._reductions)


class _WeightedLoss(_Loss):
    """A loss with an optional ``weight`` buffer (in the state dict when given, as in torch)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Cross-entropy of logits (N, C, *) with class indices or class probabilities (label smoothing optional)."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (N, C, *) at the target classes."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(_Loss):
    """(input - target)^2."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """|input - target|."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Quadratic for |input - target| < beta, linear beyond (Girshick, 2015): robust to outliers, smooth at 0."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """0.5 d^2 for |d| < delta, delta (|d| - 0.5 delta) beyond (Huber, 1964); d = input - target."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities in [0, 1] (after a sigmoid); ``weight`` rescales each element.

    >>> import normlab, normlab.nn as nn
    >>> nn.BCELoss()(normlab.tensor([0.9, 0.2]), normlab.tensor([1.0, 0.0])).item()
    0.164252...
    """

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """Sigmoid and binary cross-entropy in one stable step; ``pos_weight`` weighs positive examples (per class).

    Buffers: ``weight`` and ``pos_weight`` when given, as in torch.

    >>> import normlab, normlab.nn as nn
    >>> nn.BCEWithLogitsLoss(pos_weight=normlab.tensor([3.0]))(normlab.tensor([0.0]), normlab.tensor([1.0])).item()
    2.079441...
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    """KL(target || prediction) with log-probability input; use reduction='batchmean' for the per-sample divergence."""

    _reductions = ("none", "mean", "sum", "batchmean")

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class _MarginLoss(_Loss):
    """A loss with a ``margin`` (the ranking and embedding losses): ``forward`` calls ``F.<_function>``."""

    _function = ""

    def __init__(self, margin: float, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, *inputs):
        return getattr(F, self._function)(*inputs, margin=self.margin, reduction=self.reduction)


class MarginRankingLoss(_MarginLoss):
    """max(0, -y (x1 - x2) + margin) for pairs to rank (y = 1: x1 above x2).  Same as ``torch.nn.MarginRankingLoss``.

    >>> import normlab, normlab.nn as nn
    >>> nn.MarginRankingLoss(0.5)(normlab.tensor([2.0]), normlab.tensor([1.75]), normlab.tensor([1.0])).item()
    0.25
    """

    _function = "margin_ranking_loss"

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)


class HingeEmbeddingLoss(_MarginLoss):
    """x for similar pairs (y = 1), max(0, margin - x) for dissimilar ones (y = -1), x a distance.

    Same as ``torch.nn.HingeEmbeddingLoss``.

    >>> import normlab, normlab.nn as nn
    >>> nn.HingeEmbeddingLoss()(normlab.tensor([0.2, 0.4]), normlab.tensor([1.0, -1.0])).item()
    0.4...
    """

    _function = "hinge_embedding_loss"

    def __init__(self, margin: float = 1.0, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)


class CosineEmbeddingLoss(_MarginLoss):
    """1 - cos(x1, x2) for similar pairs (y = 1), max(0, cos - margin) for dissimilar ones (y = -1).

    Same as ``torch.nn.CosineEmbeddingLoss``.

    >>> import normlab, normlab.nn as nn
    >>> nn.CosineEmbeddingLoss()(normlab.randn(4, 8), normlab.randn(4, 8), normlab.tensor([1.0, -1, 1, -1])).shape
    ()
    """

    _function = "cosine_embedding_loss"

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)


class TripletMarginLoss(_Loss):
    """max(0, margin + d(a, p) - d(a, n)) over (anchor, positive, negative) triplets.  Same as ``torch.nn.TripletMarginLoss``.

    >>> import normlab, normlab.nn as nn
    >>> nn.TripletMarginLoss()(normlab.randn(4, 8), normlab.randn(4, 8), normlab.randn(4, 8)).shape
    ()
    """

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False, size_average=None,
                 reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        if not margin > 0:
            raise ValueError(f"TripletMarginLoss: expected margin to be greater than 0, got {margin}")
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p, eps=self.eps,
                                     swap=self.swap, reduction=self.reduction)


class PoissonNLLLoss(_Loss):
    """Negative log-likelihood of Poisson counts with rate e^input (``log_input``) or input.

    Same as ``torch.nn.PoissonNLLLoss``; ``full`` adds Stirling's term.

    >>> import normlab, normlab.nn as nn
    >>> nn.PoissonNLLLoss()(normlab.tensor([0.0]), normlab.tensor([2.0])).item()
    1.0
    """

    def __init__(self, log_input: bool = True, full: bool = False, size_average=None, eps: float = 1e-8, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input, target):
        return F.poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full, eps=self.eps,
                                  reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    """Negative log-likelihood of targets under Gaussians with predicted means and variances (Nix & Weigend, 1994).

    Same as ``torch.nn.GaussianNLLLoss``; ``forward(input, target, var)``.

    >>> import normlab, normlab.nn as nn
    >>> nn.GaussianNLLLoss()(normlab.tensor([1.0]), normlab.tensor([3.0]), normlab.tensor([4.0])).item()
    1.193147...
    """

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.full, self.eps = full, eps

    def forward(self, input, target, var):
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction)
