"""Module and tensor hooks against torch: call order, the gradients each hook sees, replacements.

Both libraries run the same network with the same hooks; every hook appends
an event (kind, layer, arrays) to a log, and the two logs must agree in
order and, within float64 tolerance, in value.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import normlab
import normlab.nn as nn
from tests.oracle import assert_close, random_upstream


def _arrays(values):
    return [None if v is None else np.array(v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
            for v in values]


def _pair(rng):
    """The same Linear-Tanh-Linear network in both libraries (float64)."""
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    ours = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _instrument(model, log, replace=None):
    """Every kind of hook on every layer (and the container), each logging what it sees."""
    replace = replace or {}
    for name, layer in [("net", model)] + [(n, m) for n, m in model.named_children()]:
        def pre(module, grad_output, name=name):
            log.append(("pre", name, _arrays(grad_output)))
            if ("pre", name) in replace:
                return tuple(None if g is None else g * replace[("pre", name)] for g in grad_output)

        def full(module, grad_input, grad_output, name=name):
            log.append(("full", name, _arrays(grad_input), _arrays(grad_output)))
            if ("full", name) in replace:
                return tuple(None if g is None else g * replace[("full", name)] for g in grad_input)

        def forward(module, args, output, name=name):
            log.append(("forward", name, _arrays(args), _arrays([output])))
            output.register_hook(lambda g, name=name: log.append(("tensor", name, _arrays([g]))))

        def forward_pre(module, args, name=name):
            log.append(("forward_pre", name, _arrays(args)))

        layer.register_full_backward_pre_hook(pre)
        layer.register_full_backward_hook(full)
        layer.register_forward_hook(forward)
        layer.register_forward_pre_hook(forward_pre)


def _assert_same_log(ours, theirs):
    assert [e[:2] for e in ours] == [e[:2] for e in theirs]
    for a, b in zip(ours, theirs):
        for part, (x, y) in enumerate(zip(a[2:], b[2:])):
            assert len(x) == len(y), (a[:2], part)
            for i, (u, v) in enumerate(zip(x, y)):
                assert (u is None) == (v is None), (a[:2], part, i)
                if u is not None:
                    assert_close(u, v, np.float64, f"{a[:2]} part {part} item {i}")


@pytest.mark.parametrize("input_requires_grad", [True, False])
@pytest.mark.parametrize("replace", [{}, {("full", "2"): 2.0, ("pre", "0"): -3.0}, {("pre", "net"): 0.5}],
                         ids=["observe", "replace-inner", "replace-outer"])
def test_module_hooks_fire_in_torch_order_with_torch_values(rng, input_requires_grad, replace):
    ours, theirs = _pair(rng)
    ours_log, theirs_log = [], []
    _instrument(ours, ours_log, replace)
    _instrument(theirs, theirs_log, replace)
    x = rng.standard_normal((5, 3))
    g = random_upstream((5, 2), np.float64, rng)
    xo, xt = normlab.tensor(x, requires_grad=input_requires_grad), torch.tensor(x, requires_grad=input_requires_grad)
    with warnings.catch_warnings(record=True) as ours_warnings:
        warnings.simplefilter("always")
        (ours(xo) * normlab.tensor(g)).sum().backward()
    with warnings.catch_warnings(record=True) as theirs_warnings:
        warnings.simplefilter("always")
        (theirs(xt) * torch.tensor(g)).sum().backward()
    _assert_same_log(ours_log, theirs_log)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        assert_close(p.grad, q.grad, np.float64, f"{name}.grad")
    if input_requires_grad:
        assert_close(xo.grad, xt.grad, np.float64, "input grad")
    fired = lambda caught: any("no inputs require gradients" in str(w.message) for w in caught)  # noqa: E731
    assert fired(ours_warnings) == fired(theirs_warnings) == (not input_requires_grad)


def test_several_inputs_and_outputs_none_where_torch_has_none(rng):
    # b needs no gradient, c needs one but is unused, the second output is unused: torch gives the
    # hooks zeros for b and c and None for the unused output.
    class Ours(nn.Module):
        def forward(self, a, b, scale, c):
            return a * b * scale, a + b

    class Theirs(torch.nn.Module):
        def forward(self, a, b, scale, c):
            return a * b * scale, a + b

    logs, unused_grads = [], []
    for module in (Ours(), Theirs()):
        log = []
        module.register_full_backward_pre_hook(lambda m, go, log=log: log.append(("pre", "m", _arrays(go))))
        module.register_full_backward_hook(lambda m, gi, go, log=log: log.append(("full", "m", _arrays(gi), _arrays(go))))
        lib = normlab if isinstance(module, Ours) else torch
        a, b = lib.tensor(np.arange(3.0), requires_grad=True), lib.tensor(np.ones(3) * 2)
        c = lib.tensor(np.ones(2), requires_grad=True)
        first, _unused = module(a, b, 2.0, c)
        first.sum().backward()
        logs.append(log)
        unused_grads.append(_arrays([c.grad]))
    _assert_same_log(*logs)
    assert_close(unused_grads[0][0], unused_grads[1][0], np.float64, "the unused input's gradient (zeros)")


def test_removing_hooks_prepend_and_with_kwargs(rng):
    layer = nn.Linear(2, 2)
    order = []
    first = layer.register_forward_hook(lambda m, a, o: order.append("first"))
    layer.register_forward_hook(lambda m, a, o: order.append("prepended"), prepend=True)
    layer.register_forward_hook(lambda m, a, k, o: order.append(("kwargs", sorted(k))), with_kwargs=True)
    layer.register_forward_pre_hook(lambda m, a, k: ((a[0] * 0,), k), with_kwargs=True)
    out = layer(normlab.ones(1, 2))
    assert order == ["prepended", "first", ("kwargs", [])]
    np.testing.assert_allclose(out.detach().numpy(), layer.bias.detach().numpy()[None])  # the pre-hook zeroed x
    first.remove()
    order.clear()
    layer(normlab.ones(1, 2))
    assert order == ["prepended", ("kwargs", [])]
    with layer.register_full_backward_hook(lambda m, gi, go: order.append("backward")):
        layer(normlab.ones(1, 2, requires_grad=True)).sum().backward()
    layer(normlab.ones(1, 2, requires_grad=True)).sum().backward()  # removed on leaving the with block
    assert order.count("backward") == 1


def test_a_bad_pre_hook_result_and_an_always_called_hook():
    layer = nn.Linear(2, 2)
    layer.register_forward_pre_hook(lambda m, a, k: "nonsense", with_kwargs=True)
    with pytest.raises(RuntimeError, match="forward pre-hook must return None or a tuple"):
        layer(normlab.ones(1, 2))
    seen = []
    broken = nn.Linear(2, 2)
    broken.register_forward_hook(lambda m, a, o: seen.append(o), always_call=True)
    with pytest.raises(ValueError, match="Linear: expected input with last dimension 2"):
        broken(normlab.ones(1, 3))
    assert seen == [None]
    hooked = nn.Linear(2, 2)
    hooked.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="Backward hook returned an invalid number of gradients, got 2, but expected 1"):
        hooked(normlab.ones(1, 2, requires_grad=True)).sum().backward()


def test_output_that_is_not_a_tensor_warns_as_torch_and_named_tuples_survive():
    class Values(nn.Module):
        def forward(self, x):
            return x.max(0)

    class Dict(nn.Module):
        def forward(self, x):
            return {"y": x * 2}

    module = Values()
    module.register_full_backward_hook(lambda m, gi, go: None)
    result = module(normlab.ones(3, 2, requires_grad=True))
    assert result.values.shape == (2,) and result.indices.dtype == np.int64
    result.values.sum().backward()
    d = Dict()
    d.register_full_backward_hook(lambda m, gi, go: None)
    with pytest.warns(UserWarning, match="module output should be a Tensor or a tuple of Tensors"):
        d(normlab.ones(2, requires_grad=True))


def test_in_place_layers_after_a_hooked_module_still_work(rng):
    # torch refuses this ("Output 0 of BackwardHookFunction is a view and is being modified inplace");
    # normlab's hook node hands out fresh tensors, so ReLU(inplace=True) may follow a hooked layer.
    x = rng.standard_normal((4, 3))
    seen = []
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(inplace=True)).double()
    model[0].register_full_backward_hook(lambda m, gi, go: seen.append(_arrays(go)))
    t = normlab.tensor(x, requires_grad=True)
    model(t).sum().backward()
    out = model[0](normlab.tensor(x)).detach().numpy()
    np.testing.assert_array_equal(seen[0][0], (out > 0).astype(np.float64))  # ReLU's gradient reached the hook
    assert t.grad is not None


def test_tensor_hooks_and_retain_grad_match_torch(rng):
    x = rng.standard_normal(4)
    logs, grads = [], []
    for lib in (normlab, torch):
        log = []
        leaf = lib.tensor(x, requires_grad=True)
        leaf.register_hook(lambda g, log=log: log.append(("leaf", "x", _arrays([g]))))
        middle = leaf * 3
        middle.retain_grad()
        handle = middle.register_hook(lambda g, log=log: log.append(("middle", "m", _arrays([g]))) or g * 2)
        out = (middle.sin() * lib.tensor(np.arange(4.0))).sum()
        assert middle.retains_grad and not leaf.retains_grad
        out.backward()
        grads.append((np.array(leaf.grad.numpy()), np.array(middle.grad.numpy())))
        handle.remove()
        logs.append(log)
    _assert_same_log(*logs)
    assert_close(grads[0][0], grads[1][0], np.float64, "leaf grad after a replacing hook")
    assert_close(grads[0][1], grads[1][1], np.float64, "retained grad (after the hook's change, as torch)")
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has requires_grad=False"):
        normlab.ones(2).retain_grad()
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that does not require grad"):
        normlab.ones(2).register_hook(lambda g: g)
