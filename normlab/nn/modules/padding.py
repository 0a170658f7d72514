"""Padding layers: Zero/Constant/Reflection/Replication/CircularPad in 1, 2 and 3 dimensions, as torch.nn's.

Each holds its widths as torch does -- ``padding`` is (left, right), (left,
right, top, bottom) or (left, right, top, bottom, front, back) -- and calls
``F.pad`` with its mode.

>>> import normlab, normlab.nn as nn
>>> nn.ReflectionPad2d(1)(normlab.randn(1, 3, 4, 4)).shape
(1, 3, 6, 6)
"""
from __future__ import annotations

import numbers

from normlab.nn.functional.padding import pad
from normlab.nn.modules.module import Module

__all__ = [
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
    "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d",
]


class _PadNd(Module):
    """A padding layer: ``padding`` (2 * dims ints, last dimension first) and ``F.pad``'s mode."""

    _dims = 0
    _mode = "constant"

    def __init__(self, padding) -> None:
        super().__init__()
        name, size = type(self).__name__, 2 * self._dims
        if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
            padding = (int(padding),) * size
        try:
            padding = tuple(padding)
        except TypeError:
            raise TypeError(f"{name}: expected padding to be an int or a tuple of {size} ints, got {padding!r}") from None
        if len(padding) != size or not all(isinstance(p, numbers.Integral) and not isinstance(p, bool)
                                           for p in padding):
            raise ValueError(f"{name}: expected padding to be an int or a tuple of {size} ints, got {padding!r}")
        self.padding = tuple(int(p) for p in padding)

    def forward(self, input):
        return pad(input, self.padding, mode=self._mode, _layer=type(self).__name__)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value) -> None:
        super().__init__(padding)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{type(self).__name__}: expected value to be a number, got {value!r}")
        self.value = value

    def forward(self, input):
        return pad(input, self.padding, mode="constant", value=self.value, _layer=type(self).__name__)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pad the last dimension with a constant ``value``, like ``torch.nn.ConstantPad1d``.

    ``padding``: an int or (left, right); negative widths crop. Any input rank.

    >>> import numpy as np, normlab.nn as nn
    >>> nn.ConstantPad1d((1, 2), 9.0)(np.zeros((1, 2))).numpy()
    array([[9., 0., 0., 9., 9.]])
    """

    _dims = 1

    def __init__(self, padding, value: float) -> None:
        super().__init__(padding, value)


class ConstantPad2d(_ConstantPadNd):
    """Pad the last two dimensions with a constant ``value``, like ``torch.nn.ConstantPad2d``.

    ``padding``: an int or (left, right, top, bottom).

    >>> import normlab, normlab.nn as nn
    >>> nn.ConstantPad2d((1, 1, 2, 0), 0.5)(normlab.randn(3, 4, 4)).shape
    (3, 6, 6)
    """

    _dims = 2

    def __init__(self, padding, value: float) -> None:
        super().__init__(padding, value)


class ConstantPad3d(_ConstantPadNd):
    """Pad the last three dimensions with a constant ``value``, like ``torch.nn.ConstantPad3d``.

    ``padding``: an int or (left, right, top, bottom, front, back).

    >>> import normlab, normlab.nn as nn
    >>> nn.ConstantPad3d(1, 0.0)(normlab.randn(1, 2, 2, 2)).shape
    (1, 4, 4, 4)
    """

    _dims = 3

    def __init__(self, padding, value: float) -> None:
        super().__init__(padding, value)


class ZeroPad1d(ConstantPad1d):
    """Pad the last dimension with zeros, like ``torch.nn.ZeroPad1d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.ZeroPad1d(2)(normlab.randn(1, 3, 4)).shape
    (1, 3, 8)
    """

    def __init__(self, padding) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(ConstantPad2d):
    """Pad the last two dimensions with zeros, like ``torch.nn.ZeroPad2d``: (left, right, top, bottom).

    >>> import normlab, normlab.nn as nn
    >>> nn.ZeroPad2d((1, 1, 2, 0))(normlab.randn(1, 3, 4, 4)).shape
    (1, 3, 6, 6)
    """

    def __init__(self, padding) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad3d(ConstantPad3d):
    """Pad the last three dimensions with zeros, like ``torch.nn.ZeroPad3d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.ZeroPad3d(1)(normlab.randn(1, 1, 2, 2, 2)).shape
    (1, 1, 4, 4, 4)
    """

    def __init__(self, padding) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ReflectionPad1d(_PadNd):
    """Pad the last dimension with its mirror image (the edge not repeated), like ``torch.nn.ReflectionPad1d``.

    ``padding``: an int or (left, right), each smaller than the dimension.
    Input (C, W) or (N, C, W).

    >>> import numpy as np, normlab.nn as nn
    >>> nn.ReflectionPad1d(2)(np.arange(4.0).reshape(1, 1, 4)).numpy()
    array([[[2., 1., 0., 1., 2., 3., 2., 1.]]])
    """

    _dims, _mode = 1, "reflect"


class ReflectionPad2d(_PadNd):
    """Pad the last two dimensions with their mirror image, like ``torch.nn.ReflectionPad2d``.

    ``padding``: an int or (left, right, top, bottom). Input (C, H, W) or (N, C, H, W).

    >>> import normlab, normlab.nn as nn
    >>> nn.ReflectionPad2d((1, 1, 2, 0))(normlab.randn(1, 3, 4, 4)).shape
    (1, 3, 6, 6)
    """

    _dims, _mode = 2, "reflect"


class ReflectionPad3d(_PadNd):
    """Pad the last three dimensions with their mirror image, like ``torch.nn.ReflectionPad3d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.ReflectionPad3d(1)(normlab.randn(1, 1, 2, 3, 4)).shape
    (1, 1, 4, 5, 6)
    """

    _dims, _mode = 3, "reflect"


class ReplicationPad1d(_PadNd):
    """Pad the last dimension by repeating its edge values, like ``torch.nn.ReplicationPad1d``.

    >>> import numpy as np, normlab.nn as nn
    >>> nn.ReplicationPad1d((1, 2))(np.arange(3.0).reshape(1, 3)).numpy()
    array([[0., 0., 1., 2., 2., 2.]])
    """

    _dims, _mode = 1, "replicate"


class ReplicationPad2d(_PadNd):
    """Pad the last two dimensions by repeating their edge values, like ``torch.nn.ReplicationPad2d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.ReplicationPad2d(2)(normlab.randn(1, 3, 4, 4)).shape
    (1, 3, 8, 8)
    """

    _dims, _mode = 2, "replicate"


class ReplicationPad3d(_PadNd):
    """Pad the last three dimensions by repeating their edge values, like ``torch.nn.ReplicationPad3d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.ReplicationPad3d(1)(normlab.randn(1, 1, 2, 2, 2)).shape
    (1, 1, 4, 4, 4)
    """

    _dims, _mode = 3, "replicate"


class CircularPad1d(_PadNd):
    """Pad the last dimension by wrapping around (periodic boundary), like ``torch.nn.CircularPad1d``.

    >>> import numpy as np, normlab.nn as nn
    >>> nn.CircularPad1d(1)(np.arange(3.0).reshape(1, 3)).numpy()
    array([[2., 0., 1., 2., 0.]])
    """

    _dims, _mode = 1, "circular"


class CircularPad2d(_PadNd):
    """Pad the last two dimensions by wrapping around, like ``torch.nn.CircularPad2d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.CircularPad2d(1)(normlab.randn(1, 3, 4, 4)).shape
    (1, 3, 6, 6)
    """

    _dims, _mode = 2, "circular"


class CircularPad3d(_PadNd):
    """Pad the last three dimensions by wrapping around, like ``torch.nn.CircularPad3d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.CircularPad3d(1)(normlab.randn(1, 1, 2, 2, 2)).shape
    (1, 1, 4, 4, 4)
    """

    _dims, _mode = 3, "circular"
