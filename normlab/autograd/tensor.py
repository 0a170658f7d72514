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

from normlab._checks import NUMERIC_KINDS, describe, not_numeric, public_caller
from normlab._device import CPU, check_device, cpu_only, parse_to
from normlab.autograd import functions as fn
from normlab.autograd import indexing
from normlab.autograd.function import _operand, run_backward
from normlab.autograd.grad_mode import is_grad_enabled, no_grad

_default_dtype = np.dtype(np.float32)

#: What ``max(dim)``, ``min(dim)``, ``sort``, ``topk`` and ``median(dim)`` return, as in torch.
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])

# torch's legacy type names, for ``Tensor.type()``.
_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor", "int64": "LongTensor",
               "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor", "uint8": "ByteTensor",
               "bool": "BoolTensor"}


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
    """Convert ``data`` to an ndarray; Python floats become the default dtype (as torch).

    Anything that is not numeric (a string, None, a list of strings, an object
    array, a ragged nested list) raises TypeError or ValueError naming the
    normlab function the user called.
    """
    if isinstance(data, Tensor):
        data = data._data
    if data is None or isinstance(data, (str, bytes)):
        raise not_numeric(data)
    if dtype is None and isinstance(data, np.ndarray):
        if data.dtype.kind not in NUMERIC_KINDS:
            raise not_numeric(data)
        return data
    try:
        array = np.asarray(data) if dtype is None else np.asarray(data, dtype=np.dtype(dtype))
    except (TypeError, ValueError) as error:
        if isinstance(error, TypeError) or _holds_text(data):
            raise not_numeric(data) from None
        raise ValueError(f"{public_caller()}: expected numbers in a rectangular nested sequence (rows of equal "
                         f"length), got a ragged {describe(data)}") from None
    if array.dtype.kind not in NUMERIC_KINDS:
        raise not_numeric(data)
    if dtype is None and array.dtype == np.float64 and not isinstance(data, np.generic):
        array = array.astype(_default_dtype)  # came from Python floats
    return array


def _holds_text(data) -> bool:
    """Does a (nested) sequence contain a string? (Tells "abc" in a list from a ragged list.)"""
    if isinstance(data, (str, bytes)):
        return True
    return isinstance(data, (list, tuple)) and any(_holds_text(item) for item in data)


def _unwrap(x):
    return x._data if isinstance(x, Tensor) else x


def _bound(value):
    """A clamp bound: None, a number or an array (a Tensor bound is read as a constant)."""
    return None if value is None else _operand(_unwrap(value), accepts_none=False)


def _as_tuple(value) -> tuple:
    return (value,) if isinstance(value, (int, np.integer)) else tuple(value)


def _one_axis(dim, ndim: int) -> int:
    """``dim`` (possibly negative) as an axis of a tensor with ``ndim`` dimensions."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{public_caller()}: expected dim to be an int, got {dim!r}")
    return fn.normalize_axes(int(dim), ndim)[0]


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

    nelement = numel

    def element_size(self) -> int:
        """Bytes per element."""
        return int(self._data.itemsize)

    # ---------------------------------------------------------- device, dtype
    @property
    def device(self):
        """Always ``device(type='cpu')``: normlab computes on the CPU."""
        return CPU

    is_cuda = False
    is_sparse = False
    is_quantized = False

    def cpu(self) -> "Tensor":
        return self

    def cuda(self, device=None, non_blocking: bool = False) -> "Tensor":
        raise cpu_only("Tensor.cuda() has no GPU to move to")

    def to(self, *args, dtype=None, device=None, non_blocking: bool = False, copy: bool = False) -> "Tensor":
        """This tensor in another dtype (differentiable between float types); the device can only be the CPU.

        torch's forms: ``to(dtype)``, ``to(device)``, ``to(device, dtype)``,
        ``to(other)`` (other's dtype), with keywords ``dtype=``, ``device=``,
        ``non_blocking=`` (ignored) and ``copy=`` (a new tensor even when
        nothing changes). Returns ``self`` when nothing changes, as torch.
        """
        target = parse_to("Tensor.to", args, device, dtype)
        result = self if target is None else self.astype(target)
        return self.clone() if copy and result is self else result

    def type(self, dtype=None, non_blocking: bool = False):
        """With no argument, torch's type name (``'normlab.FloatTensor'``); else ``self.to(dtype)``."""
        if dtype is None:
            return "normlab." + _TYPE_NAMES.get(self._data.dtype.name, self._data.dtype.name)
        return self.to(dtype)

    def type_as(self, other) -> "Tensor":
        return self.astype(_unwrap(other).dtype)

    def _new(self, name: str, make, size, dtype, device, requires_grad: bool) -> "Tensor":
        check_device(device, f"Tensor.{name}")
        return Tensor(make(_shape(size), dtype=np.dtype(dtype) if dtype is not None else self.dtype),
                      requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        """Zeros of ``size`` in this tensor's dtype (unless ``dtype`` is given)."""
        return self._new("new_zeros", np.zeros, size, dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return self._new("new_ones", np.ones, size, dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return self._new("new_empty", np.empty, size, dtype, device, requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        return self._new("new_full", lambda shape, dtype: np.full(shape, _unwrap(fill_value), dtype=dtype),
                         (size,), dtype, device, requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad: bool = False) -> "Tensor":
        check_device(device, "Tensor.new_tensor")
        return tensor(data, requires_grad=requires_grad, dtype=dtype if dtype is not None else self.dtype)

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def half(self):
        return self.astype(np.float16)

    def long(self):
        return self.astype(np.int64)

    def int(self):
        return self.astype(np.int32)

    def short(self):
        return self.astype(np.int16)

    def char(self):
        return self.astype(np.int8)

    def byte(self):
        return self.astype(np.uint8)

    def bool(self):
        return self.astype(np.bool_)

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
        As in torch, what the graph saved is freed as the backward goes, unless
        ``retain_graph=True``; a second backward through a node that saved
        arrays then raises. ``inputs`` (tensors, leaves or not): accumulate
        into those tensors' ``.grad`` only, as torch does. ``create_graph``
        (higher-order gradients) is not supported.
        """
        if create_graph:
            raise NotImplementedError("backward: create_graph=True (higher-order gradients) is not supported by normlab")
        if inputs is not None:
            from normlab.autograd.gradient import capture_gradients

            inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
            grads = capture_gradients(self, inputs, None if grad is None else [grad], bool(retain_graph), leaf_hooks=False)
            for t, g in zip(inputs, grads):
                if g is not None:
                    t._accumulate_leaf(g, exclusive=True)
            return
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
            run_backward(self, grad, retain_graph=bool(retain_graph))

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
        if hooks and getattr(hooks[-1], "retains_grad", False):
            hooks.insert(len(hooks) - 1, hook)  # retain_grad keeps the gradient after every hook, as torch
        else:
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

    @property
    def retains_grad(self) -> bool:
        """True for a non-leaf tensor on which ``retain_grad()`` was called."""
        return self._retains_grad

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (a leaf keeps it anyway)."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
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

        keep.retains_grad = True
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

    def __floordiv__(self, other):
        return self.div(other, rounding_mode="floor")

    def __rfloordiv__(self, other):
        return as_tensor(other).div(self, rounding_mode="floor")

    def __mod__(self, other):
        return self.remainder(other)

    def __rmod__(self, other):
        return as_tensor(other).remainder(self)

    # Comparisons and logic give boolean tensors without gradient, as in torch.
    def _compare(self, ufunc, other):
        return Tensor(ufunc(self._data, _operand(_unwrap(other), accepts_none=False)))

    def _compare_operator(self, ufunc, other):
        # Not a number (a string, None, pytest.approx): let Python ask the other side, then give its
        # own answer (== is False, < raises TypeError), as with torch.
        try:
            operand = _operand(_unwrap(other), accepts_none=False)
        except TypeError:
            return NotImplemented
        return Tensor(ufunc(self._data, operand))

    def __lt__(self, other):
        return self._compare_operator(np.less, other)

    def __le__(self, other):
        return self._compare_operator(np.less_equal, other)

    def __gt__(self, other):
        return self._compare_operator(np.greater, other)

    def __ge__(self, other):
        return self._compare_operator(np.greater_equal, other)

    def __eq__(self, other):
        return self._compare_operator(np.equal, other)

    def __ne__(self, other):
        return self._compare_operator(np.not_equal, other)

    def lt(self, other):
        return self._compare(np.less, other)

    def le(self, other):
        return self._compare(np.less_equal, other)

    def gt(self, other):
        return self._compare(np.greater, other)

    def ge(self, other):
        return self._compare(np.greater_equal, other)

    def eq(self, other):
        return self._compare(np.equal, other)

    def ne(self, other):
        return self._compare(np.not_equal, other)

    less, less_equal, greater, greater_equal, not_equal = lt, le, gt, ge, ne

    def _logical(self, ufunc, other, name: str):
        if self._data.dtype.kind not in "biu":
            raise TypeError(f"operator {name}: expected bool or integer tensors, got dtype {self.dtype}")
        return self._compare(ufunc, other)

    def __and__(self, other):
        return self._logical(np.bitwise_and, other, "&")

    def __or__(self, other):
        return self._logical(np.bitwise_or, other, "|")

    def __xor__(self, other):
        return self._logical(np.bitwise_xor, other, "^")

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self):
        if self._data.dtype.kind not in "biu":
            raise TypeError(f"operator ~: expected a bool or integer tensor, got dtype {self.dtype}")
        return Tensor(np.invert(self._data))

    def logical_not(self):
        return Tensor(np.logical_not(self._data))

    def logical_and(self, other):
        return self._compare(np.logical_and, other)

    def logical_or(self, other):
        return self._compare(np.logical_or, other)

    def logical_xor(self, other):
        return self._compare(np.logical_xor, other)

    def isnan(self):
        return Tensor(np.isnan(self._data))

    def isinf(self):
        return Tensor(np.isinf(self._data))

    def isfinite(self):
        return Tensor(np.isfinite(self._data))

    def isclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False):
        return Tensor(np.isclose(self._data, _operand(_unwrap(other), False), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def allclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        return bool(np.allclose(self._data, _operand(_unwrap(other), False), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def equal(self, other) -> bool:
        """True when ``other`` has the same shape and the same values (torch.equal)."""
        other = _unwrap(other)
        return np.shape(other) == self.shape and bool(np.array_equal(self._data, other))

    def add(self, other, *, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    subtract = sub

    def mul(self, other):
        return self * other

    multiply = mul

    def div(self, other, *, rounding_mode=None):
        """Division; ``rounding_mode='trunc'`` or ``'floor'`` rounds the quotient (its gradient is then 0)."""
        if rounding_mode is None:
            return self / other
        if rounding_mode not in ("trunc", "floor"):
            raise ValueError(f"div: expected rounding_mode None, 'trunc' or 'floor', got {rounding_mode!r}")
        if self._data.dtype.kind in "iu" and np.asarray(_unwrap(other)).dtype.kind in "iu":
            quotient = np.floor_divide(self._data, _operand(_unwrap(other), False))
            if rounding_mode == "trunc":  # floor and trunc differ where the exact quotient is negative
                remainder = self._data - quotient * _unwrap(other)
                quotient = quotient + ((remainder != 0) & (quotient < 0))
            return Tensor(quotient)
        return (self / other).floor() if rounding_mode == "floor" else (self / other).trunc()

    divide = true_divide = div

    def remainder(self, other):
        """a - b * floor(a / b) (Python's sign rule, as torch.remainder): gradient 1 to a, -floor(a / b) to b."""
        if self._data.dtype.kind in "iu" and np.asarray(_unwrap(other)).dtype.kind in "iu":
            return Tensor(np.remainder(self._data, _operand(_unwrap(other), False)))
        return self - other * (self / other).floor()

    def pow(self, exponent):
        return self ** exponent

    def neg(self):
        return -self

    negative = neg

    def matmul(self, other):
        return self @ other

    def mm(self, mat2):
        """Matrix product of two 2-D tensors."""
        if self.ndim != 2 or np.ndim(_unwrap(mat2)) != 2:
            raise ValueError(f"mm: expected two 2D tensors, got shapes {self.shape} and {np.shape(_unwrap(mat2))}")
        return self @ mat2

    def bmm(self, mat2):
        """Batched matrix product of two 3-D tensors (b, n, m) @ (b, m, p)."""
        other = np.shape(_unwrap(mat2))
        if self.ndim != 3 or len(other) != 3 or other[0] != self.shape[0]:
            raise ValueError(f"bmm: expected 3D tensors with equal batch sizes, got shapes {self.shape} and {other}")
        return self @ mat2

    def dot(self, other):
        """Inner product of two 1-D tensors."""
        if self.ndim != 1 or np.ndim(_unwrap(other)) != 1:
            raise ValueError(f"dot: expected two 1D tensors, got shapes {self.shape} and {np.shape(_unwrap(other))}")
        return self @ other

    # ------------------------------------------------------- elementwise math
    def _floating(self) -> "Tensor":
        """Integer and bool tensors become the default float dtype first (torch's rule for exp, sin, ...)."""
        return self if self._data.dtype.kind in "fc" else self.astype(_default_dtype)

    def exp(self):
        return fn.Exp.apply(self._floating())

    def log(self):
        return fn.Log.apply(self._floating())

    def sqrt(self):
        return fn.Sqrt.apply(self._floating())

    def sin(self):
        return fn.Sin.apply(self._floating())

    def cos(self):
        return fn.Cos.apply(self._floating())

    def tan(self):
        return fn.Tan.apply(self._floating())

    def log1p(self):
        return fn.Log1p.apply(self._floating())

    def expm1(self):
        return fn.Expm1.apply(self._floating())

    def sinh(self):
        return fn.Sinh.apply(self._floating())

    def cosh(self):
        return fn.Cosh.apply(self._floating())

    def asin(self):
        return fn.Arcsin.apply(self._floating())

    def acos(self):
        return fn.Arccos.apply(self._floating())

    def atan(self):
        return fn.Arctan.apply(self._floating())

    arcsin, arccos, arctan = asin, acos, atan

    def exp2(self):
        return self._floating().__rpow__(2.0)

    def lerp(self, end, weight):
        """self + weight * (end - self)."""
        return self + weight * (end - self)

    def addcmul(self, tensor1, tensor2, *, value=1):
        return self + value * (tensor1 * tensor2)

    def addcdiv(self, tensor1, tensor2, *, value=1):
        return self + value * (tensor1 / tensor2)

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        """beta * self + alpha * (mat1 @ mat2)."""
        product = as_tensor(mat1).mm(mat2)
        return (self if beta == 1 else beta * self) + (product if alpha == 1 else alpha * product)

    def fmod(self, other):
        """a - b * trunc(a / b): the remainder with the sign of a (C's fmod)."""
        if self._data.dtype.kind in "iu" and np.asarray(_unwrap(other)).dtype.kind in "iu":
            return Tensor(np.fmod(self._data, _operand(_unwrap(other), False)))
        return self - other * (self / other).trunc()

    def log2(self):
        return self.log() * (1 / np.log(2.0))

    def log10(self):
        return self.log() * (1 / np.log(10.0))

    def reciprocal(self):
        return fn.Reciprocal.apply(self._floating())

    def rsqrt(self):
        return fn.Rsqrt.apply(self._floating())

    def square(self):
        return fn.Pow.apply(self, 2)

    def abs(self):
        return fn.Abs.apply(self)

    __abs__ = abs
    absolute = abs

    def sign(self):
        """-1, 0 or 1; the gradient is 0 (as torch)."""
        return fn.Step.apply(self, op=np.sign)

    def floor(self):
        return fn.Step.apply(self, op=np.floor)

    def ceil(self):
        return fn.Step.apply(self, op=np.ceil)

    def trunc(self):
        return fn.Step.apply(self, op=np.trunc)

    def round(self, *, decimals: int = 0):
        """Round half to even (as torch and NumPy); the gradient is 0."""
        return fn.Step.apply(self, op=np.round, decimals=int(decimals))

    def clip(self, min=None, max=None):
        """Clamp into [min, max]; the gradient flows where the input was inside (boundaries included)."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
        return fn.Clip.apply(self, min=_bound(min), max=_bound(max))

    clamp = clip

    def clamp_min(self, min):
        return self.clamp(min=min)

    def clamp_max(self, max):
        return self.clamp(max=max)

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

    def softmax(self, dim, dtype=None):
        """exp(x) / sum(exp(x)) along ``dim`` (as ``F.softmax``)."""
        from normlab.autograd.activations import Softmax
        x = (self if dtype is None else self.astype(dtype))._floating()
        return Softmax.apply(x, dim=_one_axis(dim, x.ndim))

    def log_softmax(self, dim, dtype=None):
        from normlab.autograd.activations import LogSoftmax
        x = (self if dtype is None else self.astype(dtype))._floating()
        return LogSoftmax.apply(x, dim=_one_axis(dim, x.ndim))

    def astype(self, dtype):
        """Convert the dtype; between floating-point types the gradient is converted back."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if self.requires_grad and dtype.kind in "fc":
            return fn.Cast.apply(self, dtype=dtype)
        return Tensor(self._data.astype(dtype))

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

    def var_mean(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
        """``(var, mean)`` over ``dim``, as torch.var_mean."""
        return (self.var(dim, unbiased, keepdim, correction=correction),
                self.mean(dim, keepdim=keepdim))

    def std_mean(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
        return (self.std(dim, unbiased, keepdim, correction=correction),
                self.mean(dim, keepdim=keepdim))

    def prod(self, dim=None, keepdim=False, *, dtype=None):
        """Product of all elements, or along one ``dim``; exact gradient also where an element is 0."""
        source = self._reduction_input(dtype, None, "prod")
        if dim is None:
            return fn.Prod.apply(source.reshape(-1), axis=0, keepdim=False)
        return fn.Prod.apply(source, axis=_one_axis(dim, self.ndim), keepdim=bool(keepdim))

    def cumsum(self, dim, *, dtype=None):
        source = self._reduction_input(dtype, None, "cumsum")
        if self.ndim == 0:
            return source.clone()
        return fn.Cumsum.apply(source, axis=_one_axis(dim, self.ndim))

    def logsumexp(self, dim, keepdim=False):
        """log(sum(exp(x))) over ``dim``, computed without overflow; its gradient is softmax(x)."""
        return fn.LogSumExp.apply(self._floating(), axes=fn.normalize_axes(dim, self.ndim), keepdim=bool(keepdim))

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        """The vector p-norm over ``dim`` (all elements by default); ``'fro'`` is the 2-norm (as torch.norm).

        ``p='nuc'`` (a matrix norm) is not supported; see ``normlab.linalg``.
        """
        if p == "fro":
            p = 2
        elif isinstance(p, str):
            raise NotImplementedError(f"norm: p={p!r} is not supported by normlab (supported: 'fro' and numbers)")
        return vector_norm(self, p, dim, keepdim, dtype=dtype)

    def _extremum(self, dim, keepdim, axis, keepdims, largest):
        if isinstance(dim, Tensor) or isinstance(dim, np.ndarray):  # max(other): elementwise, as torch.max(a, b)
            return self.maximum(dim) if largest else self.minimum(dim)
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
        """Index of the first largest element (of the flattened tensor when ``dim`` is None)."""
        return self._arg_extremum(np.argmax, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return self._arg_extremum(np.argmin, dim, keepdim)

    def _arg_extremum(self, find, dim, keepdim):
        if dim is None:
            index = np.int64(find(self._data))
            return Tensor(np.full((1,) * self.ndim, index) if keepdim else index)
        return Tensor(find(self._data, axis=_one_axis(dim, self.ndim), keepdims=bool(keepdim)).astype(np.int64))

    def kthvalue(self, k: int, dim: int = -1, keepdim: bool = False):
        """``(values, indices)`` of the k-th smallest element along ``dim`` (k counts from 1)."""
        axis = _one_axis(dim, max(self.ndim, 1))
        source = self if self.ndim else self.reshape(1)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= source.shape[axis]:
            raise ValueError(f"kthvalue: expected k in [1, {source.shape[axis]}], got {k!r}")
        index = np.take(_sort_order(source._data, axis, descending=False), [k - 1], axis=axis)
        values = indexing.Gather.apply(source, dim=axis, index=index)
        if not keepdim:
            values, index = values.squeeze(axis), np.squeeze(index, axis)
        return ValuesIndices(values, Tensor(index))

    def unique(self, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False, dim=None):
        """The distinct values (sorted), optionally with the inverse indices and the counts; no gradient."""
        found = np.unique(self._data, return_inverse=return_inverse, return_counts=return_counts,
                          axis=None if dim is None else _one_axis(dim, self.ndim))
        if not (return_inverse or return_counts):
            return Tensor(found)
        values, *extra = found
        if return_inverse:
            extra[0] = extra[0].reshape(self.shape if dim is None else -1)
        return (Tensor(values),) + tuple(Tensor(e.astype(np.int64)) for e in extra)

    def diff(self, n: int = 1, dim: int = -1, prepend=None, append=None):
        """The n-th forward difference along ``dim``: out[i] = x[i + 1] - x[i], n times."""
        axis = _one_axis(dim, self.ndim)
        x = cat([t for t in (prepend, self, append) if t is not None], dim=axis)
        for _ in range(n):
            x = x.narrow(axis, 1, x.shape[axis] - 1) - x.narrow(axis, 0, x.shape[axis] - 1)
        return x

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1):
        """The diagonal of the matrices in dims (dim1, dim2), as the last dimension (a differentiable gather)."""
        axes = (_one_axis(dim1, self.ndim), _one_axis(dim2, self.ndim))
        moved = self.movedim(axes, (-2, -1))
        rows = np.arange(max(0, -offset), min(moved.shape[-2], moved.shape[-1] - offset))
        return moved[..., rows, rows + offset]

    def trace(self):
        if self.ndim != 2:
            raise ValueError(f"trace: expected a 2D tensor, got shape {self.shape}")
        return self.diagonal().sum()

    def count_nonzero(self, dim=None):
        return Tensor(np.asarray(np.count_nonzero(self._data, axis=dim), dtype=np.int64))

    def sort(self, dim=-1, descending=False, *, stable=False):
        """``(values, indices)`` sorted along ``dim``; ties keep their order; NaN counts as the largest value."""
        if self.ndim == 0:
            return ValuesIndices(self.clone(), Tensor(np.int64(0)))
        axis = _one_axis(dim, self.ndim)
        index = _sort_order(self._data, axis, descending)
        return ValuesIndices(indexing.Gather.apply(self, dim=axis, index=index), Tensor(index))

    def argsort(self, dim=-1, descending=False, *, stable=False):
        if self.ndim == 0:
            return Tensor(np.int64(0))
        return Tensor(_sort_order(self._data, _one_axis(dim, self.ndim), descending))

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The ``k`` largest (or smallest) elements along ``dim`` and their indices, largest first."""
        axis = _one_axis(dim, max(self.ndim, 1))
        length = self.shape[axis] if self.ndim else 1
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= length:
            raise ValueError(f"topk: expected k in [0, {length}] for dimension {dim} of size {length}, got {k!r}")
        source = self if self.ndim else self.reshape(1)
        index = np.take(_sort_order(source._data, axis, descending=largest), np.arange(k), axis=axis)
        values = indexing.Gather.apply(source, dim=axis, index=index)
        if not self.ndim:
            return ValuesIndices(values.reshape(()), Tensor(index.reshape(())))
        return ValuesIndices(values, Tensor(index))

    def median(self, dim=None, keepdim=False):
        """The lower median (as torch): of all elements, or ``(values, indices)`` along ``dim``."""
        if dim is None:
            flat = self.reshape(-1)
            return flat.sort().values[(flat.shape[0] - 1) // 2]
        axis = _one_axis(dim, self.ndim)
        order = _sort_order(self._data, axis, descending=False)
        index = np.take(order, [(self.shape[axis] - 1) // 2], axis=axis)
        values = indexing.Gather.apply(self, dim=axis, index=index)
        if not keepdim:
            values, index = values.squeeze(axis), np.squeeze(index, axis)
        return ValuesIndices(values, Tensor(index))

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

    def squeeze(self, dim=None):
        """Drop dimensions of size 1: all of them, or those among ``dim`` (an int or a tuple)."""
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        axes = fn.normalize_axes(dim, self.ndim) if self.ndim else ()
        shape = tuple(s for i, s in enumerate(self.shape) if not (i in axes and s == 1))
        return self if shape == self.shape else self.reshape(shape)

    def expand(self, *shape):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else shape
        full = tuple(old if new == -1 else new
                     for old, new in zip((1,) * (len(shape) - self.ndim) + self.shape, shape))
        return fn.Expand.apply(self, shape=full)

    def view_as(self, other):
        return self.reshape(_unwrap(other).shape)

    reshape_as = view_as

    def expand_as(self, other):
        return self.expand(_unwrap(other).shape)

    def repeat(self, *sizes):
        """Tile the tensor ``sizes[i]`` times along each dimension (torch's repeat, NumPy's tile)."""
        sizes = _shape(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"repeat: expected at least {self.ndim} repeat counts (one per dimension), got {sizes}")
        return indexing.Repeat.apply(self, repeats=tuple(int(n) for n in sizes))

    def contiguous(self, memory_format=None):
        """Self when its memory is already C-ordered, else a C-ordered copy (in the graph)."""
        return self if self._data.flags.c_contiguous else fn.Copy.apply(self, order="C")

    def is_contiguous(self, memory_format=None) -> bool:
        return bool(self._data.flags.c_contiguous)

    def unflatten(self, dim: int, sizes):
        """Split dimension ``dim`` into ``sizes`` (one entry may be -1)."""
        axis = _one_axis(dim, self.ndim)
        return self.reshape(self.shape[:axis] + tuple(sizes) + self.shape[axis + 1:])

    def t(self):
        """Transpose of a tensor with at most 2 dimensions."""
        if self.ndim > 2:
            raise ValueError(f"t: expected a tensor with at most 2 dimensions, got shape {self.shape}; use transpose")
        return self.transpose(0, 1) if self.ndim == 2 else self

    @property
    def mT(self):
        """The last two dimensions swapped (a batch of transposed matrices)."""
        if self.ndim < 2:
            raise ValueError(f"mT: expected a tensor with at least 2 dimensions, got shape {self.shape}")
        return self.transpose(-2, -1)

    swapaxes = swapdims = transpose

    def movedim(self, source, destination):
        """Move dimension(s) ``source`` to position(s) ``destination``; the others keep their order."""
        source = [_one_axis(d, self.ndim) for d in _as_tuple(source)]
        destination = [_one_axis(d, self.ndim) for d in _as_tuple(destination)]
        if len(source) != len(destination):
            raise ValueError(f"movedim: source {source} and destination {destination} differ in length")
        order = [d for d in range(self.ndim) if d not in source]
        for position, axis in sorted(zip(destination, source)):
            order.insert(position, axis)
        return self.permute(order)

    moveaxis = movedim

    def narrow(self, dim: int, start: int, length: int):
        """The ``length`` elements from ``start`` along ``dim`` (a view)."""
        axis = _one_axis(dim, self.ndim)
        start = start + self.shape[axis] if start < 0 else start
        if not 0 <= start <= start + length <= self.shape[axis]:
            raise IndexError(f"narrow: start {start} and length {length} exceed dimension {dim} of size {self.shape[axis]}")
        return self[(slice(None),) * axis + (slice(start, start + length),)]

    def select(self, dim: int, index: int):
        axis = _one_axis(dim, self.ndim)
        return self[(slice(None),) * axis + (int(index),)]

    def index_select(self, dim: int, index):
        index = np.asarray(_unwrap(index))
        if index.ndim > 1 or (index.size and index.dtype.kind not in "iu"):
            raise TypeError(f"index_select: expected a 1D integer index, got {describe(index)} of shape {index.shape}")
        axis = _one_axis(dim, max(self.ndim, 1))
        return self[(slice(None),) * axis + (index.reshape(-1).astype(np.int64),)]

    def masked_select(self, mask):
        mask = np.asarray(_unwrap(mask), dtype=bool)
        source = self.expand(np.broadcast_shapes(self.shape, mask.shape))
        return source[np.broadcast_to(mask, source.shape)]

    def unbind(self, dim: int = 0):
        """The slices along ``dim``, as a tuple."""
        axis = _one_axis(dim, self.ndim)
        return tuple(self.select(axis, i) for i in range(self.shape[axis]))

    def flip(self, *dims):
        dims = _shape(dims)
        return indexing.Flip.apply(self, axes=tuple(_one_axis(d, self.ndim) for d in dims))

    def roll(self, shifts, dims=None):
        if dims is None:
            return indexing.Roll.apply(self.reshape(-1), shifts=(int(shifts),), axes=(0,)).reshape(self.shape)
        shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
        dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
        if len(shifts) != len(dims):
            raise ValueError(f"roll: expected as many shifts as dims, got {shifts} and {dims}")
        return indexing.Roll.apply(self, shifts=tuple(int(n) for n in shifts),
                                   axes=tuple(_one_axis(d, self.ndim) for d in dims))

    def tril(self, diagonal: int = 0):
        """Zero above the ``diagonal``-th diagonal of the last two dimensions."""
        if self.ndim < 2:
            raise ValueError(f"tril: expected a tensor with at least 2 dimensions, got shape {self.shape}")
        return indexing.Triangle.apply(self, diagonal=int(diagonal), lower=True)

    def triu(self, diagonal: int = 0):
        if self.ndim < 2:
            raise ValueError(f"triu: expected a tensor with at least 2 dimensions, got shape {self.shape}")
        return indexing.Triangle.apply(self, diagonal=int(diagonal), lower=False)

    def gather(self, dim: int, index):
        """``out[i][j] = self[i][index[i][j]]`` for dim 1 (torch.gather); the gradient is scattered back, added."""
        axis, index = self._scatter_index("gather", dim, index)
        return indexing.Gather.apply(self, dim=axis, index=index)

    def scatter(self, dim: int, index, src=None, *, value=None, reduce=None):
        """A copy with ``out[i][index[i][j]] = src[i][j]`` for dim 1 (torch.scatter); ``src`` may be a number."""
        if reduce is not None:
            raise NotImplementedError("scatter: reduce= is not supported by normlab; use scatter_add for 'add'")
        axis, index = self._scatter_index("scatter", dim, index)
        source = _scatter_source(src, value, "scatter", index.shape)
        return fn.SetItem.apply(self, source, index=indexing.along(index, axis))

    def scatter_add(self, dim: int, index, src):
        """A copy with ``out[i][index[i][j]] += src[i][j]`` for dim 1 (torch.scatter_add)."""
        axis, index = self._scatter_index("scatter_add", dim, index)
        source = _scatter_source(src, None, "scatter_add", index.shape)
        return fn.SetItem.apply(self, source, index=indexing.along(index, axis), accumulate=True)

    def scatter_(self, dim: int, index, src=None, *, value=None, reduce=None):
        return self._inplace("scatter_", lambda s, v: s.scatter(dim, index, v, reduce=reduce),
                             src if value is None else _operand(_unwrap(value), accepts_none=False))

    def scatter_add_(self, dim: int, index, src):
        return self._inplace("scatter_add_", lambda s, v: s.scatter_add(dim, index, v), src)

    def _scatter_index(self, name: str, dim, index) -> tuple[int, np.ndarray]:
        index = np.asarray(_unwrap(index))
        if index.dtype.kind not in "iu" and index.size:
            raise TypeError(f"{name}: expected an integer index, got dtype {index.dtype}")
        if index.ndim != self.ndim:
            raise ValueError(f"{name}: expected an index with {self.ndim} dimensions, got shape {index.shape}")
        axis = _one_axis(dim, max(self.ndim, 1))
        too_big = [d for d in range(self.ndim) if d != axis and index.shape[d] > self.shape[d]]
        if too_big:
            raise ValueError(f"{name}: index of shape {index.shape} is larger than the input {self.shape} "
                             f"in dimension {too_big[0]}")
        if index.size and (index.min() < -self.shape[axis] or index.max() >= self.shape[axis]):
            raise IndexError(f"{name}: index out of range for dimension {dim} of size {self.shape[axis]}")
        return axis, index.astype(np.int64) % max(self.shape[axis], 1)

    def where(self, condition, other):
        """``self`` where ``condition`` holds, else ``other`` (torch's Tensor.where)."""
        return where(condition, self, other)

    def nonzero(self, *, as_tuple: bool = False):
        """Indices of the nonzero elements: an (n, ndim) int64 tensor, or one index tensor per dimension."""
        found = np.nonzero(self._data) if self.ndim else np.nonzero(self._data.reshape(1))
        if as_tuple:
            return tuple(Tensor(i.astype(np.int64)) for i in found)
        return Tensor(np.stack(found, axis=1).astype(np.int64).reshape(-1, self.ndim))

    def repeat_interleave(self, repeats, dim=None):
        """Each element repeated ``repeats`` times (an int, or one count per element) along ``dim`` (flattened if None)."""
        source = self.reshape(-1) if dim is None else self
        axis = 0 if dim is None else _one_axis(dim, self.ndim)
        counts = np.asarray(_unwrap(repeats))
        order = np.repeat(np.arange(source.shape[axis]), counts)
        return source[(slice(None),) * axis + (order,)]

    def broadcast_to(self, *shape):
        return self.expand(*shape)

    def tile(self, *dims):
        """torch.tile: repeat with missing leading counts taken as 1."""
        dims = _shape(dims)
        return self.repeat((1,) * (self.ndim - len(dims)) + tuple(dims))

    def outer(self, vec2):
        """The outer product of two 1-D tensors."""
        other = as_tensor(vec2)
        if self.ndim != 1 or other.ndim != 1:
            raise ValueError(f"outer: expected two 1D tensors, got shapes {self.shape} and {other.shape}")
        return self.reshape(-1, 1) * other.reshape(1, -1)

    def diag(self, diagonal: int = 0):
        """A 1-D tensor: the square matrix with it on a diagonal; a 2-D tensor: its diagonal."""
        if self.ndim == 1:
            n = self.shape[0] + abs(diagonal)
            rows = np.arange(self.shape[0]) + max(-diagonal, 0)
            placed = fn.SetItem.apply(np.zeros((n * n,), dtype=self.dtype), self, index=rows * n + rows + diagonal)
            return placed.reshape(n, n)
        if self.ndim == 2:
            rows = np.arange(max(0, -diagonal), min(self.shape[0], self.shape[1] - diagonal))
            return self[rows, rows + diagonal]
        raise ValueError(f"diag: expected a 1D or 2D tensor, got shape {self.shape}")

    def bernoulli(self, *, generator=None):
        """0/1 samples, each 1 with the probability given by this tensor's element."""
        from normlab.random import default_generator
        rng = generator or default_generator()
        return Tensor((rng.random(self.shape) < self._data).astype(self.dtype))

    def multinomial(self, num_samples: int, replacement: bool = False, *, generator=None):
        """``num_samples`` indices per row drawn with probability proportional to the row (torch.multinomial)."""
        from normlab.random import default_generator
        rng = generator or default_generator()
        weights = np.asarray(self._data, dtype=np.float64)
        if weights.ndim not in (1, 2) or (weights < 0).any() or not np.all(weights.sum(-1) > 0):
            raise ValueError("multinomial: expected a 1D or 2D tensor of non-negative weights, each row with a "
                             "positive sum")
        rows = weights.reshape(-1, weights.shape[-1])
        drawn = np.stack([rng.choice(rows.shape[1], size=num_samples, replace=replacement, p=row / row.sum())
                          for row in rows])
        return Tensor(drawn.reshape(weights.shape[:-1] + (num_samples,)).astype(np.int64))

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
# Making tensors from data, and the free functions Tensor's methods build on
# (the other factories are in creation.py, the functional forms in toplevel.py)
# ----------------------------------------------------------------------------

def tensor(data, requires_grad: bool = False, dtype=None, *, device=None, pin_memory: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (Python floats become float32, as in torch).

    >>> tensor([[1, 2], [3, 4]]).dtype
    dtype('int64')
    """
    check_device(device, "normlab.tensor")
    array = _to_array(data, dtype)
    return Tensor(array.copy() if array is _unwrap(data) else array, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a Tensor, sharing memory where possible; a Tensor is returned unchanged."""
    check_device(device, "normlab.as_tensor")
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
        return data
    return Tensor(_to_array(data, dtype))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with the NumPy ``array``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else tuple(shape)


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    dim = dim % np.ndim(_unwrap(tensors[0]))
    return fn.Cat.apply(*tensors, dim=dim)


concatenate = concat = cat


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    dim = dim % (np.ndim(_unwrap(tensors[0])) + 1)
    return fn.Stack.apply(*tensors, dim=dim)


def where(condition, input=None, other=None) -> Tensor:
    """``input`` where ``condition`` holds, else ``other``; with only a condition, the indices where it holds."""
    condition = _operand(_unwrap(condition), accepts_none=False)
    if input is None and other is None:
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(condition))
    return fn.Where.apply(condition, input, other)


def maximum(input, other) -> Tensor:
    return fn.Maximum.apply(input, other)


def minimum(input, other) -> Tensor:
    return fn.Minimum.apply(input, other)


def vector_norm(x, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """The vector ``ord``-norm of ``x`` over ``dim`` (all elements by default), as torch.linalg.vector_norm.

    ``ord``: any real number, ``inf`` (largest magnitude), ``-inf`` (smallest), 0 (count of nonzeros).

    >>> float(vector_norm(tensor([3.0, 4.0])))
    5.0
    """
    x = as_tensor(x)
    if dtype is not None:
        x = x.astype(dtype)
    if x._data.dtype.kind not in "fc":
        raise TypeError(f"{public_caller()}: expected a floating-point input, got dtype {x.dtype}")
    if isinstance(ord, bool) or not isinstance(ord, (int, float, np.integer, np.floating)):
        raise TypeError(f"{public_caller()}: expected ord to be a number, got {ord!r}")
    return fn.VectorNorm.apply(x, ord=float(ord), axes=fn.normalize_axes(dim, x.ndim), keepdim=bool(keepdim))


def _sort_order(array: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable sort indices along ``axis``; descending keeps ties in order and puts NaN first (as torch)."""
    if not descending:
        return np.argsort(array, axis=axis, kind="stable").astype(np.int64)
    # The stable ascending order of the reversed array, reversed, is the stable descending order.
    n = array.shape[axis]
    reversed_order = np.argsort(np.flip(array, axis), axis=axis, kind="stable")
    return (n - 1 - np.flip(reversed_order, axis)).astype(np.int64)


def _scatter_source(src, value, name: str, index_shape: tuple):
    """What scatter writes: a number, or the leading ``index_shape`` block of ``src`` (torch reads only that)."""
    if (src is None) == (value is None):
        raise TypeError(f"{name}: expected exactly one of src (a tensor) and value (a number)")
    if value is not None or not isinstance(src, (Tensor, np.ndarray)):
        return _operand(_unwrap(src if value is None else value), accepts_none=False)
    block = tuple(slice(0, n) for n in index_shape)
    return src if src.shape == index_shape else src[block]


_UFUNC_OPS = {
    np.add: lambda a, b: fn.Add.apply(a, b),
    np.subtract: lambda a, b: fn.Sub.apply(a, b),
    np.multiply: lambda a, b: fn.Mul.apply(a, b),
    np.true_divide: lambda a, b: fn.Div.apply(a, b),
    np.power: lambda a, b: fn.Pow.apply(a, b),
    np.matmul: lambda a, b: fn.MatMul.apply(a, b),
    np.negative: lambda a: fn.Neg.apply(a),
    np.exp: lambda a: as_tensor(a).exp(),
    np.log: lambda a: as_tensor(a).log(),
    np.sqrt: lambda a: as_tensor(a).sqrt(),
    np.sin: lambda a: as_tensor(a).sin(),
    np.cos: lambda a: as_tensor(a).cos(),
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
