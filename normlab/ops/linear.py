"""Affine map ``y = x W^T + b`` over the last dimension (torch's layout: W is (out, in))."""
from __future__ import annotations


from normlab.ops._threading import matmul


def _rows(a):
    """(*, K) as one (rows, K) matrix: one GEMM instead of NumPy's batched loop of small ones."""
    return a.reshape(-1, a.shape[-1])


def linear_forward(x, weight, bias=None):
    y = matmul(_rows(x), weight.T).reshape(*x.shape[:-1], weight.shape[0])
    if bias is not None:
        y += bias
    return y, (x, weight, bias is not None)


def linear_backward(dy, saved, needs=(True, True, True)):
    x, weight, has_bias = saved
    # y = x W^T + b  =>  dx = dy W ;  dW = sum over rows of dy^T x ;  db = sum over rows of dy
    rows_dy = _rows(dy)
    dx = matmul(rows_dy, weight).reshape(x.shape) if needs[0] else None
    dweight = matmul(rows_dy.T, _rows(x)) if needs[1] else None
    dbias = rows_dy.sum(axis=0) if has_bias and needs[2] else None
    return dx, dweight, dbias
