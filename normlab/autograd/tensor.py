"""``Tensor``: a NumPy array that remembers how it was made.

A Tensor holds an ``np.ndarray`` (``_data`` inside normlab), ``grad`` (a
Tensor or None, filled by ``backward``) and, when it came out of a recorded
operation, the Function that created it. ``loss.backward()`` walks those
creators in reverse topological order and accumulates ``grad`` on every leaf
that ``requires_grad``.

As in torch, ``t.data`` is a Tensor sharing ``t``'s memory that does not
require grad and whose in-place changes are not tracked (the old-style
``m.weight.data.normal_(0, 0.02)`` works); ``t.numpy()`` and
``np.asarray(t)`` give the array itself (``numpy()`` refuses a tensor that
requires grad: use ``t.detach().numpy()``).

>>> import normlab
>>> x = normlab.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
tensor([2., 4., 6.])
"""
from __future__ import annotations

import numbers
from collections import namedtuple

import numpy as np

from normlab.autograd import functions as fn
from normlab.autograd.function import run_backward
from normlab.autograd.grad_mode import is_grad_enabled, no_grad

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


class _VersionCounter:
    """How many in-place changes a tensor's memory has seen (shared by a tensor and its views)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class Tensor:
    """An n-dimensional array with automatic differentiation (see the module docstring)."""

    #: Set by the first ``register_post_accumulate_grad_hook``: until then backward skips looking for them.
    _post_accumulate_grad_hooks_used = False

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy ufuncs on tensors: arithmetic stays in autograd, the rest gives plain arrays.

        ``array + tensor`` and ``np.exp(tensor)`` become normlab operations (a
        Tensor with a gradient); any other ufunc, or one with ``out=``, runs on
        the arrays and returns an ndarray (like ``np.asarray(t)``, outside autograd).
        """
        op = _UFUNC_OPS.get(ufunc) if method == "__call__" and not kwargs else None
        if op is not None:
            return op(*inputs)
        arrays = [x._data if isinstance(x, Tensor) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(o._data if isinstance(o, Tensor) else o for o in kwargs["out"])
        return getattr(ufunc, method)(*arrays, **kwargs)

    def __init__(self, data, requires_grad: bool = False, dtype=None) -> None:
        self._data = _to_array(data, dtype)
        if requires_grad and self._data.dtype.kind not in "fc":
            raise TypeError(f"Tensor: only floating-point tensors can require grad, got dtype {self._data.dtype}")
        self.requires_grad = bool(requires_grad)
        self._grad: Tensor | None = None
        self._creator = None       # the Function that produced this tensor (None for a leaf)
        self._output_index = 0     # which of the creator's outputs this is
        self._hooks: list = []     # gradient hooks of a leaf
        self._post_accumulate_grad_hooks: list = []  # hook(leaf) once per backward, after .grad is complete
        self._retains_grad = False
        self._version_counter = _VersionCounter()
        self._base: Tensor | None = None  # the tensor this one is a view of (made by a view op)

    # ------------------------------------------------------------------ basics
    @property
    def data(self) -> "Tensor":
        """A Tensor sharing this tensor's memory, outside autograd: its in-place changes are not tracked."""
        return Tensor(self._data)

    @data.setter
    def data(self, value) -> None:
        array = value._data if isinstance(value, Tensor) else _to_array(value)
        if self.requires_grad and array.dtype.kind not in "fc":
            raise TypeError(f"Tensor.data: a tensor that requires grad needs floating-point data, got {array.dtype}")
        self._data = array
        self._bump_version()

    @property
    def grad(self) -> "Tensor | None":
        """The accumulated gradient (a Tensor that does not require grad), or None."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is None:
            self._grad = None
            return
        if isinstance(value, Tensor):
            if value.dtype != self.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: expected {self.dtype}, got {value.dtype}")
        else:
            array = np.asarray(value)
            if array.dtype.kind not in "fc":
                raise TypeError(f"Tensor.grad: expected a Tensor, an array of floats or None, got {type(value).__name__}")
            value = Tensor(array.astype(self.dtype, copy=False))  # an array is taken in this tensor's dtype
        if value.shape != self.shape:
            raise RuntimeError(
                f"assigned grad has data of a different size: expected shape {self.shape}, got {value.shape}"
            )
        self._grad = value

    @property
    def _version(self) -> int:
        """The number of in-place changes made to this tensor's memory through normlab."""
        return self._version_counter.value

    def _bump_version(self) -> None:
        self._version_counter.value += 1

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

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The underlying array (shared, not copied); refuses a tensor that requires grad, as torch."""
        if self.requires_grad and not force:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
            )
        return self._data

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def detach(self) -> "Tensor":
        """A new leaf sharing the same memory (and version counter), cut from the graph."""
        t = Tensor(self._data)
        t._version_counter = self._version_counter
        return t

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
        data = self._data
        # torch's style: whole-valued floats as "1.", others with 4 fixed decimals.
        fixed = data.dtype.kind == "f" and data.size and not np.all(np.isfinite(data) & (data == np.round(data)))
        body = np.array2string(data, separator=", ", prefix="tensor(", precision=4,
                               floatmode="fixed" if fixed else "maxprec")
        extras = []
        if self._data.dtype not in (_default_dtype, np.dtype(np.int64), np.dtype(bool)):
            extras.append(f"dtype={self._data.dtype}")
        if self._creator is not None:
            extras.append(f"grad_fn=<{type(self._creator).__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # -------------------------------------------------------------- gradients
    def backward(self, grad=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
        """Accumulate d self / d leaf into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` is d loss / d self; it may be omitted only when self has one element.
        The graph is kept after backward (``retain_graph`` is accepted for torch
        code); ``create_graph`` (higher-order gradients) and ``inputs`` are not supported.
        """
        if create_graph:
            raise NotImplementedError("backward: create_graph=True (higher-order gradients) is not supported by normlab")
        if inputs is not None:
            raise NotImplementedError("backward: inputs= is not supported by normlab; call backward() and read .grad")
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
        from normlab.autograd.function import _run_hooks

        if self._hooks:
            g, replaced = _run_hooks(self._hooks, g)
            exclusive = exclusive and not replaced
        if g.dtype != self.dtype:
            g, exclusive = g.astype(self.dtype), True
        current = self._grad
        if current is not None and current._data.flags.writeable and current.shape == g.shape:
            current._data += g  # in place, as torch accumulates (no graph is built for gradients)
            current._bump_version()
        elif current is not None:
            self._grad = Tensor(current._data + g)
        else:
            # Copy on the first store unless nothing else holds ``g``: it may alias
            # another array (the caller's seed, a broadcast view), and optimizers
            # and clipping update ``.grad`` in place.
            self._grad = Tensor(g if exclusive else np.array(g, copy=True))

    def register_hook(self, hook):
        """Call ``hook(grad)`` with this tensor's gradient (a Tensor) during backward; a returned value replaces it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
        if self._creator is None:
            hooks = self._hooks
        else:
            hooks = self._creator.output_hooks.setdefault(self._output_index, [])
        hooks.append(hook)
        return _RemovableHook(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` once per backward, after this leaf's ``.grad`` holds all of that backward's gradient.

        torch's name and rule: only leaves (parameters) take such a hook; it
        returns nothing and may read or change ``self.grad`` in place.
        """
        if self._creator is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: post accumulate grad hooks cannot be "
                               "registered on non-leaf tensors")
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a tensor that "
                               "does not require grad")
        self._post_accumulate_grad_hooks.append(hook)
        Tensor._post_accumulate_grad_hooks_used = True
        return _RemovableHook(self._post_accumulate_grad_hooks, hook)

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
                array = np.array(g._data, copy=True) if t._grad is None else t._grad._data + g._data
                t._grad = Tensor(array)

        self.register_hook(keep)

    # ------------------------------------------------------------ in place
    def _check_inplace(self, name: str) -> None:
        """torch's rules for an in-place change while gradients are recorded."""
        if not is_grad_enabled():
            return
        if self._creator is None and self.requires_grad:
            raise RuntimeError(
                f"{name}: a leaf Variable that requires grad is being used in an in-place operation "
                "(wrap it in `with normlab.no_grad():` to change a parameter's value)"
            )
        base = self._base
        if base is not None and base.requires_grad:
            if base._creator is None:
                raise RuntimeError(
                    f"{name}: a view of a leaf Variable that requires grad is being used in an in-place operation"
                )
            raise RuntimeError(
                f"{name}: an in-place change of a view of a tensor that requires grad is not supported by "
                "normlab's autograd; change the base tensor, or compute the result out of place"
            )

    def _inplace(self, name: str, compute, *operands) -> "Tensor":
        """Write ``compute(self, *operands)`` into this tensor's memory and bump its version.

        When the change must be recorded (grad mode, and this tensor or an
        operand requires grad), ``compute`` runs on a copy that takes this
        tensor's place in the graph, so whatever earlier operations saved keeps
        its value until the version check sees the change; this tensor then
        becomes the output of the new operation.
        """
        self._check_inplace(name)
        records = is_grad_enabled() and (self.requires_grad or any(
            isinstance(o, Tensor) and o.requires_grad for o in operands))
        if records:
            before = Tensor(self._data.copy())
            before.requires_grad = self.requires_grad
            before._creator, before._output_index = self._creator, self._output_index
            result = compute(before, *operands)
        else:
            with no_grad():
                result = compute(self, *operands)
        np.copyto(self._data, result._data, casting="same_kind")
        if records:
            self._creator, self._output_index = result._creator, result._output_index
            self.requires_grad = result.requires_grad
            self._retains_grad = False
        self._bump_version()
        return self

    def _fill_inplace(self, name: str, values) -> "Tensor":
        """Overwrite every element with ``values``; the old value gets a zero gradient."""
        return self._inplace(name, lambda source, v: fn.CopyInto.apply(source, v), values)

    def zero_(self) -> "Tensor":
        return self._fill_inplace("zero_", 0)

    def fill_(self, value) -> "Tensor":
        value = _unwrap(value)
        if np.ndim(value) != 0:
            raise ValueError(f"fill_: expected a number or a 0-d tensor, got shape {np.shape(value)}")
        return self._fill_inplace("fill_", value)

    def copy_(self, other) -> "Tensor":
        """Copy ``other`` (broadcast to this shape) into this tensor; the gradient flows to ``other``."""
        return self._fill_inplace("copy_", other)

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None) -> "Tensor":
        from normlab.random import default_generator
        rng = generator or default_generator()
        return self._fill_inplace("normal_", rng.normal(mean, std, self.shape))

    def uniform_(self, a: float = 0.0, b: float = 1.0, *, generator=None) -> "Tensor":
        from normlab.random import default_generator
        rng = generator or default_generator()
        return self._fill_inplace("uniform_", rng.uniform(a, b, self.shape))

    def add_(self, other, *, alpha=1):
        return self._inplace("add_", lambda s, o: s + (o if alpha == 1 else o * alpha), other)

    def sub_(self, other, *, alpha=1):
        return self._inplace("sub_", lambda s, o: s - (o if alpha == 1 else o * alpha), other)

    def mul_(self, other):
        return self._inplace("mul_", lambda s, o: s * o, other)

    def div_(self, other):
        return self._inplace("div_", lambda s, o: s / o, other)

    def pow_(self, exponent):
        return self._inplace("pow_", lambda s, e: s ** e, exponent)

    def neg_(self):
        return self._inplace("neg_", lambda s: -s)

    def abs_(self):
        return self._inplace("abs_", lambda s: s.abs())

    def exp_(self):
        return self._inplace("exp_", lambda s: s.exp())

    def log_(self):
        return self._inplace("log_", lambda s: s.log())

    def sqrt_(self):
        return self._inplace("sqrt_", lambda s: s.sqrt())

    def sigmoid_(self):
        return self._inplace("sigmoid_", lambda s: s.sigmoid())

    def tanh_(self):
        return self._inplace("tanh_", lambda s: s.tanh())

    def relu_(self):
        return self._inplace("relu_", lambda s: s.relu())

    def clamp_(self, min=None, max=None):
        return self._inplace("clamp_", lambda s: s.clamp(min, max))

    clip_ = clamp_

    def clamp_min_(self, min):
        return self.clamp_(min=min)

    def clamp_max_(self, max):
        return self.clamp_(max=max)

    def masked_fill_(self, mask, value):
        return self._inplace("masked_fill_", lambda s, v: s.masked_fill(mask, v), value)

    def addcmul_(self, tensor1, tensor2, *, value=1):
        return self._inplace("addcmul_", lambda s, a, b: s + value * (a * b), tensor1, tensor2)

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        return self._inplace("addcdiv_", lambda s, a, b: s + value * (a / b), tensor1, tensor2)

    def lerp_(self, end, weight):
        return self._inplace("lerp_", lambda s, e, w: s + w * (e - s), end, weight)

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def __setitem__(self, index, value) -> None:
        """``t[index] = value`` in place; differentiable (the gradient of the overwritten part is 0)."""
        index = tuple(_unwrap(i) for i in index) if isinstance(index, tuple) else _unwrap(index)
        if is_grad_enabled() and (self.requires_grad or isinstance(value, Tensor) and value.requires_grad):
            self._inplace("__setitem__", lambda s, v: fn.SetItem.apply(s, v, index=index), value)
            return
        self._check_inplace("__setitem__")
        self._data[index] = _unwrap(value)
        self._bump_version()

    def masked_fill(self, mask, value):
        """Elements where ``mask`` is True replaced by ``value`` (no gradient there)."""
        mask = np.asarray(_unwrap(mask), dtype=bool)
        return fn.Where.apply(mask, value if isinstance(value, Tensor) else np.asarray(value, dtype=self.dtype), self)

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

    def _reduction_input(self, dtype, out, name: str) -> "Tensor":
        if out is not None:
            raise TypeError(f"{name}: out= is not supported")
        return self if dtype is None else self.astype(dtype)

    def sum(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None, out=None):
        """Sum over ``dim`` (torch's name) or ``axis`` (NumPy's); all dimensions by default."""
        source = self._reduction_input(dtype, out, "sum")
        axes = fn.normalize_axes(self._dims(dim, axis), self.ndim)
        return fn.Sum.apply(source, axes=axes, keepdim=bool(keepdims if keepdims is not None else keepdim))

    def mean(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None, out=None):
        source = self._reduction_input(dtype, out, "mean")
        axes = fn.normalize_axes(self._dims(dim, axis), self.ndim)
        return fn.Mean.apply(source, axes=axes, keepdim=bool(keepdims if keepdims is not None else keepdim))

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

    def any(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        """True where some element (along ``dim``) is nonzero; a bool tensor without gradient."""
        self._reduction_input(None, out, "any")
        keep = bool(keepdims if keepdims is not None else keepdim)
        return Tensor(np.any(self._data, axis=self._dims(dim, axis), keepdims=keep))

    def all(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        """True where every element (along ``dim``) is nonzero; a bool tensor without gradient."""
        self._reduction_input(None, out, "all")
        keep = bool(keepdims if keepdims is not None else keepdim)
        return Tensor(np.all(self._data, axis=self._dims(dim, axis), keepdims=keep))

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


_UFUNC_OPS = {
    np.add: lambda a, b: fn.Add.apply(a, b),
    np.subtract: lambda a, b: fn.Sub.apply(a, b),
    np.multiply: lambda a, b: fn.Mul.apply(a, b),
    np.true_divide: lambda a, b: fn.Div.apply(a, b),
    np.power: lambda a, b: fn.Pow.apply(a, b),
    np.matmul: lambda a, b: fn.MatMul.apply(a, b),
    np.negative: lambda a: fn.Neg.apply(a),
    np.exp: lambda a: fn.Exp.apply(a),
    np.log: lambda a: fn.Log.apply(a),
    np.sqrt: lambda a: fn.Sqrt.apply(a),
    np.absolute: lambda a: fn.Abs.apply(a),
    np.maximum: lambda a, b: fn.Maximum.apply(a, b),
    np.minimum: lambda a, b: fn.Minimum.apply(a, b),
    np.tanh: lambda a: as_tensor(a).tanh(),
    np.less: lambda a, b: Tensor(np.less(_unwrap(a), _unwrap(b))),
    np.less_equal: lambda a, b: Tensor(np.less_equal(_unwrap(a), _unwrap(b))),
    np.greater: lambda a, b: Tensor(np.greater(_unwrap(a), _unwrap(b))),
    np.greater_equal: lambda a, b: Tensor(np.greater_equal(_unwrap(a), _unwrap(b))),
    np.equal: lambda a, b: Tensor(np.equal(_unwrap(a), _unwrap(b))),
    np.not_equal: lambda a, b: Tensor(np.not_equal(_unwrap(a), _unwrap(b))),
}


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
