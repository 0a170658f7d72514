"""Differentiable gathering and rearranging: gather, repeat, flip, roll, tril/triu.

Each forward moves elements around without arithmetic, so each backward
moves the gradient back along the same map: a gather's backward is a
scatter-add (an element read twice gets both gradients), a permutation's is
the inverse permutation. (scatter and scatter_add are ``functions.SetItem``
at the positions ``along`` computes.)
"""
from __future__ import annotations

import numpy as np

from normlab.autograd.functions import Function


def along(index: np.ndarray, dim: int) -> tuple:
    """The full NumPy index that picks ``a[..., index[i, j, k], ...]`` at every position of ``index``.

    torch's gather/scatter rule: ``out[i][j][k] = a[i][index[i][j][k]][k]`` for
    dim 1; ``index`` may be smaller than ``a`` in the other dimensions.
    """
    grid = list(np.indices(index.shape, sparse=True))
    grid[dim] = index
    return tuple(grid)


class Gather(Function):
    def forward(self, a, *, dim, index):
        self.shape, self.where = np.shape(a), along(index, dim)
        return np.asarray(a)[self.where]

    def backward(self, g):
        # out = a[where]  =>  da[where] += g, adding where an element was read more than once.
        grad = np.zeros(self.shape, dtype=g.dtype)
        np.add.at(grad, self.where, g)
        return (grad,)


class Repeat(Function):
    def forward(self, a, *, repeats):
        self.shape = np.shape(a)
        return np.tile(a, repeats)

    def backward(self, g):
        # Every copy of an element receives its own gradient; the element gets their sum.
        # View g as (r0, s0, r1, s1, ...) and sum over the repeat axes r.
        sizes = (1,) * (g.ndim - len(self.shape)) + self.shape
        repeats = [n // s if s else 0 for n, s in zip(g.shape, sizes)]
        interleaved = [d for pair in zip(repeats, sizes) for d in pair]
        total = g.reshape(interleaved).sum(axis=tuple(range(0, 2 * g.ndim, 2)))
        return (total.reshape(self.shape),)


class Flip(Function):
    def forward(self, a, *, axes):
        self.axes = axes
        return np.flip(a, axes).copy()

    def backward(self, g):
        return (np.flip(g, self.axes),)  # flipping is its own inverse


class Roll(Function):
    def forward(self, a, *, shifts, axes):
        self.shifts, self.axes = shifts, axes
        return np.roll(a, shifts, axes)

    def backward(self, g):
        return (np.roll(g, tuple(-s for s in self.shifts), self.axes),)  # roll back


class Triangle(Function):
    """tril / triu of the last two dimensions: elements outside the triangle become 0 and get no gradient."""

    def forward(self, a, *, diagonal, lower):
        self.diagonal, self.keep = diagonal, np.tril if lower else np.triu
        return self.keep(a, diagonal)

    def backward(self, g):
        return (self.keep(g, self.diagonal),)
