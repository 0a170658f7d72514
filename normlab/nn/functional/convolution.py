"""Convolutions and transposed convolutions in 1, 2 and 3 dimensions, with torch.nn.functional's arguments.

The arithmetic lives in ``normlab.ops.convolution`` (im2col + GEMM, Winograd
for 3x3, direct loops for depthwise); this layer checks the arguments,
names the layer in every error, and accepts unbatched input as torch does.

>>> import numpy as np, normlab.nn.functional as F
>>> x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
>>> F.conv2d(x, w, padding="same").shape
(1, 3, 5, 5)
>>> F.conv_transpose2d(x, np.ones((2, 3, 3, 3), np.float32), stride=2).shape
(1, 3, 11, 11)
"""
from __future__ import annotations

import numbers

from normlab._checks import check_float, check_ndim, tuple_of
from normlab.autograd.function import Function
from normlab.autograd.tensor import Tensor, as_tensor
from normlab.ops import convolution as ops

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]


class _Conv(Function):
    def forward(self, x, weight, bias=None, *, stride, padding, dilation, groups):
        y, self.saved = ops.conv_forward(x, weight, bias, stride, padding, dilation, groups)
        return y

    def backward(self, dy):
        return ops.conv_backward(dy, self.saved, self.needs_input_grad)


class _ConvTranspose(Function):
    def forward(self, x, weight, bias=None, *, stride, padding, output_padding, groups, dilation):
        y, self.saved = ops.conv_transpose_forward(x, weight, bias, stride, padding, output_padding, groups, dilation)
        return y

    def backward(self, dy):
        return ops.conv_transpose_backward(dy, self.saved, self.needs_input_grad)


_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
_KERNEL = {1: "kL", 2: "kH, kW", 3: "kD, kH, kW"}


def check_conv_input(name: str, x: Tensor, dims: int) -> None:
    """A float input with ``dims`` spatial dimensions, batched or not, with no empty non-batch dimension."""
    check_float(name, x._data)
    spatial = _SPATIAL[dims]
    check_ndim(name, x._data, (dims + 1, dims + 2), layout=f"(N, C, {spatial}) or unbatched (C, {spatial})")
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


def check_groups(name: str, groups) -> int:
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups <= 0:
        raise ValueError(f"{name}: expected groups to be a positive integer, got {groups!r}")
    return int(groups)


def _check_weight_and_bias(name: str, x: Tensor, weight, bias, dims: int, transposed: bool):
    """The weight (and bias) as Tensors, checked against the input's dtype and rank; the bias size is checked later."""
    w = as_tensor(weight)
    check_float(name, w._data, "weight")
    layout = (f"(in_channels, out_channels / groups, {_KERNEL[dims]})" if transposed
              else f"(out_channels, in_channels / groups, {_KERNEL[dims]})")
    check_ndim(name, w._data, (dims + 2,), "weight", layout)
    if w.dtype != x.dtype:
        raise TypeError(f"{name}: expected weight of the input's dtype {x.dtype}, got {w.dtype}")
    if 0 in w.shape:
        raise ValueError(f"{name}: expected a weight with no empty dimension, got shape {w.shape}")
    if bias is not None:
        bias = as_tensor(bias)
        check_float(name, bias._data, "bias")
        if bias.dtype != x.dtype:
            raise TypeError(f"{name}: expected bias of the input's dtype {x.dtype}, got {bias.dtype}")
    return w, bias


def _check_bias_size(name: str, bias, size: int) -> None:
    if bias is not None and bias.shape != (size,):
        raise ValueError(f"{name}: expected bias of shape ({size},), got {bias.shape}")


def _common_arguments(name: str, dims: int, input, weight, bias, stride, dilation, groups, transposed: bool):
    """What both kinds of convolution check the same way: input, weight, bias dtypes and ranks, groups, stride, dilation."""
    x = as_tensor(input)
    check_conv_input(name, x, dims)
    w, bias = _check_weight_and_bias(name, x, weight, bias, dims, transposed)
    groups = check_groups(name, groups)
    stride = tuple_of(name, "stride", stride, dims, minimum=1)
    dilation = tuple_of(name, "dilation", dilation, dims, minimum=1)
    return x, w, bias, groups, stride, dilation


def _convolution(name: str, dims: int, input, weight, bias, stride, padding, dilation, groups):
    x, w, bias, groups, stride, dilation = _common_arguments(name, dims, input, weight, bias, stride, dilation,
                                                             groups, transposed=False)
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
    _check_bias_size(name, bias, out_channels)
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
    y = _Conv.apply(x, w, bias, stride=stride, padding=pairs, dilation=dilation, groups=groups)
    return y.squeeze(0) if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, _layer: str = "conv1d"):
    """1D cross-correlation over the last dimension, like ``torch.nn.functional.conv1d``.

    Shapes: input (N, C, L) or (C, L); weight (O, C / groups, k); bias (O,)
    -> (N, O, L_out), L_out = floor((L + 2 p - d (k - 1) - 1) / s) + 1.
    ``padding``: an int, (p,), 'valid' or 'same'.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.conv1d(np.arange(5.0).reshape(1, 1, 5), np.ones((1, 1, 2))).numpy()
    array([[[1., 3., 5., 7.]]])
    """
    return _convolution(_layer, 1, input, weight, bias, stride, padding, dilation, groups)


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
    return _convolution(_layer, 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, _layer: str = "conv3d"):
    """3D cross-correlation over (D, H, W), like ``torch.nn.functional.conv3d``.

    Shapes: input (N, C, D, H, W) or (C, D, H, W); weight (O, C / groups, kD,
    kH, kW); bias (O,) -> (N, O, D_out, H_out, W_out), each size by conv2d's
    rule. ``padding``: an int, (pD, pH, pW), 'valid' or 'same'.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.conv3d(np.ones((1, 1, 3, 3, 3)), np.ones((2, 1, 2, 2, 2))).shape
    (1, 2, 2, 2, 2)
    """
    return _convolution(_layer, 3, input, weight, bias, stride, padding, dilation, groups)


def _transposed_convolution(name: str, dims: int, input, weight, bias, stride, padding, output_padding, groups,
                            dilation):
    x, w, bias, groups, stride, dilation = _common_arguments(name, dims, input, weight, bias, stride, dilation,
                                                             groups, transposed=True)
    if isinstance(padding, str):
        raise TypeError(f"{name}: expected padding to be an int or a tuple of {dims} ints (a transposed "
                        f"convolution takes no 'same' or 'valid'), got {padding!r}")
    padding = tuple_of(name, "padding", padding, dims, minimum=0)
    output_padding = tuple_of(name, "output_padding", output_padding, dims, minimum=0)
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(f"{name}: expected output_padding smaller than either stride or dilation, "
                             f"got output_padding {output_padding}, stride {stride}, dilation {dilation}")
    in_channels, group_out = w.shape[0], w.shape[1]
    channels = x.shape[-(dims + 1)]
    if in_channels % groups:
        raise ValueError(f"{name}: expected weight.shape[0]={in_channels} (in_channels) to be divisible by "
                         f"groups={groups}")
    if channels != in_channels:
        raise ValueError(f"{name}: expected input with {in_channels} channels (weight.shape[0]), got {channels} "
                         f"channels in input of shape {x.shape}")
    _check_bias_size(name, bias, group_out * groups)
    out = tuple(ops.conv_transpose_output_size(*args) for args in
                zip(x.shape[-dims:], w.shape[2:], stride, padding, dilation, output_padding))
    if any(size <= 0 for size in out):
        raise ValueError(f"{name}: the output would be empty: input {x.shape[-dims:]}, kernel {w.shape[2:]}, "
                         f"stride {stride}, padding {padding}, dilation {dilation}, output_padding "
                         f"{output_padding} give output size {out}")
    unbatched = x.ndim == dims + 1
    if unbatched:
        x = x.unsqueeze(0)
    y = _ConvTranspose.apply(x, w, bias, stride=stride, padding=padding, output_padding=output_padding,
                             groups=groups, dilation=dilation)
    return y.squeeze(0) if unbatched else y


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     _layer: str = "conv_transpose1d"):
    """1D transposed convolution (the gradient of conv1d with respect to its input), like ``torch.nn.functional.conv_transpose1d``.

    Shapes: input (N, C_in, L) or (C_in, L); weight (C_in, C_out / groups, k);
    bias (C_out,) -> (N, C_out, L_out), L_out = (L - 1) s - 2 p + d (k - 1) + output_padding + 1.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.conv_transpose1d(np.array([[[1.0, 2.0]]]), np.ones((1, 1, 3)), stride=2).numpy()
    array([[[1., 1., 3., 2., 2.]]])
    """
    return _transposed_convolution(_layer, 1, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     _layer: str = "conv_transpose2d"):
    """2D transposed convolution ("deconvolution"), like ``torch.nn.functional.conv_transpose2d``.

    Each input pixel adds W[c_in] times itself onto a kH x kW window of the
    output; windows start ``stride`` apart, ``padding`` crops each side,
    ``output_padding`` adds rows/columns at the end that only the last
    windows reach. Shapes: input (N, C_in, H, W) or (C_in, H, W); weight
    (C_in, C_out / groups, kH, kW); bias (C_out,) -> (N, C_out, H_out, W_out),
    H_out = (H - 1) sH - 2 pH + dH (kH - 1) + output_padding + 1.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), stride=2).numpy()[0, 0]
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.]])
    """
    return _transposed_convolution(_layer, 2, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     _layer: str = "conv_transpose3d"):
    """3D transposed convolution, like ``torch.nn.functional.conv_transpose3d``.

    Shapes: input (N, C_in, D, H, W) or (C_in, D, H, W); weight (C_in, C_out /
    groups, kD, kH, kW) -> (N, C_out, D_out, H_out, W_out), each size by
    conv_transpose2d's rule.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.conv_transpose3d(np.ones((1, 1, 2, 2, 2)), np.ones((1, 2, 2, 2, 2))).shape
    (1, 2, 3, 3, 3)
    """
    return _transposed_convolution(_layer, 3, input, weight, bias, stride, padding, output_padding, groups, dilation)
