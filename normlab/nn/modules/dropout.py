"""Dropout."""
from __future__ import annotations

from normlab._checks import check_probability
from normlab.nn.functional.common import dropout
from normlab.nn.modules.module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zeroes each element with probability ``p`` in training, scaling survivors by 1/(1-p) (Srivastava et al., 2014)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = check_probability("Dropout", "p", p)
        self.inplace = inplace

    def forward(self, input):
        return dropout(input, self.p, self.training, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
