"""``interpolate`` (and ``upsample``'s older names): resizing by nearest or (bi/tri)linear interpolation.

The arithmetic lives in ``normlab.ops.upsampling``; this layer checks the
arguments as torch does and names the layer in every error.

>>> import numpy as np, normlab.nn.functional as F
>>> F.interpolate(np.arange(4.0).reshape(1, 1, 2, 2), scale_factor=2).numpy()[0, 0]
array([[0., 0., 1., 1.],
       [0., 0., 1., 1.],
       [2., 2., 3., 3.],
       [2., 2., 3., 3.]])
"""
from __future__ import annotations

import numbers

from normlab._checks import check_float
from normlab.autograd.function import Function
from normlab.autograd.tensor import as_tensor
from normlab.ops import upsampling as ops

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear"]

# The spatial rank each interpolating mode is defined for (nearest takes any of 1 to 3).
_MODE_DIMS = {"linear": 1, "bilinear": 2, "trilinear": 3}


class _Interpolate(Function):
    def forward(self, x, *, size, mode, align_corners, scale_factor):
        y, self.saved = ops.interpolate_forward(x, size, mode, align_corners, scale_factor)
        return y

    def backward(self, dy):
        return ops.interpolate_backward(dy, self.saved)


def _per_dim(name: str, what: str, value, dims: int, spatial, kind):
    """``value`` (one number or one per spatial dimension) as a tuple of ``dims`` of ``kind``."""
    if isinstance(value, (tuple, list)):
        if len(value) != dims:
            raise ValueError(f"{name}: expected {what} with one entry per spatial dimension ({dims}, input "
                             f"spatial size {list(spatial)}), got {value!r}")
        values = tuple(value)
    else:
        values = (value,) * dims
    allowed = (numbers.Integral,) if kind is int else (numbers.Real,)
    if not all(isinstance(v, allowed) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name}: expected {what} to be {'an int' if kind is int else 'a number'} or a tuple of "
                        f"them, got {value!r}")
    return tuple(kind(v) for v in values)


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False, _layer: str = "interpolate"):
    """Resize the spatial dimensions of (N, C, *spatial) input, like ``torch.nn.functional.interpolate``.

    Give ``size`` (the output's spatial size) or ``scale_factor`` (output =
    floor(input size * factor)). ``mode``: 'nearest' and 'nearest-exact'
    (1 to 3 spatial dimensions), 'linear' (1), 'bilinear' (2), 'trilinear' (3).
    ``align_corners`` (linear modes only, default False): True maps the
    corner pixels' centres onto each other, False their outer edges (the
    pixel-area view). ``recompute_scale_factor=True`` maps coordinates with
    the output/input size ratio instead of the given factor.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.interpolate(np.array([[[0.0, 1.0]]]), size=4, mode="linear").numpy()
    array([[[0.  , 0.25, 0.75, 1.  ]]])
    """
    name = _layer
    x = as_tensor(input)
    modes = ops.MODES
    if mode not in modes:
        raise ValueError(f"{name}: expected mode to be one of {modes}, got {mode!r}")
    check_float(name, x._data)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"{name}: expected 3D, 4D or 5D input (N, C, *spatial), got {x.ndim}D input of shape "
                         f"{x.shape}")
    dims = x.ndim - 2
    spatial = x.shape[2:]
    if mode in _MODE_DIMS and _MODE_DIMS[mode] != dims:
        raise ValueError(f"{name}: mode {mode!r} needs {_MODE_DIMS[mode] + 2}D input, got {x.ndim}D input of "
                         f"shape {x.shape}")
    if align_corners is not None and mode not in _MODE_DIMS:
        raise ValueError(f"{name}: align_corners can only be set with the interpolating modes linear, bilinear "
                         f"and trilinear, got mode {mode!r}")
    if antialias:
        raise ValueError(f"{name}: antialias=True is not supported")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{name}: expected exactly one of size and scale_factor, got "
                         f"size={size!r}, scale_factor={scale_factor!r}")
    if size is not None and recompute_scale_factor:
        raise ValueError(f"{name}: recompute_scale_factor is not meaningful with an explicit size")
    if 0 in x.shape[1:]:
        raise ValueError(f"{name}: expected non-empty channel and spatial dimensions, got input of shape {x.shape}")
    if size is not None:
        size = _per_dim(name, "size", size, dims, spatial, int)
        factors = None
    else:
        factors = _per_dim(name, "scale_factor", scale_factor, dims, spatial, float)
        size = ops.output_size(spatial, None, factors)
        if recompute_scale_factor:
            factors = None  # coordinates from the sizes, as if size had been given
    if any(s <= 0 for s in size):
        raise ValueError(f"{name}: expected output sizes greater than 0, got {list(size)} for input spatial size "
                         f"{list(spatial)}")
    return _Interpolate.apply(x, size=size, mode=mode, align_corners=bool(align_corners), scale_factor=factors)


def upsample(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None):
    """``interpolate`` under its older name, like ``torch.nn.functional.upsample``."""
    return interpolate(input, size, scale_factor, mode, align_corners, _layer="upsample")


def upsample_nearest(input, size=None, scale_factor=None):
    """Nearest-neighbour upsampling, like ``torch.nn.functional.upsample_nearest``."""
    return interpolate(input, size, scale_factor, mode="nearest", _layer="upsample_nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Bilinear upsampling with ``align_corners=True``, like ``torch.nn.functional.upsample_bilinear``."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True, _layer="upsample_bilinear")
