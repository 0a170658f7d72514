"""Activation functions: ``<name>_forward(x, ...) -> (y, saved)`` and ``<name>_backward(dy, saved) -> dx``.

The vanishing-gradient story lives in these derivatives: sigmoid's is at most
1/4 and tanh's at most 1, so a product of many of them shrinks
geometrically; ReLU's is exactly 1 wherever the unit is active.
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from normlab.ops._threading import parallel_kernel

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_TANH_COEFF = 0.044715
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# ---------------------------------------------------------------- sigmoid / tanh

def sigmoid_forward(x):
    # Stable on both sides: y = e^min(x, 0) / (1 + e^-|x|) is 1 / (1 + e^-x) for x >= 0 and
    # e^x / (1 + e^x) below; exp never sees a positive argument, so it never overflows.
    # Whole-array ufuncs, no np.where: 6x faster at (60, 100) (np.where's random branches).
    denominator = np.exp(-np.abs(x))
    denominator += 1
    y = np.exp(np.minimum(x, 0))
    y /= denominator
    return y, y


def sigmoid_backward(dy, y):
    # y = 1 / (1 + e^-x)  =>  dy/dx = y (1 - y)  (at most 1/4: the vanishing factor)
    return dy * y * (1.0 - y)


def tanh_forward(x):
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, y):
    # d tanh(x)/dx = 1 - tanh(x)^2
    return dy * (1.0 - y * y)


# ---------------------------------------------------------------- ReLU family

def relu_forward(x):
    # np.maximum, not np.where: 10x faster at (64, 16, 28, 28), and NaN stays NaN as in torch.
    return np.maximum(x, 0), x > 0


def relu_backward(dy, active):
    # d max(x, 0)/dx = 1 where x > 0, else 0 (0 at x == 0, as torch)
    return dy * active


def hardtanh_forward(x, min_val=-1.0, max_val=1.0):
    """y = min(max(x, min_val), max_val); relu6 is hardtanh(x, 0, 6). NaN stays NaN."""
    # inside: where the gradient flows, strictly between the bounds (torch: the bounds themselves get 0).
    # A NaN is not inside: torch's vectorised loop gives it 0 too (its scalar tail loop gives it dy, so
    # torch's answer for a NaN depends on where it sits; normlab's does not).
    return np.clip(x, min_val, max_val).astype(x.dtype, copy=False), (x > min_val) & (x < max_val)


def hardtanh_backward(dy, inside):
    # slope 1 strictly inside (min_val, max_val), 0 from each bound outwards
    return np.where(inside, dy, 0.0).astype(dy.dtype, copy=False)


def threshold_forward(x, threshold, value):
    """y = x if x > threshold else value (torch's test, x <= threshold, keeps a NaN as NaN)."""
    replaced = x <= threshold
    return np.where(replaced, value, x).astype(x.dtype, copy=False), replaced


def threshold_backward(dy, replaced):
    # dy/dx = 1 where x was kept, 0 where it was replaced by the constant
    return np.where(replaced, 0.0, dy).astype(dy.dtype, copy=False)


def leaky_relu_forward(x, negative_slope=0.01):
    active = x > 0
    return np.where(active, x, x * negative_slope).astype(x.dtype, copy=False), (active, negative_slope)


def leaky_relu_backward(dy, saved):
    active, negative_slope = saved
    # slope 1 on the positive side, negative_slope elsewhere (x == 0 included, as torch)
    return np.where(active, dy, dy * negative_slope).astype(dy.dtype, copy=False)


def elu_forward(x, alpha=1.0):
    active = x > 0
    y = np.where(active, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)
    return y, (active, y, alpha)


def elu_backward(dy, saved):
    active, y, alpha = saved
    # x > 0: 1;  x <= 0: alpha e^x = y + alpha
    return np.where(active, dy, dy * (y + alpha)).astype(dy.dtype, copy=False)


def selu_forward(x):
    active = x > 0
    y = _SELU_SCALE * np.where(active, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))
    return y.astype(x.dtype, copy=False), (active, y.astype(x.dtype, copy=False))


def selu_backward(dy, saved):
    active, y = saved
    # x > 0: scale;  x <= 0: scale alpha e^x = y + scale alpha
    return np.where(active, dy * _SELU_SCALE, dy * (y + _SELU_SCALE * _SELU_ALPHA)).astype(dy.dtype, copy=False)


def silu_forward(x):
    s, _ = sigmoid_forward(x)
    return x * s, (x, s)


def silu_backward(dy, saved):
    x, s = saved
    # d(x s(x))/dx = s + x s (1 - s)
    return dy * (s * (1.0 + x * (1.0 - s)))


def softplus_forward(x, beta=1.0, threshold=20.0):
    bx = x * beta
    linear = bx > threshold  # torch reverts to the identity above the threshold
    y = np.where(linear, x, np.logaddexp(0.0, bx) / beta).astype(x.dtype, copy=False)
    return y, (bx, linear)


def softplus_backward(dy, saved):
    bx, linear = saved
    s, _ = sigmoid_forward(bx)
    return np.where(linear, dy, dy * s).astype(dy.dtype, copy=False)


def logsigmoid_forward(x):
    """y = log sigmoid(x) = -softplus(-x) = min(x, 0) - log(1 + e^-|x|), which never overflows."""
    e = np.exp(-np.abs(x))
    return np.minimum(x, 0) - np.log1p(e), (x, e)


def logsigmoid_backward(dy, saved):
    # dy/dx = 1 - sigmoid(x) = sigmoid(-x); with e = e^-|x| that is e / (1 + e) for x >= 0 and 1 / (1 + e) below
    x, e = saved
    return dy * (np.where(x >= 0, e, 1.0) / (1.0 + e)).astype(dy.dtype, copy=False)


# ---------------------------------------------------------------- GELU

@parallel_kernel()
def _gelu_erf_kernel(x, y, dydx):
    for i in prange(x.size):
        v = float(x[i])
        cdf = 0.5 * (1.0 + math.erf(v / _SQRT_2))
        y[i] = v * cdf
        dydx[i] = cdf + v * _INV_SQRT_2PI * math.exp(-0.5 * v * v)


def gelu_forward(x, approximate="none"):
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + _GELU_TANH_COEFF * x ** 3)
        t = np.tanh(inner)
        y = 0.5 * x * (1.0 + t)
        # d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 c x^2)
        dydx = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * _GELU_TANH_COEFF * x * x)
        return y.astype(x.dtype, copy=False), dydx.astype(x.dtype, copy=False)
    if approximate != "none":
        raise ValueError(f"gelu: expected approximate to be 'none' or 'tanh', got {approximate!r}")
    flat = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(flat)
    dydx = np.empty_like(flat)
    # y = x Phi(x)  =>  dy/dx = Phi(x) + x phi(x); erf is not in NumPy, so a compiled loop.
    _gelu_erf_kernel(flat, y, dydx, work=3 * flat.size)
    return y.reshape(x.shape), dydx.reshape(x.shape)


def gelu_backward(dy, dydx):
    return dy * dydx


# ---------------------------------------------------------------- softmax

def _logsumexp_pieces(x, dim):
    """(x - m, m, log sum exp(x - m)) with m the max over ``dim``: logsumexp = m + the last, exp never overflows."""
    peak = np.max(x, axis=dim, keepdims=True)
    shifted = x - peak
    return shifted, peak, np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))


# Both save x (by reference) and the row pieces (m, log sum), not their output: the output is the
# caller's to write into, and backward recomputes softmax with one exp pass, in the forward's order
# ((x - m) - log sum: large logits keep their precision).

def _softmax_again(saved):
    x, peak, log_sum, dim = saved
    return np.exp((x - peak) - log_sum), dim


def softmax_forward(x, dim):
    shifted, peak, log_sum = _logsumexp_pieces(x, dim)
    return np.exp(shifted - log_sum), (x, peak, log_sum, dim)


def softmax_backward(dy, saved):
    y, dim = _softmax_again(saved)
    # dy_i/dx_j = y_i (delta_ij - y_j)  =>  dx = y (dy - sum(dy y))
    return y * (dy - np.sum(dy * y, axis=dim, keepdims=True))


def log_softmax_forward(x, dim):
    shifted, peak, log_sum = _logsumexp_pieces(x, dim)
    return shifted - log_sum, (x, peak, log_sum, dim)


def log_softmax_backward(dy, saved):
    softmax, dim = _softmax_again(saved)
    # y = x - logsumexp(x)  =>  dx = dy - softmax(x) sum(dy)
    return dy - softmax * np.sum(dy, axis=dim, keepdims=True)


# ---------------------------------------------------------------- smooth and hard gates

def mish_forward(x):
    """y = x tanh(softplus(x)) (Misra, 2019, arXiv:1908.08681)."""
    tanh_softplus = np.tanh(np.logaddexp(0.0, x)).astype(x.dtype, copy=False)
    return x * tanh_softplus, (x, tanh_softplus)


def mish_backward(dy, saved):
    x, tanh_softplus = saved
    # With t = tanh(softplus(x)) and softplus' = sigmoid:
    #   dy/dx = t + x (1 - t^2) sigmoid(x)
    s, _ = sigmoid_forward(x)
    return dy * (tanh_softplus + x * s * (1.0 - tanh_softplus * tanh_softplus))


def hardswish_forward(x):
    """y = x relu6(x + 3) / 6 (Howard et al., 2019, "Searching for MobileNetV3")."""
    return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0, x


def hardswish_backward(dy, x):
    # 0 up to -3, x/3 + 1/2 strictly inside (-3, 3), 1 from 3 on (torch's boundary rule)
    slope = np.where(x <= -3.0, 0.0, np.where(x < 3.0, x / 3.0 + 0.5, 1.0))
    return (dy * slope).astype(dy.dtype, copy=False)


def hardsigmoid_forward(x):
    """y = relu6(x + 3) / 6, a piecewise-linear sigmoid."""
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0, x


#: torch's hardsigmoid backward multiplies by 1/6 rounded to float32 in every dtype; so do we, to stay equal.
_ONE_SIXTH_F32 = float(np.float32(1.0 / 6.0))


def hardsigmoid_backward(dy, x):
    # slope 1/6 strictly inside (-3, 3), 0 elsewhere (torch's boundary rule)
    inside = (x > -3.0) & (x < 3.0)
    return np.where(inside, dy * _ONE_SIXTH_F32, 0.0).astype(dy.dtype, copy=False)


def softsign_forward(x):
    """y = x / (1 + |x|)."""
    denominator = 1.0 + np.abs(x)
    return x / denominator, denominator


def softsign_backward(dy, denominator):
    # d/dx x / (1 + |x|) = ((1 + |x|) - x sign(x)) / (1 + |x|)^2 = 1 / (1 + |x|)^2
    return dy / (denominator * denominator)


def tanhshrink_forward(x):
    """y = x - tanh(x)."""
    t = np.tanh(x)
    return x - t, t


def tanhshrink_backward(dy, t):
    # d/dx (x - tanh x) = 1 - (1 - tanh^2 x) = tanh^2 x
    return dy * (t * t)


# ---------------------------------------------------------------- GLU

def glu_forward(x, dim=-1):
    """y = a * sigmoid(b), a and b the first and second halves of x along ``dim`` (Dauphin et al., 2017)."""
    a, b = np.split(x, 2, axis=dim)
    gate, _ = sigmoid_forward(b)
    return a * gate, (a, gate, dim)


def glu_backward(dy, saved):
    a, gate, dim = saved
    # y = a s(b):  dL/da = dy s(b),  dL/db = dy a s(b) (1 - s(b)); the halves join back along dim
    g_a = dy * gate
    return np.concatenate([g_a, g_a * a * (1.0 - gate)], axis=dim)


# ---------------------------------------------------------------- PReLU

def prelu_forward(x, weight):
    """y = x if x > 0 else a_c x, one learned slope a_c per channel (dim 1) or one shared (He et al., 2015)."""
    a = _channel_view(weight, x.ndim)
    active = x > 0
    return np.where(active, x, a * x).astype(x.dtype, copy=False), (x, a, active, weight.shape)


def prelu_backward(dy, saved):
    x, a, active, weight_shape = saved
    # dx = dy where x > 0 else a dy;  da_c = sum of dy * x over the inactive entries of channel c
    dx = np.where(active, dy, a * dy).astype(dy.dtype, copy=False)
    da = np.where(active, 0.0, dy * x)
    if weight_shape == (1,) or x.ndim < 2:
        da = np.sum(da).reshape(1)
    else:
        da = np.sum(da, axis=tuple(d for d in range(x.ndim) if d != 1))
    return dx, da.astype(x.dtype, copy=False)


def _channel_view(weight, ndim):
    """The per-channel weight shaped to broadcast along dim 1 of an ``ndim``-d input."""
    if weight.shape == (1,) or ndim < 2:
        return weight.reshape(())
    return weight.reshape((1, -1) + (1,) * (ndim - 2))
