"""Weight initialisation with torch.nn.init's names, formulas and defaults.

Why it matters for trainability: a layer multiplies the variance of its input
by ``fan * Var(w) * gain^-2``-ish factors; He (Kaiming) init picks
``Var(w) = gain^2 / fan`` so that the product stays near 1 through depth,
Xavier (Glorot) the compromise ``2 / (fan_in + fan_out)`` for both passes.

Every function fills its argument in place (a Tensor or an ndarray) and
returns it; random draws come from ``normlab.random`` (``manual_seed``) or
the ``generator`` given.

>>> import normlab, normlab.nn as nn
>>> w = normlab.zeros(64, 32)
>>> _ = nn.init.kaiming_normal_(w, nonlinearity="relu")
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from normlab.autograd.tensor import Tensor
from normlab.random import default_generator

__all__ = [
    "calculate_gain", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
    "orthogonal_", "zeros_", "ones_", "constant_", "normal_", "uniform_", "trunc_normal_", "eye_",
]


def _array(tensor) -> np.ndarray:
    if isinstance(tensor, Tensor):
        return tensor._data
    if isinstance(tensor, np.ndarray):
        return tensor
    raise TypeError(f"init: expected a Tensor or ndarray, got {type(tensor).__name__}")


def _fill(tensor, values):
    """Write ``values`` into ``tensor`` in place (outside autograd, as torch's init runs under no_grad)."""
    target = _array(tensor)
    target[...] = values
    if isinstance(tensor, Tensor):
        tensor._bump_version()
    return tensor


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for ``nonlinearity`` (torch's table)."""
    linear_like = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                   "conv_transpose3d", "sigmoid")
    if nonlinearity in linear_like:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fan_in_and_fan_out(array: np.ndarray) -> tuple[int, int]:
    if array.ndim < 2:
        raise ValueError(
            f"init: fan in and fan out can not be computed for a tensor with fewer than 2 dimensions, got shape {array.shape}"
        )
    receptive_field = int(np.prod(array.shape[2:])) if array.ndim > 2 else 1
    return array.shape[1] * receptive_field, array.shape[0] * receptive_field


def _fan(array: np.ndarray, mode: str) -> int:
    # torch lower-cases the mode, so "FAN_OUT" is accepted there too.
    mode = mode.lower() if isinstance(mode, str) else mode
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode {mode!r} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _fan_in_and_fan_out(array)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    array = _array(tensor)
    rng = generator or default_generator()
    return _fill(tensor, rng.uniform(a, b, size=array.shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    array = _array(tensor)
    rng = generator or default_generator()
    return _fill(tensor, rng.normal(mean, std, size=array.shape))


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator=None):
    """Normal(mean, std) redrawn until inside [a, b] (rejection sampling)."""
    array = _array(tensor)
    rng = generator or default_generator()
    values = rng.normal(mean, std, size=array.size)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = rng.normal(mean, std, size=int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values.reshape(array.shape))


def constant_(tensor, val: float):
    return _fill(tensor, val)


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def eye_(tensor):
    array = _array(tensor)
    if array.ndim != 2:
        raise ValueError(f"eye_: expected a 2D tensor, got shape {array.shape}")
    return _fill(tensor, np.eye(*array.shape))


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fan_in_and_fan_out(_array(tensor))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fan_in_and_fan_out(_array(tensor))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015)."""
    array = _array(tensor)
    if 0 in array.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(array, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """N(0, std^2) with std = gain / sqrt(fan) (He et al., 2015)."""
    array = _array(tensor)
    if 0 in array.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(array, mode))
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor, gain: float = 1.0, generator=None):
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian (Saxe et al., 2013)."""
    array = _array(tensor)
    if array.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, got shape {array.shape}")
    if array.size == 0:
        return tensor
    rows = array.shape[0]
    cols = array.size // rows
    rng = generator or default_generator()
    flat = rng.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    # Make the decomposition unique (and Q uniformly distributed): sign-fix by diag(R).
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(array.shape))
