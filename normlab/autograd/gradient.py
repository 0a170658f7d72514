"""``normlab.autograd.grad``: the gradients of outputs with respect to chosen inputs, as torch's.

The same engine as ``Tensor.backward`` (``function.run_backward``), asked to
capture the gradient reaching each input instead of adding into ``.grad``;
only the Functions on a path to an input run. First-order only
(``create_graph`` is not supported: backward passes build no graph).
"""
from __future__ import annotations

import numpy as np

from normlab.autograd.function import _run_hooks, _target_key, run_backward
from normlab.autograd.grad_mode import no_grad


def _as_sequence(value) -> tuple:
    from normlab.autograd.tensor import Tensor

    return (value,) if isinstance(value, Tensor) or value is None else tuple(value)


def _seeds(outputs: tuple, grad_outputs) -> list[np.ndarray]:
    """d loss / d output for each output: given, or ones for a one-element output (as torch)."""
    from normlab.autograd.tensor import Tensor

    given = [None] * len(outputs) if grad_outputs is None else list(_as_sequence(grad_outputs))
    if len(given) != len(outputs):
        raise ValueError(f"grad: expected {len(outputs)} grad_outputs (one per output), got {len(given)}")
    seeds = []
    for index, (out, g) in enumerate(zip(outputs, given)):
        if g is None:
            if out._data.size != 1:
                raise RuntimeError(f"grad: grad can be implicitly created only for outputs with one element; "
                                   f"output {index} has shape {tuple(out.shape)}")
            seeds.append(np.ones(out.shape, dtype=out.dtype))
            continue
        g = np.asarray(g._data if isinstance(g, Tensor) else g)
        if g.shape != tuple(out.shape):
            raise ValueError(f"grad: expected grad_outputs[{index}] of shape {tuple(out.shape)}, got {g.shape}")
        seeds.append(g.astype(out.dtype, copy=False))
    return seeds


def capture_gradients(outputs, inputs, grad_outputs=None, retain_graph: bool = False,
                      leaf_hooks: bool = True) -> list:
    """The gradient arrays (or None where none arrives) of ``outputs`` w.r.t. each of ``inputs``.

    A leaf input's hooks run on its gradient unless ``leaf_hooks`` is False
    (``backward(inputs=...)`` runs them when it accumulates into ``.grad``).
    """
    from normlab.autograd.tensor import Tensor

    outputs, inputs = _as_sequence(outputs), _as_sequence(inputs)
    for what, items in (("outputs", outputs), ("inputs", inputs)):
        if not items:
            raise ValueError(f"grad: expected at least one tensor in {what}, got none")
        for index, t in enumerate(items):
            if not isinstance(t, Tensor):
                raise TypeError(f"grad: expected {what}[{index}] to be a Tensor, got {type(t).__name__}")
            if not t.requires_grad:
                raise RuntimeError(f"grad: {what}[{index}] does not require grad and does not have a grad_fn")
    seeds = _seeds(outputs, grad_outputs)
    targets = {_target_key(t): None for t in inputs}
    with no_grad():
        for number, (out, seed) in enumerate(zip(outputs, seeds)):
            last = number == len(outputs) - 1
            run_backward(out, seed, retain_graph=retain_graph or not last, targets=targets)
    grads = []
    for t in inputs:
        g = targets[_target_key(t)]
        if leaf_hooks and g is not None and t._creator is None and t._hooks:
            g, _ = _run_hooks(t._hooks, g)
        grads.append(g)
    return grads


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         allow_unused=None, is_grads_batched: bool = False, materialize_grads: bool = False):
    """d outputs / d inputs as a tuple of Tensors, without touching any ``.grad`` (torch's ``autograd.grad``).

    ``grad_outputs`` weights each output (needed unless it has one element);
    with several outputs the weighted sum is differentiated. An input that
    no output depends on raises unless ``allow_unused`` (then None, or zeros
    with ``materialize_grads``). The graph is freed afterwards unless
    ``retain_graph``.

    >>> import normlab
    >>> x = normlab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (g,) = normlab.autograd.grad((x ** 2).sum(), x)
    >>> g
    tensor([2., 4., 6.])
    >>> x.grad is None
    True
    """
    from normlab.autograd.tensor import Tensor

    if create_graph:
        raise NotImplementedError("grad: create_graph=True (higher-order gradients) is not supported by normlab")
    if is_grads_batched:
        raise NotImplementedError("grad: is_grads_batched=True is not supported by normlab")
    if allow_unused is None:
        allow_unused = materialize_grads
    inputs_seq = _as_sequence(inputs)
    grads = capture_gradients(outputs, inputs_seq, grad_outputs, retain_graph=bool(retain_graph))
    result = []
    for index, (t, g) in enumerate(zip(inputs_seq, grads)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"grad: inputs[{index}] appears to not have been used in the graph; "
                                   "set allow_unused=True if this is the desired behavior")
            result.append(Tensor(np.zeros(t.shape, dtype=t.dtype)) if materialize_grads else None)
        else:
            result.append(Tensor(np.asarray(g, dtype=t.dtype)))
    return tuple(result)
