"""``conv1d`` and ``conv2d`` with torch.nn.functional's arguments (im2col + GEMM, see ``normlab.ops.convolution``).

>>> import numpy as np, normlab.nn.functional as F
>>> x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
>>> F.conv2d(x, w, padding="same").shape
(1, 3, 5, 5)
"""
from __future__ import annotations

import numbers

from normlab._checks import check_float, check_ndim, tuple_of
from normlab.autograd.function import Function
from normlab.autograd.tensor import Tensor, as_tensor
from normlab.ops import convolution as ops

__all__ = ["conv1d", "conv2d"]


class _Conv2d(Function):
    def forward(self, x, weight, bias=None, *, stride, padding, dilation, groups):
        y, self.saved = ops.conv2d_forward(x, weight, bias, stride, padding, dilation, groups)
        return y

    def backward(self, dy):
        return ops.conv2d_backward(dy, self.saved, self.needs_input_grad)


class _Conv1d(Function):
    def forward(self, x, weight, bias=None, *, stride, padding, dilation, groups):
        y, self.saved = ops.conv1d_forward(x, weight, bias, stride, padding, dilation, groups)
        return y

    def backward(self, dy):
        return ops.conv1d_backward(dy, self.saved, self.needs_input_grad)


class _Pad(Function):
    def forward(self, x, *, pads, mode):
        y, self.saved = ops.pad_forward(x, pads, mode)
        return y

    def backward(self, dy):
        return ops.pad_backward(dy, self.saved)


_LAYOUT = {1: "(N, C, L) or unbatched (C, L)", 2: "(N, C, H, W) or unbatched (C, H, W)"}
_WEIGHT_LAYOUT = {1: "(out_channels, in_channels / groups, kL)", 2: "(out_channels, in_channels / groups, kH, kW)"}


def check_conv_input(name: str, x: Tensor, dims: int) -> None:
    """A float input with ``dims`` spatial dimensions, batched or not, with no empty non-batch dimension."""
    check_float(name, x._data)
    check_ndim(name, x._data, (dims + 1, dims + 2), layout=_LAYOUT[dims])
    non_batch = x.shape[-(dims + 1):]
    if 0 in non_batch:
        raise ValueError(f"{name}: expected non-zero channel and spatial sizes, got input of shape {x.shape}")


def parse_padding(name: str, padding, dims: int, stride: tuple[int, ...]):
    """``padding`` (an int, a tuple, 'same' or 'valid') checked and kept in that form."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(
                f"{name}: expected padding to be 'same', 'valid', an int or a tuple of {dims} ints, got {padding!r}"
            )
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError(f"{name}: padding='same' is not supported for strided convolutions, got stride {stride}")
        return padding
    return tuple_of(name, "padding", padding, dims, minimum=0)


def padding_pairs(padding, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Per-dimension (before, after) padding; 'same' puts an odd extra pixel after, as torch."""
    if padding == "valid":
        return tuple((0, 0) for _ in kernel)
    if padding == "same":
        return tuple(ops.same_padding(k, d) for k, d in zip(kernel, dilation))
    return tuple((p, p) for p in padding)


def _check_groups(name: str, groups) -> int:
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups <= 0:
        raise ValueError(f"{name}: expected groups to be a positive integer, got {groups!r}")
    return int(groups)


def _convolution(function, name: str, dims: int, input, weight, bias, stride, padding, dilation, groups):
    x, w = as_tensor(input), as_tensor(weight)
    check_conv_input(name, x, dims)
    check_float(name, w._data, "weight")
    check_ndim(name, w._data, (dims + 2,), "weight", _WEIGHT_LAYOUT[dims])
    if w.dtype != x.dtype:
        raise TypeError(f"{name}: expected weight of the input's dtype {x.dtype}, got {w.dtype}")
    if 0 in w.shape:
        raise ValueError(f"{name}: expected a weight with no empty dimension, got shape {w.shape}")
    groups = _check_groups(name, groups)
    stride = tuple_of(name, "stride", stride, dims, minimum=1)
    dilation = tuple_of(name, "dilation", dilation, dims, minimum=1)
    padding = parse_padding(name, padding, dims, stride)
    out_channels, group_channels = w.shape[0], w.shape[1]
    channels = x.shape[-(dims + 1)]
    if channels != group_channels * groups:
        raise ValueError(
            f"{name}: expected input with {group_channels * groups} channels (weight.shape[1]={group_channels} "
            f"x groups={groups}), got {channels} channels in input of shape {x.shape}"
        )
    if out_channels % groups:
        raise ValueError(
            f"{name}: expected out_channels (weight.shape[0]={out_channels}) to be divisible by groups={groups}"
        )
    if bias is not None:
        bias = as_tensor(bias)
        check_float(name, bias._data, "bias")
        if bias.shape != (out_channels,):
            raise ValueError(f"{name}: expected bias of shape ({out_channels},), got {bias.shape}")
        if bias.dtype != x.dtype:
            raise TypeError(f"{name}: expected bias of the input's dtype {x.dtype}, got {bias.dtype}")
    kernel = w.shape[2:]
    pairs = padding_pairs(padding, kernel, dilation)
    spatial = x.shape[-dims:]
    padded = tuple(size + before + after for size, (before, after) in zip(spatial, pairs))
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(e > p for e, p in zip(extent, padded)):
        raise ValueError(
            f"{name}: expected the dilated kernel {extent} to fit in the padded input {padded} "
            f"(input {spatial}, padding {padding}), got a kernel larger than the input"
        )
    unbatched = x.ndim == dims + 1
    if unbatched:  # torch accepts one sample without its batch dimension
        x = x.unsqueeze(0)
    ops_padding = pairs if dims == 2 else pairs[0]
    y = function.apply(x, w, bias, stride=stride if dims == 2 else stride[0], padding=ops_padding,
                       dilation=dilation if dims == 2 else dilation[0], groups=groups)
    return y.squeeze(0) if unbatched else y


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, _layer: str = "conv2d"):
    """2D cross-correlation: y[n, o] = sum over c in o's group of W[o, c] (*) x[n, c] + b[o], like ``torch.nn.functional.conv2d``.

    Shapes: input (N, C, H, W) or (C, H, W); weight (O, C / groups, kH, kW);
    bias (O,) -> (N, O, H_out, W_out) with
    H_out = floor((H + 2 pH - dH (kH - 1) - 1) / sH) + 1 (likewise W).
    ``padding``: an int, (pH, pW), 'valid' (none) or 'same' (output size =
    input size, stride 1 only; an odd total goes to the bottom/right, as torch).

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), stride=2, padding=1).numpy()[0, 0]
    array([[4., 6.],
           [6., 9.]])
    """
    return _convolution(_Conv2d, _layer, 2, input, weight, bias, stride, padding, dilation, groups)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, _layer: str = "conv1d"):
    """1D cross-correlation over the last dimension, like ``torch.nn.functional.conv1d``.

    Shapes: input (N, C, L) or (C, L); weight (O, C / groups, k); bias (O,)
    -> (N, O, L_out), L_out = floor((L + 2 p - d (k - 1) - 1) / s) + 1.
    ``padding``: an int, (p,), 'valid' or 'same'. Runs conv2d's kernels on a
    height-1 image.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.conv1d(np.arange(5.0).reshape(1, 1, 5), np.ones((1, 1, 2))).numpy()
    array([[[1., 3., 5., 7.]]])
    """
    return _convolution(_Conv1d, _layer, 1, input, weight, bias, stride, padding, dilation, groups)


def pad_for_conv(name: str, input, pads: tuple[tuple[int, int], ...], mode: str) -> Tensor:
    """Pad the last ``len(pads)`` dimensions in mode 'reflect', 'replicate' or 'circular' (Conv's padding_mode).

    Checked as torch does: reflect needs each pad smaller than its dimension,
    circular at most equal to it.
    """
    x = as_tensor(input)
    spatial = x.shape[-len(pads):]
    for size, (before, after) in zip(spatial, pads):
        if mode == "reflect" and max(before, after) >= size:
            raise ValueError(f"{name}: padding_mode='reflect' needs padding smaller than the input size, "
                             f"got padding ({before}, {after}) for a dimension of size {size}")
        if mode == "circular" and max(before, after) > size:
            raise ValueError(f"{name}: padding_mode='circular' needs padding at most the input size, "
                             f"got padding ({before}, {after}) for a dimension of size {size}")
    if all(before == after == 0 for before, after in pads):
        return x
    return _Pad.apply(x, pads=pads, mode=mode)
