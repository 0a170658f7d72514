"""``einsum``: Einstein summation with its gradient, itself an einsum.

The output is a sum over products, one factor per operand. The gradient of
one operand is the same sum with that operand's slot taken by the upstream
gradient: for ``"ij,jk->ik"`` the gradient of the first operand is
``einsum("ik,jk->ij", g, b)``. Two details make it general: a label that
appears only in this operand (summed away in forward) has a gradient that is
constant along it (broadcast back), and a repeated label (``"ii->i"``, a
diagonal) puts the gradient on the diagonal only.

>>> import normlab
>>> a, b = normlab.ones(2, 3), normlab.ones(3, 4)
>>> normlab.einsum("ij,jk->ik", a, b).shape
(2, 4)
"""
from __future__ import annotations

import string

import numpy as np

from normlab.autograd.functions import Function, unbroadcast


def parse(equation: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """Explicit single-letter subscripts for each operand and the output (``...`` spelled out, implicit output made explicit)."""
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: the equation {equation!r} has {len(terms)} operand(s), got {len(shapes)} tensor(s)")
    used = set(equation) - {".", ",", "-", ">"}
    if not all(c in string.ascii_letters for c in used):
        raise ValueError(f"einsum: subscripts must be letters, got {equation!r}")
    spare = [c for c in string.ascii_letters if c not in used]
    ellipsis_ndim = max((len(shape) - len(term.replace("...", "")) for term, shape in zip(terms, shapes)
                         if "..." in term), default=0)
    batch = "".join(spare[:ellipsis_ndim])
    subscripts = []
    for term, shape in zip(terms, shapes):
        if "..." in term:
            own = len(shape) - len(term.replace("...", ""))
            term = term.replace("...", batch[ellipsis_ndim - own:])
        if len(term) != len(shape):
            raise ValueError(f"einsum: subscripts {term!r} do not match an operand of shape {tuple(shape)}")
        subscripts.append(term)
    if arrow:
        output = output.replace("...", batch)
    else:  # implicit output: the ellipsis, then the labels that appear once, sorted
        letters = [c for term in subscripts for c in term if c not in batch]
        output = batch + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    for label in output:
        if label not in "".join(subscripts):
            raise ValueError(f"einsum: output label {label!r} does not appear in any operand of {equation!r}")
    return subscripts, output


class Einsum(Function):
    def forward(self, *operands, subscripts, output):
        self.subscripts, self.output = subscripts, output
        self.shapes = [np.shape(a) for a in operands]
        # Size-1 dimensions broadcast against the other operands' (as torch allows).
        sizes: dict[str, int] = {}
        for term, shape in zip(subscripts, self.shapes):
            for label, n in zip(term, shape):
                if n != 1 or label not in sizes:
                    sizes[label] = n
        self.operands = [np.broadcast_to(a, [sizes[c] for c in term]) for a, term in zip(operands, subscripts)]
        return np.einsum(",".join(subscripts) + "->" + output, *self.operands)

    def backward(self, g):
        grads = []
        for k, (term, operand) in enumerate(zip(self.subscripts, self.operands)):
            if not self.needs_input_grad[k]:
                grads.append(None)
                continue
            others = [(t, a) for j, (t, a) in enumerate(zip(self.subscripts, self.operands)) if j != k]
            reachable = set(self.output).union(*(t for t, _ in others))
            labels = "".join(dict.fromkeys(term))  # each label once, in order
            kept = "".join(c for c in labels if c in reachable)
            spec = ",".join([self.output] + [t for t, _ in others]) + "->" + kept
            partial = np.einsum(spec, g, *(a for _, a in others))
            # Labels summed only over this operand: the gradient is constant along them.
            missing = [i for i, c in enumerate(labels) if c not in reachable]
            partial = np.broadcast_to(np.expand_dims(partial, missing), [operand.shape[term.index(c)] for c in labels])
            if labels == term:
                grad = partial
            else:  # a repeated label: only the diagonal was read
                grad = np.zeros(operand.shape, dtype=g.dtype)
                np.einsum(term + "->" + labels, grad)[...] = partial
            grads.append(unbroadcast(np.ascontiguousarray(grad), self.shapes[k]))
        return tuple(grads)
