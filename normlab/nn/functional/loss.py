"""Losses with torch.nn.functional's names, arguments and reductions."""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from normlab._checks import check_float
from normlab.autograd.function import from_op
from normlab.autograd.tensor import Tensor, as_tensor, minimum, where
from normlab.nn.functional.activation import log_softmax
from normlab.nn.functional.distance import pairwise_distance
from normlab.ops import loss as ops

__all__ = ["nll_loss", "cross_entropy", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
           "margin_ranking_loss", "hinge_embedding_loss", "cosine_embedding_loss", "triplet_margin_loss",
           "poisson_nll_loss", "gaussian_nll_loss"]

_NLLLoss = from_op("NLLLoss", ops.nll_loss_forward, ops.nll_loss_backward)
_BCE = from_op("BinaryCrossEntropy", ops.binary_cross_entropy_forward, ops.binary_cross_entropy_backward)
_BCEWithLogits = from_op("BinaryCrossEntropyWithLogits", ops.binary_cross_entropy_with_logits_forward,
                         ops.binary_cross_entropy_with_logits_backward)
_SmoothL1 = from_op("SmoothL1Loss", ops.smooth_l1_forward, ops.smooth_l1_backward)
_Huber = from_op("HuberLoss", ops.huber_forward, ops.huber_backward)
_KLDiv = from_op("KLDivLoss", ops.kl_div_forward, ops.kl_div_backward)
_GaussianNLL = from_op("GaussianNLLLoss", ops.gaussian_nll_forward, ops.gaussian_nll_backward)

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


# ---------------------------------------------------------------- ranking, embedding and likelihood losses
# torch composes these from elementwise ops in its C++ (except Gaussian NLL's variance clamp); so does normlab,
# with the same ops in the same order, so values and gradients (kinks included) are torch's.


def _floats(name: str, input, *others, what=("input",)):
    """``input`` as a float Tensor and every other value as a Tensor of its dtype (integer labels follow it)."""
    x = as_tensor(input)
    check_float(name, x._data, what[0])
    tensors = [x]
    for other in others:
        t = as_tensor(other)
        tensors.append(t if t.dtype == x.dtype else t.astype(x.dtype))
    try:
        np.broadcast_shapes(*(t.shape for t in tensors))
    except ValueError:
        shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
        raise ValueError(f"{name}: expected {', '.join(what)} of shapes that broadcast, got {shapes}") from None
    return tensors


def _labels(name: str, target, x: Tensor) -> np.ndarray:
    """A constant target of +-1 labels (compared, never differentiated) as an array of the input's dtype."""
    y = np.asarray(target._data if isinstance(target, Tensor) else target)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric target of +-1 labels, got dtype {y.dtype}")
    return y.astype(x.dtype, copy=False)


def _margin(name: str, margin) -> float:
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
        raise TypeError(f"{name}: expected margin to be a real number, got {margin!r}")
    return float(margin)


def margin_ranking_loss(input1, input2, target, margin: float = 0, size_average=None, reduce=None,
                        reduction: str = "mean"):
    """max(0, -y (x1 - x2) + margin): x1 should rank above x2 by ``margin`` where y = 1, below where y = -1.

    Inputs and target have one number of dimensions and broadcast. Same as
    ``torch.nn.functional.margin_ranking_loss``.

    >>> import normlab, normlab.nn.functional as F
    >>> F.margin_ranking_loss(normlab.tensor([2.0, 0.0]), normlab.tensor([1.0, 1.0]), normlab.tensor([1.0, 1.0]),
    ...                       margin=0.5).item()
    0.75
    """
    name = "margin_ranking_loss"
    reduction = _reduction(name, size_average, reduce, reduction)
    margin = _margin(name, margin)
    x1, x2, y = _floats(name, input1, input2, target, what=("input1", "input2", "target"))
    if not x1.ndim == x2.ndim == y.ndim:
        raise ValueError(f"{name}: expected input1, input2 and target with one number of dimensions, got shapes "
                         f"{tuple(x1.shape)}, {tuple(x2.shape)} and {tuple(y.shape)}")
    return _reduce((-y * (x1 - x2) + margin).clamp_min(0), reduction)


def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """x where y = 1, max(0, margin - x) where y = -1 (x is a distance: small for similar pairs, y = 1).

    torch's exact rule: max(0, margin - x) wherever y != 1 plus x wherever
    y != -1, so a label other than +-1 gets both terms. Same as
    ``torch.nn.functional.hinge_embedding_loss``.

    >>> import normlab, normlab.nn.functional as F
    >>> round(F.hinge_embedding_loss(normlab.tensor([0.3, 0.4]), normlab.tensor([1.0, -1.0]), reduction="sum").item(), 6)
    0.9
    """
    name = "hinge_embedding_loss"
    reduction = _reduction(name, size_average, reduce, reduction)
    margin = _margin(name, margin)
    (x,) = _floats(name, input)
    y = _labels(name, target, x)
    try:
        np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(f"{name}: expected input and target of shapes that broadcast, got {tuple(x.shape)} "
                         f"and {y.shape}") from None
    zero = np.zeros((), dtype=x.dtype)
    losses = where(y != 1, (margin - x).clamp_min(0), zero) + where(y != -1, x, zero)
    return _reduce(losses, reduction)


#: torch's constant added to each squared norm in cosine_embedding_loss (its EPSILON in Loss.cpp)
_COSINE_EMBEDDING_EPS = 1e-12


def cosine_embedding_loss(input1, input2, target, margin: float = 0, size_average=None, reduce=None,
                          reduction: str = "mean"):
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1 (0 for other labels).

    Shapes: (N, D) inputs with a (N,) target, or (D,) inputs with a 0-d
    target; cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)), torch's
    formula. Same as ``torch.nn.functional.cosine_embedding_loss``.

    >>> import normlab, normlab.nn.functional as F
    >>> F.cosine_embedding_loss(normlab.tensor([[1.0, 0.0]]), normlab.tensor([[0.0, 1.0]]),
    ...                         normlab.tensor([1.0])).item()
    1.0
    """
    name = "cosine_embedding_loss"
    reduction = _reduction(name, size_average, reduce, reduction)
    margin = _margin(name, margin)
    x1, x2 = _floats(name, input1, input2, what=("input1", "input2"))
    y = _labels(name, target, x1)
    if y.ndim not in (0, 1):
        raise ValueError(f"{name}: expected a 0D or 1D target (multi-target is not supported), got shape {y.shape}")
    expected = y.ndim + 1
    if x1.ndim != expected or x2.ndim != expected:
        raise ValueError(f"{name}: a {y.ndim}D target expects {expected}D inputs, got inputs of shapes "
                         f"{tuple(x1.shape)} and {tuple(x2.shape)}")
    dim = y.ndim
    products = (x1 * x2).sum(dim)
    squares1 = (x1 * x1).sum(dim) + _COSINE_EMBEDDING_EPS
    squares2 = (x2 * x2).sum(dim) + _COSINE_EMBEDDING_EPS
    cos = products / (squares1 * squares2).sqrt()
    zero = np.zeros((), dtype=x1.dtype)
    losses = where(y == 1, 1 - cos, zero) + where(y == -1, (cos - margin).clamp_min(0), zero)
    return _reduce(losses, reduction)


def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2, eps: float = 1e-6,
                        swap: bool = False, size_average=None, reduce=None, reduction: str = "mean"):
    """max(0, margin + d(a, p) - d(a, n)), d the pairwise p-distance (Balntas et al., 2016; Schroff et al., 2015).

    ``swap``: d(a, n) becomes min(d(a, n), d(p, n)), the harder negative.
    Shapes: (N, D) or (D,) each, with one number of dimensions. Same as
    ``torch.nn.functional.triplet_margin_loss``.

    >>> import normlab, normlab.nn.functional as F
    >>> a, p, n = normlab.tensor([[0.0, 0.0]]), normlab.tensor([[0.0, 1.0]]), normlab.tensor([[3.0, 0.0]])
    >>> round(F.triplet_margin_loss(a, p, n, eps=0.0, margin=2.5).item(), 6)
    0.5
    """
    name = "triplet_margin_loss"
    reduction = _reduction(name, size_average, reduce, reduction)
    margin = _margin(name, margin)
    if not margin > 0:
        raise ValueError(f"{name}: expected margin > 0, got {margin}")
    a, pos, neg = _floats(name, anchor, positive, negative, what=("anchor", "positive", "negative"))
    if not a.ndim == pos.ndim == neg.ndim:
        raise ValueError(f"{name}: expected anchor, positive and negative with one number of dimensions, got "
                         f"{a.ndim}D, {pos.ndim}D and {neg.ndim}D inputs")
    distance_positive = pairwise_distance(a, pos, p, eps, _layer=name)
    distance_negative = pairwise_distance(a, neg, p, eps, _layer=name)
    if swap:
        distance_negative = minimum(distance_negative, pairwise_distance(pos, neg, p, eps, _layer=name))
    return _reduce((margin + distance_positive - distance_negative).clamp_min(0), reduction)


def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False, size_average=None,
                     eps: float = 1e-8, reduce=None, reduction: str = "mean"):
    """Negative log-likelihood of a Poisson count y with rate e^x (``log_input``) or x: e^x - y x, or x - y log(x + eps).

    ``full`` adds Stirling's approximation of log(y!), y log y - y + 0.5
    log(2 pi y), for y > 1. Same as ``torch.nn.functional.poisson_nll_loss``.

    >>> import normlab, normlab.nn.functional as F
    >>> F.poisson_nll_loss(normlab.tensor([0.0]), normlab.tensor([2.0])).item()
    1.0
    """
    name = "poisson_nll_loss"
    reduction = _reduction(name, size_average, reduce, reduction)
    x, y = _floats(name, input, target, what=("input", "target"))
    if log_input:
        losses = x.exp() - y * x
    else:
        losses = x - y * (x + float(eps)).log()
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):   # log 0 where y = 0: masked out, as in torch
            stirling = y * y.log() - y + 0.5 * (2 * math.pi * y).log()
        losses = losses + stirling.masked_fill(y._data <= 1, 0)
    return _reduce(losses, reduction)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
    """Negative log-likelihood of y under N(x, var): 0.5 (log var + (x - y)^2 / var) [+ 0.5 log 2 pi].

    ``var``: one variance per input (heteroscedastic), one for a whole last
    axis or another single axis (shape with that axis 1, or the last axis
    dropped), or a float. Values below ``eps`` are raised to ``eps`` (the
    gradient ignores the clamp, as torch's). Same as
    ``torch.nn.functional.gaussian_nll_loss``.

    >>> import normlab, normlab.nn.functional as F
    >>> F.gaussian_nll_loss(normlab.tensor([1.0]), normlab.tensor([3.0]), normlab.tensor([4.0])).item()
    1.193147...
    """
    name = "gaussian_nll_loss"
    _check_reduction(name, reduction)
    x, y = _floats(name, input, target, what=("input", "target"))
    if isinstance(var, numbers.Real) and not isinstance(var, bool):
        if var < 0:
            raise ValueError(f"{name}: expected a non-negative var, got {var!r}")
        var = np.full(x.shape, var, dtype=x.dtype)
    v = as_tensor(var)
    check_float(name, v._data, "var")
    v = v if v.dtype == x.dtype else v.astype(x.dtype)
    if v._data.size and (v._data < 0).any():
        raise ValueError(f"{name}: expected every var entry to be non-negative, got a negative one")
    if v.shape != x.shape:
        if v.shape == x.shape[:-1]:
            v = v.unsqueeze(-1)                 # one variance for the whole last axis
        elif not (v.ndim == x.ndim and sum(b for a, b in zip(x.shape, v.shape) if a != b) == 1):
            # torch's rule: otherwise var must differ from the input's shape in exactly one axis, of size 1
            raise ValueError(f"{name}: expected var of the input's shape {tuple(x.shape)}, that shape without its "
                             f"last axis, or with one axis of size 1, got {tuple(v.shape)}")
    shape = np.broadcast_shapes(x.shape, y.shape, v.shape)
    x, y, v = (t if t.shape == shape else t.expand(shape) for t in (x, y, v))
    return _reduce(_GaussianNLL.apply(x, y, v, eps=float(eps), full=bool(full)), reduction)
