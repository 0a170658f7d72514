"""normlab.autograd.grad and backward(inputs=...) against torch.autograd (float64, random upstream gradients)."""
import numpy as np
import pytest
import torch

import normlab
from normlab.autograd import Function
from tests.oracle import assert_close


def pair(rng, shape):
    value = rng.standard_normal(shape)
    return normlab.tensor(value, requires_grad=True), torch.tensor(value, requires_grad=True)


def test_grad_of_leaves_and_an_intermediate_matches_torch(rng):
    (a, at), (b, bt) = pair(rng, (4, 3)), pair(rng, (3,))
    h, ht = (a * b).tanh(), (at * bt).tanh()
    y, yt = (h * h).sum(dim=0), (ht * ht).sum(dim=0)
    g = rng.standard_normal(3)
    ours = normlab.autograd.grad(y, [a, h, b], grad_outputs=normlab.tensor(g))
    theirs = torch.autograd.grad(yt, [at, ht, bt], grad_outputs=torch.tensor(g))
    for o, t, name in zip(ours, theirs, ["a", "h", "b"]):
        assert_close(o, t, np.float64, f"d y / d {name}")
    assert a.grad is None and b.grad is None  # .grad untouched, as torch


def test_several_outputs_sum_their_weighted_gradients(rng):
    (x, xt) = pair(rng, (5,))
    outs, outs_t = [x.exp().sum(), (x * 3.0).sum()], [xt.exp().sum(), (xt * 3.0).sum()]
    (ours,) = normlab.autograd.grad(outs, x)
    (theirs,) = torch.autograd.grad(outs_t, xt)
    assert_close(ours, theirs, np.float64, "sum over outputs")


def test_unused_input_raises_unless_allowed(rng):
    (x, _), (z, _) = pair(rng, (3,)), pair(rng, (3,))
    with pytest.raises(RuntimeError, match="not have been used"):
        normlab.autograd.grad((x * x).sum(), [x, z], retain_graph=True)
    gx, gz = normlab.autograd.grad((x * x).sum(), [x, z], allow_unused=True, retain_graph=True)
    assert gz is None and np.allclose(gx.numpy(), 2 * x.detach().numpy())
    _, gz = normlab.autograd.grad((x * x).sum(), [x, z], materialize_grads=True)
    assert np.array_equal(gz.numpy(), np.zeros(3))


def test_graph_is_freed_unless_retained(rng):
    (x, _) = pair(rng, (3,))
    y = (x * x).sum()
    normlab.autograd.grad(y, x)
    with pytest.raises(RuntimeError, match="second time"):
        normlab.autograd.grad(y, x)


def test_only_functions_leading_to_the_inputs_run(rng):
    calls = []

    class Probe(Function):
        def forward(self, a):
            return a * 2.0

        def backward(self, g):
            calls.append(1)
            return g * 2.0

    (x, _), (w, _) = pair(rng, (3,)), pair(rng, (3,))
    y = (Probe.apply(w) + x).sum()
    (gx,) = normlab.autograd.grad(y, x)
    assert calls == [] and np.array_equal(gx.numpy(), np.ones(3))


def test_backward_inputs_fills_only_those_grads_like_torch(rng):
    (a, at), (b, bt) = pair(rng, (4,)), pair(rng, (4,))
    h, ht = a * b, at * bt
    ht.retain_grad()
    g = rng.standard_normal(4)
    (h.sin() * normlab.tensor(g)).sum().backward(inputs=[b, h])
    (ht.sin() * torch.tensor(g)).sum().backward(inputs=[bt, ht])
    assert a.grad is None and at.grad is None
    assert_close(b.grad, bt.grad, np.float64, "b.grad")
    assert_close(h.grad, ht.grad, np.float64, "h.grad")


def test_leaf_hook_runs_once(rng):
    (x, _) = pair(rng, (3,))
    seen = []
    x.register_hook(lambda g: seen.append(1) or g * 10.0)
    (g,) = normlab.autograd.grad(x.sum(), x, retain_graph=True)
    assert seen == [1] and np.array_equal(g.numpy(), np.full(3, 10.0))
    x.sum().backward(inputs=[x])
    assert seen == [1, 1] and np.array_equal(x.grad.numpy(), np.full(3, 10.0))


def test_bad_arguments_raise():
    x = normlab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="only for outputs with one element"):
        normlab.autograd.grad(x * 2.0, x)
    with pytest.raises(RuntimeError, match="does not require grad"):
        normlab.autograd.grad((x * 2.0).sum(), normlab.tensor([1.0]))
    with pytest.raises(NotImplementedError, match="create_graph"):
        normlab.autograd.grad((x * 2.0).sum(), x, create_graph=True)


def test_several_outputs_through_a_shared_intermediate_add_up(rng):
    (x, xt) = pair(rng, (4,))
    h, ht = x.tanh(), xt.tanh()
    outs, outs_t = [(h * h).sum(), h.exp().sum()], [(ht * ht).sum(), ht.exp().sum()]
    gh, gx = normlab.autograd.grad(outs, [h, x])
    gh_t, gx_t = torch.autograd.grad(outs_t, [ht, xt])
    assert_close(gh, gh_t, np.float64, "d (sum of outputs) / d h")
    assert_close(gx, gx_t, np.float64, "d (sum of outputs) / d x")
