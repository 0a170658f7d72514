"""Module machinery: registration, traversal, state_dict, modes, hooks, containers, Residual."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch

import normlab
import normlab.nn as nn
from tests.oracle import assert_close, random_upstream


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.register_buffer("count", np.zeros((), dtype=np.int64))
        self.register_buffer("scratch", np.zeros(2), persistent=False)
        self.scale = nn.Parameter(np.ones(4, dtype=np.float32))

    def forward(self, x):
        return self.fc(x) * self.scale


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)
        self.scale = torch.nn.Parameter(torch.ones(4))

    def forward(self, x):
        return self.fc(x) * self.scale


def _pair():
    ours = nn.Sequential(Block(), nn.ReLU(), nn.Linear(4, 2))
    theirs = torch.nn.Sequential(TorchBlock(), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    return ours, theirs


def test_names_and_order_match_torch():
    ours, theirs = _pair()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]


def test_state_dict_round_trip_with_torch_and_values_are_copies():
    ours, theirs = _pair()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    assert_close(ours(x), theirs(torch.tensor(x)), np.float32, "same outputs after loading")
    sd = ours.state_dict()
    sd["0.fc.weight"][...] = 0  # a copy: the model is unchanged
    assert np.any(ours[0].fc.weight.data != 0)
    ours2, _ = _pair()
    result = ours2.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, a), b in zip(ours2.state_dict().items(), ours.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    ours2.load_state_dict(ours.state_dict())  # Tensors are accepted too
    ours2.load_state_dict({k: normlab.tensor(v) for k, v in ours.state_dict().items()})


def test_load_state_dict_is_strict_and_changes_nothing_on_error():
    ours, _ = _pair()
    before = ours.state_dict()
    bad = dict(before)
    bad["0.fc.weight"] = np.zeros((4, 3), dtype=np.float32)
    bad["2.bias"] = np.zeros(5, dtype=np.float32)  # wrong shape
    with pytest.raises(RuntimeError, match=r"size mismatch for 2\.bias: copying a param with shape \(5,\)"):
        ours.load_state_dict(bad)
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"{k} changed although loading failed")
    missing = dict(before)
    del missing["2.weight"]
    missing["extra"] = np.zeros(1)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "2\.weight"'):
        ours.load_state_dict(missing)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        ours.load_state_dict(missing)
    result = ours.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["2.weight"] and result.unexpected_keys == ["extra"]


def test_train_eval_propagate_and_zero_grad():
    ours, _ = _pair()
    ours.eval()
    assert all(not m.training for m in ours.modules())
    ours.train()
    assert all(m.training for m in ours.modules())
    out = ours(np.ones((2, 3), dtype=np.float32))
    out.backward(np.ones((2, 2), dtype=np.float32))
    assert all(p.grad is not None for p in ours.parameters())
    ours.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in ours.parameters())
    ours.zero_grad()
    assert all(p.grad is None for p in ours.parameters())


def test_to_double_converts_parameters_and_float_buffers_but_not_int_buffers():
    block = Block().double()
    assert block.fc.weight.dtype == np.float64 and block.scale.dtype == np.float64
    assert block.count.dtype == np.int64
    assert block.scratch.dtype == np.float64
    assert block(np.ones((1, 3))).dtype == np.float64


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, shared)
    assert len(list(net.parameters())) == 2
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_assignment_rules():
    block = Block()
    with pytest.raises(TypeError, match="cannot assign ndarray as parameter 'scale'"):
        block.scale = np.ones(4)
    block.scale = None
    assert "scale" not in dict(block.named_parameters())
    block.count = np.ones((), dtype=np.int64)
    assert isinstance(block.count, normlab.Tensor)
    del block.fc
    assert not hasattr(block, "fc")
    with pytest.raises(AttributeError, match="'Block' object has no attribute 'nothing'"):
        block.nothing


def test_forward_hooks_and_pre_hooks():
    layer = nn.Linear(3, 2)
    calls = []
    handle = layer.register_forward_hook(lambda m, inputs, output: calls.append(output.shape))
    pre = layer.register_forward_pre_hook(lambda m, inputs: (inputs[0] * 0,))
    out = layer(np.ones((4, 3), dtype=np.float32))
    assert calls == [(4, 2)]
    np.testing.assert_allclose(out.detach().numpy(), np.broadcast_to(layer.bias.data, (4, 2)))
    handle.remove()
    pre.remove()
    layer(np.ones((4, 3), dtype=np.float32))
    assert calls == [(4, 2)]


def test_repr_matches_torch_for_nested_containers():
    ours = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2, bias=False)), nn.Tanh())
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4),
                                 torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(4, 2, bias=False)),
                                 torch.nn.Tanh())
    assert repr(ours) == repr(theirs)
    assert repr(nn.Flatten()) == repr(torch.nn.Flatten())
    assert repr(nn.Dropout(0.2)) == repr(torch.nn.Dropout(0.2))
    assert repr(nn.Identity()) == repr(torch.nn.Identity())


def test_sequential_indexing_slicing_and_ordered_dict():
    net = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU()), ("out", nn.Linear(3, 1))]))
    assert isinstance(net[1], nn.ReLU) and net[-1] is net.out
    head = net[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head.fc is net.fc
    assert list(net.state_dict()) == ["fc.weight", "fc.bias", "out.weight", "out.bias"]
    with pytest.raises(IndexError, match="out of range"):
        net[3]
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(layers.parameters())) == 6 and len(layers[1:]) == 2
    heads = nn.ModuleDict({"a": nn.Linear(2, 2)})
    assert "a" in heads and list(heads.state_dict()) == ["a.weight", "a.bias"]


def test_flatten_unflatten_identity_match_torch(rng):
    data = rng.standard_normal((2, 3, 4, 5))
    assert_close(nn.Flatten()(data), torch.nn.Flatten()(torch.tensor(data)), np.float64, "Flatten")
    assert_close(nn.Flatten(0, 2)(data), torch.nn.Flatten(0, 2)(torch.tensor(data)), np.float64, "Flatten(0, 2)")
    assert_close(nn.Unflatten(1, (3, 1))(data), torch.nn.Unflatten(1, (3, 1))(torch.tensor(data)), np.float64, "Unflatten")
    assert_close(nn.Identity(54, unused=1)(data), torch.nn.Identity(54, unused=1)(torch.tensor(data)), np.float64, "Identity")


def test_residual_adds_the_shortcut_and_gradient_gets_an_identity_path(rng):
    block = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4)).double()
    residual = nn.Residual(block)
    data = rng.standard_normal((3, 4))
    x = normlab.tensor(data, requires_grad=True)
    y = residual(x)
    np.testing.assert_allclose(y.detach().numpy(), block(data).detach().numpy() + data)
    g = random_upstream((3, 4), np.float64, rng)
    y.backward(g)
    x_block = normlab.tensor(data, requires_grad=True)
    block(x_block).backward(g)
    np.testing.assert_allclose(x.grad, x_block.grad + g)  # d(f(x) + x)/dx = f'(x) + I

    projected = nn.Residual(nn.Linear(4, 2).double(), shortcut=nn.Linear(4, 2, bias=False).double())
    assert projected(data).shape == (3, 2)
    assert [n for n, _ in projected.named_parameters()] == ["block.weight", "block.bias", "shortcut.weight"]
    with pytest.raises(ValueError, match=r"Residual: block output shape \(3, 2\) does not match shortcut output shape \(3, 4\)"):
        nn.Residual(nn.Linear(4, 2).double())(data)


def test_deep_residual_sigmoid_stack_keeps_gradient_where_plain_stack_loses_it():
    """The textbook claim in miniature: 30 sigmoid layers kill the gradient; shortcuts keep it."""
    normlab.manual_seed(0)
    depth, width = 30, 16
    plain = nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.Sigmoid()) for _ in range(depth)]).double()
    normlab.manual_seed(0)
    resid = nn.Sequential(*[nn.Residual(nn.Sequential(nn.Linear(width, width), nn.Sigmoid()))
                            for _ in range(depth)]).double()
    x = np.random.default_rng(1).standard_normal((8, width))
    plain(x).sum().backward()
    resid(x).sum().backward()
    first_plain = np.linalg.norm(plain[0][0].weight.grad)
    first_resid = np.linalg.norm(resid[0].block[0].weight.grad)
    assert first_plain < 1e-6 < first_resid
