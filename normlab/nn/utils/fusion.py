"""Fold an eval-mode BatchNorm into the Conv or Linear before it, as torch's ``nn.utils.fusion``.

In eval mode BatchNorm is an affine map per channel c with fixed numbers:

    y = gamma * (z - running_mean) / sqrt(running_var + eps) + beta,   z = W x + b

so with s = gamma / sqrt(running_var + eps) the pair is one layer:

    W' = s * W  (each output channel's weights scaled),   b' = s * (b - running_mean) + beta.

Inference then costs one layer instead of two. Only valid for running
statistics: in training BN uses the batch's, which change every step.

>>> import normlab, normlab.nn as nn
>>> conv, bn = nn.Conv2d(3, 4, 3).eval(), nn.BatchNorm2d(4).eval()
>>> fused = nn.utils.fuse_conv_bn_eval(conv, bn)
>>> x = normlab.randn(2, 3, 8, 8)
>>> bool(normlab.allclose(fused(x), bn(conv(x)), atol=1e-5))
True
"""
from __future__ import annotations

import copy

import numpy as np

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights"]


def _array(value):
    return None if value is None else np.asarray(getattr(value, "_data", value))


def _scale(bn_rm, bn_rv, bn_eps, bn_w):
    """s = gamma / sqrt(running_var + eps), in the running statistics' dtype."""
    rv = _array(bn_rv)
    w = np.ones_like(rv) if bn_w is None else _array(bn_w)
    return w / np.sqrt(rv + bn_eps)


def _bias(b, bn_rm, scale, bn_b):
    """b' = s * (b - running_mean) + beta (b and beta zero when absent)."""
    rm = _array(bn_rm)
    b = np.zeros_like(rm) if b is None else _array(b)
    beta = np.zeros_like(rm) if bn_b is None else _array(bn_b)
    return (b - rm) * scale + beta


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b, transpose: bool = False):
    """(W', b') as Parameters for a Conv (or ConvTranspose, ``transpose=True``: channels on dim 1)."""
    from normlab.nn.modules.module import Parameter

    w = _array(conv_w)
    scale = _scale(bn_rm, bn_rv, bn_eps, bn_w)
    shape = [1] * w.ndim
    shape[1 if transpose else 0] = -1
    fused_w = (w * scale.reshape(shape)).astype(w.dtype)
    fused_b = _bias(conv_b, bn_rm, scale, bn_b).astype(w.dtype)
    return Parameter(fused_w, requires_grad=getattr(conv_w, "requires_grad", True)), Parameter(fused_b)


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """(W', b') as Parameters for a Linear followed by BatchNorm1d over its outputs."""
    from normlab.nn.modules.module import Parameter

    w = _array(linear_w)
    scale = _scale(bn_rm, bn_rv, bn_eps, bn_w)
    fused_w = (w * scale[:, None]).astype(w.dtype)
    fused_b = _bias(linear_b, bn_rm, scale, bn_b).astype(w.dtype)
    return Parameter(fused_w, requires_grad=getattr(linear_w, "requires_grad", True)), Parameter(fused_b)


def _check_eval(name: str, layer, bn) -> None:
    if layer.training or bn.training:
        raise ValueError(f"{name}: fusion only for eval (call .eval() on both; {type(layer).__name__}.training="
                         f"{layer.training}, {type(bn).__name__}.training={bn.training})")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{name}: {type(bn).__name__} has no running statistics (track_running_stats=False)")


def fuse_conv_bn_eval(conv, bn, transpose: bool = False):
    """A copy of ``conv`` whose weight and bias absorb the eval-mode ``bn`` after it."""
    _check_eval("fuse_conv_bn_eval", conv, bn)
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var,
                                                    bn.eps, bn.weight, bn.bias, transpose)
    return fused


def fuse_linear_bn_eval(linear, bn):
    """A copy of ``linear`` whose weight and bias absorb the eval-mode BatchNorm1d ``bn`` after it."""
    _check_eval("fuse_linear_bn_eval", linear, bn)
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise ValueError(f"fuse_linear_bn_eval: expected BatchNorm1d over the Linear's {linear.out_features} "
                         f"outputs (or 1 feature), got num_features={bn.num_features}")
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)
    return fused
