"""Negative log-likelihood over class indices, the elementwise losses with a hand-written backward;
the rest of the losses compose from autograd ops (as torch composes them)."""
from __future__ import annotations

import numpy as np


def nll_loss_forward(log_prob, target, weight=None, ignore_index=-100, reduction="mean"):
    """``log_prob`` (N, C, *) and integer ``target`` (N, *): loss_n = -w[y_n] log_prob[n, y_n]."""
    valid = target != ignore_index
    safe_target = np.where(valid, target, 0)
    picked = np.take_along_axis(log_prob, safe_target[:, None], axis=1)[:, 0]
    w = np.ones(target.shape, dtype=log_prob.dtype) if weight is None else weight[safe_target]
    w = w * valid
    losses = -w * picked
    denominator = None
    if reduction == "none":
        out = losses
    elif reduction == "sum":
        out = losses.sum()
    else:
        denominator = w.sum()  # 'mean' is weighted: divide by the total weight of the counted targets
        with np.errstate(divide="ignore", invalid="ignore"):
            out = losses.sum() / denominator
    return out.astype(log_prob.dtype, copy=False), (log_prob.shape, safe_target, w, reduction, denominator)


def nll_loss_backward(dy, saved):
    shape, safe_target, w, reduction, denominator = saved
    # d loss_n / d log_prob[n, c] = -w[y_n] if c == y_n else 0 (times the reduction's factor)
    scale = -w * dy
    if reduction == "mean":
        scale = scale / denominator
    grad = np.zeros(shape, dtype=w.dtype)
    np.put_along_axis(grad, safe_target[:, None], np.broadcast_to(scale, safe_target.shape)[:, None], axis=1)
    return grad, None, None


# ---------------------------------------------------------------- elementwise losses
# Each maps (input x, target y) to one loss per element, l = f(x, y), and its
# backward returns (dx, dy); weights and the reduction are applied on top.

#: torch clamps BCE's logs at -100, so a prediction of exactly 0 or 1 costs 100, not inf.
_LOG_FLOOR = -100.0
#: ... and keeps its gradient finite by flooring x (1 - x) at 1e-12 (a float32 constant in torch, in every dtype).
_BCE_EPS = float(np.float32(1e-12))


def binary_cross_entropy_forward(x, y):
    """l = -(y log x + (1 - y) log(1 - x)) for probabilities x in [0, 1], logs floored at -100."""
    with np.errstate(divide="ignore"):
        log_x = np.maximum(np.log(x), _LOG_FLOOR)
        log_not_x = np.maximum(np.log1p(-x), _LOG_FLOOR)
    return (y - 1) * log_not_x - y * log_x, (x, y)


def binary_cross_entropy_backward(dl, saved):
    x, y = saved
    # dl/dx = -y / x + (1 - y) / (1 - x) = (x - y) / (x (1 - x))   (denominator floored at 1e-12)
    # dl/dy = log(1 - x) - log x = -logit(x)
    dx = dl * (x - y) / np.maximum((1 - x) * x, _BCE_EPS)
    with np.errstate(divide="ignore"):
        dy = -dl * np.log(x / (1 - x))
    return dx.astype(x.dtype, copy=False), dy.astype(x.dtype, copy=False)


def _log_sigmoid(x):
    """log(1 / (1 + e^-x)) = min(x, 0) - log1p(e^-|x|), without overflow on either side."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def binary_cross_entropy_with_logits_forward(x, y, pos_weight=None):
    """BCE of sigmoid(x), computed from the logit x: l = (1 - y) x - w_y log sigmoid(x).

    w_y = 1 + (pos_weight - 1) y weighs the positive term (pos_weight > 1
    favours recall); the form never takes the log of a rounded probability.
    """
    log_sigmoid = _log_sigmoid(x)
    log_weight = None if pos_weight is None else (pos_weight - 1) * y + 1
    weighted = log_sigmoid if log_weight is None else log_weight * log_sigmoid
    return ((1 - y) * x - weighted).astype(x.dtype, copy=False), (x, y, pos_weight, log_sigmoid)


def binary_cross_entropy_with_logits_backward(dl, saved):
    x, y, pos_weight, log_sigmoid = saved
    # With s = sigmoid(x), log sigmoid(x)' = 1 - s:
    #   dl/dx = (1 - y) - w_y (1 - s) = w_y s - pos_weight y      (= s - y without pos_weight)
    #   dl/dy = -x - (pos_weight - 1) log sigmoid(x)               (= -x without pos_weight)
    s = np.exp(log_sigmoid)
    if pos_weight is None:
        dx, dy = (s - y) * dl, -x * dl
    else:
        positive = pos_weight * y
        dx = ((positive + 1 - y) * s - positive) * dl
        dy = (-x - (pos_weight - 1) * log_sigmoid) * dl
    return dx.astype(x.dtype, copy=False), dy.astype(x.dtype, copy=False)


def smooth_l1_forward(x, y, beta=1.0):
    """l = 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d = x - y (Girshick, 2015, Fast R-CNN)."""
    d = x - y
    abs_d = np.abs(d)
    if beta == 0:
        return abs_d, (d, beta)
    return np.where(abs_d < beta, 0.5 * d * d / beta, abs_d - 0.5 * beta).astype(x.dtype, copy=False), (d, beta)


def smooth_l1_backward(dl, saved):
    d, beta = saved
    # dl/dd = d / beta inside (-beta, beta), sign(d) outside: the quadratic's slope, clipped at +-1
    slope = np.sign(d) if beta == 0 else np.clip(d / beta, -1.0, 1.0)
    dx = (dl * slope).astype(d.dtype, copy=False)
    return dx, -dx


def huber_forward(x, y, delta=1.0):
    """l = 0.5 d^2 if |d| < delta else delta (|d| - 0.5 delta), d = x - y (Huber, 1964)."""
    d = x - y
    abs_d = np.abs(d)
    return np.where(abs_d < delta, 0.5 * d * d, delta * (abs_d - 0.5 * delta)).astype(x.dtype, copy=False), (d, delta)


def huber_backward(dl, saved):
    d, delta = saved
    # dl/dd = d inside [-delta, delta], +-delta outside: the residual, clipped
    dx = (dl * np.clip(d, -delta, delta)).astype(d.dtype, copy=False)
    return dx, -dx


def kl_div_forward(x, y, log_target=False):
    """Pointwise KL(target || prediction) with log-probabilities x:
    l = y (log y - x) (0 where y = 0), or with ``log_target`` (y a log-probability) l = e^y (y - x)."""
    if log_target:
        p = np.exp(y)
        return p * (y - x), (x, y, p, log_target)
    with np.errstate(divide="ignore", invalid="ignore"):
        y_log_y = np.where(y == 0, 0.0, y * np.log(np.where(y == 0, 1.0, y))).astype(x.dtype, copy=False)
    return y_log_y - y * x, (x, y, None, log_target)


def kl_div_backward(dl, saved):
    x, y, p, log_target = saved
    if log_target:
        # l = e^y (y - x):  dl/dx = -e^y,  dl/dy = e^y (y - x) + e^y
        return -p * dl, p * (y - x + 1) * dl
    # l = y log y - y x:  dl/dx = -y,  dl/dy = log y + 1 - x   (torch's xlogy rule: y / y, so nan at y = 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_y = np.where(y == 0, 0.0, np.log(np.where(y == 0, 1.0, y)))
        dy = (log_y + y / y - x) * dl
    return -y * dl, dy.astype(x.dtype, copy=False)


def gaussian_nll_forward(x, y, var, eps=1e-6, full=False):
    """l = 0.5 (log v + (x - y)^2 / v) [+ 0.5 log 2 pi], v = max(var, eps): a Gaussian's negative log-likelihood.

    x is the predicted mean, y the observed value, var the predicted variance
    (Nix & Weigend, 1994); x, y and var share one shape.
    """
    v = np.maximum(var, eps).astype(x.dtype, copy=False)
    d = x - y
    l = 0.5 * (np.log(v) + d * d / v)
    if full:
        l = l + 0.5 * np.log(2 * np.pi)
    return l.astype(x.dtype, copy=False), (d, v)


def gaussian_nll_backward(dl, saved):
    d, v = saved
    # dl/dx = d / v,  dl/dy = -d / v,  dl/dvar = 0.5 (1 / v - d^2 / v^2)  (the log's term, then the quotient's).
    # torch clamps var at eps without recording the clamp: below eps var still gets this gradient, at v = eps.
    g_x = dl * d / v
    return g_x, -g_x, dl * 0.5 * (1.0 / v - d * d / (v * v))
