"""Conv1d and Conv2d: torch's constructor, attributes, initialisation and repr."""
from __future__ import annotations

import numbers

import numpy as np

from normlab._checks import check_positive_int, tuple_of
from normlab.autograd.tensor import as_tensor, get_default_dtype
from normlab.nn.functional.convolution import check_conv_input, conv1d, conv2d, pad_for_conv, padding_pairs, parse_padding
from normlab.nn.modules.linear import _init_affine, _register_weight_and_bias
from normlab.nn.modules.module import Module

__all__ = ["Conv1d", "Conv2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """What Conv1d and Conv2d share: argument checks, parameters, init, padding modes, repr."""

    _dims: int = 0
    _functional = None

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, device, dtype) -> None:
        super().__init__()
        name, dims = type(self).__name__, self._dims
        if device not in (None, "cpu"):
            raise ValueError(f"{name}: normlab runs on the CPU only, got device={device!r}")
        self.in_channels = check_positive_int(name, "in_channels", in_channels)
        self.out_channels = check_positive_int(name, "out_channels", out_channels)
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups <= 0:
            raise ValueError(f"{name}: expected groups to be a positive integer, got {groups!r}")
        if in_channels % groups:
            raise ValueError(f"{name}: expected in_channels={in_channels} to be divisible by groups={groups}")
        if out_channels % groups:
            raise ValueError(f"{name}: expected out_channels={out_channels} to be divisible by groups={groups}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: expected padding_mode to be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.kernel_size = tuple_of(name, "kernel_size", kernel_size, dims, minimum=1)
        self.stride = tuple_of(name, "stride", stride, dims, minimum=1)
        self.padding = parse_padding(name, padding, dims, self.stride)
        self.dilation = tuple_of(name, "dilation", dilation, dims, minimum=1)
        self.transposed = False
        self.output_padding = (0,) * dims
        self.groups = int(groups)
        self.padding_mode = padding_mode
        # torch's F.pad order: last dimension first, (before, after) for each (a list for
        # 'same'/'valid', a tuple otherwise, exactly as torch keeps it).
        pairs = padding_pairs(self.padding, self.kernel_size, self.dilation)
        reversed_pads = [p for pair in reversed(pairs) for p in pair]
        self._reversed_padding_repeated_twice = reversed_pads if isinstance(padding, str) else tuple(reversed_pads)
        dtype = np.dtype(dtype or get_default_dtype())
        _register_weight_and_bias(self, (out_channels, in_channels // groups, *self.kernel_size), bias, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch: kaiming_uniform_(a=sqrt(5)) on the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias,
        # fan_in = in_channels / groups * prod(kernel_size).
        _init_affine(self.weight, self.bias)

    def forward(self, input):
        name = type(self).__name__
        functional = type(self)._functional
        if self.padding_mode == "zeros":
            return functional(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                              _layer=name)
        x = as_tensor(input)
        check_conv_input(name, x, self._dims)
        pairs = padding_pairs(self.padding, self.kernel_size, self.dilation)
        x = pad_for_conv(name, x, pairs, self.padding_mode)
        return functional(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups, _layer=name)

    def extra_repr(self) -> str:
        # Same fields, order and omissions as torch's _ConvNd.extra_repr.
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1D convolution (cross-correlation) over (N, C, L) input, like ``torch.nn.Conv1d``.

    Shapes: input (N, in_channels, L) or (in_channels, L) -> (N, out_channels, L_out),
    L_out = floor((L + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1.
    ``padding``: int, (p,), 'valid' or 'same'; ``padding_mode``: 'zeros',
    'reflect', 'replicate' or 'circular'. Weight (out, in / groups, k).

    >>> import normlab, normlab.nn as nn
    >>> nn.Conv1d(4, 8, kernel_size=3, padding=1)(normlab.randn(2, 4, 10)).shape
    (2, 8, 10)
    """

    _dims = 1
    _functional = staticmethod(conv1d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)


class Conv2d(_ConvNd):
    """2D convolution (cross-correlation) over (N, C, H, W) input, like ``torch.nn.Conv2d``.

    Shapes: input (N, in_channels, H, W) or (in_channels, H, W) -> (N, out_channels, H_out, W_out),
    H_out = floor((H + 2 pH - dH (kH - 1) - 1) / sH) + 1 (likewise W).
    ``padding``: int, (pH, pW), 'valid' or 'same'; ``padding_mode``: 'zeros',
    'reflect', 'replicate' or 'circular'. Weight (out, in / groups, kH, kW).
    ``groups=in_channels`` gives a depthwise convolution.

    >>> import normlab, normlab.nn as nn
    >>> nn.Conv2d(3, 16, kernel_size=3, stride=2, padding=1)(normlab.randn(2, 3, 32, 32)).shape
    (2, 16, 16, 16)
    """

    _dims = 2
    _functional = staticmethod(conv2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
