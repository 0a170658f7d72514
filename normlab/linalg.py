"""``normlab.linalg``: the norms of torch.linalg (vector norms of any order, the common matrix norms).

>>> import normlab
>>> x = normlab.tensor([[3.0, 0.0], [0.0, 4.0]])
>>> float(normlab.linalg.vector_norm(x)), float(normlab.linalg.norm(x, ord=1))
(5.0, 4.0)
"""
from __future__ import annotations

import numpy as np

from normlab.autograd.tensor import as_tensor, vector_norm

__all__ = ["vector_norm", "matrix_norm", "norm"]

_MATRIX_ORDS = ("fro", 1, -1, np.inf, -np.inf)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None):
    """Norm of the matrices in the last two dimensions (or ``dim``): ``'fro'``, 1, -1, inf, -inf.

    ``ord=1`` is the largest column sum of magnitudes, ``inf`` the largest row
    sum (-1, -inf: the smallest). The spectral and nuclear norms (2, -2,
    ``'nuc'``) need an SVD and are not supported.
    """
    A = as_tensor(A)
    if dtype is not None:
        A = A.astype(dtype)
    if A.ndim < 2:
        raise ValueError(f"matrix_norm: expected a tensor with at least 2 dimensions, got shape {A.shape}")
    if ord not in _MATRIX_ORDS:
        raise NotImplementedError(f"matrix_norm: ord={ord!r} is not supported by normlab "
                                  f"(supported: 'fro', 1, -1, inf, -inf)")
    rows, cols = (d % A.ndim for d in dim)
    if ord == "fro":
        return vector_norm(A, 2, (rows, cols), keepdim)
    # ord = +-1: sum over rows (a column's magnitude), then the extremum over columns; inf: the other way.
    summed, across = (rows, cols) if abs(ord) == 1 else (cols, rows)
    sums = A.abs().sum(summed, keepdim=True)
    result = sums.amax(across, keepdim=True) if ord > 0 else sums.amin(across, keepdim=True)
    return result if keepdim else result.squeeze((rows, cols))


def norm(A, ord=None, dim=None, keepdim: bool = False, *, dtype=None):
    """torch.linalg.norm: a vector norm (1-D input, or an int ``dim``) or a matrix norm (2-D, or two dims).

    With ``ord`` and ``dim`` both None, the 2-norm of all elements.
    """
    A = as_tensor(A)
    if isinstance(dim, (int, np.integer)):
        dim = (int(dim),)
    if dim is None:
        if ord is None:
            return vector_norm(A, 2, None, keepdim, dtype=dtype)
        if A.ndim not in (1, 2):
            raise ValueError(f"linalg.norm: with ord={ord!r} and no dim the input must be 1D or 2D, got shape {A.shape}")
        dim = tuple(range(A.ndim))
    if len(dim) == 1:
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    raise ValueError(f"linalg.norm: expected dim to name 1 or 2 dimensions, got {dim}")
