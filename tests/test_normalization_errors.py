"""Beyond torch: bad input fails loudly and changes nothing; statistics stay stable far from zero.

* A failing call leaves every parameter and buffer as it was -- including
  ``num_batches_tracked``, which torch increments before it raises.
* Errors are ValueError/TypeError naming the layer, what was expected and what was given.
* A float32 batch with mean 1e4 and std 1 normalizes to unit variance.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.normalization_checks import assert_matches


def snapshot(module) -> dict:
    return {key: value.copy() for key, value in module.state_dict().items()}


def assert_unchanged(module, before: dict) -> None:
    after = module.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=f"{key} changed by a failed call")


def _trained(layer, shape, rng):
    """A layer whose state is not the initial one (so an accidental reset would show too)."""
    if layer.training and getattr(layer, "track_running_stats", False):
        layer(rng.standard_normal(shape).astype(np.float32) * 2 + 1)
    return layer


# (layer factory, good input shape, bad input, error type, fragments the message must contain)
MODULE_CASES = [
    ("BatchNorm1d one value per channel", lambda: nn.BatchNorm1d(3), (4, 3), np.ones((1, 3), np.float32),
     ValueError, ["BatchNorm1d", "Expected more than 1 value per channel when training", "(1, 3)"]),
    ("BatchNorm1d one value per channel, 3D", lambda: nn.BatchNorm1d(3, momentum=None), (4, 3),
     np.ones((1, 3, 1), np.float32), ValueError, ["BatchNorm1d", "more than 1 value per channel", "(1, 3, 1)"]),
    ("BatchNorm2d one value per channel", lambda: nn.BatchNorm2d(3), (2, 3, 2, 2), np.ones((1, 3, 1, 1), np.float32),
     ValueError, ["BatchNorm2d", "more than 1 value per channel", "(1, 3, 1, 1)"]),
    ("BatchRenorm1d one value per channel", lambda: nn.BatchRenorm1d(3), (4, 3), np.ones((1, 3), np.float32),
     ValueError, ["BatchRenorm1d", "more than 1 value per channel", "(1, 3)"]),
    ("BatchNorm1d 4 channels into 3", lambda: nn.BatchNorm1d(3), (4, 3), np.ones((2, 4, 5), np.float32),
     ValueError, ["BatchNorm1d", "3 channels", "got 4", "(2, 4, 5)"]),
    ("BatchNorm1d 4 features into 3", lambda: nn.BatchNorm1d(3), (4, 3), np.ones((5, 4), np.float32),
     ValueError, ["BatchNorm1d", "3 channels", "got 4"]),
    ("BatchNorm2d 2 channels into 3", lambda: nn.BatchNorm2d(3), (2, 3, 2, 2), np.ones((2, 2, 3, 3), np.float32),
     ValueError, ["BatchNorm2d", "3 channels", "got 2"]),
    ("BatchNorm2d 3D input", lambda: nn.BatchNorm2d(3), (2, 3, 2, 2), np.ones((2, 3, 4), np.float32),
     ValueError, ["BatchNorm2d", "4D", "3D", "(2, 3, 4)"]),
    ("BatchNorm1d 4D input", lambda: nn.BatchNorm1d(3), (4, 3), np.ones((2, 3, 4, 4), np.float32),
     ValueError, ["BatchNorm1d", "2D or 3D", "4D"]),
    ("BatchNorm1d integer input", lambda: nn.BatchNorm1d(3), (4, 3), np.ones((4, 3), np.int64),
     TypeError, ["BatchNorm1d", "float", "int64"]),
    ("BatchRenorm2d wrong channels", lambda: nn.BatchRenorm2d(3), (2, 3, 2, 2), np.ones((2, 5, 2, 2), np.float32),
     ValueError, ["BatchRenorm2d", "3 channels", "got 5"]),
    ("InstanceNorm1d affine, wrong channels", lambda: nn.InstanceNorm1d(3, affine=True, track_running_stats=True),
     (2, 3, 4), np.ones((2, 4, 5), np.float32), ValueError, ["InstanceNorm1d", "3 channels", "got 4"]),
    ("InstanceNorm1d one spatial value", lambda: nn.InstanceNorm1d(3, track_running_stats=True), (2, 3, 4),
     np.ones((2, 3, 1), np.float32), ValueError, ["InstanceNorm1d", "more than 1 spatial element", "(2, 3, 1)"]),
    ("InstanceNorm2d 5D input", lambda: nn.InstanceNorm2d(3, track_running_stats=True), (2, 3, 2, 2),
     np.ones((2, 3, 2, 2, 2), np.float32), ValueError, ["InstanceNorm2d", "3D or 4D", "5D"]),
    ("InstanceNorm2d float16", lambda: nn.InstanceNorm2d(3, track_running_stats=True), (2, 3, 2, 2),
     np.ones((2, 3, 2, 2), np.float16), TypeError, ["InstanceNorm2d", "float16"]),
    ("LayerNorm wrong normalized shape", lambda: nn.LayerNorm((4, 5)), (2, 4, 5), np.ones((2, 4, 6), np.float32),
     ValueError, ["LayerNorm", "(4, 5)", "(2, 4, 6)"]),
    ("LayerNorm too few dimensions", lambda: nn.LayerNorm((2, 4, 5)), (2, 4, 5), np.ones((4, 5), np.float32),
     ValueError, ["LayerNorm", "(2, 4, 5)", "(4, 5)"]),
    ("LayerNorm integer input", lambda: nn.LayerNorm(3), (2, 3), np.ones((2, 3), np.int32),
     TypeError, ["LayerNorm", "int32"]),
    ("GroupNorm wrong channels", lambda: nn.GroupNorm(2, 4), (2, 4, 3), np.ones((2, 6, 3), np.float32),
     ValueError, ["GroupNorm", "4 channels", "got 6"]),
    ("GroupNorm 1D input", lambda: nn.GroupNorm(2, 4), (2, 4, 3), np.ones(4, np.float32),
     ValueError, ["GroupNorm", "at least 2 dimensions", "1D"]),
    ("GroupNorm one value per group", lambda: nn.GroupNorm(4, 4), (2, 4, 3), np.ones((1, 4), np.float32),
     ValueError, ["GroupNorm", "Expected more than 1 value"]),
    ("RMSNorm wrong normalized shape", lambda: nn.RMSNorm(4), (3, 4), np.ones((3, 5), np.float32),
     ValueError, ["RMSNorm", "(4,)", "(3, 5)"]),
]


@pytest.mark.parametrize("case", MODULE_CASES, ids=[c[0] for c in MODULE_CASES])
def test_bad_input_raises_naming_the_layer_and_changes_nothing(case, rng):
    _, factory, good_shape, bad, error, fragments = case
    layer = _trained(factory(), good_shape, rng)
    before = snapshot(layer)
    with pytest.raises(error) as info:
        layer(bad)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from the message: {message}"
    assert_unchanged(layer, before)
    layer(rng.standard_normal(good_shape).astype(np.float32))  # and the layer still works afterwards


def test_torch_increments_num_batches_tracked_before_raising_and_we_do_not():
    """The behaviour normlab improves on, pinned to torch 2.13."""
    theirs = torch.nn.BatchNorm1d(3)
    with pytest.raises(ValueError):
        theirs(torch.ones(1, 3))
    assert int(theirs.num_batches_tracked) == 1
    ours = nn.BatchNorm1d(3)
    with pytest.raises(ValueError):
        ours(np.ones((1, 3), np.float32))
    assert int(ours.num_batches_tracked.data) == 0


def test_one_value_per_channel_is_fine_in_eval():
    layer = nn.BatchNorm1d(3).eval()
    y = layer(np.full((1, 3), 2.0, np.float32))
    np.testing.assert_allclose(y.detach().numpy(), 2.0 / np.sqrt(1 + 1e-5), rtol=1e-6)
    assert int(layer.num_batches_tracked.data) == 0


def test_without_running_stats_eval_still_needs_two_values():
    # track_running_stats=False normalizes with batch statistics in eval too, so torch's check applies
    layer = nn.BatchNorm1d(3, track_running_stats=False).eval()
    with pytest.raises(ValueError, match="BatchNorm1d"):
        layer(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError):
        torch.nn.BatchNorm1d(3, track_running_stats=False).eval()(torch.ones(1, 3))


@pytest.mark.parametrize("r_max, d_max, fragment", [(0.5, 1.0, "r_max"), (2.0, -1.0, "d_max"), ("3", 1.0, "r_max")])
def test_batch_renorm_bad_limits_change_nothing(r_max, d_max, fragment, rng):
    layer = _trained(nn.BatchRenorm1d(3), (4, 3), rng)
    before = snapshot(layer)
    layer.r_max, layer.d_max = r_max, d_max
    with pytest.raises(ValueError, match=fragment) as info:
        layer(rng.standard_normal((4, 3)).astype(np.float32))
    assert "BatchRenorm1d" in str(info.value)
    assert_unchanged(layer, before)


def test_instance_norm_without_affine_only_warns_on_channel_mismatch_like_torch(rng):
    x = rng.standard_normal((2, 4, 5))
    with pytest.warns(UserWarning, match="InstanceNorm1d"):
        y = nn.InstanceNorm1d(3)(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = torch.nn.InstanceNorm1d(3)(torch.from_numpy(x))
    np.testing.assert_allclose(y.detach().numpy(), expected.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_group_norm_constructor_checks():
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels \(4\) must be divisible by num_groups \(3\)"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="GroupNorm"):
        nn.GroupNorm(0, 4)


def test_layer_norm_constructor_checks():
    with pytest.raises(ValueError, match="LayerNorm"):
        nn.LayerNorm(())
    with pytest.raises(TypeError, match="LayerNorm"):
        nn.LayerNorm("4")
    with pytest.raises(ValueError, match="RMSNorm"):
        nn.RMSNorm([3, 0])


# ---------------------------------------------------------------------------- functional

def _stats():
    return np.zeros(3), np.ones(3)


@pytest.mark.parametrize("kwargs, error, fragments", [
    (dict(running_mean=np.zeros(4)), ValueError, ["batch_norm", "running_mean", "3 elements", "(4,)"]),
    (dict(running_var=np.ones((3, 1))), ValueError, ["batch_norm", "running_var", "3 elements", "(3, 1)"]),
    (dict(running_mean=[0.0, 0.0, 0.0]), TypeError, ["batch_norm", "running_mean", "list"]),
    (dict(running_mean=np.zeros(3, np.int64)), TypeError, ["batch_norm", "running_mean", "int64"]),
    (dict(running_mean=None), ValueError, ["batch_norm", "running_mean", "running_var"]),
    (dict(weight=np.ones(4)), ValueError, ["batch_norm", "weight", "(3,)", "(4,)"]),
    (dict(bias=np.ones((1, 3))), ValueError, ["batch_norm", "bias", "(3,)", "(1, 3)"]),
    (dict(input=np.ones((1, 3, 1))), ValueError, ["batch_norm", "more than 1 value per channel"]),
    (dict(input=np.ones(3)), ValueError, ["batch_norm", "at least 2 dimensions", "1D"]),
    (dict(input=np.ones((4, 3), bool)), TypeError, ["batch_norm", "bool"]),
    (dict(eps=-1.0), ValueError, ["batch_norm", "eps"]),
    (dict(momentum="0.1"), TypeError, ["batch_norm", "momentum"]),
])
def test_functional_batch_norm_bad_arguments_change_nothing(kwargs, error, fragments, rng):
    mean, var = _stats()
    arguments = dict(input=rng.standard_normal((4, 3)), running_mean=mean, running_var=var, training=True)
    arguments.update(kwargs)
    watched = [a for a in (arguments["running_mean"], arguments["running_var"], mean, var)
               if isinstance(a, np.ndarray)]
    before = [a.copy() for a in watched]
    with pytest.raises(error) as info:
        F.batch_norm(**arguments)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from the message: {info.value}"
    for a, b in zip(watched, before):
        np.testing.assert_array_equal(a, b)


def test_functional_bad_arguments_other_layers(rng):
    x = rng.standard_normal((2, 6, 3))
    with pytest.raises(ValueError, match=r"group_norm: expected the number of channels to be divisible by "
                                         r"num_groups=4, got 6 channels"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match="group_norm: expected weight of shape \\(6,\\)"):
        F.group_norm(x, 3, weight=np.ones(3))
    with pytest.raises(ValueError, match=r"layer_norm: expected input whose last 1 dimension\(s\) are \(4,\)"):
        F.layer_norm(x, 4)
    with pytest.raises(ValueError, match=r"layer_norm: expected weight of shape \(3,\)"):
        F.layer_norm(x, 3, weight=np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"rms_norm: expected input whose last 2 dimension\(s\) are \(6, 4\)"):
        F.rms_norm(x, (6, 4))
    with pytest.raises(ValueError, match="instance_norm: expected input \\(N, C, \\*spatial\\) with at least 3"):
        F.instance_norm(np.ones((2, 3)))
    with pytest.raises(ValueError, match="instance_norm: running_mean and running_var are required"):
        F.instance_norm(x, use_input_stats=False)
    mean, var = np.zeros(6), np.ones(6)
    with pytest.raises(ValueError, match="batch_renorm: expected r_max >= 1.0"):
        F.batch_renorm(x, mean, var, training=True, r_max=0.9)
    with pytest.raises(ValueError, match="batch_renorm: running_mean and running_var are required"):
        F.batch_renorm(x, None, None, training=True)
    np.testing.assert_array_equal(mean, 0)
    np.testing.assert_array_equal(var, 1)
    read_only = np.zeros(6)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="batch_norm: running_mean is read-only"):
        F.batch_norm(x, read_only, var, training=True)


# ---------------------------------------------------------------------------- numerical stability

def _far_from_zero(shape, rng):
    return (1e4 + rng.standard_normal(shape)).astype(np.float32)


def test_naive_variance_fails_on_the_stability_data(rng):
    """E[x^2] - E[x]^2 in float32 is useless here -- so the tests below can tell stable from naive."""
    x = _far_from_zero((256, 4), rng)
    naive = (x * x).mean(axis=0) - x.mean(axis=0) ** 2
    assert np.max(np.abs(naive - x.astype(np.float64).var(axis=0))) > 0.1


@pytest.mark.parametrize("layer, shape, axes", [
    (lambda: nn.BatchNorm1d(4), (256, 4), (0,)),
    (lambda: nn.BatchNorm2d(3), (16, 3, 8, 8), (0, 2, 3)),
    (lambda: nn.LayerNorm(512), (4, 512), (1,)),
    (lambda: nn.LayerNorm((8, 64)), (3, 8, 64), (1, 2)),
    (lambda: nn.GroupNorm(2, 4), (3, 4, 64), (1, 2)),
    (lambda: nn.InstanceNorm1d(3), (2, 3, 256), (2,)),
])
def test_float32_mean_1e4_std_1_normalizes_to_unit_variance(layer, shape, axes, rng):
    module = layer()
    x = _far_from_zero(shape, rng)
    y = module(x).detach().numpy().astype(np.float64)
    if isinstance(module, nn.GroupNorm):
        y = y.reshape(shape[0], 2, -1)
        axes = (2,)
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-4)
    np.testing.assert_allclose(y.var(axis=axes), 1, atol=1e-3)
    if isinstance(module, nn.BatchNorm1d) or isinstance(module, nn.BatchNorm2d):
        # running_var moved from 1 towards the batch's (unbiased) variance ~1, not towards garbage
        np.testing.assert_allclose(module.running_var.data, 1, atol=2e-2)
        np.testing.assert_allclose(module.running_mean.data, 1e3, rtol=1e-4)


def test_float32_stability_of_the_gradient(rng):
    """The input gradient on far-from-zero float32 data matches the float64 computation."""
    x = _far_from_zero((64, 3), rng)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    x32 = normlab.tensor(x, requires_grad=True)
    F.batch_norm(x32, None, None, training=True).backward(dy)
    x64 = torch.tensor(x.astype(np.float64), requires_grad=True)
    torch.nn.functional.batch_norm(x64, None, None, training=True).backward(torch.from_numpy(dy.astype(np.float64)))
    assert_matches(x32.grad, x64.grad, np.float32, "input gradient at mean 1e4")


# ---------------------------------------------------------------------------- a failed call changes no state

@pytest.mark.parametrize("attribute, value, error", [("eps", -1.0, ValueError), ("momentum", "0.1", TypeError),
                                                     ("eps", "tiny", TypeError)])
@pytest.mark.parametrize("name", ["BatchNorm1d", "BatchRenorm1d"])
def test_bad_attribute_raises_before_counting_the_batch(name, attribute, value, error, rng):
    """Issue 6, item 5: num_batches_tracked went to 1 before eps was checked."""
    layer = _trained(getattr(nn, name)(3), (4, 3), rng)
    before = snapshot(layer)
    setattr(layer, attribute, value)
    with pytest.raises(error, match=name):
        layer(rng.standard_normal((4, 3)).astype(np.float32))
    assert_unchanged(layer, before)


@pytest.mark.parametrize("bad", ["mask", "dtype"])
def test_bad_call_of_batch_norm_module_counts_nothing(bad, rng):
    layer = _trained(nn.BatchNorm1d(3, momentum=None), (4, 3, 5), rng)
    before = snapshot(layer)
    x = rng.standard_normal((4, 3, 5))
    with pytest.raises((ValueError, TypeError)):
        if bad == "mask":
            layer(x.astype(np.float32), mask=np.ones((4, 4), bool))
        else:
            layer(x)  # float64 into a float32 layer
    assert_unchanged(layer, before)


# ---------------------------------------------------------------------------- empty batches, as torch

@pytest.mark.parametrize("name, shape, kwargs", [
    ("BatchNorm1d", (0, 3), {}),
    ("BatchNorm1d", (0, 3, 5), {"momentum": None}),
    ("BatchNorm1d", (4, 3, 0), {}),
    ("BatchNorm2d", (0, 3, 2, 2), {}),
    ("BatchNorm1d", (0, 3), {"affine": False}),
    ("LayerNorm", (0, 3), {}),
    ("RMSNorm", (0, 3), {}),
    ("GroupNorm", (0, 3, 4), {}),
    ("InstanceNorm1d", (0, 3, 4), {"track_running_stats": True}),
])
def test_empty_batch_gives_empty_output_like_torch(name, shape, kwargs, rng):
    """Issue 6, item 5: torch accepts an empty batch; so do we, with torch's state afterwards.

    torch 2.13 increments num_batches_tracked for the empty batch and leaves the
    running statistics alone (so a following batch under momentum=None is
    averaged as the second one) -- matched here. Deviations, on purpose: torch's
    InstanceNorm writes NaN into its running statistics on an empty batch
    (ours leave them alone) and raises IndexError with affine=True (ours
    returns empty, with zero weight gradients).
    """
    args = {"LayerNorm": (3,), "RMSNorm": (3,), "GroupNorm": (1, 3)}.get(name, (3,))
    ours = getattr(nn, name)(*args, **kwargs, dtype=np.float64)
    theirs = getattr(torch.nn, name)(*args, **kwargs, dtype=torch.float64)
    x = normlab.tensor(np.empty(shape), requires_grad=True)
    xt = torch.empty(shape, dtype=torch.float64, requires_grad=True)
    y, yt = ours(x), theirs(xt)
    assert y.shape == tuple(yt.shape) == shape
    y.backward(np.empty(shape))
    yt.backward(torch.empty(shape, dtype=torch.float64))
    assert x.grad.shape == shape
    for (key, mine), (_, ref) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        if name.startswith("InstanceNorm") and key in ("running_mean", "running_var"):
            assert np.isnan(ref.numpy()).all(), "torch's NaN running statistics changed: revisit the deviation"
            ref = torch.zeros(3) if key == "running_mean" else torch.ones(3)
        np.testing.assert_array_equal(mine, ref.numpy(), err_msg=key)
    for (pname, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_array_equal(np.asarray(p.grad), q.grad.numpy(), err_msg=f"{pname} gradient")
    if name.startswith("BatchNorm"):  # the next, non-empty batch: the same running statistics as torch
        full = (5,) + shape[1:] if shape[0] == 0 else shape[:2] + (3,)
        data = rng.standard_normal(full) * 2 + 1
        ours(data)
        theirs(torch.from_numpy(data))
        for (key, mine), (_, ref) in zip(ours.state_dict().items(), theirs.state_dict().items()):
            np.testing.assert_allclose(mine, ref.numpy(), rtol=1e-12, err_msg=f"after an empty batch: {key}")


def test_functional_empty_batch_leaves_running_stats_alone(rng):
    mean, var = np.full(3, 0.5), np.full(3, 2.0)
    y = F.batch_norm(np.empty((0, 3)), mean, var, training=True)
    assert y.shape == (0, 3)
    np.testing.assert_array_equal(mean, 0.5)
    np.testing.assert_array_equal(var, 2.0)
    F.instance_norm(np.empty((0, 3, 4)), mean, var)  # torch writes NaN into the running stats here; we do not
    np.testing.assert_array_equal(mean, 0.5)


# ---------------------------------------------------------------------------- mixed dtypes

LAYERS_WITH_PARAMETERS = [
    ("BatchNorm1d", lambda dtype: nn.BatchNorm1d(3, dtype=dtype), (4, 3)),
    ("BatchNorm1d", lambda dtype: nn.BatchNorm1d(3, affine=False, dtype=dtype), (4, 3)),
    ("BatchNorm2d", lambda dtype: nn.BatchNorm2d(3, dtype=dtype).eval(), (2, 3, 2, 2)),
    ("BatchRenorm1d", lambda dtype: nn.BatchRenorm1d(3, dtype=dtype), (4, 3)),
    ("InstanceNorm1d", lambda dtype: nn.InstanceNorm1d(3, affine=True, dtype=dtype), (2, 3, 4)),
    ("InstanceNorm2d", lambda dtype: nn.InstanceNorm2d(3, track_running_stats=True, dtype=dtype), (2, 3, 2, 2)),
    ("LayerNorm", lambda dtype: nn.LayerNorm(3, dtype=dtype), (4, 3)),
    ("GroupNorm", lambda dtype: nn.GroupNorm(1, 3, dtype=dtype), (2, 3, 4)),
    ("RMSNorm", lambda dtype: nn.RMSNorm(3, dtype=dtype), (4, 3)),
    ("Linear", lambda dtype: nn.Linear(3, 2, dtype=dtype), (4, 3)),
    ("Maxout", lambda dtype: nn.Maxout(3, 2, pieces=2, dtype=dtype), (4, 3)),
    ("prelu", lambda dtype: nn.PReLU(3, dtype=dtype), (4, 3)),
    ("Conv1d", lambda dtype: nn.Conv1d(3, 2, 1, dtype=dtype), (2, 3, 4)),
]


@pytest.mark.parametrize("name, factory, shape", LAYERS_WITH_PARAMETERS, ids=[c[0] for c in LAYERS_WITH_PARAMETERS])
@pytest.mark.parametrize("input_dtype, parameter_dtype", [(np.float64, np.float32), (np.float32, np.float64)])
def test_input_of_another_dtype_than_the_parameters_raises(name, factory, shape, input_dtype, parameter_dtype, rng):
    """Issue 6, item 6: a float64 input to a float32 layer came out float64; torch raises, so do we."""
    layer = factory(parameter_dtype)
    before = snapshot(layer)
    with pytest.raises(TypeError) as info:
        layer(rng.standard_normal(shape).astype(input_dtype))
    message = str(info.value)
    for fragment in (name, np.dtype(input_dtype).name, np.dtype(parameter_dtype).name):
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert_unchanged(layer, before)
    assert layer(rng.standard_normal(shape).astype(parameter_dtype)).dtype == parameter_dtype


def test_functional_mixed_dtypes_raise():
    x = np.ones((4, 3))
    with pytest.raises(TypeError, match="batch_norm.*float64.*float32"):
        F.batch_norm(x, np.zeros(3, np.float32), np.ones(3, np.float32), training=True)
    with pytest.raises(TypeError, match="layer_norm"):
        F.layer_norm(x, 3, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="linear"):
        F.linear(x, np.ones((2, 3), np.float32))
