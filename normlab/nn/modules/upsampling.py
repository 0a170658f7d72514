"""Upsample, UpsamplingNearest2d, UpsamplingBilinear2d: ``F.interpolate`` as layers, like torch.nn's."""
from __future__ import annotations

import numbers

from normlab.nn.functional.upsampling import interpolate
from normlab.nn.modules.module import Module

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]


class Upsample(Module):
    """Resize (N, C, *spatial) input by nearest or (bi/tri)linear interpolation, like ``torch.nn.Upsample``.

    Give ``size`` or ``scale_factor``; ``mode`` 'nearest', 'nearest-exact',
    'linear', 'bilinear' or 'trilinear'; ``align_corners`` for the linear
    modes (see ``normlab.nn.functional.interpolate``).

    >>> import normlab, normlab.nn as nn
    >>> nn.Upsample(scale_factor=2, mode="bilinear")(normlab.randn(1, 3, 4, 5)).shape
    (1, 3, 8, 10)
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None) -> None:
        super().__init__()
        name = type(self).__name__
        if scale_factor is not None and not isinstance(scale_factor, (numbers.Real, tuple, list)):
            raise TypeError(f"{name}: expected scale_factor to be a number or a tuple of numbers, got "
                            f"{scale_factor!r}")
        self.name = name
        self.size = size
        # torch keeps the factor as a float, or a tuple of floats
        self.scale_factor = (tuple(float(f) for f in scale_factor) if isinstance(scale_factor, (tuple, list))
                             else float(scale_factor) if scale_factor else None)
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        return interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                           recompute_scale_factor=self.recompute_scale_factor, _layer=self.name)

    def extra_repr(self) -> str:
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Nearest-neighbour 2-d upsampling, like ``torch.nn.UpsamplingNearest2d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.UpsamplingNearest2d(scale_factor=2)(normlab.randn(1, 1, 2, 2)).shape
    (1, 1, 4, 4)
    """

    def __init__(self, size=None, scale_factor=None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear 2-d upsampling with ``align_corners=True``, like ``torch.nn.UpsamplingBilinear2d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.UpsamplingBilinear2d(size=(5, 5))(normlab.randn(1, 1, 2, 2)).shape
    (1, 1, 5, 5)
    """

    def __init__(self, size=None, scale_factor=None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
