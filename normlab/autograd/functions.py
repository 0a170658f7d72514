"""The elementary differentiable operations behind Tensor's methods.

Each class is one local rule of the chain rule: forward computes the value,
backward multiplies the incoming gradient ``g`` by the local derivative.
Broadcasting in forward becomes a sum in backward (``unbroadcast``).
"""
from __future__ import annotations

import numpy as np

from normlab.autograd.function import Function as _Function


class Function(_Function):
    """The base of the elementary ops here: none of them has an optional input, so None is refused."""

    accepts_none = False


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def normalize_axes(dim, ndim: int) -> tuple[int, ...]:
    """``dim`` (None, int or sequence, possibly negative) as a sorted tuple of axes."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (int, np.integer)):
        dim = (int(dim),)
    axes = []
    for d in dim:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dimension {d} is out of range for a tensor with {ndim} dimensions")
        axes.append(d % max(ndim, 1) if ndim else 0)
    return tuple(sorted(set(axes)))


def _expand_reduced(g: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...], keepdim: bool) -> np.ndarray:
    """Put the reduced axes back into ``g`` and broadcast it to ``shape``."""
    if not keepdim and shape:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


# ----------------------------------------------------------------------------
# Arithmetic
# ----------------------------------------------------------------------------

class Add(Function):
    def forward(self, a, b):
        self.shapes = np.shape(a), np.shape(b)
        return np.add(a, b)

    def backward(self, g):
        ga, gb = self.needs_input_grad
        return (unbroadcast(g, self.shapes[0]) if ga else None,
                unbroadcast(g, self.shapes[1]) if gb else None)


class Sub(Function):
    def forward(self, a, b):
        self.shapes = np.shape(a), np.shape(b)
        return np.subtract(a, b)

    def backward(self, g):
        ga, gb = self.needs_input_grad
        return (unbroadcast(g, self.shapes[0]) if ga else None,
                unbroadcast(-g, self.shapes[1]) if gb else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.multiply(a, b)

    def backward(self, g):
        ga, gb = self.needs_input_grad
        return (unbroadcast(g * self.b, np.shape(self.a)) if ga else None,
                unbroadcast(g * self.a, np.shape(self.b)) if gb else None)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.divide(a, b)

    def backward(self, g):
        ga, gb = self.needs_input_grad
        # d(a/b)/da = 1/b ;  d(a/b)/db = -a/b^2
        return (unbroadcast(g / self.b, np.shape(self.a)) if ga else None,
                unbroadcast(-g * self.a / (np.asarray(self.b) ** 2), np.shape(self.b)) if gb else None)


class Neg(Function):
    def forward(self, a):
        return np.negative(a)

    def backward(self, g):
        return (-g,)


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = np.power(a, b)
        return self.y

    def backward(self, g):
        ga, gb = self.needs_input_grad
        a, b = self.a, self.b
        grad_a = grad_b = None
        if ga:
            # d(a^b)/da = b a^(b-1); b == 0 gives 0 even at a == 0 (as torch does)
            local = np.where(np.asarray(b) == 0, 0.0, b * np.power(a, np.asarray(b) - 1.0))
            grad_a = unbroadcast(g * local, np.shape(a))
        if gb:
            # d(a^b)/db = a^b log(a); masked to 0 where a == 0 and b >= 0 (torch's convention)
            with np.errstate(divide="ignore", invalid="ignore"):
                local = self.y * np.log(a)
            local = np.where((np.asarray(a) == 0) & (np.asarray(b) >= 0), 0.0, local)
            grad_b = unbroadcast(g * local, np.shape(b))
        return grad_a, grad_b


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.matmul(a, b)

    def backward(self, g):
        ga, gb = self.needs_input_grad
        a, b = np.asarray(self.a), np.asarray(self.b)
        # Promote vectors to matrices so one rule covers every case:
        # C = A B  =>  dA = dC B^T,  dB = A^T dC  (batched, then unbroadcast).
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if b.ndim == 1:  # first: a vector-vector product has a 0-d gradient
            g2 = np.expand_dims(g2, -1)
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        grad_a = grad_b = None
        if ga:
            grad_a = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if gb:
            grad_b = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return grad_a, grad_b


# ----------------------------------------------------------------------------
# Elementwise functions
# ----------------------------------------------------------------------------

class Exp(Function):
    def forward(self, a):
        self.y = np.exp(a)
        return self.y

    def backward(self, g):
        return (g * self.y,)


class Log(Function):
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return (g / self.a,)


class Sqrt(Function):
    def forward(self, a):
        self.y = np.sqrt(a)
        return self.y

    def backward(self, g):
        return (g / (2 * self.y),)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, g):
        return (g * np.sign(self.a),)  # sign(0) = 0, as torch


class Clip(Function):
    def forward(self, a, *, min=None, max=None):
        self.a, self.min, self.max = a, min, max
        return np.clip(a, min, max)

    def backward(self, g):
        # The gradient passes where the input was inside [min, max], boundaries included.
        inside = np.ones(np.shape(self.a), dtype=bool)
        if self.min is not None:
            inside &= self.a >= self.min
        if self.max is not None:
            inside &= self.a <= self.max
        return (g * inside,)


class Maximum(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.maximum(a, b)

    def backward(self, g):
        ga, gb = self.needs_input_grad
        # A tie splits the gradient in half between the two inputs (torch's rule).
        share_a = (np.asarray(self.a) > self.b) + 0.5 * (np.asarray(self.a) == self.b)
        return (unbroadcast(g * share_a, np.shape(self.a)) if ga else None,
                unbroadcast(g * (1.0 - share_a), np.shape(self.b)) if gb else None)


class Minimum(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.minimum(a, b)

    def backward(self, g):
        ga, gb = self.needs_input_grad
        share_a = (np.asarray(self.a) < self.b) + 0.5 * (np.asarray(self.a) == self.b)
        return (unbroadcast(g * share_a, np.shape(self.a)) if ga else None,
                unbroadcast(g * (1.0 - share_a), np.shape(self.b)) if gb else None)


class Where(Function):
    def forward(self, condition, a, b):
        self.condition = np.asarray(condition, dtype=bool)
        self.shapes = np.shape(a), np.shape(b)
        return np.where(self.condition, a, b)

    def backward(self, g):
        _, ga, gb = self.needs_input_grad
        zero = np.zeros((), dtype=g.dtype)
        return (None,
                unbroadcast(np.where(self.condition, g, zero), self.shapes[0]) if ga else None,
                unbroadcast(np.where(self.condition, zero, g), self.shapes[1]) if gb else None)


class Sin(Function):
    def forward(self, a):
        self.a = a
        return np.sin(a)

    def backward(self, g):
        return (g * np.cos(self.a),)  # d sin(a) = cos(a)


class Cos(Function):
    def forward(self, a):
        self.a = a
        return np.cos(a)

    def backward(self, g):
        return (-g * np.sin(self.a),)  # d cos(a) = -sin(a)


class Tan(Function):
    def forward(self, a):
        self.a = a
        return np.tan(a)

    def backward(self, g):
        return (g / np.cos(self.a) ** 2,)  # d tan(a) = 1 / cos(a)^2


class Log1p(Function):
    def forward(self, a):
        self.a = a
        return np.log1p(a)

    def backward(self, g):
        return (g / (1 + np.asarray(self.a)),)  # d log(1 + a) = 1 / (1 + a)


class Expm1(Function):
    def forward(self, a):
        self.a = a
        return np.expm1(a)

    def backward(self, g):
        return (g * np.exp(self.a),)  # d (e^a - 1) = e^a


class Reciprocal(Function):
    def forward(self, a):
        self.a = a
        return np.reciprocal(a)

    def backward(self, g):
        return (-g / np.square(self.a),)  # d (1/a) = -1/a^2


class Rsqrt(Function):
    def forward(self, a):
        self.a = a
        return 1 / np.sqrt(a)

    def backward(self, g):
        return (-0.5 * g / (self.a * np.sqrt(self.a)),)  # d a^(-1/2) = -1/2 a^(-3/2)


class Sinh(Function):
    def forward(self, a):
        self.a = a
        return np.sinh(a)

    def backward(self, g):
        return (g * np.cosh(self.a),)  # d sinh(a) = cosh(a)


class Cosh(Function):
    def forward(self, a):
        self.a = a
        return np.cosh(a)

    def backward(self, g):
        return (g * np.sinh(self.a),)  # d cosh(a) = sinh(a)


class Arcsin(Function):
    def forward(self, a):
        self.a = a
        return np.arcsin(a)

    def backward(self, g):
        return (g / np.sqrt(1 - np.square(self.a)),)  # d asin(a) = 1 / sqrt(1 - a^2)


class Arccos(Function):
    def forward(self, a):
        self.a = a
        return np.arccos(a)

    def backward(self, g):
        return (-g / np.sqrt(1 - np.square(self.a)),)  # d acos(a) = -1 / sqrt(1 - a^2)


class Arctan(Function):
    def forward(self, a):
        self.a = a
        return np.arctan(a)

    def backward(self, g):
        return (g / (1 + np.square(self.a)),)  # d atan(a) = 1 / (1 + a^2)


class Step(Function):
    """sign, floor, ceil, round, trunc: piecewise constant, so the gradient is 0 (as torch)."""

    def forward(self, a, *, op, **options):
        self.shape = np.shape(a)
        return op(a, **options)

    def backward(self, g):
        return (np.zeros(self.shape, dtype=g.dtype),)


class Copy(Function):
    def forward(self, a, *, order="K"):
        return np.array(a, copy=True, order=order)

    def backward(self, g):
        return (g,)


class Cast(Function):
    def forward(self, a, *, dtype):
        self.dtype = np.asarray(a).dtype
        return np.asarray(a).astype(dtype)

    def backward(self, g):
        return (g.astype(self.dtype),)


# ----------------------------------------------------------------------------
# Reductions
# ----------------------------------------------------------------------------

class Sum(Function):
    def forward(self, a, *, axes, keepdim):
        self.shape, self.axes, self.keepdim = a.shape, axes, keepdim
        return np.sum(a, axis=axes, keepdims=keepdim)

    def backward(self, g):
        return (_expand_reduced(g, self.shape, self.axes, self.keepdim),)


class Mean(Function):
    def forward(self, a, *, axes, keepdim):
        self.shape, self.axes, self.keepdim = a.shape, axes, keepdim
        self.count = int(np.prod([a.shape[i] for i in axes])) if a.ndim else 1
        return np.mean(a, axis=axes, keepdims=keepdim)

    def backward(self, g):
        return (_expand_reduced(g / self.count, self.shape, self.axes, self.keepdim),)


class Var(Function):
    def forward(self, a, *, axes, correction, keepdim):
        self.axes, self.keepdim, self.shape = axes, keepdim, a.shape
        count = int(np.prod([a.shape[i] for i in axes])) if a.ndim else 1
        self.divisor = max(count - correction, 0)
        self.centered = a - a.mean(axis=axes, keepdims=True)  # two-pass: stable
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(self.centered * self.centered, axis=axes, keepdims=keepdim) / self.divisor

    def backward(self, g):
        # var = sum((x - mean)^2) / d  =>  dvar/dx = 2 (x - mean) / d
        # (the mean's own dependence on x contributes sum(x - mean) = 0)
        g = _expand_reduced(g, self.shape, self.axes, self.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (g * (2.0 / np.float64(self.divisor)) * self.centered,)  # divisor 0: nan, as torch


class Prod(Function):
    """Product over one axis (or all elements, flattened to axis 0 of a 1-D view)."""

    def forward(self, a, *, axis, keepdim):
        self.a, self.axis, self.keepdim = a, axis, keepdim
        return np.prod(a, axis=axis, keepdims=keepdim)

    def backward(self, g):
        # d prod / d a_i = product of all the other elements. Written as the
        # exclusive cumulative products from the left and from the right, so a
        # zero among the a_j needs no division (dividing prod by a_i would).
        a = np.moveaxis(np.asarray(self.a), self.axis, -1)
        ones = np.ones(a.shape[:-1] + (1,), dtype=a.dtype)
        left = np.cumprod(np.concatenate([ones, a[..., :-1]], axis=-1), axis=-1)
        right = np.flip(np.cumprod(np.concatenate([ones, np.flip(a, -1)[..., :-1]], axis=-1), axis=-1), -1)
        others = np.moveaxis(left * right, -1, self.axis)
        g = g if self.keepdim else np.expand_dims(g, self.axis)
        return (g * others,)


class Cumsum(Function):
    def forward(self, a, *, axis):
        self.axis = axis
        return np.cumsum(a, axis=axis)

    def backward(self, g):
        # y_j = sum_{i <= j} a_i  =>  d/da_i = sum_{j >= i} g_j: a cumulative sum from the right.
        return (np.flip(np.cumsum(np.flip(g, self.axis), axis=self.axis), self.axis),)


class LogSumExp(Function):
    def forward(self, a, *, axes, keepdim):
        self.a, self.axes, self.keepdim = a, axes, keepdim
        shift = np.max(a, axis=axes, keepdims=True) if np.size(a) else np.zeros((1,) * np.ndim(a), np.asarray(a).dtype)
        shift = np.where(np.isfinite(shift), shift, 0)  # all -inf (or an inf) must not give nan from inf - inf
        with np.errstate(divide="ignore"):
            self.y = np.log(np.sum(np.exp(a - shift), axis=axes, keepdims=True)) + shift
        return (self.y if keepdim else np.squeeze(self.y, axis=axes)).copy()  # never hand out what backward reads

    def backward(self, g):
        # y = log sum exp(a)  =>  dy/da_i = exp(a_i - y): the softmax of a.
        g = g if self.keepdim else np.expand_dims(g, self.axes)
        return (g * np.exp(self.a - self.y),)


class VectorNorm(Function):
    """||a||_p over ``axes``: (sum |a_i|^p)^(1/p); p = inf / -inf: the largest / smallest |a_i|; p = 0: a count."""

    def forward(self, a, *, ord, axes, keepdim):
        self.a, self.ord, self.axes, self.keepdim = a, ord, axes, keepdim
        magnitude = np.abs(a)
        if ord == np.inf:
            y = np.max(magnitude, axis=axes, keepdims=True)
        elif ord == -np.inf:
            y = np.min(magnitude, axis=axes, keepdims=True)
        elif ord == 0:
            y = np.sum(magnitude != 0, axis=axes, keepdims=True).astype(np.asarray(a).dtype)
        elif ord == 1:
            y = np.sum(magnitude, axis=axes, keepdims=True)
        elif ord == 2:
            y = np.sqrt(np.sum(magnitude * magnitude, axis=axes, keepdims=True))
        else:
            y = np.sum(magnitude ** ord, axis=axes, keepdims=True) ** (1.0 / ord)
        self.y = y
        return (y if keepdim else np.squeeze(y, axis=axes)).copy()

    def backward(self, g):
        # d ||a||_p / d a_i = sign(a_i) |a_i|^(p-1) / ||a||^(p-1)
        #   p = 2: a_i / ||a||;  p = 1: sign(a_i);  p = +-inf: sign(a_i) on the elements
        #   that attain the extremum, shared equally between ties;  p = 0: 0.
        # Where the norm is 0 the gradient is 0 (torch's choice at the kink).
        a, y, p = np.asarray(self.a), self.y, self.ord
        g = g if self.keepdim else np.expand_dims(g, self.axes)
        if p == 0:
            return (np.zeros(a.shape, dtype=g.dtype),)
        if p == 1:
            return (g * np.sign(a),)
        if p in (np.inf, -np.inf):
            winners = np.abs(a) == y
            return (g * np.sign(a) * winners / np.sum(winners, axis=self.axes, keepdims=True),)
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                local = a / y
            else:
                local = np.sign(a) * np.abs(a) ** (p - 1) / y ** (p - 1)
        return (g * np.where(y == 0, 0.0, local),)


class Extremum(Function):
    """amax / amin: a tie shares the gradient equally between the tied elements (torch's rule)."""

    def forward(self, a, *, axes, keepdim, largest):
        self.shape, self.axes, self.keepdim = a.shape, axes, keepdim
        y = (np.max if largest else np.min)(a, axis=axes, keepdims=True)
        winners = (a == y) | (np.isnan(a) & np.isnan(y))
        self.share = winners / winners.sum(axis=axes, keepdims=True)
        return y if keepdim or not a.ndim else np.squeeze(y, axis=axes)

    def backward(self, g):
        return (_expand_reduced(g, self.shape, self.axes, self.keepdim) * self.share,)


class ExtremumAlongDim(Function):
    """``max(dim)`` / ``min(dim)``: values and the index of the first winner; the gradient goes there."""

    def forward(self, a, *, dim, keepdim, largest):
        self.shape, self.dim, self.keepdim = a.shape, dim, keepdim
        index = (np.argmax if largest else np.argmin)(a, axis=dim)
        self.index = np.expand_dims(index, dim)
        values = np.take_along_axis(a, self.index, axis=dim)
        if not keepdim:
            values = np.squeeze(values, axis=dim)
        return values, (self.index if keepdim else index).astype(np.int64)

    def backward(self, g, _g_index=None):
        grad = np.zeros(self.shape, dtype=g.dtype)
        if not self.keepdim:
            g = np.expand_dims(g, self.dim)
        np.put_along_axis(grad, self.index, g, axis=self.dim)
        return (grad,)


# ----------------------------------------------------------------------------
# Shape and indexing
# ----------------------------------------------------------------------------

class Reshape(Function):
    def forward(self, a, *, shape):
        self.shape = a.shape
        return np.reshape(a, shape)

    def backward(self, g):
        return (np.reshape(g, self.shape),)


class Permute(Function):
    def forward(self, a, *, axes):
        self.inverse = tuple(np.argsort(axes))
        return np.transpose(a, axes)

    def backward(self, g):
        return (np.transpose(g, self.inverse),)


class Expand(Function):
    def forward(self, a, *, shape):
        self.shape = a.shape
        return np.broadcast_to(a, shape)

    def backward(self, g):
        return (unbroadcast(g, self.shape),)


def _is_basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


class GetItem(Function):
    def forward(self, a, *, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        grad = np.zeros(self.shape, dtype=self.dtype)
        if _is_basic_index(self.index):
            grad[self.index] = g  # a view: every element appears once
        else:
            np.add.at(grad, self.index, g)  # advanced indexing may repeat an element
        return (grad,)


class SetItem(Function):
    """``out = a`` with ``out[index] = v`` (``accumulate``: ``out[index] += v``, repeats adding up).

    The overwritten part of ``a`` gets no gradient (with ``accumulate`` all of
    ``a`` gets ``g``); ``v`` gets ``g[index]``. Item assignment, scatter and
    scatter_add are this one rule.
    """

    def forward(self, a, v, *, index, accumulate=False):
        self.index, self.v_shape, self.accumulate = index, np.shape(v), accumulate
        out = np.array(a, copy=True)
        if accumulate:
            np.add.at(out, index, v)
        else:
            out[index] = v
        return out

    def backward(self, g):
        ga, gv = self.needs_input_grad
        grad_a = grad_v = None
        if ga:
            grad_a = np.array(g, copy=True)
            if not self.accumulate:
                grad_a[self.index] = 0
        if gv:
            grad_v = unbroadcast(np.asarray(g[self.index]), self.v_shape)
        return grad_a, grad_v


class CopyInto(Function):
    """What ``t.copy_(other)`` writes: ``other`` broadcast to t's shape, in t's dtype.

    The old value of ``t`` no longer matters (its gradient is 0); ``other`` gets
    the gradient, summed over the broadcast axes.
    """

    def forward(self, target, other):
        self.other_shape, self.other_dtype = np.shape(other), np.asarray(other).dtype
        return np.array(np.broadcast_to(other, target.shape), dtype=target.dtype, copy=True)

    def backward(self, g):
        g_target, g_other = self.needs_input_grad
        return (np.zeros_like(g) if g_target else None,
                unbroadcast(g, self.other_shape).astype(self.other_dtype, copy=False) if g_other else None)


class Cat(Function):
    def forward(self, *arrays, dim):
        self.dim = dim
        self.splits = np.cumsum([a.shape[dim] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=dim)

    def backward(self, g):
        return tuple(np.split(g, self.splits, axis=self.dim))


class Stack(Function):
    def forward(self, *arrays, dim):
        self.dim = dim
        return np.stack(arrays, axis=dim)

    def backward(self, g):
        return tuple(np.moveaxis(g, self.dim, 0))
