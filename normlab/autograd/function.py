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
  an output whose gradient never reached the loss;
* forward may keep references to its input arrays (no copy needed), but never
  returns an array that it also keeps for backward: a caller who writes into
  an output must not be able to change a later backward.

In-place changes and saved arrays (torch's rule). Every Tensor carries a
version counter, bumped by each in-place change made through normlab
(in-place methods, item assignment, ``t.data = ...``, optimizer steps,
``nn.init``); views share their base's counter. ``apply`` looks at what the
forward kept (the Function's attributes, one or two levels deep) and, for
every input or output whose array it kept, remembers the version;
``backward`` refuses to run if one changed since::

    one of the variables needed for gradient computation has been modified
    by an inplace operation: ...

Writing straight into the NumPy array behind a tensor (``np.asarray(t)[...] =``,
or through ``t.data``, which shares memory but not the counter) is an
untracked escape hatch, as torch's ``.data`` is.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from normlab._checks import NUMERIC_KINDS, not_numeric
from normlab.autograd.grad_mode import is_grad_enabled


class Function:
    """Base class of differentiable operations (see the module docstring)."""

    #: True for every positional input that requires grad (set by ``apply``).
    needs_input_grad: tuple[bool, ...] = ()

    #: May a positional input be None (an absent optional input, such as a bias)?
    accepts_none: bool = True

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on unwrapped inputs; record the node when a gradient is wanted."""
        from normlab.autograd.tensor import Tensor

        fn = cls()
        arrays = [a._data if isinstance(a, Tensor) else _operand(a, cls.accepts_none) for a in args]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = any(needs) and is_grad_enabled()
        fn.needs_input_grad = needs
        raw = fn.forward(*arrays, **kwargs)
        single = not isinstance(raw, tuple)
        outputs = (raw,) if single else raw
        tensor_inputs = [(a, _owner(a._data)) for a in args if isinstance(a, Tensor)]
        wrapped = []
        for index, out in enumerate(outputs):
            out = np.asarray(out)
            differentiable = record and out.dtype.kind in "fc"
            t = Tensor(out, requires_grad=differentiable)
            root = _owner(out)
            for inp, inp_root in tensor_inputs:
                if inp_root is root:  # a view of an input: one memory, one version counter
                    t._version_counter = inp._version_counter
                    t._base = inp if inp._base is None else inp._base
                    break
            if differentiable:
                t._creator = fn
                t._output_index = index
            wrapped.append(t)
        if record:
            fn.saved_versions = _saved_versions(fn, args, wrapped)
            # The graph edge of each input as it is now (an in-place change made
            # later re-points the tensor, not what this node consumed). Only a
            # leaf's Tensor is kept (its .grad is filled); other inputs are not
            # held, so memory nothing saved is freed as soon as the caller drops it.
            fn.edges = tuple(Edge(a._creator, a._output_index, a.shape, a.dtype, a if a._creator is None else None)
                             if need else None for a, need in zip(args, needs))
            fn.num_outputs = len(outputs)
            fn.output_hooks = {}
        return wrapped[0] if single else tuple(wrapped)


class Edge(NamedTuple):
    """Where the gradient of one input goes: its creator's output slot, or a leaf's ``.grad``."""

    creator: "Function | None"
    output_index: int
    shape: tuple
    dtype: np.dtype
    leaf: object  # the leaf Tensor when creator is None, else None


def _operand(value, accepts_none: bool):
    """A positional input that is not a Tensor, as forward receives it; anything non-numeric raises TypeError.

    A NumPy scalar acts like a Python number (torch's weak scalars): float32
    tensor / np.int64(3) stays float32, where NumPy would promote. Sequences
    and other array-likes become arrays; strings, None (unless the op takes an
    optional input) and object arrays are refused, naming the function the user
    called rather than failing inside a NumPy ufunc.
    """
    if isinstance(value, (bool, int, float, complex)):
        return value
    if isinstance(value, np.generic):
        if value.dtype.kind not in NUMERIC_KINDS:
            raise not_numeric(value)
        return value.item()
    if value is None:
        if accepts_none:
            return None
        raise not_numeric(value)
    if isinstance(value, (str, bytes)):
        raise not_numeric(value)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        raise not_numeric(value) from None
    if array.dtype.kind not in NUMERIC_KINDS:
        raise not_numeric(value)
    return array


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


# ----------------------------------------------------------------------------
# What a Function kept, and whether it changed since
# ----------------------------------------------------------------------------

def _owner(array) -> object:
    """The array at the root of ``array``'s chain of views (``array`` itself if it is no view).

    Two arrays can share memory only if they have the same root: its own
    ``base``, if any, is not an array but a Numba allocation or a buffer that
    only this root refers to.
    """
    while isinstance(array, np.ndarray) and isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _kept_arrays(value, found: set, depth: int = 0) -> None:
    """Add the ids of the roots of every array in ``value`` (containers and saved records, 3 levels)."""
    if isinstance(value, np.ndarray):
        found.add(id(_owner(value)))
    elif depth >= 3 or value is None or isinstance(value, (str, bytes, int, float, bool, np.generic)):
        return
    elif isinstance(value, (tuple, list)):
        for item in value:
            _kept_arrays(item, found, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _kept_arrays(item, found, depth + 1)
    elif hasattr(value, "__dataclass_fields__") or hasattr(type(value), "__slots__"):
        # A saved record (NamedTuples are tuples, handled above).
        names = getattr(value, "__dataclass_fields__", None) or type(value).__slots__
        for name in names:
            _kept_arrays(getattr(value, name, None), found, depth + 1)


class SavedVersion(NamedTuple):
    counter: object  # the tensor's _VersionCounter (shared with its views)
    version: int
    role: str        # "input 1", "output 0"
    description: str


def _saved_versions(fn: Function, inputs: tuple, outputs: list) -> tuple[SavedVersion, ...] | None:
    """A ``SavedVersion`` for every input and output whose array ``fn`` kept; None if it kept no array at all."""
    from normlab.autograd.tensor import Tensor

    kept: set = set()
    for name, value in vars(fn).items():
        if name != "needs_input_grad":
            _kept_arrays(value, kept)
    if not kept:
        return None
    roles = [(t, f"input {i}") for i, t in enumerate(inputs) if isinstance(t, Tensor)]
    roles += [(t, f"output {i}") for i, t in enumerate(outputs)]
    return tuple(SavedVersion(t._version_counter, t._version, role, f"{t.dtype} tensor of shape {tuple(t.shape)}")
                 for t, role in roles if id(_owner(t._data)) in kept)


def _check_saved_versions(fn: Function) -> None:
    if fn.__dict__.get("released"):
        raise RuntimeError(
            f"Trying to backward through the graph a second time (or directly access saved tensors after they have "
            f"already been freed): {type(fn).__name__}Backward's saved arrays were freed by the first backward. "
            "Specify retain_graph=True in the first backward() to go through the graph again."
        )
    for saved in fn.saved_versions or ():
        if saved.counter.value != saved.version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: [{saved.description}], which is {saved.role} of {type(fn).__name__}Backward, "
                f"is at version {saved.counter.value}; expected version {saved.version} instead. Hint: find the "
                "in-place change (a method ending in _, item assignment, an optimizer step) between the forward "
                "and this backward and make it out of place."
            )


_ENGINE_FIELDS = frozenset({"edges", "num_outputs", "output_hooks", "needs_input_grad", "saved_versions"})


def _release(fn: Function) -> None:
    """Free what ``fn`` saved for backward (torch's default after a backward, ``retain_graph=False``).

    A node that kept no array can run again, as in torch; one that did is
    marked, and a second backward through it raises.
    """
    if fn.saved_versions is None:
        return
    for name in [n for n in fn.__dict__ if n not in _ENGINE_FIELDS]:
        del fn.__dict__[name]
    fn.released = True


# ----------------------------------------------------------------------------
# The backward engine
# ----------------------------------------------------------------------------

def _accumulate(current, new):
    # Never add in place: ``current`` may be a read-only broadcast view or an
    # array that an op's backward still owns.
    return new if current is None else current + new


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
        for edge in fn.edges:
            if edge is not None and edge[0] is not None and id(edge[0]) not in visited:
                stack.append((edge[0], False))
    return order


def _run_hooks(hooks, g: np.ndarray) -> tuple[np.ndarray, bool]:
    """Call each hook with the gradient as a Tensor; a returned value replaces it. Also: was it replaced?"""
    from normlab.autograd.tensor import Tensor

    replaced_any = False
    for hook in hooks:
        replaced = hook(Tensor(g))
        if replaced is not None:
            g = replaced._data if isinstance(replaced, Tensor) else np.asarray(replaced)
            replaced_any = True
    return g, replaced_any


def _leaves_finishing(order: list[Function]) -> dict[int, list]:
    """Step in ``order`` -> the leaves with post-accumulate-grad hooks that the Function at that step feeds last."""
    last: dict[int, tuple] = {}
    for step, fn in enumerate(order):
        for edge in fn.edges:
            if edge is not None and edge.leaf is not None and edge.leaf._post_accumulate_grad_hooks:
                last[id(edge.leaf)] = (step, edge.leaf)
    finishing: dict[int, list] = {}
    for step, leaf in last.values():
        finishing.setdefault(step, []).append(leaf)
    return finishing


def _run_post_accumulate_grad_hooks(leaves, reached: set) -> None:
    """Call ``hook(leaf)`` for each leaf whose ``.grad`` received this backward's gradient."""
    for leaf in leaves:
        if id(leaf) in reached:
            for hook in list(leaf._post_accumulate_grad_hooks):
                hook(leaf)


def _target_key(tensor) -> tuple:
    """Where the engine meets ``tensor``: a leaf by identity, any other tensor by its creator's output slot."""
    if tensor._creator is None:
        return ("leaf", id(tensor))
    return ("node", id(tensor._creator), tensor._output_index)


def _needed(order: list[Function], targets: dict) -> set[int]:
    """Ids of the Functions whose backward leads to a target (the rest need not run: torch's pruning)."""
    needed: set[int] = set()
    for fn in reversed(order):  # inputs' creators first
        for edge in fn.edges:
            if edge is None:
                continue
            if edge.creator is None:
                reaches = ("leaf", id(edge.leaf)) in targets
            else:
                reaches = id(edge.creator) in needed or ("node", id(edge.creator), edge.output_index) in targets
            if reaches:
                needed.add(id(fn))
                break
    return needed


def run_backward(root, grad: np.ndarray, retain_graph: bool = False, targets: dict | None = None) -> None:
    """Propagate ``grad`` (d loss / d root) to every leaf that requires grad.

    Unless ``retain_graph``, each node's saved arrays are freed once its
    backward has run (torch's rule), so memory falls as the backward proceeds.

    ``targets`` (``torch.autograd.grad`` and ``backward(inputs=...)``): a dict
    from ``_target_key(t)`` to None; the gradient reaching each target is
    stored there instead of any ``.grad``, and only the Functions that lead
    to a target run.

    A leaf's post-accumulate-grad hooks run once, right after the last
    Function that feeds it has added its gradient (torch's
    ``register_post_accumulate_grad_hook``; DistributedDataParallel starts
    its gradient reductions from them while the backward goes on).
    """
    if root._creator is None:  # a leaf: its gradient is the seed itself
        if targets is not None:
            _capture_leaf(targets, root, grad)
            return
        root._accumulate_leaf(grad)
        _run_post_accumulate_grad_hooks([root], {id(root)})
        return
    pending: dict[int, list] = {id(root._creator): [None] * root._creator.num_outputs}
    pending[id(root._creator)][root._output_index] = grad
    order = list(reversed(_topological_order(root._creator)))
    needed = _needed(order, targets) if targets is not None else None
    finishing = _leaves_finishing(order) if root._post_accumulate_grad_hooks_used and targets is None else {}
    reached: set[int] = set()
    for step, fn in enumerate(order):
        out_grads = pending.pop(id(fn), None)
        if out_grads is None or all(g is None for g in out_grads):
            _run_post_accumulate_grad_hooks(finishing.get(step, ()), reached)
            continue
        for index, hooks in fn.output_hooks.items():
            if out_grads[index] is not None:
                out_grads[index], _ = _run_hooks(hooks, out_grads[index])
        if targets is not None:
            for index, g in enumerate(out_grads):
                key = ("node", id(fn), index)
                if key in targets and g is not None:  # several outputs (autograd.grad) add up
                    targets[key] = g if targets[key] is None else targets[key] + g
            if id(fn) not in needed:
                continue
        _check_saved_versions(fn)
        in_grads = fn.backward(*out_grads)
        if not retain_graph:
            _release(fn)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if len(in_grads) != len(fn.edges):
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned {len(in_grads)} gradients for {len(fn.edges)} inputs"
            )
        for edge, g in zip(fn.edges, in_grads):
            if g is None or edge is None:
                continue
            g = np.asarray(g)
            if g.shape != edge.shape:
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned a gradient of shape {g.shape} "
                    f"for an input of shape {edge.shape}"
                )
            if g.dtype != edge.dtype:
                g = g.astype(edge.dtype)
            if edge.creator is None:
                if targets is not None:
                    _capture_leaf(targets, edge.leaf, g)
                    continue
                edge.leaf._accumulate_leaf(g, exclusive=_exclusive(g, in_grads, out_grads))
                reached.add(id(edge.leaf))
            else:
                slot = pending.setdefault(id(edge.creator), [None] * edge.creator.num_outputs)
                slot[edge.output_index] = _accumulate(slot[edge.output_index], g)
        _run_post_accumulate_grad_hooks(finishing.get(step, ()), reached)


def _capture_leaf(targets: dict, leaf, g: np.ndarray) -> None:
    """Add ``g`` to a target leaf's captured gradient (a fresh array: the engine's ``g`` may be shared)."""
    key = ("leaf", id(leaf))
    if key in targets:
        targets[key] = np.array(g, copy=True) if targets[key] is None else targets[key] + g
