"""Embedding and one_hot against torch; channel-wise dropout; Flatten/Unflatten/Identity; ParameterList/Dict."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import assert_close, assert_float32_close, random_upstream

EMBEDDING_OPTIONS = [
    {}, {"padding_idx": 2}, {"padding_idx": -1}, {"scale_grad_by_freq": True}, {"max_norm": 1.5},
    {"max_norm": 0.8, "norm_type": 1.0}, {"max_norm": 1.0, "padding_idx": 0, "scale_grad_by_freq": True},
    {"max_norm": 2.0, "norm_type": float("inf")},
]


def _pair(weight, dtype=np.float64, **options):
    ours = nn.Embedding(*weight.shape, _weight=weight.astype(dtype).copy(), **options)
    theirs = torch.nn.Embedding(*weight.shape, _weight=torch.tensor(weight.astype(dtype).astype(np.float64)),
                                **options)
    return ours, theirs


@pytest.mark.parametrize("options", EMBEDDING_OPTIONS, ids=str)
@pytest.mark.parametrize("index_shape", [(7,), (3, 5), (2, 3, 4), (0, 3)], ids=str)
def test_embedding_matches_torch(rng, options, index_shape):
    weight = rng.standard_normal((6, 4)) * 1.5
    ours, theirs = _pair(weight, **options)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    indices = rng.integers(0, 6, index_shape)
    if indices.size:
        indices.reshape(-1)[:3] = (2, 2, 5)  # repeats and the padding rows
    y, yt = ours(indices), theirs(torch.tensor(indices))
    assert y.shape == index_shape + (4,)
    g = random_upstream(y.shape, np.float64, rng)
    y.backward(g)
    yt.backward(torch.tensor(g))
    assert_close(y, yt, np.float64, "forward")
    assert_close(ours.weight.grad, theirs.weight.grad, np.float64, "dweight")
    assert_close(ours.weight, theirs.weight, np.float64, "weight after max_norm's in-place renorm")


@pytest.mark.parametrize("options", [{}, {"padding_idx": 1, "scale_grad_by_freq": True}, {"max_norm": 1.0}], ids=str)
def test_embedding_float32_within_rounding(rng, options):
    weight = rng.standard_normal((50, 8))
    ours, theirs = _pair(weight, np.float32, **options)
    indices = rng.integers(0, 50, (16, 12))
    g = random_upstream((16, 12, 8), np.float32, rng)
    y = ours(indices)
    y.backward(g)
    yt = theirs(torch.tensor(indices))
    yt.backward(torch.tensor(g.astype(np.float64)))
    assert y.dtype == np.float32 and ours.weight.grad.dtype == np.float32
    assert_float32_close(y, yt.detach().numpy(), scale=1.0, what="forward")
    # each row of dweight sums |g| over the positions that looked it up
    counts = np.bincount(indices.reshape(-1), minlength=50)[:, None]
    assert_float32_close(ours.weight.grad, theirs.weight.grad.numpy(), scale=counts * np.abs(g).max(),
                         what="dweight")


def test_reusing_the_index_array_before_backward_does_not_move_the_gradient():
    emb = nn.Embedding(5, 2)
    ids = np.array([1, 1, 3])
    out = emb(ids)
    ids[...] = 0  # the next batch's ids written into the same array
    out.sum().backward()
    np.testing.assert_array_equal(np.asarray(emb.weight.grad)[:, 0], [0, 2, 0, 1, 0])


def test_from_pretrained_shares_and_freezes_like_torch(rng):
    table = rng.standard_normal((5, 3))
    ours = nn.Embedding.from_pretrained(normlab.tensor(table), padding_idx=0)
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(table), padding_idx=0)
    assert ours.weight.requires_grad is theirs.weight.requires_grad is False
    assert repr(ours) == repr(theirs)
    assert_close(ours(np.array([[4, 0, 1]])), theirs(torch.tensor([[4, 0, 1]])), np.float64, "lookup")
    trainable = nn.Embedding.from_pretrained(table, freeze=False)
    assert trainable.weight.requires_grad
    trainable(np.array([1, 1])).sum().backward()
    np.testing.assert_array_equal(np.asarray(trainable.weight.grad)[1], [2.0, 2.0, 2.0])


def test_default_init_is_standard_normal_with_a_zero_padding_row():
    normlab.manual_seed(3)
    table = np.asarray(nn.Embedding(4000, 8, padding_idx=7).weight)
    assert not table[7].any()
    assert abs(table.mean()) < 0.02 and abs(table.std() - 1) < 0.02


def test_padding_row_gets_no_gradient_and_an_optimizer_leaves_it():
    emb = nn.Embedding(4, 2, padding_idx=0)
    opt = normlab.optim.SGD(emb.parameters(), lr=1.0)
    emb(np.array([0, 1, 0])).sum().backward()
    opt.step()
    assert not np.asarray(emb.weight)[0].any()


def test_embedding_trains_in_a_language_model_like_torch(rng):
    """Embedding -> Linear -> cross-entropy, 5 SGD steps, float64: losses equal torch's."""
    ours_emb, theirs_emb = _pair(rng.standard_normal((10, 6)), padding_idx=0)
    head, theirs_head = nn.Linear(6, 10, dtype=np.float64), torch.nn.Linear(6, 10).double()
    theirs_head.load_state_dict({k: torch.tensor(v) for k, v in head.state_dict().items()})
    params = list(ours_emb.parameters()) + list(head.parameters())
    opt = normlab.optim.SGD(params, lr=0.5)
    topt = torch.optim.SGD(list(theirs_emb.parameters()) + list(theirs_head.parameters()), lr=0.5)
    tokens, targets = rng.integers(0, 10, (4, 7)), rng.integers(0, 10, (4, 7))
    for _ in range(5):
        opt.zero_grad()
        topt.zero_grad()
        loss = F.cross_entropy(head(ours_emb(tokens)).reshape(-1, 10), targets.reshape(-1), ignore_index=0)
        tloss = TF.cross_entropy(theirs_head(theirs_emb(torch.tensor(tokens))).reshape(-1, 10),
                                 torch.tensor(targets.reshape(-1)), ignore_index=0)
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)


@pytest.mark.parametrize("call,error,message", [
    (lambda e: e(np.array([0, 6])), IndexError, "Embedding: index 6 is out of range for 6 embeddings"),
    (lambda e: e(np.array([-1])), IndexError, "Embedding: index -1 is out of range"),
    (lambda e: e(np.array([0.0, 1.0])), TypeError, "Embedding: expected integer indices, got dtype float64"),
    (lambda e: nn.Embedding(6, 4, padding_idx=6), ValueError, r"Embedding: expected padding_idx in \[-6, 6\)"),
    (lambda e: nn.Embedding(6, 4, sparse=True), ValueError, "Embedding: sparse gradients are not supported"),
    (lambda e: nn.Embedding(0, 4), ValueError, "Embedding: expected num_embeddings to be a positive integer"),
    (lambda e: nn.Embedding(6, 4, _weight=np.zeros((4, 6))), ValueError, r"expected _weight of shape \(6, 4\)"),
    (lambda e: nn.Embedding.from_pretrained(np.zeros(3)), ValueError, "expected 2D embeddings"),
    (lambda e: F.embedding(np.array([0]), np.zeros((2, 2, 2))), ValueError, "embedding: expected a 2D weight"),
])
def test_embedding_bad_input_raises_before_any_change(rng, call, error, message):
    emb = nn.Embedding(6, 4, max_norm=0.1)
    before = np.array(emb.weight)
    with pytest.raises(error, match=message):
        call(emb)
    np.testing.assert_array_equal(np.asarray(emb.weight), before)  # max_norm did not renormalize anything


@pytest.mark.parametrize("num_classes", [-1, 6])
@pytest.mark.parametrize("shape", [(5,), (2, 3), (0,)], ids=str)
def test_one_hot_matches_torch(rng, num_classes, shape):
    indices = rng.integers(0, 5, shape)
    if num_classes == -1 and indices.size == 0:
        with pytest.raises(ValueError, match="can not infer the number of classes"):
            F.one_hot(indices)
        return
    ours, theirs = F.one_hot(normlab.tensor(indices), num_classes), TF.one_hot(torch.tensor(indices), num_classes)
    assert ours.dtype == np.int64 and ours.requires_grad is False
    np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())


@pytest.mark.parametrize("call,message", [
    (lambda: F.one_hot(np.array([0, 3]), 3), r"class values must be smaller than num_classes \(3\), got 3"),
    (lambda: F.one_hot(np.array([-1, 0])), "class values must be non-negative"),
    (lambda: F.one_hot(np.array([0, 1]), -2), "expected num_classes to be a non-negative integer or -1"),
])
def test_one_hot_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
    with pytest.raises(TypeError, match="one_hot: expected integer indices"):
        F.one_hot(np.array([0.0]))


# ------------------------------------------------------------------ channel dropout
@pytest.mark.parametrize("module,shape,channel_axes", [
    (nn.Dropout1d, (8, 16, 5), 2), (nn.Dropout1d, (16, 5), 1), (nn.Dropout2d, (8, 16, 3, 4), 2),
    (nn.Dropout3d, (4, 16, 2, 3, 2), 2), (nn.Dropout3d, (16, 2, 3, 2), 1),
])
@pytest.mark.parametrize("p", [0.25, 0.5])
def test_channel_dropout_drops_whole_channels(module, shape, channel_axes, p):
    normlab.manual_seed(1)
    x = normlab.tensor(np.random.default_rng(0).uniform(1, 2, shape), requires_grad=True)
    layer = module(p)
    y = layer(x)
    ratio = (np.asarray(y.detach()) / np.asarray(x.detach())).round(12)  # (x s) / x is s to a rounding
    per_channel = ratio.reshape(ratio.shape[:channel_axes] + (-1,))
    assert np.all(per_channel == per_channel[..., :1]), "a channel is either all kept or all dropped"
    assert set(np.unique(per_channel)) <= {0.0, round(1 / (1 - p), 12)}
    dropped = np.mean(per_channel[..., 0] == 0)
    assert abs(dropped - p) < 0.25
    g = np.random.default_rng(1).standard_normal(shape)
    y.backward(g)
    np.testing.assert_allclose(np.asarray(x.grad), g * ratio, rtol=1e-11)  # the same mask, the same scale
    layer.eval()
    assert layer(x) is x


def test_channel_dropout_edges_inplace_and_repr():
    x = normlab.ones(2, 3, 4)
    assert np.asarray(nn.Dropout1d(1.0)(x)).sum() == 0
    x4 = normlab.ones(2, 3, 4, 1)
    assert nn.Dropout2d(0.0)(x4) is x4
    h = normlab.ones(3, 4, requires_grad=True) * 1.0
    out = nn.Dropout1d(0.5, inplace=True)(h)
    assert out is h and h._version == 1
    for ours, theirs in ((nn.Dropout1d(0.3), torch.nn.Dropout1d(0.3)), (nn.Dropout2d(), torch.nn.Dropout2d()),
                         (nn.Dropout3d(0.1, True), torch.nn.Dropout3d(0.1, True))):
        assert repr(ours) == repr(theirs)


def test_channel_dropout_input_rules_follow_torch():
    with pytest.raises(ValueError, match=r"dropout1d: expected 2D \(C, L\) or 3D \(N, C, L\) input, got 4D"):
        F.dropout1d(normlab.ones(2, 3, 4, 5))
    with pytest.raises(ValueError, match="Dropout2d: expected p to be a probability"):
        nn.Dropout2d(1.5)
    with pytest.warns(UserWarning, match="assuming that channel-wise 1D dropout behavior is desired"):
        F.dropout2d(normlab.ones(2, 3, 4))
    with pytest.warns(UserWarning, match="dropout3d: Received a 3-D input"):
        F.dropout3d(normlab.ones(2, 3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.dropout2d(normlab.ones(2, 3, 4, 5))


# --------------------------------------------------------------- shape layers
@pytest.mark.parametrize("ours,theirs,shape", [
    (nn.Flatten(), torch.nn.Flatten(), (2, 3, 4)), (nn.Flatten(0, -1), torch.nn.Flatten(0, -1), (2, 3, 4)),
    (nn.Flatten(1, 2), torch.nn.Flatten(1, 2), (2, 3, 4, 5)),
    (nn.Unflatten(1, (2, 6)), torch.nn.Unflatten(1, (2, 6)), (3, 12)),
    (nn.Unflatten(-1, (2, 2)), torch.nn.Unflatten(-1, (2, 2)), (3, 5, 4)),
    (nn.Identity(3, unused=True), torch.nn.Identity(3, unused=True), (2, 3)),
])
def test_shape_layers_match_torch(rng, ours, theirs, shape):
    assert repr(ours) == repr(theirs)
    data = rng.standard_normal(shape)
    x, xt = normlab.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    y, yt = ours(x), theirs(xt)
    assert y.shape == tuple(yt.shape)
    g = random_upstream(y.shape, np.float64, rng)
    y.backward(g)
    yt.backward(torch.tensor(g))
    assert_close(y, yt, np.float64, "forward")
    assert_close(x.grad, xt.grad, np.float64, "grad")


# --------------------------------------------------------- parameter containers
class _WithContainers(nn.Module):
    def __init__(self, lib):
        super().__init__()
        mod = nn if lib == "normlab" else torch.nn
        make = (lambda *s: normlab.ones(*s, dtype=np.float64)) if lib == "normlab" else (
            lambda *s: torch.nn.Parameter(torch.ones(*s, dtype=torch.float64)))
        self.scales = mod.ParameterList([make(3), make(2, 2)])
        self.named = mod.ParameterDict({"gamma": make(3), "beta": make(3)})


class _TorchWithContainers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scales = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(3, dtype=torch.float64)),
                                              torch.nn.Parameter(torch.ones(2, 2, dtype=torch.float64))])
        self.named = torch.nn.ParameterDict({"gamma": torch.nn.Parameter(torch.ones(3, dtype=torch.float64)),
                                             "beta": torch.nn.Parameter(torch.ones(3, dtype=torch.float64))})


def test_parameter_containers_register_like_torch(rng):
    ours, theirs = _WithContainers("normlab"), _TorchWithContainers()
    # a plain dict's keys are sorted by ParameterDict, in torch too
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["scales.0", "scales.1", "named.beta",
                                                                    "named.gamma"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours.parameters())
    state = {k: v.detach().numpy() * rng.standard_normal(v.shape) for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state)
    np.testing.assert_array_equal(np.asarray(ours.named["beta"]), state["named.beta"])
    opt = normlab.optim.SGD(ours.parameters(), lr=0.1)
    (ours.scales[0] * ours.named["gamma"]).sum().backward()
    opt.step()
    assert len(opt.param_groups[0]["params"]) == 4


def test_parameter_list_operations():
    params = nn.ParameterList()
    params.append(np.zeros(2))
    params.extend([normlab.ones(3), nn.Parameter(np.ones(1))])
    params += [normlab.zeros(4)]
    assert len(params) == 4 and [p.shape for p in params] == [(2,), (3,), (1,), (4,)]
    assert params[-1].shape == (4,) and len(params[1:3]) == 2
    params[0] = normlab.ones(5)
    assert params[0].shape == (5,) and isinstance(params[0], nn.Parameter)
    with pytest.raises(IndexError, match="ParameterList: index 4 is out of range for 4 parameters"):
        params[4]
    with pytest.raises(TypeError, match="ParameterList: expected a Parameter, Tensor or array, got str"):
        params.append("w")
    with pytest.raises(TypeError, match="expected an iterable of parameters"):
        params.extend(normlab.ones(3))


def test_parameter_dict_operations():
    params = nn.ParameterDict({"a": normlab.ones(2)})
    params["b"] = np.zeros(3)
    params.update([("c", normlab.ones(1))])
    assert list(params) == ["a", "b", "c"] and "b" in params and len(params) == 3
    assert params.pop("a").shape == (2,) and list(params.keys()) == ["b", "c"]
    assert params.get("zz") is None and params.setdefault("d", normlab.ones(2)).shape == (2,)
    assert params.popitem()[0] == "d" and list(params.copy().keys()) == ["b", "c"]
    with pytest.raises(KeyError, match="invalid key 'x.y'"):
        params.update({"x.y": normlab.ones(1), "ok": normlab.ones(1)})
    assert "ok" not in params  # nothing added: every entry is checked first
    params.clear()
    assert len(params) == 0
