"""Losses with torch.nn.functional's names, arguments and reductions."""
from __future__ import annotations

import numpy as np

from normlab._checks import check_float
from normlab.autograd.function import from_op
from normlab.autograd.tensor import Tensor, as_tensor
from normlab.nn.functional.activation import log_softmax
from normlab.ops import loss as ops

__all__ = ["nll_loss", "cross_entropy", "mse_loss"]

_NLLLoss = from_op("NLLLoss", ops.nll_loss_forward, ops.nll_loss_backward)

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: expected reduction to be one of {_REDUCTIONS}, got {reduction!r}")


def _class_targets(name: str, x: Tensor, target: np.ndarray, ignore_index: int) -> None:
    if target.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class indices as target, got dtype {target.dtype}")
    expected = (x.shape[0],) + x.shape[2:]
    if target.shape != expected:
        raise ValueError(f"{name}: expected target of shape {expected} for input of shape {x.shape}, "
                         f"got {target.shape}")
    counted = target[target != ignore_index]
    if counted.size and (counted.min() < 0 or counted.max() >= x.shape[1]):
        bad = counted[(counted < 0) | (counted >= x.shape[1])][0]
        raise IndexError(f"{name}: target {bad} is out of bounds for {x.shape[1]} classes")


def _batched(name: str, x: Tensor, target: np.ndarray):
    """Unbatched (C,) input with a scalar target becomes a batch of one."""
    check_float(name, x._data)
    if x.ndim == 0:
        raise ValueError(f"{name}: expected input of shape (C,) or (N, C, *), got a 0D input")
    if x.ndim == 1:
        return x.reshape(1, -1), target.reshape((1,) + target.shape), True
    return x, target, False


def _check_weight(name: str, weight, classes: int, dtype):
    if weight is None:
        return None
    weight = np.asarray(weight._data if isinstance(weight, Tensor) else weight, dtype=dtype)
    if weight.shape != (classes,):
        raise ValueError(f"{name}: expected weight of shape ({classes},), got {weight.shape}")
    return weight


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean"):
    """-w[y] * input[y], averaged by the total weight of the counted targets (torch's 'mean')."""
    _check_reduction("nll_loss", reduction)
    target = np.asarray(target._data if isinstance(target, Tensor) else target)
    x, target, unbatched = _batched("nll_loss", as_tensor(input), target)
    _class_targets("nll_loss", x, target, ignore_index)
    weight = _check_weight("nll_loss", weight, x.shape[1], x.dtype)
    loss = _NLLLoss.apply(x, target, weight, ignore_index=ignore_index, reduction=reduction)
    return loss.reshape(()) if unbatched and reduction == "none" else loss


def cross_entropy(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0):
    """log_softmax over dim 1, then NLL (class indices) or soft-target cross-entropy (probabilities)."""
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: expected label_smoothing in [0, 1], got {label_smoothing!r}")
    target_array = np.asarray(target._data if isinstance(target, Tensor) else target)
    x, target_array, unbatched = _batched("cross_entropy", as_tensor(input), target_array)
    classes = x.shape[1]
    weight = _check_weight("cross_entropy", weight, classes, x.dtype)
    log_prob = log_softmax(x, dim=1)
    class_shape = (1, classes) + (1,) * (x.ndim - 2)
    if target_array.dtype.kind == "f":  # class probabilities
        if target_array.shape != x.shape:
            raise ValueError(f"cross_entropy: expected probability target of shape {x.shape}, got {target_array.shape}")
        probs = target_array.astype(x.dtype)
        if label_smoothing > 0:
            probs = probs * (1 - label_smoothing) + label_smoothing / classes
        if weight is not None:
            probs = probs * weight.reshape(class_shape)
        losses = -(log_prob * probs).sum(dim=1)
        if reduction == "none":
            return losses.reshape(()) if unbatched else losses
        return losses.sum() if reduction == "sum" else losses.sum() / (x.numel() // classes)

    _class_targets("cross_entropy", x, target_array, ignore_index)
    loss = _NLLLoss.apply(log_prob, target_array, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing > 0:
        # Smoothing mixes in the uniform target: eps/C * sum_c -w_c log p_c, over counted elements only,
        # divided by the same denominator as the NLL term under 'mean' (as torch).
        valid = target_array != ignore_index
        weighted = log_prob if weight is None else log_prob * weight.reshape(class_shape)
        smooth = -(weighted.sum(dim=1) * valid.astype(x.dtype))
        if reduction == "sum":
            smooth = smooth.sum()
        elif reduction == "mean":
            counted = valid.sum() if weight is None else weight[np.where(valid, target_array, 0)][valid].sum()
            smooth = smooth.sum() / counted
        loss = loss * (1 - label_smoothing) + smooth * (label_smoothing / classes)
    return loss.reshape(()) if unbatched and reduction == "none" else loss


def mse_loss(input, target, reduction: str = "mean"):
    """(input - target)^2, reduced by mean (default), sum or none."""
    _check_reduction("mse_loss", reduction)
    x = as_tensor(input)
    check_float("mse_loss", x._data)
    target_shape = np.shape(target._data if isinstance(target, Tensor) else target)
    if target_shape != x.shape:
        try:
            np.broadcast_shapes(x.shape, target_shape)
        except ValueError:
            raise ValueError(f"mse_loss: input of shape {x.shape} and target of shape {target_shape} "
                             "do not broadcast") from None
    diff = x - target
    squared = diff * diff
    if reduction == "none":
        return squared
    return squared.sum() if reduction == "sum" else squared.mean()
