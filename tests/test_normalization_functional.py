"""nn.functional normalization: torch's signatures, in-place running statistics, numerical gradients.

Numerical gradient checks use float64 central differences of
``sum(y * dy)`` with a random ``dy`` (never all ones: that makes BatchNorm's
input gradient identically zero and proves nothing).
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import normlab
import normlab.nn.functional as F
from normlab.ops import normalization as ops
from tests.normalization_checks import assert_matches
from tests.oracle import numerical_gradient, random_upstream


def _t(array, requires_grad=False):
    return None if array is None else torch.tensor(array, requires_grad=requires_grad)


# ---------------------------------------------------------------------------- signatures

#: normlab's own keyword arguments after torch's (each defaults to torch's behaviour)
EXTRAS = {"batch_norm": ["mask"]}


@pytest.mark.parametrize("name", ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"])
def test_signature_is_torchs(name):
    ours = inspect.signature(getattr(F, name)).parameters
    theirs = inspect.signature(getattr(TF, name)).parameters
    public = [p for p in ours.values() if not p.name.startswith("_")]
    assert [p.name for p in public] == list(theirs) + EXTRAS.get(name, [])
    for p in public[:len(theirs)]:
        assert p.default == theirs[p.name].default, f"{name}({p.name}=...) default differs from torch"
    for p in public[len(theirs):]:
        assert p.default is None, f"{name}({p.name}=...) must default to torch's behaviour (None)"


def test_batch_renorm_signature():
    params = inspect.signature(F.batch_renorm).parameters
    assert list(params)[:10] == ["input", "running_mean", "running_var", "weight", "bias", "training", "momentum",
                                 "eps", "r_max", "d_max"]
    assert (params["training"].default, params["momentum"].default, params["eps"].default,
            params["r_max"].default, params["d_max"].default) == (False, 0.1, 1e-5, 3.0, 5.0)


# ---------------------------------------------------------------------------- running statistics in place

@pytest.mark.parametrize("container", ["ndarray", "Tensor"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_norm_updates_running_stats_in_place_like_torch(container, dtype, rng):
    channels = 3
    mean, var = np.zeros(channels, dtype), np.ones(channels, dtype)
    ours_mean, ours_var = (mean.copy(), var.copy()) if container == "ndarray" else \
        (normlab.tensor(mean), normlab.tensor(var))
    arrays = (ours_mean, ours_var) if container == "ndarray" else (np.asarray(ours_mean), np.asarray(ours_var))
    torch_mean, torch_var = torch.tensor(mean, dtype=torch.float64), torch.tensor(var, dtype=torch.float64)
    weight, bias = rng.standard_normal(channels), rng.standard_normal(channels)
    for step, (n, momentum) in enumerate([(4, 0.1), (2, 0.5), (7, 1.0), (3, 0.0)]):
        x = (rng.standard_normal((n, channels, 5)) * 2 + 3).astype(dtype)
        y = F.batch_norm(x, ours_mean, ours_var, weight.astype(dtype), bias.astype(dtype), training=True,
                         momentum=momentum)
        y_torch = TF.batch_norm(torch.tensor(x, dtype=torch.float64), torch_mean, torch_var, _t(weight), _t(bias),
                                training=True, momentum=momentum)
        assert_matches(y, y_torch, dtype, f"step {step} output")
        assert_matches(arrays[0], torch_mean, dtype, f"step {step} running_mean")
        assert_matches(arrays[1], torch_var, dtype, f"step {step} running_var")
    current = (ours_mean, ours_var) if container == "ndarray" else (np.asarray(ours_mean), np.asarray(ours_var))
    assert all(a is b for a, b in zip(current, arrays)), "the very same arrays must be updated"
    x = rng.standard_normal((2, channels, 5)).astype(dtype)
    before = [a.copy() for a in arrays]
    y = F.batch_norm(x, ours_mean, ours_var, training=False)
    y_torch = TF.batch_norm(torch.tensor(x, dtype=torch.float64), torch_mean, torch_var, training=False)
    assert_matches(y, y_torch, dtype, "eval output")
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)  # eval reads, never writes


def test_batch_norm_training_without_running_stats(rng):
    x = rng.standard_normal((4, 3, 2))
    y = F.batch_norm(x, None, None, training=True)
    assert_matches(y, TF.batch_norm(torch.tensor(x), None, None, training=True), np.float64, "output")


def test_instance_norm_updates_running_stats_like_torch(rng):
    mean, var = np.zeros(3), np.ones(3)
    torch_mean, torch_var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    for n in (2, 1, 4):
        x = rng.standard_normal((n, 3, 6)) * 2 + 1
        y = F.instance_norm(x, mean, var, weight, bias, use_input_stats=True, momentum=0.3)
        y_torch = TF.instance_norm(torch.tensor(x), torch_mean, torch_var, _t(weight), _t(bias),
                                   use_input_stats=True, momentum=0.3)
        assert_matches(y, y_torch, np.float64, "output")
        assert_matches(mean, torch_mean, np.float64, "running_mean")
        assert_matches(var, torch_var, np.float64, "running_var")
    x = rng.standard_normal((2, 3, 6))
    y = F.instance_norm(x, mean, var, weight, bias, use_input_stats=False)
    y_torch = TF.instance_norm(torch.tensor(x), torch_mean, torch_var, _t(weight), _t(bias), use_input_stats=False)
    assert_matches(y, y_torch, np.float64, "output with running statistics")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rms_norm_eps_none_is_machine_epsilon(dtype, rng):
    # mean(x^2) of the order of the dtype's eps (1.2e-7 / 2.2e-16): a wrong default would show at once
    x = (rng.standard_normal((4, 6)) * np.sqrt(np.finfo(dtype).eps)).astype(dtype)
    weight = rng.standard_normal(6).astype(dtype)
    y = F.rms_norm(x, 6, weight)
    epsilon = float(np.finfo(dtype).eps)   # torch's eps=None for this dtype, evaluated in float64
    expected = TF.rms_norm(torch.tensor(x, dtype=torch.float64), [6], torch.tensor(weight, dtype=torch.float64),
                           eps=epsilon)
    assert_matches(y, expected, dtype, "rms_norm with eps=None")
    explicit = F.rms_norm(x, 6, weight, eps=float(np.finfo(dtype).eps))
    np.testing.assert_array_equal(y.detach().numpy(), explicit.detach().numpy())
    assert not np.allclose(y.detach().numpy(), F.rms_norm(x, 6, weight, eps=1e-12).detach().numpy(), rtol=1e-3)


@pytest.mark.parametrize("normalized_shape", [4, (4,), [3, 4], (2, 3, 4)])
def test_layer_norm_and_rms_norm_accept_int_or_sequence(normalized_shape, rng):
    x = rng.standard_normal((2, 2, 3, 4))
    shape = [normalized_shape] if isinstance(normalized_shape, int) else list(normalized_shape)
    assert_matches(F.layer_norm(x, normalized_shape), TF.layer_norm(torch.tensor(x), shape), np.float64, "layer_norm")
    assert_matches(F.rms_norm(x, normalized_shape), TF.rms_norm(torch.tensor(x), shape), np.float64, "rms_norm")


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_group_norm_matches_torch(groups, rng):
    x = rng.standard_normal((3, 6, 2, 3)) * 3 - 1
    weight, bias = rng.standard_normal(6), rng.standard_normal(6)
    assert_matches(F.group_norm(x, groups, weight, bias), TF.group_norm(torch.tensor(x), groups, _t(weight), _t(bias)),
                 np.float64, "group_norm")


def test_output_without_autograd_equals_output_with_autograd(rng):
    """Inference skips storing x_hat (a different kernel branch); it must produce the same bits."""
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    weight, bias = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    for call in (lambda v: F.batch_norm(v, None, None, weight, bias, training=True),
                 lambda v: F.instance_norm(v, weight=weight, bias=bias),
                 lambda v: F.group_norm(v, 3, weight, bias),
                 lambda v: F.layer_norm(v, 5, np.arange(5, dtype=np.float32), np.ones(5, np.float32)),
                 lambda v: F.rms_norm(v, 5, np.arange(5, dtype=np.float32))):
        plain = call(x).detach().numpy()
        tracked = call(normlab.tensor(x, requires_grad=True))
        with normlab.no_grad():
            no_grad = call(normlab.tensor(x, requires_grad=True)).detach().numpy()
        np.testing.assert_array_equal(plain, tracked.detach().numpy())
        np.testing.assert_array_equal(plain, no_grad)


def test_backward_skips_gradients_nobody_asked_for(rng):
    x = rng.standard_normal((4, 3, 5))
    dy = random_upstream(x.shape, np.float64, rng)
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    _, saved = ops.batch_norm_forward(x, weight, bias, training=True)
    full = ops.batch_norm_backward(dy, saved)
    only_params = ops.batch_norm_backward(dy, saved, (False, True, True))
    only_x = ops.batch_norm_backward(dy, saved, (True, False, False))
    assert only_params[0] is None and only_x[1] is None and only_x[2] is None
    np.testing.assert_array_equal(only_params[1], full[1])
    np.testing.assert_array_equal(only_params[2], full[2])
    np.testing.assert_array_equal(only_x[0], full[0])
    for forward, backward, args in ((ops.layer_norm_forward, ops.layer_norm_backward, (np.ones(5), np.zeros(5))),
                                    (ops.group_norm_forward, ops.group_norm_backward, (weight, bias)),
                                    (ops.instance_norm_forward, ops.instance_norm_backward, (weight, bias))):
        kwargs = {"num_groups": 3} if forward is ops.group_norm_forward else {}
        _, row_saved = forward(x, *args, **kwargs)
        row_full = backward(dy, row_saved)
        row_params = backward(dy, row_saved, (False, True, True))
        row_x = backward(dy, row_saved, (True, False, False))
        assert row_params[0] is None and row_x[1] is None and row_x[2] is None
        for got, expected in ((row_params[1], row_full[1]), (row_params[2], row_full[2]), (row_x[0], row_full[0])):
            np.testing.assert_array_equal(got, expected)
    # leaves that do not require grad get none; the others still do
    xt = normlab.tensor(x)
    w = normlab.tensor(weight, requires_grad=True)
    F.batch_norm(xt, None, None, w, bias, training=True).backward(dy)
    assert xt.grad is None
    np.testing.assert_allclose(w.grad, full[1], rtol=1e-12)


def test_saved_state_is_the_input_itself_with_mean_and_rstd(rng):
    """The smallest state: x by reference (no copy), float64 mean and rstd; never x_hat, never the output."""
    x = rng.standard_normal((4, 3, 5)) * 2 + 1
    y, saved = ops.batch_norm_forward(x, np.ones(3), np.zeros(3), training=True)
    assert np.shares_memory(saved.x3, x) and saved.x3.shape == (4, 3, 5)
    np.testing.assert_allclose(saved.mean, x.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(saved.rstd, 1 / np.sqrt(x.var(axis=(0, 2)) + 1e-5), rtol=1e-12)
    assert not np.shares_memory(y, x)
    x2 = rng.standard_normal((6, 8))
    y2, row_saved = ops.layer_norm_forward(x2, np.ones(8), np.zeros(8))
    assert np.shares_memory(row_saved.x2, x2) and not np.shares_memory(y2, x2)
    np.testing.assert_allclose(row_saved.rstd, 1 / np.sqrt(x2.var(axis=1) + 1e-5), rtol=1e-12)


# ---------------------------------------------------------------------------- numerical gradients (float64)

def _check_gradients(call, inputs: dict, rng, what: str) -> None:
    """Analytic gradients of sum(call(**tensors) * dy) against central differences, for every input."""
    arrays = {name: np.array(value, dtype=np.float64) for name, value in inputs.items()}
    dy = random_upstream(call(**arrays).shape, np.float64, rng)
    tensors = {name: normlab.tensor(a, requires_grad=True) for name, a in arrays.items()}
    call(**tensors).backward(dy)
    for name, array in arrays.items():
        numeric = numerical_gradient(lambda: float(np.sum(call(**arrays).detach().numpy() * dy)), array)
        np.testing.assert_allclose(tensors[name].grad, numeric, rtol=1e-6, atol=1e-8,
                                   err_msg=f"{what}: d/d{name}")


def _x(rng, shape):
    return rng.standard_normal(shape) * 2 + 0.5


def test_numerical_gradients_batch_norm_training(rng):
    _check_gradients(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                     dict(x=_x(rng, (3, 2, 4)), w=rng.standard_normal(2), b=rng.standard_normal(2)), rng, "bn train")
    _check_gradients(lambda x: F.batch_norm(x, None, None, training=True), dict(x=_x(rng, (5, 3))), rng,
                     "bn train, no affine")


def test_numerical_gradients_batch_norm_eval(rng):
    mean, var = rng.standard_normal(2), rng.uniform(0.5, 2, 2)
    _check_gradients(lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False),
                     dict(x=_x(rng, (3, 2, 2, 2)), w=rng.standard_normal(2), b=rng.standard_normal(2)), rng, "bn eval")


def test_numerical_gradients_layer_norm(rng):
    _check_gradients(lambda x, w, b: F.layer_norm(x, (2, 3), w, b),
                     dict(x=_x(rng, (3, 2, 3)), w=rng.standard_normal((2, 3)), b=rng.standard_normal((2, 3))), rng,
                     "layer_norm")


def test_numerical_gradients_group_norm(rng):
    _check_gradients(lambda x, w, b: F.group_norm(x, 2, w, b),
                     dict(x=_x(rng, (2, 4, 3)), w=rng.standard_normal(4), b=rng.standard_normal(4)), rng, "group_norm")


def test_numerical_gradients_instance_norm(rng):
    _check_gradients(lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
                     dict(x=_x(rng, (2, 3, 4)), w=rng.standard_normal(3), b=rng.standard_normal(3)), rng,
                     "instance_norm")


def test_numerical_gradients_rms_norm(rng):
    _check_gradients(lambda x, w: F.rms_norm(x, 4, w, eps=1e-6),
                     dict(x=_x(rng, (3, 4)), w=rng.standard_normal(4)), rng, "rms_norm")
    _check_gradients(lambda x: F.rms_norm(x, (2, 3)), dict(x=_x(rng, (2, 2, 3))), rng, "rms_norm, no weight")


def test_numerical_gradients_through_a_deeper_graph(rng):
    """BatchNorm inside a graph: gradients flow through it into a preceding op and accumulate."""
    def call(x, w):
        h = normlab.as_tensor(x) * normlab.as_tensor(w).reshape(1, 3, 1)
        return F.relu(F.batch_norm(h, None, None, training=True)) + F.layer_norm(x, 4)
    _check_gradients(call, dict(x=_x(rng, (3, 3, 4)), w=rng.standard_normal(3)), rng, "bn in a graph")


# ---------------------------------------------------------------------------- memory layouts, docstrings

def test_non_contiguous_input_and_broadcast_upstream_gradient(rng):
    """A strided input view and the zero-stride read-only gradient of ``sum()`` both work."""
    base = rng.standard_normal((4, 3, 10)) * 2 + 1
    x = base[:, :, ::2]  # not contiguous
    assert not x.flags.c_contiguous
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    xt = normlab.tensor(x, requires_grad=True)
    y = F.batch_norm(xt, None, None, weight, bias, training=True)
    torch_x = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    torch_y = TF.batch_norm(torch_x, None, None, _t(weight), _t(bias), training=True)
    assert_matches(y, torch_y, np.float64, "output")
    (y * y).sum().backward()      # d/dy of sum(y^2) = 2y: a fresh array
    (torch_y * torch_y).sum().backward()
    assert_matches(xt.grad, torch_x.grad, np.float64, "input gradient")
    xs = normlab.tensor(x, requires_grad=True)
    F.layer_norm(xs, 5).sum().backward()  # upstream is np.broadcast_to(1): read-only, zero strides
    np.testing.assert_allclose(xs.grad, 0, atol=1e-12)  # a constant upstream makes LN's dx vanish


def test_docstring_examples_run():
    import doctest

    from normlab.nn.functional import normalization as functional
    from normlab.nn.modules import normalization as modules
    from normlab.ops import normalization as core
    for module in (functional, modules, core):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0, f"{module.__name__} has no docstring examples"
        assert result.failed == 0, f"{module.__name__}: {result.failed} docstring example(s) failed"


# ---------------------------------------------------------------------------- outputs are the caller's

NO_AFFINE = [
    ("BatchNorm1d", lambda: normlab.nn.BatchNorm1d(3, affine=False, track_running_stats=False, dtype=np.float64),
     (5, 3, 4)),
    ("BatchNorm2d eval", lambda: normlab.nn.BatchNorm2d(3, affine=False, dtype=np.float64).eval(), (2, 3, 2, 2)),
    ("LayerNorm", lambda: normlab.nn.LayerNorm(4, elementwise_affine=False, dtype=np.float64), (3, 4)),
    ("GroupNorm", lambda: normlab.nn.GroupNorm(3, 3, affine=False, dtype=np.float64), (2, 3, 4)),
    ("InstanceNorm1d", lambda: normlab.nn.InstanceNorm1d(3, dtype=np.float64), (2, 3, 4)),
    ("RMSNorm", lambda: normlab.nn.RMSNorm(4, elementwise_affine=False, dtype=np.float64), (3, 4)),
]


@pytest.mark.parametrize("name, factory, shape", NO_AFFINE, ids=[c[0] for c in NO_AFFINE])
def test_writing_into_the_output_does_not_change_the_gradient(name, factory, shape, rng):
    """Issue 6, item 2: without affine the output *was* the saved x_hat, so editing it corrupted dx.

    The write goes through the untracked escape hatch (the array behind the
    output), which no version counter sees: only owning nothing saved protects.
    """
    layer = factory()
    x = rng.standard_normal(shape) * 2 + 1
    dy = random_upstream(shape, np.float64, rng)
    clean = normlab.tensor(x, requires_grad=True)
    layer(clean).backward(dy)
    edited = normlab.tensor(x, requires_grad=True)
    y = layer(edited)
    y.detach().numpy()[...] = 64.0
    y.backward(dy)
    np.testing.assert_array_equal(edited.grad, clean.grad)


def test_backward_leaves_its_upstream_gradient_alone(rng):
    x = normlab.tensor(rng.standard_normal((4, 3, 5)), requires_grad=True)
    dy = random_upstream((4, 3, 5), np.float64, rng)
    kept = dy.copy()
    F.batch_norm(x, None, None, training=True).backward(dy)
    F.layer_norm(x, 5).backward(dy)
    np.testing.assert_array_equal(dy, kept)


# ---------------------------------------------------------------------------- every layout of the kernels

@pytest.mark.parametrize("shape", [
    (300, 700),          # BatchNorm1d (N, C): columns, several tiles, the last one partial
    (7, 5, 3),           # columns, small L
    (3, 40, 37),         # rows (L >= 32), several channels per tile
    (64, 6, 1500),       # rows, one channel per tile (a channel fills a tile)
    (1, 4, 50),          # one sample
])
def test_batch_norm_layouts_match_torch(shape, rng):
    channels = shape[1]
    x = rng.standard_normal(shape) * 3 + 2
    dy = random_upstream(shape, np.float64, rng)
    weight, bias = rng.standard_normal(channels), rng.standard_normal(channels)
    for training in (True, False):
        mean, var = rng.standard_normal(channels), rng.uniform(0.5, 2, channels)
        ours_stats, torch_stats = (mean.copy(), var.copy()), (torch.tensor(mean), torch.tensor(var))
        xn, wn, bn = (normlab.tensor(a, requires_grad=True) for a in (x, weight, bias))
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
        F.batch_norm(xn, *ours_stats, wn, bn, training=training, momentum=0.3).backward(dy)
        TF.batch_norm(xt, *torch_stats, wt, bt, training=training, momentum=0.3).backward(torch.tensor(dy))
        for what, ours, theirs in (("dx", xn.grad, xt.grad), ("dweight", wn.grad, wt.grad),
                                   ("dbias", bn.grad, bt.grad), ("running_mean", ours_stats[0], torch_stats[0]),
                                   ("running_var", ours_stats[1], torch_stats[1])):
            assert_matches(ours, theirs, np.float64, f"{shape} training={training}: {what}")


@pytest.mark.parametrize("name, shape, args", [
    ("layer_norm", (70, 3000), (3000,)),     # long rows: several gradient blocks
    ("layer_norm", (5000, 16), (16,)),       # many short rows
    ("group_norm", (6, 8, 1), (4,)),         # runs of one value (spatial size 1)
    ("group_norm", (3, 6, 600), (2,)),
    ("instance_norm", (4, 5, 400), ()),
])
def test_row_layouts_match_torch(name, shape, args, rng):
    x = rng.standard_normal(shape) * 3 + 2
    dy = random_upstream(shape, np.float64, rng)
    size = shape[-1] if name == "layer_norm" else shape[1]
    weight, bias = rng.standard_normal(size), rng.standard_normal(size)
    xn, wn, bn = (normlab.tensor(a, requires_grad=True) for a in (x, weight, bias))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    if name == "instance_norm":
        F.instance_norm(xn, weight=wn, bias=bn).backward(dy)
        TF.instance_norm(xt, weight=wt, bias=bt).backward(torch.tensor(dy))
    else:
        getattr(F, name)(xn, *args, wn, bn).backward(dy)
        torch_args = ([args[0]],) if name == "layer_norm" else args  # torch wants normalized_shape as a list
        getattr(TF, name)(xt, *torch_args, wt, bt).backward(torch.tensor(dy))
    for what, ours, theirs in (("dx", xn.grad, xt.grad), ("dweight", wn.grad, wt.grad), ("dbias", bn.grad, bt.grad)):
        assert_matches(ours, theirs, np.float64, f"{name} {shape}: {what}")
