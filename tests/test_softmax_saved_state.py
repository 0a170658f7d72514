"""softmax / log_softmax keep x and one logsumexp per row, never their output (issue 6: saved arrays).

A caller may write into the returned array (even untracked, through NumPy):
backward must not change. And backward recomputes softmax in the forward's
order, so large float32 logits keep their precision.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import normlab
import normlab.nn.functional as F
from tests.oracle import assert_float32_close, random_upstream


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_writing_into_the_output_leaves_backward_alone(name, rng):
    x = rng.standard_normal((4, 7))
    g = random_upstream((4, 7), np.float64, rng)
    xn = normlab.tensor(x, requires_grad=True)
    y = getattr(F, name)(xn, dim=1)
    np.asarray(y)[...] = 0.0  # the caller's array now; the op kept none of it
    y.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    getattr(torch.nn.functional, name)(xt, dim=1).backward(torch.tensor(g))
    np.testing.assert_allclose(np.asarray(xn.grad), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_cross_entropy_gradient_with_large_float32_logits(rng):
    """Logits near 1e4: float32 gradients within float32 rounding of the float64 ones."""
    x = (1e4 + rng.standard_normal((16, 10))).astype(np.float32)
    target = rng.integers(0, 10, 16)
    xn = normlab.tensor(x, requires_grad=True)
    F.cross_entropy(xn, target).backward()
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    torch.nn.functional.cross_entropy(xt, torch.tensor(target)).backward()
    # each gradient is (softmax - onehot) / 16: rounded quantities of size 1 / 16
    assert_float32_close(xn.grad, xt.grad.numpy(), scale=1 / 16, what="cross_entropy gradient")
