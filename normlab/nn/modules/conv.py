"""Conv1d/2d/3d and ConvTranspose1d/2d/3d: torch's constructors, attributes, initialisation and reprs."""
from __future__ import annotations

import numpy as np

from normlab._checks import check_positive_int, tuple_of
from normlab.autograd.tensor import as_tensor, get_default_dtype
from normlab.nn.functional.convolution import (
    check_conv_input, check_groups, conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d,
    padding_pairs, parse_padding,
)
from normlab.nn.functional.padding import pad
from normlab.nn.modules.linear import _init_affine, _register_weight_and_bias
from normlab.nn.modules.module import Module, Parameter
from normlab.ops.convolution import conv_transpose_output_size

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """What every convolution module shares: argument checks, parameters, init, padding modes, repr."""

    _dims: int = 0
    _functional = None
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, device, dtype, output_padding=0) -> None:
        super().__init__()
        name, dims = type(self).__name__, self._dims
        if device not in (None, "cpu"):
            raise ValueError(f"{name}: normlab runs on the CPU only, got device={device!r}")
        self.in_channels = check_positive_int(name, "in_channels", in_channels)
        self.out_channels = check_positive_int(name, "out_channels", out_channels)
        groups = check_groups(name, groups)
        if in_channels % groups:
            raise ValueError(f"{name}: expected in_channels={in_channels} to be divisible by groups={groups}")
        if out_channels % groups:
            raise ValueError(f"{name}: expected out_channels={out_channels} to be divisible by groups={groups}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: expected padding_mode to be one of {_PADDING_MODES}, got {padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported for a transposed convolution, "
                             f"got {padding_mode!r}")
        self.kernel_size = tuple_of(name, "kernel_size", kernel_size, dims, minimum=1)
        self.stride = tuple_of(name, "stride", stride, dims, minimum=1)
        if self._transposed and isinstance(padding, str):
            raise ValueError(f"{name}: expected padding to be an int or a tuple of {dims} ints (a transposed "
                             f"convolution takes no 'same' or 'valid'), got {padding!r}")
        self.padding = parse_padding(name, padding, dims, self.stride)
        self.dilation = tuple_of(name, "dilation", dilation, dims, minimum=1)
        self.transposed = self._transposed
        self.output_padding = tuple_of(name, "output_padding", output_padding, dims, minimum=0)
        self.groups = groups
        self.padding_mode = padding_mode
        # torch's F.pad order: last dimension first, (before, after) for each (a list for
        # 'same'/'valid', a tuple otherwise, exactly as torch keeps it).
        pairs = padding_pairs(self.padding, self.kernel_size, self.dilation)
        reversed_pads = [p for pair in reversed(pairs) for p in pair]
        self._reversed_padding_repeated_twice = reversed_pads if isinstance(padding, str) else tuple(reversed_pads)
        dtype = np.dtype(dtype or get_default_dtype())
        # torch's layouts: (out, in / groups, *k) for a convolution, (in, out / groups, *k) transposed.
        weight_shape = ((in_channels, out_channels // groups) if self._transposed
                        else (out_channels, in_channels // groups)) + self.kernel_size
        _register_weight_and_bias(self, weight_shape, False, dtype)
        self.register_parameter("bias", Parameter(np.empty(out_channels, dtype=dtype)) if bias else None)
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
        # torch pads first (F.pad in padding_mode), then convolves without padding.
        padded = pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode, _layer=name)
        return functional(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups, _layer=name)

    def extra_repr(self) -> str:
        # Same fields, order and omissions as torch's _ConvNd.extra_repr.
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._dims:
            s += f", output_padding={self.output_padding}"
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


class Conv3d(_ConvNd):
    """3D convolution (cross-correlation) over (N, C, D, H, W) input, like ``torch.nn.Conv3d``.

    Shapes: input (N, in_channels, D, H, W) or unbatched -> (N, out_channels,
    D_out, H_out, W_out), each size by Conv2d's rule. ``padding``: int,
    (pD, pH, pW), 'valid' or 'same'; ``padding_mode``: 'zeros', 'reflect',
    'replicate' or 'circular'. Weight (out, in / groups, kD, kH, kW).

    >>> import normlab, normlab.nn as nn
    >>> nn.Conv3d(2, 4, kernel_size=3, padding=1)(normlab.randn(1, 2, 5, 6, 7)).shape
    (1, 4, 5, 6, 7)
    """

    _dims = 3
    _functional = staticmethod(conv3d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)


class _ConvTransposeNd(_ConvNd):
    """What the transposed convolutions share: ``output_size`` in forward."""

    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                 dilation, padding_mode, device, dtype) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype, output_padding=output_padding)

    def _output_padding(self, x, output_size) -> tuple[int, ...]:
        """The output_padding that gives ``output_size`` (torch's rule: any size a stride can reach)."""
        name, dims = type(self).__name__, self._dims
        if output_size is None:
            return self.output_padding
        try:
            sizes = [int(s) for s in output_size]
        except TypeError:
            raise TypeError(f"{name}: expected output_size to be a sequence of ints, got {output_size!r}") from None
        if len(sizes) not in (dims, x.ndim):
            raise ValueError(f"{name}: for {x.ndim}D input, expected output_size with {dims} or {x.ndim} "
                             f"elements, got {len(sizes)} ({output_size!r})")
        sizes = sizes[-dims:]
        smallest = [conv_transpose_output_size(n, k, s, p, d, 0) for n, k, s, p, d in
                    zip(x.shape[-dims:], self.kernel_size, self.stride, self.padding, self.dilation)]
        largest = [low + s - 1 for low, s in zip(smallest, self.stride)]
        if any(not low <= size <= high for size, low, high in zip(sizes, smallest, largest)):
            raise ValueError(f"{name}: requested an output size of {sizes}, but valid sizes range from "
                             f"{smallest} to {largest} (for an input of spatial size {list(x.shape[-dims:])})")
        return tuple(size - low for size, low in zip(sizes, smallest))

    def forward(self, input, output_size=None):
        x = as_tensor(input)
        check_conv_input(type(self).__name__, x, self._dims)
        output_padding = self._output_padding(x, output_size)
        return type(self)._functional(x, self.weight, self.bias, self.stride, self.padding, output_padding,
                                      self.groups, self.dilation, _layer=type(self).__name__)


class ConvTranspose1d(_ConvTransposeNd):
    """1D transposed convolution, the gradient of Conv1d with respect to its input, like ``torch.nn.ConvTranspose1d``.

    Shapes: input (N, in_channels, L) or (in_channels, L) -> (N, out_channels, L_out),
    L_out = (L - 1) stride - 2 padding + dilation (kernel_size - 1) + output_padding + 1.
    Weight (in, out / groups, k). ``forward(input, output_size=None)``:
    ``output_size`` picks the output_padding that gives that length.

    >>> import normlab, normlab.nn as nn
    >>> nn.ConvTranspose1d(4, 2, kernel_size=3, stride=2)(normlab.randn(1, 4, 5)).shape
    (1, 2, 11)
    """

    _dims = 1
    _functional = staticmethod(conv_transpose1d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                         dilation, padding_mode, device, dtype)


class ConvTranspose2d(_ConvTransposeNd):
    """2D transposed convolution ("deconvolution"), like ``torch.nn.ConvTranspose2d``.

    Each input pixel adds the kernel times itself onto a window of the
    output; a stride-2 layer doubles the size (the decoder's upsampling).
    Shapes: input (N, in_channels, H, W) or unbatched -> (N, out_channels, H_out, W_out),
    H_out = (H - 1) sH - 2 pH + dH (kH - 1) + output_padding + 1 (likewise W).
    Weight (in, out / groups, kH, kW). ``forward(input, output_size=None)``.

    >>> import normlab, normlab.nn as nn
    >>> up = nn.ConvTranspose2d(8, 4, kernel_size=3, stride=2, padding=1, output_padding=1)
    >>> up(normlab.randn(2, 8, 7, 7)).shape
    (2, 4, 14, 14)
    """

    _dims = 2
    _functional = staticmethod(conv_transpose2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                         dilation, padding_mode, device, dtype)


class ConvTranspose3d(_ConvTransposeNd):
    """3D transposed convolution, like ``torch.nn.ConvTranspose3d``.

    Shapes: input (N, in_channels, D, H, W) or unbatched -> (N, out_channels,
    D_out, H_out, W_out), each size by ConvTranspose2d's rule. Weight (in,
    out / groups, kD, kH, kW).

    >>> import normlab, normlab.nn as nn
    >>> nn.ConvTranspose3d(2, 3, kernel_size=2, stride=2)(normlab.randn(1, 2, 2, 3, 4)).shape
    (1, 3, 4, 6, 8)
    """

    _dims = 3
    _functional = staticmethod(conv_transpose3d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                         dilation, padding_mode, device, dtype)
