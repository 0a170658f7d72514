"""In-place changes under torch's rules: version counters, leaves, views, `.data` and `.grad` as Tensors.

Regression tests for the review's defects: a saved array changed in place
before backward gave silently wrong gradients (now: a RuntimeError naming the
op), in-place changes of a leaf that requires grad were allowed, and
``inplace=True`` was silently ignored.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import assert_close, random_upstream

MODIFIED = r"modified by an inplace operation"


def pair(rng, shape, requires_grad=True, positive=False):
    data = rng.standard_normal(shape)
    if positive:
        data = np.abs(data) + 0.5
    return (normlab.tensor(data, requires_grad=requires_grad),
            torch.tensor(data, requires_grad=requires_grad))


# ----------------------------------------------------------- version counters

def test_changing_a_saved_input_under_no_grad_raises_naming_the_op(rng):
    x, _ = pair(rng, (3, 4))
    w, _ = pair(rng, (3, 4))
    loss = (x * w).sum()
    with normlab.no_grad():
        w.zero_()
    with pytest.raises(RuntimeError, match=MODIFIED + r".*input 1 of MulBackward, is at version 1; expected version 0"):
        loss.backward()
    assert x.grad is None  # nothing was accumulated before the refusal


def test_convolution_refuses_a_weight_changed_after_forward(rng):
    conv = nn.Conv2d(2, 3, 3).double()
    x = normlab.tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True)
    y = conv(x)
    with normlab.no_grad():
        conv.weight.zero_()
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.sum().backward()


@pytest.mark.parametrize("change", ["optimizer", "init", "data_assignment", "view", "detached", "setitem"])
def test_every_tracked_in_place_change_is_seen(rng, change):
    layer = nn.Linear(4, 3).double()
    x = normlab.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    loss = layer(x).pow(2).sum()
    if change == "optimizer":
        layer.weight.grad = np.ones((3, 4))
        normlab.optim.SGD(layer.parameters(), lr=0.1).step()
    elif change == "init":
        nn.init.kaiming_uniform_(layer.weight)
    elif change == "data_assignment":
        layer.weight.data = np.zeros((3, 4))
    elif change == "view":
        with normlab.no_grad():
            layer.weight.reshape(-1)[0:2].fill_(0.0)
    elif change == "detached":
        layer.weight.detach().mul_(2.0)  # detach shares memory and the version counter
    elif change == "setitem":
        with normlab.no_grad():
            layer.weight[0, 0] = 1.0
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_writes_through_data_are_the_untracked_escape_hatch(rng):
    w = normlab.tensor(rng.standard_normal(3), requires_grad=True)
    x = normlab.tensor(rng.standard_normal(3), requires_grad=True)
    loss = (x * w).sum()
    w.data.mul_(0.0)  # like torch's .data: shares memory, not the version counter
    assert w._version == 0
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.zeros(3))  # the backward saw the new values


def test_a_saved_output_changed_in_place_is_refused_like_torch(rng):
    x, xt = pair(rng, (4,))
    y = x.exp() * 1.0  # a non-leaf that does not save anything
    z = y.exp()        # Exp saves its output
    z.add_(1.0)
    with pytest.raises(RuntimeError, match=MODIFIED + r".*output 0 of ExpBackward"):
        z.sum().backward()
    zt = (xt.exp() * 1.0).exp()
    zt.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        zt.sum().backward()


def test_a_change_after_backward_is_fine_and_the_next_step_sees_new_values(rng):
    model = nn.Linear(3, 2).double()
    opt = normlab.optim.SGD(model.parameters(), lr=0.5)
    x = normlab.tensor(rng.standard_normal((4, 3)))
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[2] < losses[0]


# ----------------------------------------------------------- leaves and views

LEAF_CHANGES = {
    "zero_": lambda t: t.zero_(),
    "fill_": lambda t: t.fill_(1.0),
    "copy_": lambda t: t.copy_(np.ones(3)),
    "add_": lambda t: t.add_(1.0),
    "iadd": lambda t: t.__iadd__(1.0),
    "setitem": lambda t: t.__setitem__(0, 5.0),
    "normal_": lambda t: t.normal_(),
    "relu_": lambda t: t.relu_(),
}


@pytest.mark.parametrize("name", sorted(LEAF_CHANGES))
def test_in_place_change_of_a_leaf_that_requires_grad_is_refused(name):
    t = normlab.tensor([1.0, -2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        LEAF_CHANGES[name](t)
    np.testing.assert_array_equal(np.asarray(t), [1.0, -2.0, 3.0])
    assert t._version == 0
    with normlab.no_grad():  # allowed without recording, as in torch
        LEAF_CHANGES[name](t)
    assert t._version == 1 and t.is_leaf and t.requires_grad


def test_in_place_change_of_a_view_of_a_leaf_is_refused():
    t = normlab.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable"):
        t[1:3].zero_()
    with pytest.raises(RuntimeError, match="a view of a leaf Variable"):
        t.reshape(2, 2).mul_(2.0)


# ------------------------------------------------- differentiable in place vs torch

IN_PLACE = {
    "add_": (lambda t, o: t.add_(o, alpha=0.5), lambda t, o: t.add_(o, alpha=0.5)),
    "sub_": (lambda t, o: t.sub_(o), lambda t, o: t.sub_(o)),
    "mul_": (lambda t, o: t.mul_(o), lambda t, o: t.mul_(o)),
    "div_": (lambda t, o: t.div_(o), lambda t, o: t.div_(o)),
    "iadd": (lambda t, o: t.__iadd__(o), lambda t, o: t.__iadd__(o)),
    "imul": (lambda t, o: t.__imul__(o), lambda t, o: t.__imul__(o)),
    "addcmul_": (lambda t, o: t.addcmul_(o, o, value=0.3), lambda t, o: t.addcmul_(o, o, value=0.3)),
    "addcdiv_": (lambda t, o: t.addcdiv_(o, o * o + 1, value=0.3), lambda t, o: t.addcdiv_(o, o * o + 1, value=0.3)),
    "lerp_": (lambda t, o: t.lerp_(o, 0.25), lambda t, o: t.lerp_(o, 0.25)),
    "copy_": (lambda t, o: t.copy_(o), lambda t, o: t.copy_(o)),
    "clamp_": (lambda t, o: t.clamp_(-0.5, 0.5), lambda t, o: t.clamp_(-0.5, 0.5)),
    "relu_": (lambda t, o: t.relu_(), lambda t, o: t.relu_()),
    "sigmoid_": (lambda t, o: t.sigmoid_(), lambda t, o: t.sigmoid_()),
    "tanh_": (lambda t, o: t.tanh_(), lambda t, o: t.tanh_()),
    "exp_": (lambda t, o: t.exp_(), lambda t, o: t.exp_()),
    "neg_": (lambda t, o: t.neg_(), lambda t, o: t.neg_()),
    "pow_": (lambda t, o: t.pow_(2), lambda t, o: t.pow_(2)),
    "masked_fill_": (lambda t, o: t.masked_fill_(np.asarray(o) > 0, 0.7),
                     lambda t, o: t.masked_fill_(o > 0, 0.7)),
    "setitem_basic": (lambda t, o: t.__setitem__((slice(1, 3), 0), o[0, :2]),
                      lambda t, o: t.__setitem__((slice(1, 3), 0), o[0, :2])),
    "setitem_mask": (lambda t, o: t.__setitem__(np.asarray(o) > 0, 2.0),
                     lambda t, o: t.__setitem__(o > 0, 2.0)),
    "setitem_broadcast": (lambda t, o: t.__setitem__(1, o[2]), lambda t, o: t.__setitem__(1, o[2])),
}


@pytest.mark.parametrize("name", sorted(IN_PLACE))
def test_differentiable_in_place_ops_match_torch(rng, name):
    ours_op, torch_op = IN_PLACE[name]
    a, at = pair(rng, (4, 3))
    o, ot = pair(rng, (4, 3))
    h, ht = a * 1.5, at * 1.5          # non-leaves that require grad
    before = h                         # the same object afterwards
    earlier = h.sum()                  # an op that saved nothing: still fine after the change
    ours_op(h, o)
    torch_op(ht, ot)
    assert h is before and h._version == 1
    y, yt = h * h, ht * ht
    g = random_upstream(y.shape, np.float64, rng)
    (y * normlab.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    assert_close(h.detach(), ht, np.float64, f"{name}: value")
    assert_close(a.grad, at.grad, np.float64, f"{name}: grad of the changed tensor's source")
    if ot.grad is None:
        assert o.grad is None
    else:
        assert_close(o.grad, ot.grad, np.float64, f"{name}: grad of the operand")
    earlier.backward()  # Sum kept no array of h: unaffected by the change


def test_in_place_ops_without_grad_change_the_same_memory():
    t = normlab.tensor([1.0, 2.0, 3.0])
    array = np.asarray(t)
    t += 1.0
    t.mul_(2.0).clamp_(max=7.0)
    t[0] = -1.0
    assert np.asarray(t) is array
    np.testing.assert_array_equal(array, [-1.0, 6.0, 7.0])
    assert t._version == 4


def test_a_float_result_refuses_to_go_into_an_integer_tensor():
    t = normlab.tensor([1, 2, 3])
    with pytest.raises(TypeError):
        t.mul_(1.5)


@pytest.mark.parametrize("make", [
    lambda: (F.relu, torch.nn.functional.relu, {}),
    lambda: (F.leaky_relu, torch.nn.functional.leaky_relu, {"negative_slope": 0.1}),
    lambda: (F.elu, torch.nn.functional.elu, {"alpha": 0.7}),
    lambda: (F.selu, torch.nn.functional.selu, {}),
    lambda: (F.silu, torch.nn.functional.silu, {}),
])
def test_inplace_true_changes_the_input_and_backpropagates_like_torch(rng, make):
    ours, theirs, config = make()
    a, at = pair(rng, (3, 5))
    h, ht = a * 2.0, at * 2.0
    out, out_t = ours(h, inplace=True, **config), theirs(ht, inplace=True, **config)
    assert out is h
    g = random_upstream(out.shape, np.float64, rng)
    out.backward(g)
    out_t.backward(torch.tensor(g))
    assert_close(h.detach(), ht, np.float64, "value")
    assert_close(a.grad, at.grad, np.float64, "grad")
    leaf = normlab.tensor(rng.standard_normal(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        ours(leaf, inplace=True, **config)


def test_inplace_modules_and_dropout_write_into_their_input(rng):
    x = normlab.tensor(rng.standard_normal((4, 6)))
    array = np.asarray(x)
    assert nn.ReLU(inplace=True)(x) is x and (array >= 0).all()
    y = nn.Dropout(0.5, inplace=True)(x)
    assert y is x and np.asarray(y) is array


# ------------------------------------------------------------ .data and .grad

def test_data_is_a_tensor_sharing_memory_and_grad_is_a_tensor(rng):
    layer = nn.Linear(3, 2)
    assert isinstance(layer.weight.data, normlab.Tensor) and not layer.weight.data.requires_grad
    layer.weight.data.normal_(0, 0.02)  # the old-style idiom
    assert np.asarray(layer.weight.data) is np.asarray(layer.weight)
    layer(normlab.randn(5, 3)).sum().backward()
    g = layer.weight.grad
    assert isinstance(g, normlab.Tensor) and not g.requires_grad
    assert float(g.abs().mean()) > 0
    layer(normlab.randn(5, 3)).sum().backward()
    assert layer.weight.grad is g  # accumulated in place, as torch
    assert isinstance(layer.weight.grad.data, normlab.Tensor)


def test_numpy_refuses_a_tensor_that_requires_grad_like_torch():
    t = normlab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Use tensor.detach\(\).numpy\(\)"):
        t.numpy()
    np.testing.assert_array_equal(t.detach().numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(t), [1.0, 2.0])


def test_an_assigned_tensor_gradient_is_clipped_like_any_other(rng):
    w = normlab.tensor(np.zeros(2), requires_grad=True)
    w.grad = normlab.tensor([3.0, 4.0], dtype=np.float64)
    total = nn.utils.clip_grad_norm_([w], max_norm=1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(w.grad, [0.6, 0.8], rtol=1e-6)


def test_assigned_gradients_must_match_shape_and_dtype():
    w = normlab.tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="different size"):
        w.grad = normlab.tensor(np.zeros(3))
    with pytest.raises(RuntimeError, match="different type"):
        w.grad = normlab.tensor(np.zeros(2, dtype=np.float32))
    w.grad = np.zeros(2, dtype=np.float32)  # an array is taken in the tensor's dtype
    assert w.grad.dtype == np.float64


def test_hooks_receive_tensors_and_may_return_tensors(rng):
    x = normlab.tensor(rng.standard_normal(3), requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g) or g * 2)
    (x * 3.0).sum().backward()
    assert isinstance(seen[0], normlab.Tensor)
    np.testing.assert_allclose(x.grad, [6.0, 6.0, 6.0])


# ------------------------------------------------------------------ ties

@pytest.mark.parametrize("ours, theirs", [(normlab.maximum, torch.maximum), (normlab.minimum, torch.minimum)])
def test_maximum_and_minimum_split_a_tie_like_torch(rng, ours, theirs):
    a_data = np.array([1.0, 2.0, 3.0, -1.0, 0.5])
    b_data = np.array([1.0, 5.0, 3.0, -2.0, 0.5])  # ties at 0, 2 and 4
    a, b = normlab.tensor(a_data, requires_grad=True), normlab.tensor(b_data, requires_grad=True)
    at, bt = torch.tensor(a_data, requires_grad=True), torch.tensor(b_data, requires_grad=True)
    g = random_upstream((5,), np.float64, rng)
    ours(a, b).backward(g)
    theirs(at, bt).backward(torch.tensor(g))
    assert_close(a.grad, at.grad, np.float64, "grad of a")
    assert_close(b.grad, bt.grad, np.float64, "grad of b")
    tied = a_data == b_data
    np.testing.assert_allclose(np.asarray(a.grad)[tied], g[tied] / 2)  # the documented rule, on its own


def test_amax_shares_a_tied_maximum_equally_like_torch(rng):
    data = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x, xt = normlab.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    g = random_upstream((2,), np.float64, rng)
    x.amax(dim=1).backward(g)
    xt.amax(dim=1).backward(torch.tensor(g))
    assert_close(x.grad, xt.grad, np.float64, "amax grad")
