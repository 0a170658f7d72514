"""Activations, linear, dropout and losses against torch; numerical gradients in float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import (
    assert_close,
    assert_float32_close,
    assert_matches_reference,
    numerical_gradient,
    random_upstream,
)

DTYPES = [np.float64, np.float32]

ACTIVATIONS = {
    "sigmoid": (lambda x: F.sigmoid(x), lambda x: torch.sigmoid(x)),
    "tanh": (lambda x: F.tanh(x), lambda x: torch.tanh(x)),
    "relu": (lambda x: F.relu(x), lambda x: TF.relu(x)),
    "leaky_relu": (lambda x: F.leaky_relu(x), lambda x: TF.leaky_relu(x)),
    "leaky_relu_0.2": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "elu": (lambda x: F.elu(x), lambda x: TF.elu(x)),
    "elu_0.5": (lambda x: F.elu(x, alpha=0.5), lambda x: TF.elu(x, alpha=0.5)),
    "selu": (lambda x: F.selu(x), lambda x: TF.selu(x)),
    "silu": (lambda x: F.silu(x), lambda x: TF.silu(x)),
    "softplus": (lambda x: F.softplus(x, beta=2.0, threshold=3.0), lambda x: TF.softplus(x, beta=2.0, threshold=3.0)),
    "gelu": (lambda x: F.gelu(x), lambda x: TF.gelu(x)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    "softmax_1": (lambda x: F.softmax(x, dim=1), lambda x: TF.softmax(x, dim=1)),
    "softmax_-1": (lambda x: F.softmax(x, dim=-1), lambda x: TF.softmax(x, dim=-1)),
    "log_softmax_1": (lambda x: F.log_softmax(x, dim=1), lambda x: TF.log_softmax(x, dim=1)),
    "log_softmax_0": (lambda x: F.log_softmax(x, dim=0), lambda x: TF.log_softmax(x, dim=0)),
}


def _data(rng, shape, dtype, scale=3.0):
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    x.reshape(-1)[:3] = (0.0, 30.0, -30.0)  # a kink and both saturated tails
    return x


ROW_OPS = {"softmax_1": 1, "softmax_-1": -1, "log_softmax_1": 1, "log_softmax_0": 0}


def _float32_scales(name, x, g):
    """The magnitudes a float32 evaluation rounds on the way, for the value and the gradient.

    Elementwise: |x| (gelu, silu and softplus cancel near saturation, so the
    error scales with the input, not the tiny output) and |g| (1 + |x|). Row
    ops (softmax): the largest |x| and sum |g| of a row.
    """
    if name in ROW_OPS:
        dim = ROW_OPS[name]
        return (1.0 + np.abs(x).max(axis=dim, keepdims=True),
                np.abs(g).sum(axis=dim, keepdims=True) * (1.0 + np.abs(x).max(axis=dim, keepdims=True)))
    return 1.0 + np.abs(x), np.abs(g) * (1.0 + np.abs(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_torch(rng, dtype, name):
    """Against torch in float64 (a float32 result against the float64 value, never torch's float32)."""
    ours_fn, torch_fn = ACTIVATIONS[name]
    data = _data(rng, (4, 5, 3), dtype)
    x = normlab.tensor(data, requires_grad=True)
    xt = torch.tensor(data.astype(np.float64), requires_grad=True)
    y, yt = ours_fn(x), torch_fn(xt)
    assert y.dtype == dtype
    g = random_upstream(y.shape, dtype, rng)
    y.backward(g)
    yt.backward(torch.tensor(g.astype(np.float64)))
    if dtype == np.float64:
        assert_close(y, yt, dtype, f"{name} forward")
        assert_close(x.grad, xt.grad, dtype, f"{name} grad")
    else:
        value_scale, grad_scale = _float32_scales(name, data.astype(np.float64), g.astype(np.float64))
        assert_float32_close(y, yt, scale=value_scale, what=f"{name} forward")
        assert_float32_close(x.grad, xt.grad, scale=grad_scale, what=f"{name} grad")


def test_gelu_tanh_float32_in_its_cancelling_tail_is_near_the_exact_value():
    """The case that failed on another CPU: x = -5.1, where torch's batched float32 path underflows to 0."""
    x = np.array([-5.1, -5.1, -5.1, -5.1, -5.1, -5.1, -5.1, -5.1], dtype=np.float32)
    exact = TF.gelu(torch.tensor(x.astype(np.float64)), approximate="tanh").numpy()
    ours = F.gelu(x, approximate="tanh")
    assert_float32_close(ours, exact, scale=1.0 + np.abs(x.astype(np.float64)), what="gelu_tanh(-5.1)")


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu", "selu", "silu", "softplus", "gelu", "gelu_tanh",
                                  "softmax_1", "log_softmax_0"])
def test_activation_numerical_gradient(rng, name):
    ours_fn, _ = ACTIVATIONS[name]
    data = rng.standard_normal((3, 4)) + 0.05  # keep away from kinks
    g = rng.standard_normal((3, 4))
    x = normlab.tensor(data, requires_grad=True)
    ours_fn(x).backward(g)
    numeric = numerical_gradient(lambda: float((ours_fn(normlab.tensor(data)).detach().numpy() * g).sum()), data)
    np.testing.assert_allclose(x.grad, numeric, rtol=1e-6, atol=1e-8)


def test_sigmoid_does_not_overflow_and_its_derivative_is_at_most_a_quarter():
    x = normlab.tensor(np.array([-1000.0, -20.0, 0.0, 20.0, 1000.0]), requires_grad=True)
    with np.errstate(over="raise"):
        y = F.sigmoid(x)
    assert np.all(np.isfinite(y.detach().numpy()))
    y.sum().backward()
    assert x.grad.max() == pytest.approx(0.25)


@pytest.mark.parametrize("module,torch_module", [
    (nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Tanh(), torch.nn.Tanh()), (nn.ReLU(), torch.nn.ReLU()),
    (nn.LeakyReLU(0.1), torch.nn.LeakyReLU(0.1)), (nn.ELU(0.7), torch.nn.ELU(0.7)), (nn.GELU(), torch.nn.GELU()),
    (nn.GELU("tanh"), torch.nn.GELU("tanh")), (nn.SELU(), torch.nn.SELU()), (nn.SiLU(), torch.nn.SiLU()),
    (nn.Softplus(), torch.nn.Softplus()), (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
    (nn.LogSoftmax(dim=1), torch.nn.LogSoftmax(dim=1)),
])
def test_activation_modules_match_torch_and_repr(rng, module, torch_module):
    data = rng.standard_normal((3, 4))
    assert_close(module(data), torch_module(torch.tensor(data)), np.float64, type(module).__name__)
    assert repr(module) == repr(torch_module)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(rng, dtype, shape, bias):
    layer = nn.Linear(4, 3, bias=bias).to(dtype)
    reference = torch.nn.Linear(4, 3, bias=bias, dtype=torch.float64)  # float32 is checked against float64
    w = np.asarray(layer.weight).astype(np.float64)
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(w))
        if bias:
            reference.bias.copy_(torch.tensor(np.asarray(layer.bias).astype(np.float64)))
    data = rng.standard_normal(shape).astype(dtype)
    x, xt = normlab.tensor(data, requires_grad=True), torch.tensor(data.astype(np.float64), requires_grad=True)
    y, yt = layer(x), reference(xt)
    g = random_upstream(y.shape, dtype, rng)
    y.backward(g)
    yt.backward(torch.tensor(g.astype(np.float64)))
    # float32 rounds the sums of |products| each result adds up:
    ax, ag = np.abs(data.reshape(-1, 4)).astype(np.float64), np.abs(g.reshape(-1, 3)).astype(np.float64)
    assert_matches_reference(y, yt, dtype, "forward", scale=(ax @ np.abs(w).T + 1.0).reshape(y.shape))
    assert_matches_reference(x.grad, xt.grad, dtype, "dx", scale=(ag @ np.abs(w)).reshape(x.shape))
    assert_matches_reference(layer.weight.grad, reference.weight.grad, dtype, "dweight", scale=ag.T @ ax)
    if bias:
        assert_matches_reference(layer.bias.grad, reference.bias.grad, dtype, "dbias", scale=ag.sum(0))
    assert repr(layer) == repr(reference)
    assert list(layer.state_dict()) == list(reference.state_dict())


def test_linear_default_init_has_torchs_bounds():
    normlab.manual_seed(1)
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.98 * bound  # the full range is used
    assert np.abs(layer.bias.data).max() <= bound
    assert layer.weight.dtype == np.float32


def test_linear_rejects_wrong_input_size_clearly():
    layer = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"Linear: expected input with last dimension 4 \(in_features\), got shape \(2, 5\)"):
        layer(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="Linear: expected a floating-point input"):
        layer(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="in_features to be a positive integer"):
        nn.Linear(0, 3)


def test_maxout_takes_the_max_over_pieces_and_routes_gradient_to_the_winner(rng):
    layer = nn.Maxout(4, 3, pieces=2).double()
    data = rng.standard_normal((5, 4))
    x = normlab.tensor(data, requires_grad=True)
    y = layer(x)
    z = data @ np.asarray(layer.weight).T + np.asarray(layer.bias)
    expected = z.reshape(5, 3, 2).max(-1)
    np.testing.assert_allclose(y.detach().numpy(), expected)
    g = rng.standard_normal((5, 3))
    y.backward(g)
    winner = z.reshape(5, 3, 2).argmax(-1)
    dz = np.zeros((5, 3, 2))
    np.put_along_axis(dz, winner[..., None], g[..., None], axis=-1)
    np.testing.assert_allclose(layer.weight.grad, dz.reshape(5, 6).T @ data)
    np.testing.assert_allclose(x.grad, dz.reshape(5, 6) @ np.asarray(layer.weight))
    assert repr(layer) == "Maxout(in_features=4, out_features=3, pieces=2)"


def test_dropout_scales_survivors_and_is_identity_in_eval():
    normlab.manual_seed(5)
    x = normlab.tensor(np.ones((200, 50)), requires_grad=True)
    layer = nn.Dropout(0.3)
    y = layer(x)
    kept = y.detach().numpy() != 0
    assert 0.65 < kept.mean() < 0.75
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.7)
    g = np.random.default_rng(0).standard_normal(x.shape)
    y.backward(g)
    np.testing.assert_allclose(x.grad, np.where(kept, g / 0.7, 0.0))
    layer.eval()
    np.testing.assert_array_equal(layer(x).detach().numpy(), x.detach().numpy())
    assert np.all(F.dropout(x, 1.0).detach().numpy() == 0)
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(1.5)


def test_dropout_is_repeatable_under_manual_seed():
    x = np.ones((10, 10))
    normlab.manual_seed(7)
    a = F.dropout(x, 0.5).detach().numpy()
    normlab.manual_seed(7)
    b = F.dropout(x, 0.5).detach().numpy()
    np.testing.assert_array_equal(a, b)


def _ce_case(rng, dtype, shape, classes):
    logits = rng.standard_normal((shape[0], classes) + shape[1:]).astype(dtype) * 2
    target = rng.integers(0, classes, size=shape)
    return logits, target


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(6,), (3, 2, 2)])
def test_cross_entropy_with_class_indices_matches_torch(rng, dtype, reduction, weighted, smoothing, shape):
    logits, target = _ce_case(rng, dtype, shape, classes=4)
    target.reshape(-1)[1] = -100  # one ignored element
    weight = rng.random(4).astype(dtype) + 0.1 if weighted else None
    x = normlab.tensor(logits, requires_grad=True)
    xt = torch.tensor(logits.astype(np.float64), requires_grad=True)  # float32 is checked against float64
    loss = F.cross_entropy(x, target, weight=weight, reduction=reduction, label_smoothing=smoothing)
    loss_t = TF.cross_entropy(xt, torch.tensor(target), reduction=reduction, label_smoothing=smoothing,
                              weight=None if weight is None else torch.tensor(weight.astype(np.float64)))
    g = random_upstream(tuple(loss_t.shape), dtype, rng)
    loss.backward(g)
    loss_t.backward(torch.tensor(g.astype(np.float64)))
    # float32 rounds each log-softmax at the logits' size, then adds up to all of them
    magnitude = (1.0 + np.abs(logits).max()) * (1.0 if reduction == "none" else target.size)
    assert_matches_reference(loss, loss_t, dtype, "loss", scale=magnitude)
    assert_matches_reference(x.grad, xt.grad, dtype, "dlogits", scale=np.abs(g).max() * (1.0 + np.abs(logits).max()))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_with_probabilities_matches_torch(rng, reduction, smoothing):
    logits = rng.standard_normal((5, 3, 2))
    probs = rng.random((5, 3, 2))
    probs /= probs.sum(1, keepdims=True)
    weight = rng.random(3) + 0.5
    x, xt = normlab.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, probs, weight=weight, reduction=reduction, label_smoothing=smoothing)
    loss_t = TF.cross_entropy(xt, torch.tensor(probs), weight=torch.tensor(weight), reduction=reduction,
                              label_smoothing=smoothing)
    assert_close(loss, loss_t, np.float64, "loss")
    g = random_upstream(loss_t.shape, np.float64, rng)
    loss.backward(g)
    loss_t.backward(torch.tensor(g))
    assert_close(x.grad, xt.grad, np.float64, "dlogits")


def test_cross_entropy_unbatched_and_stable_for_huge_logits():
    logits = np.array([1000.0, 0.0, -1000.0])
    loss = F.cross_entropy(normlab.tensor(logits), np.array(1))
    expected = TF.cross_entropy(torch.tensor(logits), torch.tensor(1))
    assert_close(loss, expected, np.float64, "unbatched")
    assert np.isfinite(loss.item())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_and_mse_loss_match_torch(rng, reduction):
    logp = np.log(rng.dirichlet(np.ones(5), size=7))
    target = rng.integers(0, 5, size=7)
    weight = rng.random(5) + 0.1
    x, xt = normlab.tensor(logp, requires_grad=True), torch.tensor(logp, requires_grad=True)
    loss = F.nll_loss(x, target, weight=weight, ignore_index=int(target[0]), reduction=reduction)
    loss_t = TF.nll_loss(xt, torch.tensor(target), weight=torch.tensor(weight), ignore_index=int(target[0]),
                         reduction=reduction)
    assert_close(loss, loss_t, np.float64, "nll")
    g = random_upstream(loss_t.shape, np.float64, rng)
    loss.backward(g)
    loss_t.backward(torch.tensor(g))
    assert_close(x.grad, xt.grad, np.float64, "nll grad")

    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    x, xt = normlab.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    loss, loss_t = F.mse_loss(x, b, reduction=reduction), TF.mse_loss(xt, torch.tensor(b), reduction=reduction)
    assert_close(loss, loss_t, np.float64, "mse")
    g = random_upstream(loss_t.shape, np.float64, rng)
    loss.backward(g)
    loss_t.backward(torch.tensor(g))
    assert_close(x.grad, xt.grad, np.float64, "mse grad")


def test_loss_modules_match_functional(rng):
    logits, target = _ce_case(rng, np.float64, (6,), 3)
    weight = np.array([0.2, 1.0, 3.0])
    assert_close(nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1)(logits, target),
                 torch.nn.CrossEntropyLoss(weight=torch.tensor(weight), label_smoothing=0.1)(
                     torch.tensor(logits), torch.tensor(target)), np.float64, "CrossEntropyLoss")
    logp = F.log_softmax(logits, dim=1)
    assert_close(nn.NLLLoss()(logp, target), torch.nn.NLLLoss()(torch.tensor(logp.detach().numpy()), torch.tensor(target)),
                 np.float64, "NLLLoss")
    assert_close(nn.MSELoss(reduction="sum")(logits, logits * 2),
                 torch.nn.MSELoss(reduction="sum")(torch.tensor(logits), torch.tensor(logits * 2)), np.float64, "MSE")


def test_loss_errors_name_the_loss_and_the_sizes():
    logits = np.zeros((3, 4))
    with pytest.raises(IndexError, match="cross_entropy: target 7 is out of bounds for 4 classes"):
        F.cross_entropy(logits, np.array([0, 7, 1]))
    with pytest.raises(ValueError, match=r"cross_entropy: expected target of shape \(3,\)"):
        F.cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.nll_loss(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(logits, logits, reduction="avg")
    with pytest.raises(ValueError, match="do not broadcast"):
        F.mse_loss(logits, np.zeros((2, 4)))


@given(batch=st.integers(1, 6), classes=st.integers(2, 6), smoothing=st.sampled_from([0.0, 0.05, 0.3]),
       ignore=st.booleans())
def test_cross_entropy_hypothesis(batch, classes, smoothing, ignore):
    rng = np.random.default_rng(batch * 31 + classes)
    logits, target = _ce_case(rng, np.float64, (batch,), classes)
    if ignore and batch > 1:
        target[0] = -100
    x, xt = normlab.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, target, label_smoothing=smoothing)
    loss_t = TF.cross_entropy(xt, torch.tensor(target), label_smoothing=smoothing)
    assert_close(loss, loss_t, np.float64, "loss")
    loss.backward()
    loss_t.backward()
    assert_close(x.grad, xt.grad, np.float64, "grad")
