"""Pooling with torch.nn.functional's names, arguments and defaults, plus normlab's min pooling.

Max and min pooling also take two options torch does not have (defaults are
torch's behaviour):

* ``tie="first" | "split"`` -- which of several equal maxima in a window gets
  the window's gradient: the first in row-major order (torch; its index is the
  one ``return_indices`` reports), or all of them in equal shares (as tinygrad
  does). The forward value and the returned indices are the same either way.
* ``nan="propagate" | "ignore"`` -- torch propagates NaN: a window containing a
  NaN outputs NaN and its index points at that NaN (the last one, if several).
  ``"ignore"`` skips NaNs: the window outputs the extremum of its other
  elements; a window of NaNs only outputs NaN with the index of its first
  element, which also receives its gradient.

>>> import numpy as np, normlab.nn.functional as F
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> F.max_pool2d(x, 2).numpy()
array([[[[ 5.,  7.],
         [13., 15.]]]])
"""
from __future__ import annotations

from normlab._checks import check_float, check_ndim
from normlab.autograd.function import Function
from normlab.autograd.tensor import as_tensor
from normlab.ops import pooling as ops

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d",
    "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "min_pool1d", "min_pool2d", "min_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices", "adaptive_max_pool3d_with_indices",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
]


class _Pool(Function):
    """One pooling pair from ``normlab.ops.pooling``; optionally also returns the winners' indices."""

    def forward(self, x, *, op_forward, op_backward, config, return_indices=False):
        y, self.saved = op_forward(x, **config)
        self.op_backward = op_backward
        # indices() builds a fresh array: the caller may write into it without reaching what backward reads
        return (y, self.saved.indices()) if return_indices else y

    def backward(self, dy, *indices_grad):  # the int64 indices never carry a gradient
        return self.op_backward(dy, self.saved)


class _Unpool(Function):
    def forward(self, x, indices, *, op_forward, config):
        y, self.saved = op_forward(x, indices, **config)
        return y

    def backward(self, dy):
        return ops.max_unpool_backward(dy, self.saved)


_LAYOUTS = {1: "(N, C, L) or (C, L)", 2: "(N, C, H, W) or (C, H, W)", 3: "(N, C, D, H, W) or (C, D, H, W)"}


def _check_input(name: str, input, n: int):
    """A float Tensor of shape (N, C, *spatial) or (C, *spatial) with non-empty C and spatial axes."""
    x = as_tensor(input)
    check_float(name, x._data)
    check_ndim(name, x._data, (n + 1, n + 2), layout=_LAYOUTS[n])
    if any(size == 0 for size in x.shape[-(n + 1):]):  # an empty batch is fine, as in torch
        raise ValueError(f"{name}: expected non-zero channel and spatial sizes {_LAYOUTS[n]}, got shape {x.shape}")
    return x


def _extremum(name, input, n, op_forward, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
              tie, nan):
    x = _check_input(name, input, n)
    config = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                  ceil_mode=ceil_mode, tie=tie, nan=nan, _name=name)
    return _Pool.apply(x, op_forward=op_forward, op_backward=ops.extremum_pool_backward, config=config,
                       return_indices=bool(return_indices))


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
               tie="first", nan="propagate", _layer="max_pool1d"):
    """Max over sliding windows of the last axis: (N, C, L) or (C, L) -> (N, C, L_out) or (C, L_out).

    With ``return_indices`` also returns the int64 position of each maximum in
    its row (what ``max_unpool1d`` consumes). ``tie`` and ``nan``: see the
    module docstring. Same as ``torch.nn.functional.max_pool1d`` by default.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.max_pool1d(np.array([[[1., 3., 2., 5.]]]), 2).numpy()
    array([[[3., 5.]]])
    """
    return _extremum(_layer, input, 1, ops.max_pool1d_forward, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, tie, nan)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
               tie="first", nan="propagate", _layer="max_pool2d"):
    """Max over sliding windows of the last two axes: (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out).

    Padding acts as -inf. With ``return_indices`` also returns each maximum's
    flat position ``h * W + w`` in its (n, c) plane, exactly torch's indices.
    Backward hands each output's gradient to that one element (overlapping
    windows add up). ``tie`` and ``nan``: see the module docstring. Same as
    ``torch.nn.functional.max_pool2d`` by default.

    >>> import numpy as np, normlab.nn.functional as F
    >>> y, idx = F.max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2, return_indices=True)
    >>> idx.numpy()
    array([[[[ 5,  7],
             [13, 15]]]])
    """
    return _extremum(_layer, input, 2, ops.max_pool2d_forward, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, tie, nan)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
               tie="first", nan="propagate", _layer="max_pool3d"):
    """Max over sliding windows of the last three axes: (N, C, D, H, W) or (C, D, H, W) -> (N, C, D_out, H_out, W_out).

    As ``max_pool2d`` with one more axis: padding acts as -inf, and
    ``return_indices`` gives each maximum's flat position ``(d * H + h) * W + w``
    in its (n, c) volume, exactly torch's. Same as
    ``torch.nn.functional.max_pool3d`` by default.

    >>> import numpy as np, normlab.nn.functional as F
    >>> y, idx = F.max_pool3d(np.arange(8.0).reshape(1, 1, 2, 2, 2), 2, return_indices=True)
    >>> y.numpy().ravel(), idx.numpy().ravel()
    (array([7.]), array([7]))
    """
    return _extremum(_layer, input, 3, ops.max_pool3d_forward, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, tie, nan)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True, tie="first", nan="propagate"):
    """``max_pool1d`` returning (output, indices), as torch's function of that name."""
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True, tie, nan,
                      _layer="max_pool1d_with_indices")


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True, tie="first", nan="propagate"):
    """``max_pool2d`` returning (output, indices), as torch's function of that name."""
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True, tie, nan,
                      _layer="max_pool2d_with_indices")


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True, tie="first", nan="propagate"):
    """``max_pool3d`` returning (output, indices), as torch's function of that name."""
    return max_pool3d(input, kernel_size, stride, padding, dilation, ceil_mode, True, tie, nan,
                      _layer="max_pool3d_with_indices")


def min_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
               tie="first", nan="propagate", _layer="min_pool1d"):
    """Min over sliding windows of the last axis; equals ``-max_pool1d(-x)`` in value, indices and gradient.

    No torch equivalent (torch users write ``-max_pool1d(-x)``). Padding acts
    as +inf; ``tie`` and ``nan`` as for max pooling.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.min_pool1d(np.array([[[1., 3., 2., 5.]]]), 2).numpy()
    array([[[1., 2.]]])
    """
    return _extremum(_layer, input, 1, ops.min_pool1d_forward, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, tie, nan)


def min_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
               tie="first", nan="propagate", _layer="min_pool2d"):
    """Min over sliding windows of the last two axes; equals ``-max_pool2d(-x)`` in value, indices and gradient.

    No torch equivalent. Indices are flat per (n, c) plane like max_pool2d's,
    so ``max_unpool2d`` consumes them too.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.min_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2).numpy()
    array([[[[ 0.,  2.],
             [ 8., 10.]]]])
    """
    return _extremum(_layer, input, 2, ops.min_pool2d_forward, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, tie, nan)


def min_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
               tie="first", nan="propagate", _layer="min_pool3d"):
    """Min over sliding windows of the last three axes; equals ``-max_pool3d(-x)`` in value, indices and gradient.

    No torch equivalent. Indices are flat per (n, c) volume like max_pool3d's.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.min_pool3d(np.arange(8.0).reshape(1, 1, 2, 2, 2), 2).numpy().ravel()
    array([0.])
    """
    return _extremum(_layer, input, 3, ops.min_pool3d_forward, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, tie, nan)


def _mean(name, input, n, op_forward, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x = _check_input(name, input, n)
    config = dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor_override, _name=name)
    return _Pool.apply(x, op_forward=op_forward, op_backward=ops.mean_pool_backward, config=config)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               _layer="avg_pool1d"):
    """Mean over sliding windows of the last axis: (N, C, L) or (C, L) -> (N, C, L_out) or (C, L_out).

    Padding counts as zeros; ``count_include_pad`` decides whether it counts
    in the divisor (the part of a ceil_mode window past the right padding never
    does). Same as ``torch.nn.functional.avg_pool1d``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.avg_pool1d(np.array([[[1., 3., 2., 6.]]]), 2).numpy()
    array([[[2., 4.]]])
    """
    x = _check_input(_layer, input, 1)
    config = dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, _name=_layer)
    return _Pool.apply(x, op_forward=ops.avg_pool1d_forward, op_backward=ops.mean_pool_backward, config=config)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, _layer="avg_pool2d"):
    """Mean over sliding windows of the last two axes: (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out).

    The divisor is ``divisor_override`` when given, else the window's size
    (padding included with ``count_include_pad``, never the part of a ceil_mode
    window past the right padding). Backward spreads each output's gradient
    equally over its window. Same as ``torch.nn.functional.avg_pool2d``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.avg_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2).numpy()
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """
    return _mean(_layer, input, 2, ops.avg_pool2d_forward, kernel_size, stride, padding, ceil_mode,
                 count_include_pad, divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, _layer="avg_pool3d"):
    """Mean over sliding windows of the last three axes: (N, C, D, H, W) or (C, D, H, W) -> (N, C, D_out, H_out, W_out).

    Divisor rules as ``avg_pool2d``'s (``divisor_override``, ``count_include_pad``,
    ceil_mode windows cut at the right padding). Same as
    ``torch.nn.functional.avg_pool3d``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.avg_pool3d(np.arange(8.0).reshape(1, 1, 2, 2, 2), 2).numpy().ravel()
    array([3.5])
    """
    return _mean(_layer, input, 3, ops.avg_pool3d_forward, kernel_size, stride, padding, ceil_mode,
                 count_include_pad, divisor_override)


def adaptive_avg_pool1d(input, output_size, _layer="adaptive_avg_pool1d"):
    """Mean over torch's adaptive windows (output i covers floor(iL/out) .. ceil((i+1)L/out) - 1).

    Shapes: (N, C, L) or (C, L) -> (N, C, output_size) or (C, output_size).
    Same as ``torch.nn.functional.adaptive_avg_pool1d``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.adaptive_avg_pool1d(np.array([[[1., 2., 3., 4., 5.]]]), 2).numpy()
    array([[[2., 4.]]])
    """
    x = _check_input(_layer, input, 1)
    return _Pool.apply(x, op_forward=ops.adaptive_avg_pool1d_forward, op_backward=ops.mean_pool_backward,
                       config=dict(output_size=output_size, _name=_layer))


def adaptive_avg_pool2d(input, output_size, _layer="adaptive_avg_pool2d"):
    """Mean over torch's adaptive windows of the last two axes; ``None`` in output_size keeps that size.

    Shapes: (N, C, H, W) or (C, H, W) -> (N, C, *output_size) or (C, *output_size).
    Same as ``torch.nn.functional.adaptive_avg_pool2d``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.adaptive_avg_pool2d(np.ones((2, 3, 5, 7)), (1, None)).shape
    (2, 3, 1, 7)
    """
    x = _check_input(_layer, input, 2)
    return _Pool.apply(x, op_forward=ops.adaptive_avg_pool2d_forward, op_backward=ops.mean_pool_backward,
                       config=dict(output_size=output_size, _name=_layer))


def adaptive_avg_pool3d(input, output_size, _layer="adaptive_avg_pool3d"):
    """Mean over torch's adaptive windows of the last three axes; ``None`` in output_size keeps that size.

    Shapes: (N, C, D, H, W) or (C, D, H, W) -> (N, C, *output_size) or (C, *output_size).
    Same as ``torch.nn.functional.adaptive_avg_pool3d``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.adaptive_avg_pool3d(np.ones((2, 3, 4, 5, 7)), (1, None, 2)).shape
    (2, 3, 1, 5, 2)
    """
    x = _check_input(_layer, input, 3)
    return _Pool.apply(x, op_forward=ops.adaptive_avg_pool3d_forward, op_backward=ops.mean_pool_backward,
                       config=dict(output_size=output_size, _name=_layer))


def adaptive_max_pool1d(input, output_size, return_indices=False, tie="first", nan="propagate",
                        _layer="adaptive_max_pool1d"):
    """Max over torch's adaptive windows of the last axis (``tie``/``nan`` as for max pooling).

    Same as ``torch.nn.functional.adaptive_max_pool1d`` by default.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.adaptive_max_pool1d(np.array([[[1., 5., 3., 4., 2.]]]), 2).numpy()
    array([[[5., 4.]]])
    """
    x = _check_input(_layer, input, 1)
    config = dict(output_size=output_size, tie=tie, nan=nan, _name=_layer)
    return _Pool.apply(x, op_forward=ops.adaptive_max_pool1d_forward, op_backward=ops.extremum_pool_backward,
                       config=config, return_indices=bool(return_indices))


def adaptive_max_pool2d(input, output_size, return_indices=False, tie="first", nan="propagate",
                        _layer="adaptive_max_pool2d"):
    """Max over torch's adaptive windows of the last two axes; indices flat per plane like max_pool2d's.

    Same as ``torch.nn.functional.adaptive_max_pool2d`` by default.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.adaptive_max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 1).numpy()
    array([[[[15.]]]])
    """
    x = _check_input(_layer, input, 2)
    config = dict(output_size=output_size, tie=tie, nan=nan, _name=_layer)
    return _Pool.apply(x, op_forward=ops.adaptive_max_pool2d_forward, op_backward=ops.extremum_pool_backward,
                       config=config, return_indices=bool(return_indices))


def adaptive_max_pool3d(input, output_size, return_indices=False, tie="first", nan="propagate",
                        _layer="adaptive_max_pool3d"):
    """Max over torch's adaptive windows of the last three axes; indices flat per volume like max_pool3d's.

    Same as ``torch.nn.functional.adaptive_max_pool3d`` by default.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.adaptive_max_pool3d(np.arange(27.0).reshape(1, 1, 3, 3, 3), 1).numpy().ravel()
    array([26.])
    """
    x = _check_input(_layer, input, 3)
    config = dict(output_size=output_size, tie=tie, nan=nan, _name=_layer)
    return _Pool.apply(x, op_forward=ops.adaptive_max_pool3d_forward, op_backward=ops.extremum_pool_backward,
                       config=config, return_indices=bool(return_indices))


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=True, tie="first", nan="propagate"):
    """``adaptive_max_pool1d`` returning (output, indices)."""
    return adaptive_max_pool1d(input, output_size, True, tie, nan, _layer="adaptive_max_pool1d_with_indices")


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=True, tie="first", nan="propagate"):
    """``adaptive_max_pool2d`` returning (output, indices)."""
    return adaptive_max_pool2d(input, output_size, True, tie, nan, _layer="adaptive_max_pool2d_with_indices")


def adaptive_max_pool3d_with_indices(input, output_size, return_indices=True, tie="first", nan="propagate"):
    """``adaptive_max_pool3d`` returning (output, indices)."""
    return adaptive_max_pool3d(input, output_size, True, tie, nan, _layer="adaptive_max_pool3d_with_indices")


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False, _layer="lp_pool1d"):
    """Power-average pooling (sum over the window of x^p)^(1/p) on the last axis, torch's definition.

    Computed as torch does, ``(sign(s) relu(|s|) k)^(1/p)`` with ``s =
    avg_pool1d(x^p)``: a window whose sum is zero gets gradient 0; p = inf is
    max pooling of |x|. No padding. Same as ``torch.nn.functional.lp_pool1d``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.lp_pool1d(np.array([[[3., 4., 6., 8.]]]), 2, 2).numpy()
    array([[[ 5., 10.]]])
    """
    x = _check_input(_layer, input, 1)
    config = dict(norm_type=norm_type, kernel_size=kernel_size, stride=stride, ceil_mode=ceil_mode, _name=_layer)
    return _Pool.apply(x, op_forward=ops.lp_pool1d_forward, op_backward=ops.lp_pool_backward, config=config)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False, _layer="lp_pool2d"):
    """Power-average pooling (sum over the window of x^p)^(1/p) on the last two axes, torch's definition.

    Same as ``torch.nn.functional.lp_pool2d`` (see ``lp_pool1d`` for the details kept).

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.lp_pool2d(np.full((1, 1, 2, 2), 2.0), 1, 2).numpy()
    array([[[[8.]]]])
    """
    x = _check_input(_layer, input, 2)
    config = dict(norm_type=norm_type, kernel_size=kernel_size, stride=stride, ceil_mode=ceil_mode, _name=_layer)
    return _Pool.apply(x, op_forward=ops.lp_pool2d_forward, op_backward=ops.lp_pool_backward, config=config)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False, _layer="lp_pool3d"):
    """Power-average pooling (sum over the window of x^p)^(1/p) on the last three axes, torch's definition.

    Same as ``torch.nn.functional.lp_pool3d`` (see ``lp_pool1d`` for the details kept).

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.lp_pool3d(np.full((1, 1, 2, 2, 2), 2.0), 1, 2).numpy().ravel()
    array([16.])
    """
    x = _check_input(_layer, input, 3)
    config = dict(norm_type=norm_type, kernel_size=kernel_size, stride=stride, ceil_mode=ceil_mode, _name=_layer)
    return _Pool.apply(x, op_forward=ops.lp_pool3d_forward, op_backward=ops.lp_pool_backward, config=config)


def _unpool(name, input, indices, n, op_forward, kernel_size, stride, padding, output_size):
    x = _check_input(name, input, n)
    index = as_tensor(indices)
    if index.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer indices (as max_pool{n}d returns), got dtype {index.dtype}")
    if index.shape != x.shape:
        raise ValueError(f"{name}: expected indices of the input's shape {x.shape}, got {index.shape}")
    config = dict(kernel_size=kernel_size, stride=stride, padding=padding, output_size=output_size, _name=name)
    return _Unpool.apply(x, index, op_forward=op_forward, config=config)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None, _layer="max_unpool1d"):
    """Partial inverse of max_pool1d: each value goes back to its recorded index, zeros elsewhere.

    Output length ``(L - 1) * stride - 2 * padding + kernel_size`` unless
    ``output_size`` says otherwise. Same as ``torch.nn.functional.max_unpool1d``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> y, idx = F.max_pool1d(np.array([[[1., 3., 2., 5.]]]), 2, return_indices=True)
    >>> F.max_unpool1d(y, idx, 2).numpy()
    array([[[0., 3., 0., 5.]]])
    """
    return _unpool(_layer, input, indices, 1, ops.max_unpool1d_forward, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None, _layer="max_unpool2d"):
    """Partial inverse of max_pool2d: each value goes back to its flat index in its plane, zeros elsewhere.

    Same as ``torch.nn.functional.max_unpool2d``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> y, idx = F.max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2, return_indices=True)
    >>> F.max_unpool2d(y, idx, 2).numpy()[0, 0]
    array([[ 0.,  0.,  0.,  0.],
           [ 0.,  5.,  0.,  7.],
           [ 0.,  0.,  0.,  0.],
           [ 0., 13.,  0., 15.]])
    """
    return _unpool(_layer, input, indices, 2, ops.max_unpool2d_forward, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None, _layer="max_unpool3d"):
    """Partial inverse of max_pool3d: each value goes back to its flat index in its volume, zeros elsewhere.

    Same as ``torch.nn.functional.max_unpool3d``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> y, idx = F.max_pool3d(np.arange(8.0).reshape(1, 1, 2, 2, 2), 2, return_indices=True)
    >>> F.max_unpool3d(y, idx, 2).numpy().ravel()
    array([0., 0., 0., 0., 0., 0., 0., 7.])
    """
    return _unpool(_layer, input, indices, 3, ops.max_unpool3d_forward, kernel_size, stride, padding, output_size)
