"""``linear`` and ``dropout``."""
from __future__ import annotations

import numpy as np

from normlab._checks import check_float, check_probability, check_same_dtype
from normlab.autograd.function import Function
from normlab.autograd.tensor import Tensor, as_tensor
from normlab.ops import linear as ops
from normlab.random import default_generator

__all__ = ["linear", "dropout"]


class _Linear(Function):
    def forward(self, x, weight, bias=None):
        y, self.saved = ops.linear_forward(x, weight, bias)
        return y

    def backward(self, dy):
        return ops.linear_backward(dy, self.saved, self.needs_input_grad)


def linear(input, weight, bias=None, _layer: str = "linear"):
    """y = x W^T + b, with W of shape (out_features, in_features)."""
    x, w = as_tensor(input), as_tensor(weight)
    check_float(_layer, x._data)
    if w.ndim != 2:
        raise ValueError(f"{_layer}: expected a 2D weight (out_features, in_features), got shape {w.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"{_layer}: expected input with last dimension {w.shape[1]} (in_features), got shape {x.shape}"
        )
    if bias is not None:
        bias = as_tensor(bias)
        if bias.shape != (w.shape[0],):
            raise ValueError(f"{_layer}: expected bias of shape ({w.shape[0]},), got {bias.shape}")
    check_same_dtype(_layer, x._data, weight=w._data, bias=None if bias is None else bias._data)
    return _Linear.apply(x, w, bias)


class _Dropout(Function):
    def forward(self, x, *, p, generator):
        # Inverted dropout: scale survivors by 1/(1-p) so eval needs no change.
        keep = generator.random(x.shape) >= p
        self.scale = (keep / (1.0 - p)).astype(x.dtype) if p < 1 else np.zeros(x.shape, dtype=x.dtype)
        return x * self.scale

    def backward(self, g):
        return (g * self.scale,)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    """Zero each element with probability ``p`` in training and scale the rest by 1/(1-p)."""
    p = check_probability("dropout", "p", p)
    x = as_tensor(input)
    if not training or p == 0.0:
        return x if isinstance(input, Tensor) else Tensor(x._data)
    generator = generator or default_generator()
    if inplace:
        return x._inplace("dropout", lambda source: _Dropout.apply(source, p=p, generator=generator))
    return _Dropout.apply(x, p=p, generator=generator)
