"""Local response normalization (Krizhevsky, Sutskever & Hinton, 2012): each value divided by its channel neighbours' energy.

torch's definition, for input (N, C, *) and a window of ``size`` channels around channel c:

    S_c = (1 / size) * sum of x_c'^2 for c' = c - size//2 .. c + (size - 1)//2   (channels outside [0, C) are 0)
    u_c = k + alpha * S_c
    y_c = x_c / u_c^beta

The divisor is always ``size``, even where the window hangs over the first or
last channel (torch zero-pads the channels, then averages). AlexNet wrote
``alpha`` without the 1/size (its alpha = 1e-4 is torch's 5e-4 with size 5).
Unlike BatchNorm it has no statistics over the batch and no parameters: a
fixed competition between neighbouring feature maps, which BatchNorm replaced.

>>> import numpy as np
>>> y, saved = local_response_norm_forward(np.ones((1, 3, 1)), size=3, alpha=3.0, beta=1.0, k=1.0)
>>> y[0, :, 0]     # the middle channel sees three ones, the edges two (each window divides by 3)
array([0.33333333, 0.25      , 0.33333333])
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LocalResponseSaved(NamedTuple):
    x: np.ndarray               # the input (a reference)
    u: np.ndarray               # k + alpha * S, and its power d = u^beta (private arrays)
    d: np.ndarray
    size: int
    alpha: float
    beta: float


def channel_window_sum(values: np.ndarray, before: int, after: int) -> np.ndarray:
    """out[:, c] = sum of values[:, c'] for c' = c - before .. c + after (channels outside the input count as 0).

    One pass per window position, in channel order: ``before + after + 1`` slice additions.
    """
    channels = values.shape[1]
    out = np.zeros_like(values)
    for shift in range(-before, after + 1):
        # out[:, c] += values[:, c + shift] wherever 0 <= c + shift < channels
        lo, hi = max(0, -shift), min(channels, channels - shift)
        if lo < hi:
            out[:, lo:hi] += values[:, lo + shift:hi + shift]
    return out


def local_response_norm_forward(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """y = x / (k + alpha * S)^beta, S the mean of x^2 over a window of ``size`` channels (torch's definition)."""
    S = channel_window_sum(x * x, size // 2, (size - 1) // 2) / size
    u = k + alpha * S
    d = u ** beta
    return x / d, LocalResponseSaved(x, u, d, size, alpha, beta)


def local_response_norm_backward(dy, saved: LocalResponseSaved):
    """Gradient of y_c = x_c / d_c, d_c = u_c^beta, u_c = k + (alpha / size) * sum over W(c) of x_c'^2.

    x_j reaches y_j directly (1 / d_j) and every y_c whose window W(c) holds it,
    through u_c: d(1 / u_c^beta)/du_c = -beta / (d_c u_c) and du_c/dx_j = 2 (alpha / size) x_j, so
        dx_j = dy_j / d_j - (2 alpha beta / size) x_j * sum over {c : j in W(c)} of dy_c x_c / (d_c u_c).
    W(c) spans c - size//2 .. c + (size-1)//2, so j lies in W(c) for c = j - (size-1)//2 .. j + size//2:
    the mirrored window (the same one for odd sizes).
    """
    s = saved
    g = dy * s.x / (s.d * s.u)
    reach = channel_window_sum(g, (s.size - 1) // 2, s.size // 2)
    return dy / s.d - (2.0 * s.alpha * s.beta / s.size) * s.x * reach
