"""Pooling layers: thin Modules over ``normlab.nn.functional``'s pooling, with torch's constructors.

Max and min pooling layers take normlab's ``tie`` and ``nan`` options too
(defaults are torch's behaviour; see ``normlab.nn.functional.pooling``).
Pooling layers hold no parameters or buffers.
"""
from __future__ import annotations

from normlab.nn.functional import pooling as F
from normlab.nn.modules.module import Module

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "MinPool1d", "MinPool2d", "MinPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
]


def _single(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _triple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value, value)


def _rules_repr(tie: str, nan: str) -> str:
    # normlab's options appear only when they differ from torch's, so a default layer prints as torch's does
    extra = ""
    if tie != "first":
        extra += f", tie={tie!r}"
    if nan != "propagate":
        extra += f", nan={nan!r}"
    return extra


class _ExtremumPoolNd(Module):
    _function = None

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False, tie: str = "first", nan: str = "propagate") -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode
        self.tie = tie
        self.nan = nan

    def forward(self, input):
        return type(self)._function(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                    ceil_mode=self.ceil_mode, return_indices=self.return_indices,
                                    tie=self.tie, nan=self.nan, _layer=type(self).__name__)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}" + _rules_repr(self.tie, self.nan))


class MaxPool1d(_ExtremumPoolNd):
    """Max over sliding windows of the sequence axis.  Same as ``torch.nn.MaxPool1d``.

    Shapes: (N, C, L) or (C, L) -> (N, C, L_out) or (C, L_out), with
    L_out = floor((L + 2 padding - dilation (kernel_size - 1) - 1) / stride + 1)
    (ceil with ``ceil_mode``). Padding is -inf. ``return_indices`` also returns
    each maximum's position (for ``MaxUnpool1d``); the gradient goes only there.
    ``tie="split"`` shares a tied window's gradient among its maxima;
    ``nan="ignore"`` skips NaNs (torch propagates them).

    >>> import normlab, normlab.nn as nn
    >>> nn.MaxPool1d(3, stride=2)(normlab.randn(2, 4, 9)).shape
    (2, 4, 4)
    """

    _function = staticmethod(F.max_pool1d)


class MaxPool2d(_ExtremumPoolNd):
    """Max over sliding 2d windows.  Same as ``torch.nn.MaxPool2d``.

    Shapes: (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out). Indices (with
    ``return_indices``) are flat per (n, c) plane, ``h * W + w``, exactly
    torch's, and ``MaxUnpool2d`` consumes them. ``tie`` / ``nan``: see MaxPool1d.

    >>> import normlab, normlab.nn as nn
    >>> nn.MaxPool2d(3, stride=2, padding=1)(normlab.randn(2, 4, 8, 8)).shape
    (2, 4, 4, 4)
    """

    _function = staticmethod(F.max_pool2d)


class MaxPool3d(_ExtremumPoolNd):
    """Max over sliding 3d windows (video, volumes).  Same as ``torch.nn.MaxPool3d``.

    Shapes: (N, C, D, H, W) or (C, D, H, W) -> (N, C, D_out, H_out, W_out), each
    axis sized as MaxPool1d's. Indices (with ``return_indices``) are flat per
    (n, c) volume, ``(d * H + h) * W + w``, exactly torch's. ``tie`` / ``nan``:
    see MaxPool1d.

    >>> import normlab, normlab.nn as nn
    >>> nn.MaxPool3d(2)(normlab.randn(2, 4, 4, 6, 6)).shape
    (2, 4, 2, 3, 3)
    """

    _function = staticmethod(F.max_pool3d)


class MinPool1d(_ExtremumPoolNd):
    """Min over sliding windows of the sequence axis (= -MaxPool1d(-x), indices and gradient included).

    normlab's own layer (torch has none); arguments and shapes as ``MaxPool1d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.MinPool1d(2)(normlab.tensor([[[4.0, 1.0, 3.0, 2.0]]])).numpy()
    array([[[1., 2.]]], dtype=float32)
    """

    _function = staticmethod(F.min_pool1d)


class MinPool2d(_ExtremumPoolNd):
    """Min over sliding 2d windows (= -MaxPool2d(-x), indices and gradient included).

    normlab's own layer (torch has none); arguments and shapes as ``MaxPool2d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.MinPool2d(2)(normlab.randn(1, 3, 4, 6)).shape
    (1, 3, 2, 3)
    """

    _function = staticmethod(F.min_pool2d)


class MinPool3d(_ExtremumPoolNd):
    """Min over sliding 3d windows (= -MaxPool3d(-x), indices and gradient included).

    normlab's own layer (torch has none); arguments and shapes as ``MaxPool3d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.MinPool3d(2)(normlab.randn(1, 3, 2, 4, 6)).shape
    (1, 3, 1, 2, 3)
    """

    _function = staticmethod(F.min_pool3d)


class AvgPool1d(Module):
    """Mean over sliding windows of the sequence axis.  Same as ``torch.nn.AvgPool1d``.

    Shapes: (N, C, L) or (C, L) -> (N, C, L_out) or (C, L_out). Padding is
    zeros, counted in the divisor when ``count_include_pad``.

    >>> import normlab, normlab.nn as nn
    >>> nn.AvgPool1d(2)(normlab.tensor([[[1.0, 3.0, 2.0, 6.0]]])).numpy()
    array([[[2., 4.]]], dtype=float32)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if stride is not None else kernel_size)
        self.padding = _single(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input):
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, _layer="AvgPool1d")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AvgPoolNd(Module):
    _function = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        return type(self)._function(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                    self.count_include_pad, self.divisor_override, _layer=type(self).__name__)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_AvgPoolNd):
    """Mean over sliding 2d windows.  Same as ``torch.nn.AvgPool2d``.

    Shapes: (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out). The divisor is
    ``divisor_override`` if set, else the window size (padding included when
    ``count_include_pad``).

    >>> import normlab, normlab.nn as nn
    >>> nn.AvgPool2d(3, stride=2, padding=1)(normlab.randn(2, 4, 8, 8)).shape
    (2, 4, 4, 4)
    """

    _function = staticmethod(F.avg_pool2d)


class AvgPool3d(_AvgPoolNd):
    """Mean over sliding 3d windows.  Same as ``torch.nn.AvgPool3d``.

    Shapes: (N, C, D, H, W) or (C, D, H, W) -> (N, C, D_out, H_out, W_out);
    divisor rules as AvgPool2d's.

    >>> import normlab, normlab.nn as nn
    >>> nn.AvgPool3d(3, stride=2, padding=1)(normlab.randn(2, 4, 4, 8, 8)).shape
    (2, 4, 2, 4, 4)
    """

    _function = staticmethod(F.avg_pool3d)


class _AdaptiveAvgPoolNd(Module):
    _function = None

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return type(self)._function(input, self.output_size, _layer=type(self).__name__)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Mean over windows sized so the output has ``output_size`` positions.  Same as ``torch.nn.AdaptiveAvgPool1d``.

    Output i averages inputs floor(i L / out) .. ceil((i + 1) L / out) - 1.

    >>> import normlab, normlab.nn as nn
    >>> nn.AdaptiveAvgPool1d(3)(normlab.randn(2, 4, 10)).shape
    (2, 4, 3)
    """

    _function = staticmethod(F.adaptive_avg_pool1d)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """2d adaptive average pooling (``None`` in output_size keeps that size).  Same as ``torch.nn.AdaptiveAvgPool2d``.

    ``AdaptiveAvgPool2d(1)`` is global average pooling.

    >>> import normlab, normlab.nn as nn
    >>> nn.AdaptiveAvgPool2d(1)(normlab.randn(2, 4, 7, 7)).shape
    (2, 4, 1, 1)
    """

    _function = staticmethod(F.adaptive_avg_pool2d)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """3d adaptive average pooling (``None`` in output_size keeps that size).  Same as ``torch.nn.AdaptiveAvgPool3d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.AdaptiveAvgPool3d((1, None, 2))(normlab.randn(2, 4, 3, 7, 7)).shape
    (2, 4, 1, 7, 2)
    """

    _function = staticmethod(F.adaptive_avg_pool3d)


class _AdaptiveMaxPoolNd(Module):
    _function = None

    def __init__(self, output_size, return_indices: bool = False, tie: str = "first", nan: str = "propagate") -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices
        self.tie = tie
        self.nan = nan

    def forward(self, input):
        return type(self)._function(input, self.output_size, self.return_indices, tie=self.tie, nan=self.nan,
                                    _layer=type(self).__name__)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}" + _rules_repr(self.tie, self.nan)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max over adaptive windows of the sequence axis.  Same as ``torch.nn.AdaptiveMaxPool1d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.AdaptiveMaxPool1d(3)(normlab.randn(2, 4, 10)).shape
    (2, 4, 3)
    """

    _function = staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max over adaptive 2d windows.  Same as ``torch.nn.AdaptiveMaxPool2d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.AdaptiveMaxPool2d((2, None))(normlab.randn(2, 4, 7, 5)).shape
    (2, 4, 2, 5)
    """

    _function = staticmethod(F.adaptive_max_pool2d)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max over adaptive 3d windows.  Same as ``torch.nn.AdaptiveMaxPool3d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.AdaptiveMaxPool3d((1, 2, None))(normlab.randn(2, 4, 3, 7, 5)).shape
    (2, 4, 1, 2, 5)
    """

    _function = staticmethod(F.adaptive_max_pool3d)


class _LPPoolNd(Module):
    _function = None

    def __init__(self, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> None:
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode

    def forward(self, input):
        return type(self)._function(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode,
                                    _layer=type(self).__name__)

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    """Power-average pooling (sum of x^p over the window)^(1/p).  Same as ``torch.nn.LPPool1d``.

    p = 1 is sum pooling, p = inf max pooling (of |x|).

    >>> import normlab, normlab.nn as nn
    >>> nn.LPPool1d(2, 2)(normlab.tensor([[[3.0, 4.0, 6.0, 8.0]]])).numpy()
    array([[[ 5., 10.]]], dtype=float32)
    """

    _function = staticmethod(F.lp_pool1d)


class LPPool2d(_LPPoolNd):
    """2d power-average pooling.  Same as ``torch.nn.LPPool2d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.LPPool2d(2, 3, stride=2)(normlab.randn(2, 4, 9, 9)).shape
    (2, 4, 4, 4)
    """

    _function = staticmethod(F.lp_pool2d)


class LPPool3d(_LPPoolNd):
    """3d power-average pooling.  Same as ``torch.nn.LPPool3d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.LPPool3d(2, 2)(normlab.randn(2, 4, 4, 6, 6)).shape
    (2, 4, 2, 3, 3)
    """

    _function = staticmethod(F.lp_pool3d)


class _MaxUnpoolNd(Module):
    _function = None

    def forward(self, input, indices, output_size=None):
        return type(self)._function(input, indices, self.kernel_size, self.stride, self.padding, output_size,
                                    _layer=type(self).__name__)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """Partial inverse of MaxPool1d: values back at their indices, zeros elsewhere.  Same as ``torch.nn.MaxUnpool1d``.

    >>> import normlab, normlab.nn as nn
    >>> y, idx = nn.MaxPool1d(2, return_indices=True)(normlab.tensor([[[1.0, 3.0, 2.0, 5.0]]]))
    >>> nn.MaxUnpool1d(2)(y, idx).numpy()
    array([[[0., 3., 0., 5.]]], dtype=float32)
    """

    _function = staticmethod(F.max_unpool1d)

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if (stride is not None) else kernel_size)
        self.padding = _single(padding)


class MaxUnpool2d(_MaxUnpoolNd):
    """Partial inverse of MaxPool2d.  Same as ``torch.nn.MaxUnpool2d``.

    >>> import normlab, normlab.nn as nn
    >>> y, idx = nn.MaxPool2d(2, return_indices=True)(normlab.randn(1, 2, 4, 4))
    >>> nn.MaxUnpool2d(2)(y, idx).shape
    (1, 2, 4, 4)
    """

    _function = staticmethod(F.max_unpool2d)

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if (stride is not None) else kernel_size)
        self.padding = _pair(padding)


class MaxUnpool3d(_MaxUnpoolNd):
    """Partial inverse of MaxPool3d.  Same as ``torch.nn.MaxUnpool3d``.

    >>> import normlab, normlab.nn as nn
    >>> y, idx = nn.MaxPool3d(2, return_indices=True)(normlab.randn(1, 2, 4, 4, 4))
    >>> nn.MaxUnpool3d(2)(y, idx).shape
    (1, 2, 4, 4, 4)
    """

    _function = staticmethod(F.max_unpool3d)

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride if (stride is not None) else kernel_size)
        self.padding = _triple(padding)
