"""Affine map ``y = x W^T + b`` over the last dimension (torch's layout: W is (out, in))."""
from __future__ import annotations


from normlab.ops._threading import matmul


def linear_forward(x, weight, bias=None):
    y = matmul(x, weight.T)
    if bias is not None:
        y += bias
    return y, (x, weight, bias is not None)


def linear_backward(dy, saved, needs=(True, True, True)):
    x, weight, has_bias = saved
    # y = x W^T + b  =>  dx = dy W ;  dW = sum over rows of dy^T x ;  db = sum over rows of dy
    dx = matmul(dy, weight) if needs[0] else None
    rows_dy = dy.reshape(-1, dy.shape[-1])
    dweight = matmul(rows_dy.T, x.reshape(-1, x.shape[-1])) if needs[1] else None
    dbias = rows_dy.sum(axis=0) if has_bias and needs[2] else None
    return dx, dweight, dbias
