"""Padding the last dimensions of an array: constant, reflect, replicate, circular (torch's ``F.pad`` modes).

Padding is separable: along each padded dimension, output position j
(0 <= j < size + before + after) reads input position ``j - before`` when
that is inside, else the mode decides:

    constant    the fill value (no input, no gradient)
    reflect     mirrored at the edge without repeating it:  ... x2 x1 | x0 x1 x2 ... x(n-1) | x(n-2) ...
    replicate   the edge repeated:                           ... x0 x0 | x0 x1 ...  x(n-1) | x(n-1) ...
    circular    wrapped around:                              ... x(n-2) x(n-1) | x0 x1 ... | x0 x1 ...

A negative ``before`` or ``after`` crops instead, as torch allows; circular
padding crops first and then wraps around what is left (torch's order), as
many times as the pad needs. Each padded position is a copy of one input
position, so the gradient adds each output position's gradient back onto
its source: the interior in one copy, the few padded positions slice by
slice.

>>> import numpy as np
>>> pad_forward(np.arange(4.0), ((2, 1),), "reflect")[0]
array([2., 1., 0., 1., 2., 3., 2.])
"""
from __future__ import annotations

import numpy as np

__all__ = ["source_index", "pad_forward", "pad_backward"]

MODES = ("constant", "reflect", "replicate", "circular")


def source_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """The input position each output position of one dimension copies (-1: the constant fill)."""
    j = np.arange(size + before + after) - before
    if mode == "constant":
        return np.where((j >= 0) & (j < size), j, -1)
    if mode == "replicate":
        return np.clip(j, 0, size - 1)
    if mode == "circular":
        first = max(0, -before)                                   # the crop: [first, size - max(0, -after))
        kept = size - first - max(0, -after)
        return first + np.mod(np.arange(len(j)) - max(0, before), kept)
    # reflect: fold j onto [0, size - 1] with period 2 (size - 1), mirrored without repeating the edge
    if size == 1:
        return np.zeros_like(j)
    period = 2 * (size - 1)
    folded = np.mod(j, period)
    return np.where(folded < size, folded, period - folded)


def pad_forward(x, pads, mode: str = "constant", value: float = 0.0):
    """Pad the last ``len(pads)`` dimensions of ``x`` by (before, after) pairs in torch's ``mode``.

    Shapes: x (*, n_1, ..., n_k), pads k pairs -> (*, n_1 + b_1 + a_1, ...).
    Returns (y, saved).
    """
    pads = tuple((int(before), int(after)) for before, after in pads)
    lead = x.ndim - len(pads)
    sources = tuple(source_index(x.shape[lead + d], before, after, mode) for d, (before, after) in enumerate(pads))
    if mode == "constant":
        out_shape = x.shape[:lead] + tuple(len(s) for s in sources)
        y = np.full(out_shape, value, dtype=x.dtype)
        # The part of the output that reads the input: one block copy.
        y_part, x_part = [slice(None)] * lead, [slice(None)] * lead
        for d, (before, after) in enumerate(pads):
            size = x.shape[lead + d]
            y_part.append(slice(max(before, 0), max(before, 0) + max(0, size + min(before, 0) + min(after, 0))))
            x_part.append(slice(max(-before, 0), size - max(-after, 0)))
        y[tuple(y_part)] = x[tuple(x_part)]
    else:
        y = x
        for d, source in enumerate(sources):  # one dimension at a time: the gathers compose
            y = np.take(y, source, axis=lead + d)
        if y is x:
            y = x.copy()  # never hand out the input itself
    return y, (x.shape, pads, sources, mode)


def pad_backward(dy, saved):
    """Gradient of ``pad_forward``: every output position's gradient added back onto its source."""
    shape, pads, sources, mode = saved
    lead = len(shape) - len(pads)
    g = dy
    # y[j] = x[source[j]]  =>  dx[i] = sum over j with source[j] = i of dy[j], one dimension at a
    # time (the adjoint of a composition, in reverse order).
    for d in reversed(range(len(pads))):
        axis = lead + d
        before, _ = pads[d]
        size, source = shape[axis], sources[d]
        dx = np.zeros(g.shape[:axis] + (size,) + g.shape[axis + 1:], dtype=dy.dtype)
        # The interior maps onto itself: one block copy.
        lo, hi = max(0, before), min(len(source), before + size)
        index_g, index_x = [slice(None)] * g.ndim, [slice(None)] * g.ndim
        if hi > lo:
            index_g[axis], index_x[axis] = slice(lo, hi), slice(lo - before, hi - before)
            dx[tuple(index_x)] = g[tuple(index_g)]
        # The padded positions (as many as the padding is wide), slice by slice.
        for j in [*range(0, lo), *range(hi, len(source))]:
            if source[j] < 0:
                continue  # a constant: no input behind it
            index_g[axis], index_x[axis] = j, int(source[j])
            dx[tuple(index_x)] += g[tuple(index_g)]
        g = dx
    return (g if g is not dy else dy.copy(),)  # never hand back the gradient we were given
