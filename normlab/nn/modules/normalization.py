"""Normalization layers: thin holders of parameters and running statistics around ``nn.functional``.

Same constructor signatures, parameter names, buffer names, default
initialisation and ``extra_repr`` as torch (``BatchRenorm1d/2d`` are
normlab's own). Beyond torch: a call that fails changes no state -- every
check runs before ``num_batches_tracked`` or the running statistics move.
"""
from __future__ import annotations

import warnings

import numpy as np

from normlab._checks import check_float, check_ndim, check_positive_int
from normlab.autograd.tensor import Tensor, as_tensor, get_default_dtype
from normlab.nn import init
from normlab.nn.functional.normalization import (
    batch_norm,
    batch_renorm,
    check_spatial_size,
    group_norm,
    instance_norm,
    layer_norm,
    local_response_norm,
    normalized_shape_tuple,
    rms_norm,
)
from normlab.nn.modules.module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d",
           "RMSNorm", "BatchRenorm1d", "BatchRenorm2d", "BatchNorm3d", "InstanceNorm3d", "LocalResponseNorm"]


def _dtype(dtype) -> np.dtype:
    return np.dtype(dtype or get_default_dtype())


def _as_input(input) -> Tensor:
    return as_tensor(input if isinstance(input, (Tensor, np.ndarray)) else np.asarray(input))


def _register_affine(module: Module, shape, affine: bool, bias: bool, dtype) -> None:
    """Register ``weight`` (and ``bias`` unless ``bias=False``) of ``shape`` when ``affine``, else None (torch's names)."""
    dtype = _dtype(dtype)
    module.register_parameter("weight", Parameter(np.empty(shape, dtype=dtype)) if affine else None)
    module.register_parameter("bias", Parameter(np.empty(shape, dtype=dtype)) if affine and bias else None)


def _reset_affine(module: Module) -> None:
    """weight = 1, bias = 0: the identity affine map, torch's initialisation."""
    if module.weight is not None:
        init.ones_(module.weight)
    if getattr(module, "bias", None) is not None:
        init.zeros_(module.bias)


class _NormBase(Module):
    """Shared state of BatchNorm and InstanceNorm: weight, bias and the running statistics."""

    _input_ndims: tuple[int, ...] = ()
    _layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = check_positive_int(name, "num_features", num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _register_affine(self, num_features, affine, bias, dtype)
        dtype = _dtype(dtype)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0 (in place)."""
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0

    def reset_parameters(self) -> None:
        """Reset the running statistics; weight = 1, bias = 0."""
        self.reset_running_stats()
        _reset_affine(self)

    def _check_input(self, x: Tensor) -> None:
        """Every check that can fail, before any state changes."""
        name = type(self).__name__
        check_float(name, x._data)
        check_ndim(name, x._data, self._input_ndims, layout=self._layout)

    def _check_channels(self, x: Tensor, dim: int = 1) -> None:
        if x.shape[dim] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected input with {self.num_features} channels "
                             f"(num_features) at dim {dim}, got {x.shape[dim]} channels "
                             f"(input of shape {tuple(x.shape)})")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        self._check_channels(x)

    def _counts_batches(self) -> bool:
        return self.training and self.track_running_stats

    def _factor(self) -> float:
        """This batch's running-stat factor: momentum, or 1/(batches tracked, this one included) when it is None.

        The batch is counted (``_count_batch``) only once the call succeeded, so
        a failed call leaves ``num_batches_tracked`` alone (torch counts first).
        """
        if self.momentum is not None:
            return self.momentum
        return 1.0 / float(self.num_batches_tracked._data + 1) if self._counts_batches() else 0.0

    def _count_batch(self) -> None:
        if self._counts_batches():
            self.num_batches_tracked._data[...] += 1

    def _running_args(self):
        # Buffers are handed over only when they are used: updated (training and tracked) or
        # read (eval). Without tracking, batch statistics normalize in eval too.
        use = not self.training or self.track_running_stats
        running_mean = self.running_mean._data if use and self.running_mean is not None else None
        running_var = self.running_var._data if use and self.running_var is not None else None
        return running_mean, running_var

    def forward(self, input, mask=None):
        x = _as_input(input)
        self._check_input(x)
        running_mean, running_var = self._running_args()
        use_batch_stats = self.training or running_mean is None
        y = batch_norm(x, running_mean, running_var, self.weight, self.bias, use_batch_stats, self._factor(),
                       self.eps, mask, _layer=type(self).__name__)
        self._count_batch()
        return y


class BatchNorm1d(_BatchNorm):
    """Batch Normalization (Ioffe & Szegedy, 2015) over a 2D (N, C) or 3D (N, C, L) input.

    Same as ``torch.nn.BatchNorm1d``. Training normalizes each channel with the
    batch's mean and biased variance and updates ``running_mean``/``running_var``
    (unbiased) with ``momentum`` (``None``: cumulative average); eval uses them.

    ``bn(x, mask=m)`` (normlab's own) for x (N, C, L) and a bool m (N, L): the
    statistics, running ones included, come from the positions where m is True
    only (padding of shorter sequences is left out); the output is 0 and
    passes no gradient at the others. See ``F.batch_norm``.

    Shapes: (N, C) or (N, C, L) -> same shape; mask (N, L).

    >>> import numpy as np, normlab, normlab.nn as nn
    >>> bn = nn.BatchNorm1d(3)
    >>> bn(normlab.randn(8, 3)).shape, int(bn.num_batches_tracked.item())
    ((8, 3), 1)
    >>> lengths = np.array([5, 2])                       # two sequences padded to L = 5
    >>> mask = np.arange(5) < lengths[:, None]
    >>> bn(normlab.randn(2, 3, 5), mask=mask).shape
    (2, 3, 5)
    """

    _input_ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch Normalization (Ioffe & Szegedy, 2015) over a 4D (N, C, H, W) input.

    Same as ``torch.nn.BatchNorm2d``: statistics per channel over (N, H, W).

    >>> import normlab, normlab.nn as nn
    >>> nn.BatchNorm2d(3)(normlab.randn(2, 3, 4, 4)).shape
    (2, 3, 4, 4)
    """

    _input_ndims = (4,)
    _layout = "(N, C, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch Normalization (Ioffe & Szegedy, 2015) over a 5D (N, C, D, H, W) input.

    Same as ``torch.nn.BatchNorm3d``: statistics per channel over (N, D, H, W).

    >>> import normlab, normlab.nn as nn
    >>> nn.BatchNorm3d(3)(normlab.randn(2, 3, 2, 4, 4)).shape
    (2, 3, 2, 4, 4)
    """

    _input_ndims = (5,)
    _layout = "(N, C, D, H, W)"


class _BatchRenorm(_BatchNorm):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, r_max: float = 3.0,
                 d_max: float = 5.0, affine: bool = True, device=None, dtype=None, *, bias: bool = True) -> None:
        # plain attributes: a schedule may relax them between steps (the paper starts at 1 and 0)
        self.r_max = r_max
        self.d_max = d_max
        super().__init__(num_features, eps, momentum, affine, True, device, dtype, bias=bias)

    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        name = type(self).__name__
        for what, value, minimum in (("r_max", self.r_max, 1.0), ("d_max", self.d_max, 0.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value >= minimum:
                raise ValueError(f"{name}: expected {what} >= {minimum}, got {value!r}")

    def forward(self, input):
        x = _as_input(input)
        self._check_input(x)
        y = batch_renorm(x, self.running_mean._data, self.running_var._data, self.weight, self.bias,
                         self.training, self._factor(), self.eps, self.r_max, self.d_max, _layer=type(self).__name__)
        self._count_batch()
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, r_max={self.r_max}, "
                f"d_max={self.d_max}, affine={self.affine}, bias={self.bias is not None}")


class BatchRenorm1d(_BatchRenorm):
    """Batch Renormalization (Ioffe, 2017) over (N, C) or (N, C, L); normlab's own.

    Training: ``y = weight * (x_hat * r + d) + bias`` with
    ``r = clip(sigma_B / sigma, 1/r_max, r_max)`` and ``d = clip((mu_B - mu) / sigma, -d_max, d_max)``
    computed from the batch and the running statistics, held constant in backward.
    ``r_max``/``d_max`` are plain attributes (set them between steps to relax a schedule);
    with 1 and 0 the layer is BatchNorm1d. Buffers and eval exactly as BatchNorm1d.

    >>> import normlab, normlab.nn as nn
    >>> layer = nn.BatchRenorm1d(3, r_max=1.0, d_max=0.0)
    >>> layer(normlab.randn(8, 3)).shape
    (8, 3)
    >>> layer.r_max, layer.d_max = 2.0, 1.0   # relax the clipping for the next steps
    """

    _input_ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchRenorm2d(_BatchRenorm):
    """Batch Renormalization (Ioffe, 2017) over (N, C, H, W); normlab's own. See ``BatchRenorm1d``.

    >>> import normlab, normlab.nn as nn
    >>> nn.BatchRenorm2d(3)(normlab.randn(2, 3, 4, 4)).shape
    (2, 3, 4, 4)
    """

    _input_ndims = (4,)
    _layout = "(N, C, H, W)"


class _InstanceNorm(_NormBase):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input):
        x = _as_input(input)
        self._check_input(x)
        name = type(self).__name__
        unbatched = x.ndim == self._input_ndims[0]
        feature_dim = 0 if unbatched else 1
        if x.shape[feature_dim] != self.num_features:
            if self.affine or self.track_running_stats:
                self._check_channels(x, feature_dim)
            # torch only warns here: without affine or running stats num_features is unused
            warnings.warn(f"{name}: input's size at dim={feature_dim} does not match num_features "
                          f"({self.num_features}); it is unused because affine=False", stacklevel=2)
        use_input_stats = self.training or not self.track_running_stats
        batched_shape = (1,) + x.shape if unbatched else x.shape
        if use_input_stats:
            check_spatial_size(name, batched_shape)
        if unbatched:
            x = x.reshape(batched_shape)
        running_mean = self.running_mean._data if self.running_mean is not None else None
        running_var = self.running_var._data if self.running_var is not None else None
        # torch: momentum None means 0.0 here (no cumulative average), and num_batches_tracked never moves
        y = instance_norm(x, running_mean, running_var, self.weight, self.bias, use_input_stats,
                          self.momentum if self.momentum is not None else 0.0, self.eps, _layer=name)
        return y.reshape(y.shape[1:]) if unbatched else y


class InstanceNorm1d(_InstanceNorm):
    """Instance Normalization (Ulyanov et al., 2016) over (N, C, L) or unbatched (C, L).

    Same as ``torch.nn.InstanceNorm1d``: each (n, c) row is normalized over L.
    Defaults: ``affine=False``, ``track_running_stats=False``.

    >>> import normlab, normlab.nn as nn
    >>> nn.InstanceNorm1d(3)(normlab.randn(2, 3, 5)).shape
    (2, 3, 5)
    """

    _input_ndims = (2, 3)
    _layout = "(C, L) or (N, C, L)"


class InstanceNorm2d(_InstanceNorm):
    """Instance Normalization (Ulyanov et al., 2016) over (N, C, H, W) or unbatched (C, H, W).

    Same as ``torch.nn.InstanceNorm2d``: each (n, c) plane is normalized over (H, W).

    >>> import normlab, normlab.nn as nn
    >>> nn.InstanceNorm2d(3, affine=True)(normlab.randn(2, 3, 4, 4)).shape
    (2, 3, 4, 4)
    """

    _input_ndims = (3, 4)
    _layout = "(C, H, W) or (N, C, H, W)"


class InstanceNorm3d(_InstanceNorm):
    """Instance Normalization (Ulyanov et al., 2016) over (N, C, D, H, W) or unbatched (C, D, H, W).

    Same as ``torch.nn.InstanceNorm3d``: each (n, c) volume is normalized over (D, H, W).

    >>> import normlab, normlab.nn as nn
    >>> nn.InstanceNorm3d(3)(normlab.randn(2, 3, 2, 4, 4)).shape
    (2, 3, 2, 4, 4)
    """

    _input_ndims = (4, 5)
    _layout = "(C, D, H, W) or (N, C, D, H, W)"


class LayerNorm(Module):
    """Layer Normalization (Ba et al., 2016) over the last dimensions, given by ``normalized_shape``.

    Same as ``torch.nn.LayerNorm``. Shapes: (*, *normalized_shape) -> same;
    weight (ones) and bias (zeros) have shape ``normalized_shape``.

    >>> import normlab, normlab.nn as nn
    >>> nn.LayerNorm(4)(normlab.randn(2, 3, 4)).shape
    (2, 3, 4)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.normalized_shape = normalized_shape_tuple("LayerNorm", normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _register_affine(self, self.normalized_shape, elementwise_affine, bias, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps, _layer="LayerNorm")

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    """RMS Normalization (Zhang & Sennrich, 2019): x / sqrt(mean(x^2) + eps) * weight over ``normalized_shape``.

    Same as ``torch.nn.RMSNorm``; ``eps=None`` is the input dtype's machine epsilon.

    >>> import normlab, normlab.nn as nn
    >>> nn.RMSNorm([3, 4])(normlab.randn(2, 3, 4)).shape
    (2, 3, 4)
    """

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.normalized_shape = normalized_shape_tuple("RMSNorm", normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        weight = Parameter(np.empty(self.normalized_shape, dtype=_dtype(dtype))) if elementwise_affine else None
        self.register_parameter("weight", weight)  # RMSNorm has no bias
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        return rms_norm(input, self.normalized_shape, self.weight, self.eps, _layer="RMSNorm")

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Group Normalization (Wu & He, 2018): normalize each group of ``num_channels / num_groups`` channels.

    Same as ``torch.nn.GroupNorm``. Shapes: (N, C, *) -> same; weight (ones)
    and bias (zeros) have shape (C,). ``num_groups=1`` is LayerNorm over
    (C, *) with per-channel affine; ``num_groups=C`` is InstanceNorm.

    >>> import normlab, normlab.nn as nn
    >>> nn.GroupNorm(2, 4)(normlab.randn(2, 4, 3, 3)).shape
    (2, 4, 3, 3)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        num_groups = check_positive_int("GroupNorm", "num_groups", num_groups)
        num_channels = check_positive_int("GroupNorm", "num_channels", num_channels)
        if num_channels % num_groups != 0:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _register_affine(self, num_channels, affine, bias, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        x = _as_input(input)
        if x.ndim >= 2 and x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected input with {self.num_channels} channels (num_channels) at dim 1, "
                             f"got {x.shape[1]} channels (input of shape {tuple(x.shape)})")
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps, _layer="GroupNorm")

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LocalResponseNorm(Module):
    """Local Response Normalization (Krizhevsky et al., 2012, AlexNet): each value over its channel neighbours' energy.

    y_c = x_c / (k + alpha / size * sum of x_c'^2 over ``size`` channels around c)^beta.
    Same as ``torch.nn.LocalResponseNorm``. Shapes: (N, C, *) -> same. No
    parameters or buffers: a fixed rule, the normalization BatchNorm displaced.

    >>> import normlab, normlab.nn as nn
    >>> nn.LocalResponseNorm(5)(normlab.randn(2, 8, 6, 6)).shape
    (2, 8, 6, 6)
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size = check_positive_int("LocalResponseNorm", "size", size)
        self.alpha, self.beta, self.k = alpha, beta, k

    def forward(self, input):
        return local_response_norm(input, self.size, self.alpha, self.beta, self.k, _layer="LocalResponseNorm")

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
