"""normlab: normalization, pooling and the remedies for vanishing gradients, by hand on NumPy.

torch's names where torch has them: ``normlab.tensor``, ``normlab.zeros``,
``normlab.exp``, ``normlab.float32``, ``normlab.device``, ``normlab.nn``,
``normlab.optim``, ``normlab.utils.data``, ``normlab.save`` ...

>>> import normlab, normlab.nn as nn
>>> _ = normlab.manual_seed(0)
>>> bn = nn.BatchNorm1d(3)
>>> x = normlab.randn(8, 3, requires_grad=True)
>>> bn(x).sum().backward()
"""
import numpy as _np

from normlab import _numba_cache

_numba_cache.configure()  # before any module imports Numba's kernels

from normlab._device import device  # noqa: E402
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
from normlab.autograd.creation import *  # noqa: E402,F401,F403
from normlab.autograd.tensor import (  # noqa: E402,F401
    cat,
    concat,
    concatenate,
    from_numpy,
    is_tensor,
    maximum,
    minimum,
    stack,
    where,
)
from normlab.autograd.toplevel import *  # noqa: E402,F401,F403
from normlab.checkpoint import load, save  # noqa: E402
from normlab.ops._threading import get_num_threads, set_num_threads  # noqa: E402,F401

_numba_cache.announce_compilation()  # Numba is configured by now (ops._threading)
from normlab.random import Generator, initial_seed, manual_seed, seed  # noqa: E402,F401

# dtypes: NumPy's (``t.dtype == normlab.float32`` holds; they work as ``dtype=`` anywhere).
float32 = float = _np.float32
float64 = double = _np.float64
float16 = half = _np.float16
int64 = long = _np.int64
int32 = int = _np.int32
int16 = short = _np.int16
int8 = _np.int8
uint8 = _np.uint8
bool = _np.bool_
finfo = _np.finfo
iinfo = _np.iinfo

from normlab import accelerator, backends, cuda, linalg, nn, optim, utils  # noqa: E402
from normlab.backends import are_deterministic_algorithms_enabled, use_deterministic_algorithms  # noqa: E402,F401

__version__ = "0.1.0"
