"""Activations with torch.nn.functional's names and defaults."""
from __future__ import annotations

import numbers
import warnings

from normlab._checks import check_float, check_same_dtype
from normlab.autograd import activations as A
from normlab.autograd.function import from_op
from normlab.autograd.tensor import as_tensor
from normlab.ops import activation as ops

__all__ = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "silu", "softplus", "gelu",
           "softmax", "log_softmax", "mish", "hardswish", "hardsigmoid", "softsign", "tanhshrink", "prelu",
           "hardtanh", "relu6", "logsigmoid", "threshold", "glu"]

_Mish = from_op("Mish", ops.mish_forward, ops.mish_backward)
_Hardswish = from_op("Hardswish", ops.hardswish_forward, ops.hardswish_backward)
_Hardsigmoid = from_op("Hardsigmoid", ops.hardsigmoid_forward, ops.hardsigmoid_backward)
_Softsign = from_op("Softsign", ops.softsign_forward, ops.softsign_backward)
_Tanhshrink = from_op("Tanhshrink", ops.tanhshrink_forward, ops.tanhshrink_backward)
_PReLU = from_op("PReLU", ops.prelu_forward, ops.prelu_backward)
_Hardtanh = from_op("Hardtanh", ops.hardtanh_forward, ops.hardtanh_backward)
_Threshold = from_op("Threshold", ops.threshold_forward, ops.threshold_backward)
_LogSigmoid = from_op("LogSigmoid", ops.logsigmoid_forward, ops.logsigmoid_backward)
_GLU = from_op("GLU", ops.glu_forward, ops.glu_backward)


def _real(name: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {arg} to be a real number, got {value!r}")
    return float(value)


def _float_input(name: str, input):
    x = as_tensor(input)
    check_float(name, x._data)
    return x


def _activate(function, input, inplace: bool, name: str, **config):
    """``function`` applied to ``input``; with ``inplace`` the result is written into the input (torch's rules:
    refused on a leaf that requires grad, recorded for backward, the input's version is bumped)."""
    x = as_tensor(input)
    if inplace:
        return x._inplace(name, lambda source: function.apply(source, **config))
    return function.apply(x, **config)


def sigmoid(input):
    """1 / (1 + exp(-x)), computed without overflow."""
    return A.Sigmoid.apply(as_tensor(input))


def tanh(input):
    return A.Tanh.apply(as_tensor(input))


def relu(input, inplace: bool = False):
    """max(x, 0); with ``inplace=True`` the result overwrites ``input`` (as torch)."""
    return _activate(A.ReLU, input, inplace, "relu")


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    return _activate(A.LeakyReLU, input, inplace, "leaky_relu", negative_slope=float(negative_slope))


def elu(input, alpha: float = 1.0, inplace: bool = False):
    return _activate(A.ELU, input, inplace, "elu", alpha=float(alpha))


def selu(input, inplace: bool = False):
    return _activate(A.SELU, input, inplace, "selu")


def silu(input, inplace: bool = False):
    return _activate(A.SiLU, input, inplace, "silu")


def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    return A.Softplus.apply(as_tensor(input), beta=float(beta), threshold=float(threshold))


def gelu(input, approximate: str = "none"):
    """x * Phi(x) (exact, via erf) or its tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: expected approximate to be 'none' or 'tanh', got {approximate!r}")
    return A.GELU.apply(as_tensor(input), approximate=approximate)


def _softmax_dim(name: str, ndim: int, dim):
    if dim is None:
        # torch's legacy rule, with its warning
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                      "Change the call to include dim=X as an argument.", stacklevel=3)
        return 0 if ndim in (0, 1, 3) else 1
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{name}: dim {dim} is out of range for a {ndim}D input")
    return dim % max(ndim, 1)


def softmax(input, dim=None, dtype=None):
    x = as_tensor(input)
    if dtype is not None:
        x = x.astype(dtype)
    return A.Softmax.apply(x, dim=_softmax_dim("softmax", x.ndim, dim))


def log_softmax(input, dim=None, dtype=None):
    x = as_tensor(input)
    if dtype is not None:
        x = x.astype(dtype)
    return A.LogSoftmax.apply(x, dim=_softmax_dim("log_softmax", x.ndim, dim))


def mish(input, inplace: bool = False):
    """x tanh(softplus(x)) (Misra, 2019)."""
    return _activate(_Mish, input, inplace, "mish")


def hardswish(input, inplace: bool = False):
    """x relu6(x + 3) / 6 (Howard et al., 2019)."""
    return _activate(_Hardswish, input, inplace, "hardswish")


def hardsigmoid(input, inplace: bool = False):
    """relu6(x + 3) / 6."""
    return _activate(_Hardsigmoid, input, inplace, "hardsigmoid")


def softsign(input):
    """x / (1 + |x|)."""
    return _Softsign.apply(as_tensor(input))


def tanhshrink(input):
    """x - tanh(x)."""
    return _Tanhshrink.apply(as_tensor(input))


def prelu(input, weight):
    """x if x > 0 else weight[c] x, with c the channel (dim 1); a one-element weight is shared by every channel."""
    x, w = as_tensor(input), as_tensor(weight)
    check_float("prelu", x._data)
    check_same_dtype("prelu", x._data, weight=w._data)
    if w.ndim != 1:
        raise ValueError(f"prelu: expected a 1D weight, got shape {w.shape}")
    if w.shape[0] != 1:
        channels = x.shape[1] if x.ndim >= 2 else 1
        if channels != w.shape[0]:
            raise ValueError(f"prelu: expected input with {w.shape[0]} channels (dim 1) to match the weight, "
                             f"got shape {x.shape}")
    return _PReLU.apply(x, w)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False, _layer: str = "hardtanh"):
    """min(max(x, min_val), max_val): the identity inside, flat (gradient 0) from each bound outwards.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.hardtanh(np.array([-2.0, 0.5, 3.0])).numpy()
    array([-1. ,  0.5,  1. ])
    """
    min_val, max_val = _real(_layer, "min_val", min_val), _real(_layer, "max_val", max_val)
    if min_val > max_val:
        raise ValueError(f"{_layer}: expected min_val <= max_val, got min_val={min_val} and max_val={max_val}")
    x = _float_input(_layer, input)
    return _activate(_Hardtanh, x, inplace, _layer, min_val=min_val, max_val=max_val)


def relu6(input, inplace: bool = False):
    """min(max(x, 0), 6) = hardtanh(x, 0, 6) (Krizhevsky, 2010; MobileNet's activation).

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.relu6(np.array([-1.0, 3.0, 8.0])).numpy()
    array([0., 3., 6.])
    """
    return hardtanh(input, 0.0, 6.0, inplace, _layer="relu6")


def logsigmoid(input):
    """log(1 / (1 + e^-x)) = -softplus(-x), computed without overflow; its slope 1 - sigmoid(x) is in (0, 1).

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.logsigmoid(np.array([0.0, -100.0])).numpy().round(4)
    array([  -0.6931, -100.    ])
    """
    return _LogSigmoid.apply(_float_input("logsigmoid", input))


def threshold(input, threshold: float, value: float, inplace: bool = False, _layer: str = "threshold"):
    """x where x > threshold, else ``value`` (the gradient is 0 where x was replaced).

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.threshold(np.array([-1.0, 0.5, 2.0]), 1.0, 20.0).numpy()
    array([20., 20.,  2.])
    """
    threshold, value = _real(_layer, "threshold", threshold), _real(_layer, "value", value)
    x = _float_input(_layer, input)
    return _activate(_Threshold, x, inplace, _layer, threshold=threshold, value=value)


def glu(input, dim: int = -1):
    """Gated linear unit a * sigmoid(b), a and b the two halves of the input along ``dim`` (Dauphin et al., 2017).

    Shapes: (*, 2M, *) -> (*, M, *), the halved axis being ``dim``.

    >>> import numpy as np, normlab.nn.functional as F
    >>> F.glu(np.array([[2.0, 4.0, 0.0, 100.0]])).numpy()
    array([[1., 4.]])
    """
    x = _float_input("glu", input)
    if x.ndim == 0:
        raise ValueError("glu: expected an input with at least one dimension to halve, got a 0-d input")
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not -x.ndim <= dim < x.ndim:
        raise IndexError(f"glu: dim {dim!r} is out of range for a {x.ndim}D input")
    if x.shape[dim] % 2:
        raise ValueError(f"glu: expected an even size along dim {dim} to halve, got size {x.shape[dim]} "
                         f"(input of shape {tuple(x.shape)})")
    return _GLU.apply(x, dim=int(dim) % x.ndim)
