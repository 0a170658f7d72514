"""``linear`` and ``dropout``."""
from __future__ import annotations

import warnings

import numpy as np

from normlab._checks import check_float, check_probability, check_same_dtype
from normlab.autograd.function import Function
from normlab.autograd.tensor import Tensor, as_tensor
from normlab.ops import linear as ops
from normlab.random import default_generator

__all__ = ["linear", "dropout", "dropout1d", "dropout2d", "dropout3d"]


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
    def forward(self, x, *, p, generator, mask_dims=None):
        # Inverted dropout: scale survivors by 1/(1-p) so eval needs no change. Channel-wise
        # (Tompson et al., 2015): one draw per entry of the first ``mask_dims`` dims -- (sample,
        # channel), or the channel of one unbatched sample -- shared by the whole feature map.
        mask_shape = x.shape if mask_dims is None else x.shape[:mask_dims] + (1,) * (x.ndim - mask_dims)
        keep = generator.random(mask_shape) >= p
        self.scale = (keep / (1.0 - p)).astype(x.dtype) if p < 1 else np.zeros(mask_shape, dtype=x.dtype)
        return x * self.scale

    def backward(self, g):
        return (g * self.scale,)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    """Zero each element with probability ``p`` in training and scale the rest by 1/(1-p)."""
    return _dropout("dropout", input, p, training, inplace, generator)


def _dropout(name: str, input, p, training: bool, inplace: bool, generator, mask_dims=None):
    p = check_probability(name, "p", p)
    x = as_tensor(input)
    if not training or p == 0.0:
        return x if isinstance(input, Tensor) else Tensor(x._data)
    generator = generator or default_generator()
    if inplace:
        return x._inplace(name, lambda source: _Dropout.apply(source, p=p, generator=generator, mask_dims=mask_dims))
    return _Dropout.apply(x, p=p, generator=generator, mask_dims=mask_dims)


def _channel_dropout(name: str, x: Tensor, p, training: bool, inplace: bool, generator, batched: bool):
    """Channel-wise dropout of (N, C, *) input, or of one unbatched sample (C, *) when not ``batched``."""
    check_float(name, x._data)
    return _dropout(name, x, p, training, inplace, generator, mask_dims=2 if batched else 1)


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    """Zero whole channels of (N, C, L) or (C, L) input with probability ``p``; scale the rest by 1/(1-p)."""
    x = as_tensor(input)
    if x.ndim not in (2, 3):
        raise ValueError(f"dropout1d: expected 2D (C, L) or 3D (N, C, L) input, got {x.ndim}D input of shape "
                         f"{x.shape}")
    return _channel_dropout("dropout1d", x, p, training, inplace, generator, batched=x.ndim == 3)


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    """Zero whole channels of (N, C, H, W) input with probability ``p`` (Tompson et al., 2015).

    As in torch, a 3D input is taken as (N, C, L) (with torch's warning) and
    other ranks as (N, C, *) with a deprecation warning.
    """
    x = as_tensor(input)
    if x.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {x.ndim}-D input to dropout2d, which is deprecated; it exists for "
                      "channel-wise dropout on 3D or 4D inputs. Use dropout instead.", stacklevel=2)
    if x.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "To maintain the 1D channel-wise dropout behavior, please switch to using dropout1d instead.",
                      stacklevel=2)
    if x.ndim < 2:
        raise ValueError(f"dropout2d: expected an input with a channel dimension (N, C, *), got shape {x.shape}")
    return _channel_dropout("dropout2d", x, p, training, inplace, generator, batched=True)


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input with probability ``p``."""
    x = as_tensor(input)
    if x.ndim not in (4, 5):
        warnings.warn(f"dropout3d: Received a {x.ndim}-D input to dropout3d, which is deprecated; it exists for "
                      "channel-wise dropout on 4D or 5D inputs. Use dropout instead.", stacklevel=2)
    # As torch: anything but 5D is one unbatched sample (C, *).
    return _channel_dropout("dropout3d", x, p, training, inplace, generator, batched=x.ndim == 5)
