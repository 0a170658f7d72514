"""``Tensor.register_post_accumulate_grad_hook``: once per backward, after the leaf's gradient is complete (as torch).

DistributedDataParallel starts a bucket's reduction from these hooks, so a
hook that ran before the last contribution arrived would reduce a partial
gradient; torch is the oracle for when and how often they run.
"""
import numpy as np
import pytest
import torch

import normlab


def _record_calls(leaf, calls):
    leaf.register_post_accumulate_grad_hook(lambda t: calls.append(np.asarray(t.grad).copy()))


def _shared_weight_graph(lib, w_array, x_array, v_array):
    """A loss that reaches ``w`` three times (two matmuls and a penalty) and ``v`` once; ``u`` never."""
    make = (lambda a, grad=True: torch.tensor(a, requires_grad=grad)) if lib is torch else \
        (lambda a, grad=True: normlab.tensor(a, requires_grad=grad))
    w, v, u = make(w_array), make(v_array), make(v_array)
    x = make(x_array, grad=False)
    h = (x @ w).tanh()
    out = (h @ w) * v
    loss = out.sum() + (w * w).sum() * 0.5
    return loss, w, v, u


def test_runs_once_with_the_complete_gradient_like_torch():
    rng = np.random.default_rng(0)
    w_array, x_array, v_array = rng.standard_normal((3, 3)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    results = {}
    for lib in (torch, normlab):
        loss, w, v, u = _shared_weight_graph(lib, w_array, x_array, v_array)
        calls = {"w": [], "v": [], "u": []}
        for name, leaf in (("w", w), ("v", v), ("u", u)):
            _record_calls(leaf, calls[name])
        loss.backward()
        results[lib.__name__] = calls, np.asarray(w.grad).copy()
    (ours, our_grad), (theirs, their_grad) = results["normlab"], results["torch"]
    for name in ("w", "v", "u"):
        assert len(ours[name]) == len(theirs[name]), name
        for mine, reference in zip(ours[name], theirs[name]):
            np.testing.assert_allclose(mine, reference, rtol=1e-12, atol=1e-12)
    assert len(ours["w"]) == 1 and len(ours["u"]) == 0
    np.testing.assert_allclose(ours["w"][0], our_grad, rtol=0, atol=0)  # nothing added after the hook


def test_once_per_backward_and_on_a_leaf_root_and_removable():
    w = normlab.tensor(np.arange(3.0), requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(float(t.grad.sum())))
    (w * 2.0).sum().backward()
    (w * 3.0).sum().backward()
    assert seen == [6.0, 15.0]  # the second call sees the accumulated gradient
    w.backward(np.ones(3))  # a leaf as the root
    assert seen == [6.0, 15.0, 18.0]
    handle.remove()
    (w * 2.0).sum().backward()
    assert len(seen) == 3


def test_a_hook_may_change_grad_in_place():
    w = normlab.tensor(np.ones(2), requires_grad=True)

    def halve(t):
        with normlab.no_grad():
            np.asarray(t.grad)[...] *= 0.5

    w.register_post_accumulate_grad_hook(halve)
    (w * 4.0).sum().backward()
    np.testing.assert_array_equal(np.asarray(w.grad), [2.0, 2.0])


def test_refused_on_non_leaves_and_on_tensors_without_grad():
    x = normlab.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2.0).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="does not require grad"):
        normlab.tensor(np.ones(2)).register_post_accumulate_grad_hook(lambda t: None)
