"""Normalization with torch.nn.functional's names, argument names and defaults.

``batch_norm`` and ``instance_norm`` update ``running_mean``/``running_var``
in place (Tensors or NumPy arrays), as torch does. ``batch_renorm`` is
normlab's own (torch has none). Every argument is checked before anything is
computed or updated; errors name the layer, what it expected and what it got.

>>> import numpy as np, normlab.nn.functional as F
>>> x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
>>> y = F.batch_norm(x, None, None, training=True)
>>> bool(abs(y.numpy().mean(axis=0)).max() < 1e-6)
True
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from normlab._checks import check_float, check_positive_int, check_same_dtype
from normlab.autograd.function import Function, from_op
from normlab.autograd.tensor import Tensor, as_tensor, vector_norm
from normlab.ops import local_response_norm as lrn_ops
from normlab.ops import normalization as ops

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "batch_renorm",
           "local_response_norm", "normalize"]


# ----------------------------------------------------------------------------
# Autograd wrappers of the ops
# ----------------------------------------------------------------------------

class _Normalization(Function):
    """Runs ``ops.<layer>_forward`` (which keeps the input by reference, never the output)."""

    backward_op = None

    def backward(self, dy):
        return type(self).backward_op(dy, self.saved, self.needs_input_grad)


class _BatchNorm(_Normalization):
    backward_op = staticmethod(ops.batch_norm_backward)

    def forward(self, x, weight, bias, *, running_mean, running_var, training, momentum, eps, mask):
        y, self.saved = ops.batch_norm_forward(x, weight, bias, running_mean, running_var, training=training,
                                               eps=eps, mask=mask)
        if training and running_mean is not None:
            saved = self.saved
            ops.update_running_stats(running_mean, running_var, saved.mean, saved.batch_var, saved.count, momentum)
        return y


class _BatchRenorm(_Normalization):
    backward_op = staticmethod(ops.batch_renorm_backward)

    def forward(self, x, weight, bias, *, running_mean, running_var, training, momentum, eps, r_max, d_max):
        y, self.saved = ops.batch_renorm_forward(x, weight, bias, running_mean, running_var, training=training,
                                                 r_max=r_max, d_max=d_max, eps=eps)
        if training:
            saved = self.saved
            ops.update_running_stats(running_mean, running_var, saved.mean, saved.batch_var, saved.count, momentum)
        return y


class _InstanceNorm(_Normalization):
    backward_op = staticmethod(ops.instance_norm_backward)

    def forward(self, x, weight, bias, *, running_mean, running_var, use_input_stats, momentum, eps):
        y, self.saved = ops.instance_norm_forward(x, weight, bias, running_mean, running_var,
                                                  use_input_stats=use_input_stats, eps=eps)
        if use_input_stats and running_mean is not None and x.size > 0:
            saved = self.saved
            instances = (x.shape[0], x.shape[1])  # the update averages the per-instance ones, as torch's
            ops.update_running_stats(running_mean, running_var, saved.mean.reshape(instances),
                                     saved.var.reshape(instances), saved.x2.shape[1], momentum)
        return y


class _LayerNorm(_Normalization):
    backward_op = staticmethod(ops.layer_norm_backward)

    def forward(self, x, weight, bias, *, normalized_ndim, eps):
        y, self.saved = ops.layer_norm_forward(x, weight, bias, normalized_ndim=normalized_ndim, eps=eps)
        return y


class _GroupNorm(_Normalization):
    backward_op = staticmethod(ops.group_norm_backward)

    def forward(self, x, weight, bias, *, num_groups, eps):
        y, self.saved = ops.group_norm_forward(x, weight, bias, num_groups=num_groups, eps=eps)
        return y


class _RMSNorm(_Normalization):
    backward_op = staticmethod(ops.rms_norm_backward)

    def forward(self, x, weight, *, normalized_ndim, eps):
        y, self.saved = ops.rms_norm_forward(x, weight, normalized_ndim=normalized_ndim, eps=eps)
        return y


_LocalResponseNorm = from_op("LocalResponseNorm", lrn_ops.local_response_norm_forward,
                             lrn_ops.local_response_norm_backward)


# ----------------------------------------------------------------------------
# Argument checks (all of them run before any state changes)
# ----------------------------------------------------------------------------

def _shape_text(shape) -> str:
    return str(tuple(int(s) for s in shape))


def _input(layer: str, input, min_ndim: int = 1, layout: str = "") -> Tensor:
    if not isinstance(input, (Tensor, np.ndarray)):
        input = np.asarray(input)
    x = as_tensor(input)
    check_float(layer, x._data)
    if x.ndim < min_ndim:
        raise ValueError(f"{layer}: expected input{layout} with at least {min_ndim} dimensions, "
                         f"got {x.ndim}D input of shape {_shape_text(x.shape)}")
    return x


def _parameter(layer: str, what: str, value, shape, x: Tensor):
    """weight/bias: None, or a float Tensor/array of exactly ``shape`` and the input's dtype."""
    if value is None:
        return None
    value = value if isinstance(value, Tensor) else as_tensor(np.asarray(value))
    check_float(layer, value._data, what)
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{layer}: expected {what} of shape {_shape_text(shape)} for input of shape "
                         f"{_shape_text(x.shape)}, got {what} of shape {_shape_text(value.shape)}")
    check_same_dtype(layer, x._data, **{what: value._data})
    return value


def _running(layer: str, what: str, value, channels: int, x: Tensor):
    """running_mean/running_var: None, or a float Tensor/ndarray of ``channels`` elements, updated in place."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        array = value._data
    elif isinstance(value, np.ndarray):
        array = value
    else:
        raise TypeError(f"{layer}: expected {what} to be a Tensor or a NumPy array (updated in place), "
                        f"got {type(value).__name__}")
    check_float(layer, array, what)
    if array.shape != (channels,):
        raise ValueError(f"{layer}: expected {what} with {channels} elements (one per channel of input of shape "
                         f"{_shape_text(x.shape)}), got {what} of shape {_shape_text(array.shape)}")
    check_same_dtype(layer, x._data, **{what: array})
    if not array.flags.writeable:
        raise ValueError(f"{layer}: {what} is read-only; it must be writable to be updated in place")
    return array


def _float_arg(layer: str, what: str, value, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{layer}: expected {what} to be a real number, got {value!r}")
    if minimum is not None and not value >= minimum:
        raise ValueError(f"{layer}: expected {what} >= {minimum}, got {value!r}")
    return float(value)


def _mask(layer: str, mask, x: Tensor, training: bool):
    """mask: None, or a bool (N, L) array/Tensor for input (N, C, L), with enough valid positions to train on."""
    if mask is None:
        return None
    if isinstance(mask, Tensor):
        mask = mask._data
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{layer}: expected mask to be a bool NumPy array or Tensor of shape (N, L), "
                        f"got {type(mask).__name__}")
    if mask.dtype != np.bool_:
        raise TypeError(f"{layer}: expected mask of dtype bool (True where a position counts), got dtype {mask.dtype}")
    if x.ndim != 3:
        raise ValueError(f"{layer}: a mask needs input (N, C, L), got {x.ndim}D input of shape "
                         f"{_shape_text(x.shape)}")
    expected = (x.shape[0], x.shape[2])
    if mask.shape != expected:
        raise ValueError(f"{layer}: expected mask of shape {_shape_text(expected)} (N, L) for input of shape "
                         f"{_shape_text(x.shape)}, got mask of shape {_shape_text(mask.shape)}")
    if training and x._data.size > 0:
        valid = int(np.count_nonzero(mask))
        if valid < 2:
            raise ValueError(f"{layer}: expected more than 1 valid (unmasked) value per channel when training, "
                             f"got {valid} (mask of shape {_shape_text(mask.shape)})")
    return np.array(mask, order="C")  # a copy: backward must see the mask forward used, whatever the caller does


def check_batch_size(layer: str, shape) -> None:
    """torch's training check: more than one value per channel (N * prod(spatial) > 1)."""
    if shape[0] * math.prod(shape[2:]) == 1:
        raise ValueError(f"{layer}: Expected more than 1 value per channel when training, "
                         f"got input size {_shape_text(shape)}")


def check_spatial_size(layer: str, shape) -> None:
    """torch's instance-norm check: more than one spatial value per (n, c) plane."""
    if math.prod(shape[2:]) == 1:
        raise ValueError(f"{layer}: Expected more than 1 spatial element when training, "
                         f"got input size {_shape_text(shape)}")


def normalized_shape_tuple(layer: str, normalized_shape) -> tuple[int, ...]:
    """An int or a sequence of positive ints as a tuple (torch accepts both)."""
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        shape = (int(normalized_shape),)
    else:
        try:
            shape = tuple(normalized_shape)
        except TypeError:
            raise TypeError(f"{layer}: expected normalized_shape to be an int or a tuple of ints, "
                            f"got {normalized_shape!r}") from None
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape):
            raise TypeError(f"{layer}: expected normalized_shape to be an int or a tuple of ints, "
                            f"got {normalized_shape!r}")
        shape = tuple(int(s) for s in shape)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"{layer}: expected normalized_shape to be a non-empty tuple of positive ints, "
                         f"got {normalized_shape!r}")
    return shape


def _check_trailing(layer: str, x: Tensor, normalized_shape: tuple[int, ...]) -> None:
    if tuple(x.shape[x.ndim - len(normalized_shape):]) != normalized_shape or x.ndim < len(normalized_shape):
        raise ValueError(f"{layer}: expected input whose last {len(normalized_shape)} dimension(s) are "
                         f"{_shape_text(normalized_shape)} (normalized_shape), got input of shape "
                         f"{_shape_text(x.shape)}")


def _check_batch_stats_args(layer, running_mean, running_var, momentum, eps, need_running: bool):
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{layer}: expected running_mean and running_var both given or both None, "
                         f"got running_mean={'None' if running_mean is None else 'given'} and "
                         f"running_var={'None' if running_var is None else 'given'}")
    if need_running and running_mean is None:
        raise ValueError(f"{layer}: running_mean and running_var are required when normalizing with "
                         "running statistics (training=False / use_input_stats=False), got None")
    _float_arg(layer, "momentum", momentum)
    _float_arg(layer, "eps", eps, 0.0)


# ----------------------------------------------------------------------------
# The functions
# ----------------------------------------------------------------------------

def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5, mask=None, _layer: str = "batch_norm"):
    """Batch Normalization (Ioffe & Szegedy, 2015): normalize each channel over (N, *spatial).

    Shapes: input (N, C, *spatial); weight, bias, running_mean, running_var (C,).
    ``training=True`` uses the batch's mean and biased variance and, when
    running stats are given, updates them in place:
    ``new = (1 - momentum) * old + momentum * batch`` (unbiased variance).
    ``training=False`` normalizes with the running statistics. An empty batch
    gives an empty output and leaves the running statistics alone (as torch).

    ``mask`` (normlab's own; torch has none): a bool (N, L) array for input
    (N, C, L), True where a position is real (e.g. not padding of a shorter
    sequence). Batch and running statistics come from those positions only
    (the running variance unbiased over their count); the output is 0 at the
    others, and no gradient flows there.

    >>> import numpy as np, normlab.nn.functional as F
    >>> mean, var = np.zeros(2), np.ones(2)
    >>> x = np.arange(12.0).reshape(3, 2, 2)
    >>> F.batch_norm(x, mean, var, training=True).shape, mean
    ((3, 2, 2), array([0.45, 0.65]))
    >>> mask = np.array([[True, False], [True, True], [False, False]])   # 3 valid positions of 6
    >>> F.batch_norm(x, None, None, training=True, mask=mask).numpy()[2]  # sample 2 is all padding
    array([[0., 0.],
           [0., 0.]])
    """
    x = _input(_layer, input, 2, " (N, C, *)")
    channels = x.shape[1]
    _check_batch_stats_args(_layer, running_mean, running_var, momentum, eps, need_running=not training)
    running_mean = _running(_layer, "running_mean", running_mean, channels, x)
    running_var = _running(_layer, "running_var", running_var, channels, x)
    weight = _parameter(_layer, "weight", weight, (channels,), x)
    bias = _parameter(_layer, "bias", bias, (channels,), x)
    mask = _mask(_layer, mask, x, bool(training))
    if training and mask is None:
        check_batch_size(_layer, x.shape)
    return _BatchNorm.apply(x, weight, bias, running_mean=running_mean, running_var=running_var,
                            training=bool(training), momentum=float(momentum), eps=float(eps), mask=mask)


def batch_renorm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
                 momentum: float = 0.1, eps: float = 1e-5, r_max: float = 3.0, d_max: float = 5.0,
                 _layer: str = "batch_renorm"):
    """Batch Renormalization (Ioffe, 2017): BatchNorm that stays consistent with its running statistics.

    In training, with sigma = sqrt(running_var + eps) and sigma_B = sqrt(batch_var + eps),
    ``r = clip(sigma_B / sigma, 1/r_max, r_max)``, ``d = clip((mu_B - mu) / sigma, -d_max, d_max)``
    (both constants for backward) and ``y = weight * (x_hat * r + d) + bias``; then the
    running statistics are updated exactly as batch_norm's. With ``r_max=1, d_max=0`` this
    is batch_norm; in eval it is batch_norm's eval. normlab's own (torch has none).

    Shapes: input (N, C, *spatial); weight, bias, running_mean, running_var (C,) -- required.

    >>> import numpy as np, normlab.nn.functional as F
    >>> x = np.random.default_rng(0).standard_normal((8, 3))
    >>> y = F.batch_renorm(x, np.zeros(3), np.ones(3), training=True, r_max=1.0, d_max=0.0)
    >>> bool(np.allclose(y.numpy(), F.batch_norm(x, None, None, training=True).numpy()))
    True
    """
    x = _input(_layer, input, 2, " (N, C, *)")
    channels = x.shape[1]
    _check_batch_stats_args(_layer, running_mean, running_var, momentum, eps, need_running=True)
    running_mean = _running(_layer, "running_mean", running_mean, channels, x)
    running_var = _running(_layer, "running_var", running_var, channels, x)
    weight = _parameter(_layer, "weight", weight, (channels,), x)
    bias = _parameter(_layer, "bias", bias, (channels,), x)
    r_max = _float_arg(_layer, "r_max", r_max, 1.0)
    d_max = _float_arg(_layer, "d_max", d_max, 0.0)
    if training:
        check_batch_size(_layer, x.shape)
    return _BatchRenorm.apply(x, weight, bias, running_mean=running_mean, running_var=running_var,
                              training=bool(training), momentum=float(momentum), eps=float(eps),
                              r_max=r_max, d_max=d_max)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5, _layer: str = "instance_norm"):
    """Instance Normalization (Ulyanov et al., 2016): normalize each (n, c) plane over its spatial values.

    Shapes: input (N, C, *spatial); weight, bias, running_mean, running_var (C,).
    With running stats and ``use_input_stats``, each is updated in place with the
    mean over the batch of the per-instance update (as torch). ``use_input_stats=False``
    normalizes with the running statistics.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.instance_norm(np.random.default_rng(0).standard_normal((2, 3, 5))).shape
    (2, 3, 5)
    """
    x = _input(_layer, input, 3, " (N, C, *spatial)")
    channels = x.shape[1]
    _check_batch_stats_args(_layer, running_mean, running_var, momentum, eps, need_running=not use_input_stats)
    running_mean = _running(_layer, "running_mean", running_mean, channels, x)
    running_var = _running(_layer, "running_var", running_var, channels, x)
    weight = _parameter(_layer, "weight", weight, (channels,), x)
    bias = _parameter(_layer, "bias", bias, (channels,), x)
    if use_input_stats:
        check_spatial_size(_layer, x.shape)
    return _InstanceNorm.apply(x, weight, bias, running_mean=running_mean, running_var=running_var,
                               use_input_stats=bool(use_input_stats), momentum=float(momentum), eps=float(eps))


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5, _layer: str = "layer_norm"):
    """Layer Normalization (Ba et al., 2016): normalize over the last ``len(normalized_shape)`` dimensions.

    Shapes: input (*, *normalized_shape); weight, bias ``normalized_shape``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> y = F.layer_norm(np.array([[1.0, 2.0, 3.0]]), 3)
    >>> np.round(y.numpy(), 4)
    array([[-1.2247,  0.    ,  1.2247]])
    """
    shape = normalized_shape_tuple(_layer, normalized_shape)
    x = _input(_layer, input)
    _check_trailing(_layer, x, shape)
    _float_arg(_layer, "eps", eps, 0.0)
    weight = _parameter(_layer, "weight", weight, shape, x)
    bias = _parameter(_layer, "bias", bias, shape, x)
    return _LayerNorm.apply(x, weight, bias, normalized_ndim=len(shape), eps=float(eps))


def rms_norm(input, normalized_shape, weight=None, eps: float | None = None, _layer: str = "rms_norm"):
    """RMS Normalization (Zhang & Sennrich, 2019): x / sqrt(mean(x^2) + eps) * weight over the last dimensions.

    ``eps=None`` is the machine epsilon of the input's dtype (torch's default).
    Shapes: input (*, *normalized_shape); weight ``normalized_shape``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> np.round(F.rms_norm(np.array([[3.0, 4.0]]), 2).numpy(), 4)
    array([[0.8485, 1.1314]])
    """
    shape = normalized_shape_tuple(_layer, normalized_shape)
    x = _input(_layer, input)
    _check_trailing(_layer, x, shape)
    if eps is not None:
        eps = _float_arg(_layer, "eps", eps, 0.0)
    weight = _parameter(_layer, "weight", weight, shape, x)
    return _RMSNorm.apply(x, weight, normalized_ndim=len(shape), eps=eps)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5, _layer: str = "group_norm"):
    """Group Normalization (Wu & He, 2018): normalize each group of C/G channels (with its spatial values).

    Shapes: input (N, C, *spatial) with C divisible by ``num_groups``; weight, bias (C,).

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.group_norm(np.random.default_rng(0).standard_normal((2, 4, 3)), 2).shape
    (2, 4, 3)
    """
    x = _input(_layer, input, 2, " (N, C, *)")
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) or num_groups <= 0:
        raise ValueError(f"{_layer}: expected num_groups to be a positive integer, got {num_groups!r}")
    num_groups = int(num_groups)
    channels = x.shape[1]
    if channels % num_groups:
        raise ValueError(f"{_layer}: expected the number of channels to be divisible by num_groups={num_groups}, "
                         f"got {channels} channels (input of shape {_shape_text(x.shape)})")
    _float_arg(_layer, "eps", eps, 0.0)
    weight = _parameter(_layer, "weight", weight, (channels,), x)
    bias = _parameter(_layer, "bias", bias, (channels,), x)
    # torch's check: (N * C/G) * prod(spatial) must exceed 1
    if (x.shape[0] * channels // num_groups) * math.prod(x.shape[2:]) == 1:
        raise ValueError(f"{_layer}: Expected more than 1 value per channel when training, got input size "
                         f"{[x.shape[0] * channels // num_groups, num_groups] + list(x.shape[2:])}")
    return _GroupNorm.apply(x, weight, bias, num_groups=num_groups, eps=float(eps))


def local_response_norm(input, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0,
                        _layer: str = "local_response_norm"):
    """Local Response Normalization (Krizhevsky et al., 2012): x / (k + alpha * mean of x^2 over nearby channels)^beta.

    The mean runs over a window of ``size`` channels (dim 1) around each
    channel, zero-padded at the edges and always divided by ``size`` (see
    ``normlab.ops.local_response_norm``). Shapes: (N, C, *) -> same.
    Same as ``torch.nn.functional.local_response_norm``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.local_response_norm(np.ones((1, 3, 1)), 3, alpha=3.0, beta=1.0).numpy()[0, :, 0]
    array([0.33333333, 0.25      , 0.33333333])
    """
    x = _input(_layer, input, 3, " (N, C, *)")
    size = check_positive_int(_layer, "size", size)
    alpha, beta, k = (_float_arg(_layer, name, value) for name, value in (("alpha", alpha), ("beta", beta), ("k", k)))
    return _LocalResponseNorm.apply(x, size=size, alpha=alpha, beta=beta, k=k)


def normalize(input, p: float = 2.0, dim=1, eps: float = 1e-12):
    """Divide by the p-norm along ``dim``: x / max(||x||_p, eps) (e.g. unit-length embedding vectors).

    torch's definition, built the same way (``vector_norm``, clamped below at
    ``eps``, then a division), so values and gradients are torch's: where the
    norm is below ``eps`` the divisor is constant and x only scales by 1/eps.
    ``dim`` is an int or a tuple of ints. Same as ``torch.nn.functional.normalize``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.normalize(np.array([[3.0, 4.0], [0.0, 0.0]])).numpy()
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    x = _input("normalize", input)
    p, eps = _float_arg("normalize", "p", p), _float_arg("normalize", "eps", eps)
    ndim = max(x.ndim, 1)
    for d in (dim,) if isinstance(dim, numbers.Integral) else dim:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or not -ndim <= d < ndim:
            raise IndexError(f"normalize: dim {dim!r} is out of range for a {x.ndim}D input")
    return x / vector_norm(x, p, dim, keepdim=True).clamp_min(eps)
