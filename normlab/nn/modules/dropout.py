"""Dropout, and its channel-wise forms Dropout1d/2d/3d."""
from __future__ import annotations

from normlab._checks import check_probability
from normlab.nn.functional import common as F
from normlab.nn.modules.module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d"]


class _DropoutNd(Module):
    """Shared by the dropout modules: the probability ``p`` and ``inplace``."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = check_probability(type(self).__name__, "p", p)
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zeroes each element with probability ``p`` in training, scaling survivors by 1/(1-p) (Srivastava et al. 2014)."""

    def forward(self, input):
        return F.dropout(input, self.p, self.training, inplace=self.inplace)


class Dropout1d(_DropoutNd):
    """Zeroes whole channels of (N, C, L) or (C, L) input with probability ``p`` in training (Tompson et al., 2015).

    Neighbouring positions of a feature map are strongly correlated, so
    element-wise dropout barely regularizes convolutional features; dropping a
    channel as a whole does.

    >>> import normlab, normlab.nn as nn
    >>> y = nn.Dropout1d(0.5)(normlab.ones(2, 4, 3))
    >>> bool((y.numpy() == y.numpy()[..., :1]).all())  # each channel is all 0 or all 2
    True
    """

    def forward(self, input):
        return F.dropout1d(input, self.p, self.training, inplace=self.inplace)


class Dropout2d(_DropoutNd):
    """Zeroes whole channels of (N, C, H, W) input with probability ``p`` in training (Tompson et al., 2015)."""

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training, inplace=self.inplace)


class Dropout3d(_DropoutNd):
    """Zeroes whole channels of (N, C, D, H, W) or (C, D, H, W) input with probability ``p`` in training."""

    def forward(self, input):
        return F.dropout3d(input, self.p, self.training, inplace=self.inplace)
