"""``Function``: one differentiable operation, and the backward engine.

A Function pairs a forward that maps NumPy arrays to NumPy arrays with a
backward that maps the gradient of its outputs to the gradient of its inputs.
``Function.apply`` unwraps Tensors, runs forward, and -- when some input
requires grad and recording is on -- remembers the inputs so that
``Tensor.backward`` can walk the graph in reverse topological order.

Writing a new op::

    class Square(Function):
        def forward(self, x):
            self.x = x                    # save the smallest sufficient state
            return x * x

        def backward(self, g):
            return (2 * self.x * g,)      # one gradient per positional input

    y = Square.apply(t)

Rules an op follows:

* positional arguments are the graph inputs (Tensors, arrays or Python
  numbers); keyword arguments are configuration and never get a gradient;
* ``backward`` returns one entry per positional argument (``None`` where there
  is no gradient), each with the shape of that input, never modifies the
  gradient it was given, and never returns an array it keeps (the engine may
  hand a fresh array to a leaf's ``.grad`` without copying it);
* forward may return a tuple of arrays; integer and boolean outputs (indices,
  masks) do not carry gradient. A multi-output backward receives ``None`` for
  an output whose gradient never reached the loss.
"""
from __future__ import annotations

import numpy as np

from normlab.autograd.grad_mode import is_grad_enabled


class Function:
    """Base class of differentiable operations (see the module docstring)."""

    #: True for every positional input that requires grad (set by ``apply``).
    needs_input_grad: tuple[bool, ...] = ()

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on unwrapped inputs; record the node when a gradient is wanted."""
        from normlab.autograd.tensor import Tensor

        fn = cls()
        arrays = [a._data if isinstance(a, Tensor) else a for a in args]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = is_grad_enabled() and any(needs)
        fn.needs_input_grad = needs
        raw = fn.forward(*arrays, **kwargs)
        single = not isinstance(raw, tuple)
        outputs = (raw,) if single else raw
        if record:
            fn.inputs = args
            fn.num_outputs = len(outputs)
            fn.output_hooks = {}
        wrapped = []
        for index, out in enumerate(outputs):
            out = np.asarray(out)
            differentiable = record and out.dtype.kind in "fc"
            t = Tensor(out, requires_grad=differentiable)
            if differentiable:
                t._creator = fn
                t._output_index = index
            wrapped.append(t)
        return wrapped[0] if single else tuple(wrapped)


def from_op(name: str, forward, backward, doc: str | None = None) -> type[Function]:
    """A Function class made from a pure pair in ``normlab.ops``.

    ``forward(*arrays, **config) -> (y, saved)`` and ``backward(dy, saved)``
    returning one gradient per positional input (a bare array when there is one).
    """

    def fwd(self, *arrays, **config):
        y, self.saved = forward(*arrays, **config)
        return y

    def bwd(self, dy):
        grads = backward(dy, self.saved)
        return grads if isinstance(grads, tuple) else (grads,)

    return type(name, (Function,), {"forward": fwd, "backward": bwd,
                                    "__doc__": doc or f"Autograd wrapper of ``{forward.__module__}.{forward.__name__}``."})


def _accumulate(current, new):
    # Never add in place: ``current`` may be a read-only broadcast view or an
    # array that an op's backward still owns.
    return new if current is None else current + new


def _owner(array: np.ndarray) -> np.ndarray:
    """The array at the root of ``array``'s chain of views.

    Its own ``base``, if any, is not an array: a Numba allocation (``MemInfo``)
    or a buffer, which only this root refers to.
    """
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _exclusive(g: np.ndarray, in_grads: tuple, out_grads: list) -> bool:
    """True when ``g`` is (a full view of) a fresh array that nothing else holds.

    Then a leaf may keep it as ``.grad`` without a copy. Not exclusive: memory
    shared with an upstream gradient (``Add`` passes it straight through, and
    it may be the caller's seed), with another returned gradient, a read-only
    (broadcast) view, or a slice of a larger array. Ops keep their side of the
    contract by never returning an array they hold on to.
    """
    owner = _owner(g)
    if not (owner.size == g.size and g.flags.writeable):
        return False
    if any(upstream is not None and _owner(upstream) is owner for upstream in out_grads):
        return False
    return sum(other is not None and _owner(other) is owner for other in in_grads) == 1


def _topological_order(root_fn: Function) -> list[Function]:
    """Functions reachable from ``root_fn``, each after all of its inputs' creators.

    Iterative depth-first search, so graphs as deep as a long unrolled RNN do
    not hit Python's recursion limit.
    """
    from normlab.autograd.tensor import Tensor

    order: list[Function] = []
    visited: set[int] = set()
    stack: list[tuple[Function, bool]] = [(root_fn, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for inp in fn.inputs:
            if isinstance(inp, Tensor) and inp._creator is not None and id(inp._creator) not in visited:
                stack.append((inp._creator, False))
    return order


def run_backward(root, grad: np.ndarray) -> None:
    """Propagate ``grad`` (d loss / d root) to every leaf that requires grad."""
    from normlab.autograd.tensor import Tensor

    if root._creator is None:  # a leaf: its gradient is the seed itself
        root._accumulate_leaf(grad)
        return
    pending: dict[int, list] = {id(root._creator): [None] * root._creator.num_outputs}
    pending[id(root._creator)][root._output_index] = grad
    for fn in reversed(_topological_order(root._creator)):
        out_grads = pending.pop(id(fn), None)
        if out_grads is None or all(g is None for g in out_grads):
            continue
        for index, hooks in fn.output_hooks.items():
            for hook in hooks:
                if out_grads[index] is not None:
                    replaced = hook(out_grads[index])
                    if replaced is not None:
                        out_grads[index] = np.asarray(replaced)
        in_grads = fn.backward(*out_grads)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if len(in_grads) != len(fn.inputs):
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned {len(in_grads)} gradients for {len(fn.inputs)} inputs"
            )
        for inp, g in zip(fn.inputs, in_grads):
            if g is None or not isinstance(inp, Tensor) or not inp.requires_grad:
                continue
            g = np.asarray(g)
            if g.shape != inp.shape:
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned a gradient of shape {g.shape} "
                    f"for an input of shape {inp.shape}"
                )
            if g.dtype != inp.dtype:
                g = g.astype(inp.dtype)
            if inp._creator is None:
                inp._accumulate_leaf(g, exclusive=_exclusive(g, in_grads, out_grads))
            else:
                slot = pending.setdefault(id(inp._creator), [None] * inp._creator.num_outputs)
                slot[inp._output_index] = _accumulate(slot[inp._output_index], g)
