"""Activations with torch.nn.functional's names and defaults."""
from __future__ import annotations

import warnings

from normlab._checks import check_float, check_same_dtype
from normlab.autograd import activations as A
from normlab.autograd.function import from_op
from normlab.autograd.tensor import as_tensor
from normlab.ops import activation as ops

__all__ = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "silu", "softplus", "gelu",
           "softmax", "log_softmax", "mish", "hardswish", "hardsigmoid", "softsign", "tanhshrink", "prelu"]

_Mish = from_op("Mish", ops.mish_forward, ops.mish_backward)
_Hardswish = from_op("Hardswish", ops.hardswish_forward, ops.hardswish_backward)
_Hardsigmoid = from_op("Hardsigmoid", ops.hardsigmoid_forward, ops.hardsigmoid_backward)
_Softsign = from_op("Softsign", ops.softsign_forward, ops.softsign_backward)
_Tanhshrink = from_op("Tanhshrink", ops.tanhshrink_forward, ops.tanhshrink_backward)
_PReLU = from_op("PReLU", ops.prelu_forward, ops.prelu_backward)


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
