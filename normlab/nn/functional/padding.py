"""``pad``: torch.nn.functional.pad's constant, reflect, replicate and circular padding.

The arithmetic lives in ``normlab.ops.padding``; this layer checks the
arguments as torch does (which modes take which ranks, how wide each pad may
be) and names the layer in every error.

>>> import numpy as np, normlab.nn.functional as F
>>> F.pad(np.arange(3.0), (1, 2), value=-1.0).numpy()
array([-1.,  0.,  1.,  2., -1., -1.])
>>> F.pad(np.arange(6.0).reshape(1, 2, 3), (1, 1), mode="reflect").numpy()
array([[[1., 0., 1., 2., 1.],
        [4., 3., 4., 5., 4.]]])
"""
from __future__ import annotations

import numbers

from normlab._checks import check_float
from normlab.autograd.function import Function
from normlab.autograd.tensor import Tensor, as_tensor
from normlab.ops import padding as ops

__all__ = ["pad"]


class _Pad(Function):
    def forward(self, x, *, pads, mode, value):
        y, self.saved = ops.pad_forward(x, pads, mode, value)
        return y

    def backward(self, dy):
        return ops.pad_backward(dy, self.saved)


def _pairs(name: str, pad) -> tuple[tuple[int, int], ...]:
    """torch's flat pad (last dimension first: left, right, top, bottom, ...) as (before, after) pairs, first dimension first."""
    try:
        values = tuple(pad)
    except TypeError:
        raise TypeError(f"{name}: expected pad to be a tuple of ints, got {pad!r}") from None
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name}: expected pad to be a tuple of ints, got {pad!r}")
    if len(values) % 2:
        raise ValueError(f"{name}: expected pad of even length ((before, after) per dimension), got {pad!r}")
    return tuple((int(values[i]), int(values[i + 1])) for i in range(len(values) - 2, -1, -2))


def check_pad(name: str, x: Tensor, pairs, mode: str, value) -> None:
    """Raise unless torch would pad ``x`` by ``pairs`` in ``mode`` (its rules, with the layer named)."""
    if mode not in ops.MODES:
        raise ValueError(f"{name}: expected mode to be one of {ops.MODES}, got {mode!r}")
    check_float(name, x._data)
    dims = len(pairs)
    if dims > x.ndim:
        raise ValueError(f"{name}: expected at most {x.ndim} (before, after) pairs for a {x.ndim}D input, "
                         f"got {dims}")
    if mode != "constant" and value is not None and value != 0:
        raise ValueError(f"{name}: mode {mode!r} takes no value, got value={value!r}")
    spatial = x.shape[x.ndim - dims:]
    for size, (before, after) in zip(spatial, pairs):
        if size + min(before, 0) + min(after, 0) < 0:  # torch crops first: the crops must fit
            raise ValueError(f"{name}: padding {(before, after)} would crop a dimension of size {size} "
                             f"below zero")
    if mode == "constant":
        return
    if dims not in (1, 2, 3) or x.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"{name}: mode {mode!r} pads the last 1, 2 or 3 dimensions of an input with one or two "
                         f"more (channels, and batch if any); got {dims} pairs for a {x.ndim}D input")
    if 0 in x.shape[x.ndim - dims - 1:]:
        raise ValueError(f"{name}: mode {mode!r} needs non-empty channel and padded dimensions, got input of "
                         f"shape {x.shape}")
    for size, (before, after) in zip(spatial, pairs):
        if mode == "reflect" and max(before, after) >= size:
            raise ValueError(f"{name}: mode 'reflect' needs each pad smaller than its dimension, got padding "
                             f"{(before, after)} for a dimension of size {size}")
        if size + before + after < (0 if mode == "circular" else 1):  # torch: "input is too small"
            raise ValueError(f"{name}: padding {(before, after)} would crop a dimension of size {size} to "
                             f"{size + before + after} (mode {mode!r} needs at least "
                             f"{0 if mode == 'circular' else 1})")
        if mode == "circular" and max(before, after) > size:
            raise ValueError(f"{name}: mode 'circular' needs each pad at most its dimension (it wraps around "
                             f"once), got padding {(before, after)} for a dimension of size {size}")
        if mode == "circular" and max(before, after) > 0 and size + min(before, 0) + min(after, 0) == 0:
            raise ValueError(f"{name}: mode 'circular' cannot wrap around a dimension its crops leave empty, got "
                             f"padding {(before, after)} for a dimension of size {size}")


def pad(input, pad, mode: str = "constant", value=None, _layer: str = "pad"):
    """Pad the last dimensions of ``input``, like ``torch.nn.functional.pad``.

    ``pad`` lists (before, after) widths from the last dimension backwards:
    ``(left, right)``, ``(left, right, top, bottom)``, ... Negative widths
    crop. ``mode``: 'constant' (fill with ``value``, default 0; any number
    of dimensions), 'reflect' (mirror without repeating the edge),
    'replicate' (repeat the edge) or 'circular' (wrap around); the last three
    pad 1 to 3 dimensions of an input with a channel (and optional batch)
    dimension before them, as torch.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.pad(np.arange(4.0).reshape(1, 1, 4), (2, 1), mode="circular").numpy()
    array([[[2., 3., 0., 1., 2., 3., 0.]]])
    """
    x = as_tensor(input)
    pairs = _pairs(_layer, pad)
    check_pad(_layer, x, pairs, mode, value)
    fill = 0.0 if value is None else float(value)
    return _Pad.apply(x, pads=pairs, mode=mode, value=fill)
