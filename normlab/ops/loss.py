"""Negative log-likelihood over class indices; the rest of the losses compose from autograd ops."""
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
