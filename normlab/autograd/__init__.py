"""Reverse-mode automatic differentiation on NumPy arrays.

``Tensor`` wraps an array and remembers the ``Function`` that made it;
``Tensor.backward`` walks those Functions in reverse topological order.
Read ``function.py`` first (the engine, ~150 lines), then ``functions.py``
(one local chain rule per class).
"""
from normlab.autograd.function import Function, from_op
from normlab.autograd.gradient import grad
from normlab.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from normlab.autograd.tensor import (
    Tensor,
    as_tensor,
    get_default_dtype,
    set_default_dtype,
    tensor,
)

__all__ = [
    "Function", "from_op", "grad", "Tensor", "tensor", "as_tensor", "no_grad", "enable_grad",
    "set_grad_enabled", "is_grad_enabled", "get_default_dtype", "set_default_dtype",
]
