"""Linear, Maxout, Identity, Flatten, Unflatten."""
from __future__ import annotations

import math

import numpy as np

from normlab._checks import check_positive_int
from normlab.autograd.tensor import as_tensor, get_default_dtype
from normlab.nn import init
from normlab.nn.functional.common import linear
from normlab.nn.modules.module import Module, Parameter

__all__ = ["Linear", "Maxout", "Identity", "Flatten", "Unflatten"]


def _register_weight_and_bias(module: Module, weight_shape: tuple[int, ...], bias: bool, dtype) -> None:
    """Register ``weight`` of ``weight_shape`` and, if ``bias``, a ``bias`` of ``weight_shape[0]`` (else None)."""
    module.register_parameter("weight", Parameter(np.empty(weight_shape, dtype=dtype)))
    module.register_parameter("bias", Parameter(np.empty(weight_shape[0], dtype=dtype)) if bias else None)


def _init_affine(weight: Parameter, bias: Parameter | None) -> None:
    """torch's default for Linear/Conv: kaiming_uniform_(a=sqrt(5)) and U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = int(np.prod(weight.shape[1:]))
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


class Linear(Module):
    """y = x W^T + b.  Same as ``torch.nn.Linear``.

    Shapes: input (*, in_features) -> output (*, out_features).

    >>> import normlab, normlab.nn as nn
    >>> nn.Linear(4, 3)(normlab.randn(2, 4)).shape
    (2, 3)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.in_features = check_positive_int("Linear", "in_features", in_features)
        self.out_features = check_positive_int("Linear", "out_features", out_features)
        dtype = np.dtype(dtype or get_default_dtype())
        _register_weight_and_bias(self, (out_features, in_features), bias, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_affine(self.weight, self.bias)

    def forward(self, input):
        return linear(input, self.weight, self.bias, _layer="Linear")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Maxout(Module):
    """h_i = max_j (x W_ij^T + b_ij) over ``pieces`` affine maps (Goodfellow et al., 2013).

    A learned piecewise-linear activation: the gradient reaches only the winning
    piece of each unit (the first on a tie), like max pooling over pieces.
    ``weight`` has shape (out_features * pieces, in_features); row ``i * pieces + j``
    is piece j of unit i. No torch equivalent.

    >>> import normlab, normlab.nn as nn
    >>> nn.Maxout(4, 3, pieces=2)(normlab.randn(5, 4)).shape
    (5, 3)
    """

    def __init__(self, in_features: int, out_features: int, pieces: int, bias: bool = True, dtype=None) -> None:
        super().__init__()
        self.in_features = check_positive_int("Maxout", "in_features", in_features)
        self.out_features = check_positive_int("Maxout", "out_features", out_features)
        self.pieces = check_positive_int("Maxout", "pieces", pieces)
        dtype = np.dtype(dtype or get_default_dtype())
        _register_weight_and_bias(self, (out_features * pieces, in_features), bias, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_affine(self.weight, self.bias)

    def forward(self, input):
        z = linear(input, self.weight, self.bias, _layer="Maxout")
        z = z.reshape(z.shape[:-1] + (self.out_features, self.pieces))
        return z.max(dim=-1).values

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}"


class Identity(Module):
    """Returns its input unchanged (accepts and ignores any constructor arguments, like torch)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, input):
        return as_tensor(input)


class Flatten(Module):
    """Flattens dimensions ``start_dim`` .. ``end_dim`` into one (defaults keep the batch dimension)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return as_tensor(input).flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Expands dimension ``dim`` into ``unflattened_size``."""

    def __init__(self, dim: int, unflattened_size) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):
        x = as_tensor(input)
        dim = self.dim % x.ndim
        return x.reshape(x.shape[:dim] + self.unflattened_size + x.shape[dim + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
