"""``Tensor``: a NumPy array that remembers how it was made.

A Tensor holds ``data`` (an ``np.ndarray``), ``grad`` (an ``np.ndarray`` or
None, filled by ``backward``) and, when it came out of a recorded operation,
the Function that created it. ``loss.backward()`` walks those creators in
reverse topological order and accumulates ``grad`` on every leaf that
``requires_grad``.

>>> import normlab
>>> x = normlab.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
array([2., 4., 6.], dtype=float32)
"""
from __future__ import annotations

import numbers
from collections import namedtuple

import numpy as np

from normlab.autograd import functions as fn
from normlab.autograd.function import run_backward
from normlab.autograd.grad_mode import no_grad

_default_dtype = np.dtype(np.float32)

#: What ``max(dim)`` and ``min(dim)`` return, as in torch.
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def get_default_dtype() -> np.dtype:
    """The dtype given to tensors made from Python floats (float32, like torch)."""
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Set the dtype for tensors made from Python floats and for new parameters."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"set_default_dtype: expected float32 or float64, got {dtype}")
    _default_dtype = dtype


def _to_array(data, dtype=None) -> np.ndarray:
    """Convert ``data`` to an ndarray; Python floats become the default dtype (as torch)."""
    if isinstance(data, Tensor):
        data = data._data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, np.generic):
        return np.asarray(data)
    array = np.asarray(data)
    if array.dtype == np.float64:  # came from Python floats
        array = array.astype(_default_dtype)
    return array


def _unwrap(x):
    return x._data if isinstance(x, Tensor) else x


class Tensor:
    """An n-dimensional array with automatic differentiation (see the module docstring)."""

    # NumPy defers binary operators (``array + tensor``) to Tensor's reflected
    # methods instead of converting the Tensor to an array.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None) -> None:
        self._data = _to_array(data, dtype)
        if requires_grad and self._data.dtype.kind not in "fc":
            raise TypeError(f"Tensor: only floating-point tensors can require grad, got dtype {self._data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self._creator = None       # the Function that produced this tensor (None for a leaf)
        self._output_index = 0     # which of the creator's outputs this is
        self._hooks: list = []     # gradient hooks of a leaf
        self._retains_grad = False

    # ------------------------------------------------------------------ basics
    @property
    def data(self):
        """The array behind this tensor (transitional: becomes a Tensor sharing memory)."""
        return self._data

    @data.setter
    def data(self, value) -> None:
        self._data = _to_array(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def size(self, dim: int | None = None):
        """The shape (torch's ``size()``), or one dimension of it."""
        return self._data.shape if dim is None else self._data.shape[dim]

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    @property
    def is_leaf(self) -> bool:
        return self._creator is None

    @property
    def grad_fn(self):
        """The Function that created this tensor (None for leaves)."""
        return self._creator

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self._data

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def detach(self) -> "Tensor":
        """A new leaf sharing the same data, cut from the graph."""
        return Tensor(self._data)

    def detach_(self) -> "Tensor":
        self._creator = None
        self.requires_grad = False
        return self

    def clone(self) -> "Tensor":
        """A copy of the data that stays in the graph."""
        return fn.Copy.apply(self)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self._data.dtype.kind not in "fc":
            raise TypeError(f"Tensor: only floating-point tensors can require grad, got dtype {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu":
            raise TypeError("only integer tensors can be used as an index")
        return int(self.item())

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self._data.dtype not in (_default_dtype, np.dtype(np.int64), np.dtype(bool)):
            extras.append(f"dtype={self._data.dtype}")
        if self._creator is not None:
            extras.append(f"grad_fn=<{type(self._creator).__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # -------------------------------------------------------------- gradients
    def backward(self, grad=None) -> None:
        """Accumulate d self / d leaf into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` is d loss / d self; it may be omitted only when self has one element.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no grad_fn")
        if grad is None:
            if self._data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for a tensor with one element, got shape {self.shape}"
                )
            grad = np.ones(self.shape, dtype=self.dtype)
        else:
            grad = np.asarray(_unwrap(grad))
            if grad.shape != self.shape:
                raise ValueError(f"backward: expected grad of shape {self.shape}, got {grad.shape}")
            grad = grad.astype(self.dtype, copy=False)
        with no_grad():
            run_backward(self, grad)

    def _accumulate_leaf(self, g: np.ndarray, exclusive: bool = False) -> None:
        """Add ``g`` into ``.grad``; ``exclusive`` says nothing else holds ``g`` (see function._exclusive)."""
        for hook in self._hooks:
            replaced = hook(g)
            if replaced is not None:
                g, exclusive = np.asarray(replaced), False
        if self.grad is not None:
            self.grad = self.grad + g
        elif exclusive:
            self.grad = g
        else:
            # Copy on the first store: ``g`` may alias another array (the caller's
            # seed, a broadcast view), and optimizers update ``.grad`` in place.
            self.grad = np.array(g, dtype=self.dtype, copy=True)

    def register_hook(self, hook):
        """Call ``hook(grad)`` with this tensor's gradient during backward; a returned array replaces it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
        if self._creator is None:
            hooks = self._hooks
        else:
            hooks = self._creator.output_hooks.setdefault(self._output_index, [])
        hooks.append(hook)
        return _RemovableHook(hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if self._creator is None or self._retains_grad:
            return
        self._retains_grad = True
        import weakref

        ref = weakref.ref(self)

        def keep(g):
            t = ref()
            if t is not None:
                t.grad = np.array(g, copy=True) if t.grad is None else t.grad + g

        self.register_hook(keep)

    def zero_(self) -> "Tensor":
        self._data[...] = 0
        return self

    def fill_(self, value) -> "Tensor":
        self._data[...] = value
        return self

    def copy_(self, other) -> "Tensor":
        self._data[...] = _unwrap(other)
        return self

    # ------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return fn.Add.apply(self, other)

    def __radd__(self, other):
        return fn.Add.apply(other, self)

    def __sub__(self, other):
        return fn.Sub.apply(self, other)

    def __rsub__(self, other):
        return fn.Sub.apply(other, self)

    def __mul__(self, other):
        return fn.Mul.apply(self, other)

    def __rmul__(self, other):
        return fn.Mul.apply(other, self)

    def __truediv__(self, other):
        return fn.Div.apply(self, other)

    def __rtruediv__(self, other):
        return fn.Div.apply(other, self)

    def __pow__(self, other):
        return fn.Pow.apply(self, other)

    def __rpow__(self, other):
        return fn.Pow.apply(other, self)

    def __neg__(self):
        return fn.Neg.apply(self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return fn.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return fn.MatMul.apply(other, self)

    # Comparisons give boolean tensors without gradient, as in torch.
    def __lt__(self, other):
        return Tensor(self._data < _unwrap(other))

    def __le__(self, other):
        return Tensor(self._data <= _unwrap(other))

    def __gt__(self, other):
        return Tensor(self._data > _unwrap(other))

    def __ge__(self, other):
        return Tensor(self._data >= _unwrap(other))

    def __eq__(self, other):
        return Tensor(self._data == _unwrap(other))

    def __ne__(self, other):
        return Tensor(self._data != _unwrap(other))

    def add(self, other):
        return self + other

    def sub(self, other):
        return self - other

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def pow(self, exponent):
        return self ** exponent

    def neg(self):
        return -self

    def matmul(self, other):
        return self @ other

    # ------------------------------------------------------- elementwise math
    def exp(self):
        return fn.Exp.apply(self)

    def log(self):
        return fn.Log.apply(self)

    def sqrt(self):
        return fn.Sqrt.apply(self)

    def abs(self):
        return fn.Abs.apply(self)

    def clip(self, min=None, max=None):
        """Clamp into [min, max]; the gradient flows where the input was inside (boundaries included)."""
        return fn.Clip.apply(self, min=_unwrap(min), max=_unwrap(max))

    clamp = clip

    def maximum(self, other):
        return fn.Maximum.apply(self, other)

    def minimum(self, other):
        return fn.Minimum.apply(self, other)

    def tanh(self):
        from normlab.autograd.activations import Tanh
        return Tanh.apply(self)

    def sigmoid(self):
        from normlab.autograd.activations import Sigmoid
        return Sigmoid.apply(self)

    def relu(self):
        from normlab.autograd.activations import ReLU
        return ReLU.apply(self)

    def astype(self, dtype):
        """Convert the dtype; the gradient is converted back."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if self.requires_grad and dtype.kind in "fc":
            return fn.Cast.apply(self, dtype=dtype)
        return Tensor(self._data.astype(dtype))

    def to(self, dtype):
        return self.astype(dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    # ------------------------------------------------------------- reductions
    @staticmethod
    def _dims(dim, axis):
        if axis is not None and dim is not None:
            raise TypeError("pass either dim or axis, not both")
        return axis if dim is None else dim

    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Sum over ``dim`` (torch's name) or ``axis`` (NumPy's); all dimensions by default."""
        axes = fn.normalize_axes(self._dims(dim, axis), self.ndim)
        return fn.Sum.apply(self, axes=axes, keepdim=bool(keepdims if keepdims is not None else keepdim))

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        axes = fn.normalize_axes(self._dims(dim, axis), self.ndim)
        return fn.Mean.apply(self, axes=axes, keepdim=bool(keepdims if keepdims is not None else keepdim))

    def var(self, dim=None, unbiased=True, keepdim=False, *, correction=None, axis=None, keepdims=None):
        """Variance, by default unbiased (``correction=1``) like torch."""
        axes = fn.normalize_axes(self._dims(dim, axis), self.ndim)
        correction = (1 if unbiased else 0) if correction is None else correction
        return fn.Var.apply(self, axes=axes, correction=correction,
                            keepdim=bool(keepdims if keepdims is not None else keepdim))

    def std(self, dim=None, unbiased=True, keepdim=False, *, correction=None, axis=None, keepdims=None):
        return self.var(dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims).sqrt()

    def _extremum(self, dim, keepdim, axis, keepdims, largest):
        dim = self._dims(dim, axis)
        keepdim = bool(keepdims if keepdims is not None else keepdim)
        if dim is None or not isinstance(dim, (int, np.integer)):
            axes = fn.normalize_axes(dim, self.ndim)
            return fn.Extremum.apply(self, axes=axes, keepdim=keepdim, largest=largest)
        (axis_,) = fn.normalize_axes(dim, self.ndim)
        return ValuesIndices(*fn.ExtremumAlongDim.apply(self, dim=axis_, keepdim=keepdim, largest=largest))

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """``max()`` is the largest element; ``max(dim)`` returns ``(values, indices)`` like torch."""
        return self._extremum(dim, keepdim, axis, keepdims, largest=True)

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return self._extremum(dim, keepdim, axis, keepdims, largest=False)

    def amax(self, dim=None, keepdim=False):
        return fn.Extremum.apply(self, axes=fn.normalize_axes(dim, self.ndim), keepdim=keepdim, largest=True)

    def amin(self, dim=None, keepdim=False):
        return fn.Extremum.apply(self, axes=fn.normalize_axes(dim, self.ndim), keepdim=keepdim, largest=False)

    def argmax(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor(np.int64(np.argmax(self._data)))
        return Tensor(np.argmax(self._data, axis=dim, keepdims=keepdim).astype(np.int64))

    def argmin(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor(np.int64(np.argmin(self._data)))
        return Tensor(np.argmin(self._data, axis=dim, keepdims=keepdim).astype(np.int64))

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else shape
        return fn.Reshape.apply(self, shape=tuple(int(s) for s in shape))

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def permute(self, *dims):
        dims = dims[0] if len(dims) == 1 and not isinstance(dims[0], numbers.Integral) else dims
        if sorted(d % self.ndim for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: expected a permutation of {self.ndim} dimensions, got {tuple(dims)}")
        return fn.Permute.apply(self, axes=tuple(d % self.ndim for d in dims))

    def transpose(self, dim0: int | None = None, dim1: int | None = None):
        """Swap ``dim0`` and ``dim1`` (torch); with no arguments, reverse all dimensions (NumPy)."""
        if dim0 is None and dim1 is None:
            return self.permute(tuple(reversed(range(self.ndim))))
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(axes)

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    def unsqueeze(self, dim: int):
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim: int | None = None):
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        dim = dim % self.ndim
        if self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def expand(self, *shape):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else shape
        full = tuple(old if new == -1 else new
                     for old, new in zip((1,) * (len(shape) - self.ndim) + self.shape, shape))
        return fn.Expand.apply(self, shape=full)

    def __getitem__(self, index):
        if isinstance(index, tuple):
            index = tuple(_unwrap(i) for i in index)
        else:
            index = _unwrap(index)
        return fn.GetItem.apply(self, index=index)

    def split(self, split_size_or_sections, dim: int = 0):
        """Split into chunks of ``split_size`` (int) or of the given sizes (list), as torch."""
        length = self.shape[dim]
        if isinstance(split_size_or_sections, numbers.Integral):
            step = int(split_size_or_sections)
            sizes = [min(step, length - start) for start in range(0, length, step)]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != length:
                raise ValueError(f"split: sizes {sizes} do not add up to dimension {dim} of size {length}")
        pieces, start = [], 0
        prefix = (slice(None),) * (dim % self.ndim)
        for size in sizes:
            pieces.append(self[prefix + (slice(start, start + size),)])
            start += size
        return tuple(pieces)

    def chunk(self, chunks: int, dim: int = 0):
        length = self.shape[dim]
        return self.split(-(-length // chunks), dim)


class _RemovableHook:
    def __init__(self, hooks: list, hook) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


# ----------------------------------------------------------------------------
# Factories and free functions
# ----------------------------------------------------------------------------

def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """A new tensor holding a copy of ``data`` (Python floats become float32, as in torch)."""
    array = _to_array(data, dtype)
    return Tensor(array.copy() if array is _unwrap(data) else array, requires_grad=requires_grad)


def as_tensor(data, dtype=None) -> Tensor:
    """``data`` as a Tensor, sharing memory where possible; a Tensor is returned unchanged."""
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
        return data
    return Tensor(_to_array(data, dtype))


def from_numpy(array: np.ndarray) -> Tensor:
    return Tensor(array)


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else tuple(shape)


def zeros(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(shape), dtype=dtype or _default_dtype), requires_grad=requires_grad)


def ones(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(shape), dtype=dtype or _default_dtype), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros_like(_unwrap(t), dtype=dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones_like(_unwrap(t), dtype=dtype), requires_grad=requires_grad)


def full(shape, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.full(tuple(shape), fill_value, dtype=dtype or _default_dtype), requires_grad=requires_grad)


def arange(*args, dtype=None) -> Tensor:
    return Tensor(np.arange(*args, dtype=dtype))


def randn(*shape, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    from normlab.random import default_generator
    rng = generator or default_generator()
    data = rng.standard_normal(_shape(shape)).astype(dtype or _default_dtype)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    from normlab.random import default_generator
    rng = generator or default_generator()
    data = rng.random(_shape(shape)).astype(dtype or _default_dtype)
    return Tensor(data, requires_grad=requires_grad)


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    dim = dim % np.ndim(_unwrap(tensors[0]))
    return fn.Cat.apply(*tensors, dim=dim)


concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    dim = dim % (np.ndim(_unwrap(tensors[0])) + 1)
    return fn.Stack.apply(*tensors, dim=dim)


def where(condition, input, other) -> Tensor:
    return fn.Where.apply(_unwrap(condition), input, other)


def maximum(input, other) -> Tensor:
    return fn.Maximum.apply(input, other)


def minimum(input, other) -> Tensor:
    return fn.Minimum.apply(input, other)


def _method(name):
    def call(input, *args, **kwargs):
        return getattr(as_tensor(input), name)(*args, **kwargs)
    call.__name__ = name
    call.__doc__ = f"Functional form of ``Tensor.{name}``."
    return call


exp, log, sqrt, abs, clip, clamp = (_method(n) for n in ("exp", "log", "sqrt", "abs", "clip", "clamp"))
sum, mean, var, std, amax, amin = (_method(n) for n in ("sum", "mean", "var", "std", "amax", "amin"))
reshape, permute, transpose, flatten = (_method(n) for n in ("reshape", "permute", "transpose", "flatten"))
tanh, sigmoid, relu, matmul = (_method(n) for n in ("tanh", "sigmoid", "relu", "matmul"))
split, chunk, squeeze, unsqueeze = (_method(n) for n in ("split", "chunk", "squeeze", "unsqueeze"))
