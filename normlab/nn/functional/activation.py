"""Activations with torch.nn.functional's names and defaults."""
from __future__ import annotations

import warnings

from normlab.autograd import activations as A
from normlab.autograd.tensor import as_tensor

__all__ = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "silu", "softplus", "gelu",
           "softmax", "log_softmax"]


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
