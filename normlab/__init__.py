"""normlab: normalization, pooling and the remedies for vanishing gradients, by hand on NumPy.

>>> import normlab, normlab.nn as nn
>>> _ = normlab.manual_seed(0)
>>> bn = nn.BatchNorm1d(3)
>>> x = normlab.randn(8, 3, requires_grad=True)
>>> bn(x).sum().backward()
"""
import numpy as _np

from normlab import _numba_cache

_numba_cache.configure()  # before any module imports Numba's kernels

from normlab.autograd import (  # noqa: E402
    Function,
    Tensor,
    as_tensor,
    enable_grad,
    get_default_dtype,
    is_grad_enabled,
    no_grad,
    set_default_dtype,
    set_grad_enabled,
    tensor,
)
from normlab.autograd.tensor import (  # noqa: F401  (functional forms of Tensor methods)
    abs,
    amax,
    amin,
    arange,
    cat,
    chunk,
    clamp,
    clip,
    concatenate,
    exp,
    flatten,
    from_numpy,
    full,
    log,
    matmul,
    maximum,
    mean,
    minimum,
    ones,
    ones_like,
    permute,
    rand,
    randn,
    relu,
    reshape,
    sigmoid,
    split,
    sqrt,
    squeeze,
    stack,
    std,
    sum,
    tanh,
    transpose,
    unsqueeze,
    var,
    where,
    zeros,
    zeros_like,
)
from normlab.checkpoint import load, save
from normlab.ops._threading import get_num_threads, set_num_threads  # noqa: E402
from normlab.random import initial_seed, manual_seed

float32 = _np.float32
float64 = _np.float64
int64 = _np.int64

from normlab import nn, optim  # noqa: E402  (after the core: nn builds on it)

__version__ = "0.1.0"
