"""Losses with torch.nn.functional's names, arguments and reductions."""
from __future__ import annotations

import warnings

import numpy as np

from normlab._checks import check_float
from normlab.autograd.function import from_op
from normlab.autograd.tensor import Tensor, as_tensor
from normlab.nn.functional.activation import log_softmax
from normlab.ops import loss as ops

__all__ = ["nll_loss", "cross_entropy", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"]

_NLLLoss = from_op("NLLLoss", ops.nll_loss_forward, ops.nll_loss_backward)
_BCE = from_op("BinaryCrossEntropy", ops.binary_cross_entropy_forward, ops.binary_cross_entropy_backward)
_BCEWithLogits = from_op("BinaryCrossEntropyWithLogits", ops.binary_cross_entropy_with_logits_forward,
                         ops.binary_cross_entropy_with_logits_backward)
_SmoothL1 = from_op("SmoothL1Loss", ops.smooth_l1_forward, ops.smooth_l1_backward)
_Huber = from_op("HuberLoss", ops.huber_forward, ops.huber_backward)
_KLDiv = from_op("KLDivLoss", ops.kl_div_forward, ops.kl_div_backward)

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(name: str, reduction: str, allowed=_REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"{name}: expected reduction to be one of {allowed}, got {reduction!r}")


def _reduction(name: str, size_average, reduce, reduction: str, allowed=_REDUCTIONS) -> str:
    """``reduction``, or the one torch's legacy ``size_average``/``reduce`` flags ask for (with torch's warning)."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                      "instead.", UserWarning, stacklevel=3)
    _check_reduction(name, reduction, allowed)
    return reduction


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


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


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    """-w[y] * input[y], averaged by the total weight of the counted targets (torch's 'mean')."""
    reduction = _reduction("nll_loss", size_average, reduce, reduction)
    target = np.asarray(target._data if isinstance(target, Tensor) else target)
    x, target, unbatched = _batched("nll_loss", as_tensor(input), target)
    _class_targets("nll_loss", x, target, ignore_index)
    weight = _check_weight("nll_loss", weight, x.shape[1], x.dtype)
    loss = _NLLLoss.apply(x, target, weight, ignore_index=ignore_index, reduction=reduction)
    return loss.reshape(()) if unbatched and reduction == "none" else loss


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """log_softmax over dim 1, then NLL (class indices) or soft-target cross-entropy (probabilities)."""
    reduction = _reduction("cross_entropy", size_average, reduce, reduction)
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


def _pair(name: str, input, target, broadcast: bool = True):
    """Input and target as Tensors of one float dtype and one shape (torch broadcasts them, with a warning)."""
    x = as_tensor(input)
    check_float(name, x._data)
    y = as_tensor(target)
    if y.dtype != x.dtype:  # integer labels, or another float width: the target follows the input
        y = y.astype(x.dtype)
    if y.shape != x.shape:
        if not broadcast:
            raise ValueError(f"{name}: expected target of the input's shape {x.shape}, got {y.shape}")
        try:
            shape = np.broadcast_shapes(x.shape, y.shape)
        except ValueError:
            raise ValueError(f"{name}: input of shape {x.shape} and target of shape {y.shape} do not broadcast") \
                from None
        warnings.warn(f"{name}: using a target size ({y.shape}) that is different to the input size ({x.shape}). "
                      "This will likely lead to incorrect results due to broadcasting. Please ensure they have the "
                      "same size.", UserWarning, stacklevel=3)
        x, y = x.expand(shape), y.expand(shape)
    return x, y


def _elementwise_weight(name: str, weight, x: Tensor, exact_shape: bool):
    """A constant weight array in x's dtype: of x's shape (``exact_shape``) or broadcasting to it."""
    if weight is None:
        return None
    w = np.asarray(weight._data if isinstance(weight, Tensor) else weight, dtype=x.dtype)
    if exact_shape and w.shape != x.shape:
        raise ValueError(f"{name}: expected weight of the input's shape {x.shape}, got {w.shape}")
    try:
        np.broadcast_shapes(w.shape, x.shape)
    except ValueError:
        raise ValueError(f"{name}: weight of shape {w.shape} does not broadcast to the input's shape {x.shape}") \
            from None
    return w


def _weighted_mean_by_weight(losses: Tensor, weight, reduction: str) -> Tensor:
    """torch's weighted L1/MSE: 'mean' divides by the total weight, not by the number of elements."""
    losses = losses * weight
    if reduction == "mean":
        return losses.sum() / weight.sum()
    return _reduce(losses, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    """(input - target)^2, reduced by mean (default), sum or none; with ``weight``, 'mean' is sum(w l) / sum(w)."""
    reduction = _reduction("mse_loss", size_average, reduce, reduction)
    x, y = _pair("mse_loss", input, target)
    w = _elementwise_weight("mse_loss", weight, x, exact_shape=True)
    diff = x - y
    squared = diff * diff
    return _reduce(squared, reduction) if w is None else _weighted_mean_by_weight(squared, w, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    """|input - target| (gradient sign(input - target), 0 at a tie); with ``weight``, 'mean' is sum(w l) / sum(w)."""
    reduction = _reduction("l1_loss", size_average, reduce, reduction)
    x, y = _pair("l1_loss", input, target)
    w = _elementwise_weight("l1_loss", weight, x, exact_shape=True)
    errors = (x - y).abs()
    return _reduce(errors, reduction) if w is None else _weighted_mean_by_weight(errors, w, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); beta = 0 is the L1 loss."""
    reduction = _reduction("smooth_l1_loss", size_average, reduce, reduction)
    if not beta >= 0:
        raise ValueError(f"smooth_l1_loss: expected beta >= 0, got {beta!r}")
    x, y = _pair("smooth_l1_loss", input, target)
    return _reduce(_SmoothL1.apply(x, y, beta=float(beta)), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (Huber, 1964); = delta * smooth_l1_loss(beta=delta)."""
    _check_reduction("huber_loss", reduction)
    if not delta > 0:
        raise ValueError(f"huber_loss: expected delta > 0, got {delta!r}")
    x, y = _pair("huber_loss", input, target)
    w = _elementwise_weight("huber_loss", weight, x, exact_shape=True)
    losses = _Huber.apply(x, y, delta=float(delta))
    return _reduce(losses if w is None else losses * w, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
    """-w (y log x + (1 - y) log(1 - x)) for probabilities x in [0, 1]; each log is floored at -100, as in torch.

    >>> import normlab, normlab.nn.functional as F
    >>> F.binary_cross_entropy(normlab.tensor([0.5, 0.5]), normlab.tensor([0.0, 1.0])).item()
    0.693147...
    """
    reduction = _reduction("binary_cross_entropy", size_average, reduce, reduction)
    x, y = _pair("binary_cross_entropy", input, target, broadcast=False)
    if x._data.size and not ((x._data >= 0) & (x._data <= 1)).all():
        raise ValueError("binary_cross_entropy: expected every input to be a probability in [0, 1] "
                         "(apply a sigmoid, or use binary_cross_entropy_with_logits)")
    w = _elementwise_weight("binary_cross_entropy", weight, x, exact_shape=False)
    losses = _BCE.apply(x, y)
    return _reduce(losses if w is None else losses * w, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    """BCE of sigmoid(input) computed from the logits, stable for any input; ``pos_weight`` weighs positives.

    l = (1 - y) x - (1 + (pos_weight - 1) y) log sigmoid(x), times ``weight``.

    >>> import normlab, normlab.nn.functional as F
    >>> F.binary_cross_entropy_with_logits(normlab.tensor([100.0]), normlab.tensor([0.0])).item()
    100.0
    """
    reduction = _reduction("binary_cross_entropy_with_logits", size_average, reduce, reduction)
    x, y = _pair("binary_cross_entropy_with_logits", input, target, broadcast=False)
    w = _elementwise_weight("binary_cross_entropy_with_logits", weight, x, exact_shape=False)
    pw = _elementwise_weight("binary_cross_entropy_with_logits", pos_weight, x, exact_shape=False)
    losses = _BCEWithLogits.apply(x, y, pos_weight=pw)
    return _reduce(losses if w is None else losses * w, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
    """KL(target || prediction) with ``input`` log-probabilities: sum of y (log y - x) (0 where y = 0).

    ``log_target=True`` takes the target as log-probabilities too. Reductions:
    'batchmean' (sum / batch size: the mathematical KL divergence per sample),
    'sum', 'none', and 'mean' (sum / number of elements; torch warns about it,
    and so does normlab).
    """
    allowed = _REDUCTIONS + ("batchmean",)
    if size_average is None and reduce is None and reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      UserWarning, stacklevel=2)
    reduction = _reduction("kl_div", size_average, reduce, reduction, allowed)
    x, y = _pair("kl_div", input, target)
    losses = _KLDiv.apply(x, y, log_target=bool(log_target))
    if reduction == "batchmean":
        return losses.sum() / x.shape[0] if x.ndim else losses.sum()
    return _reduce(losses, reduction)
