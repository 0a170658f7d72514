"""Mish, Hardswish, Hardsigmoid, Softsign, Tanhshrink, SiLU, Softplus, Hardtanh, ReLU6, LogSigmoid, Threshold,
GLU and PReLU against torch.

float64: forward and input gradient (random upstream gradient) equal torch's
within the shared table; float32: against torch's float64 result on the same
(float32) input, within float32 rounding; numerical gradients in float64.
Inputs include the kinks (0, +-3) and saturated tails (+-30).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import assert_close, assert_float32_close, numerical_gradient, random_upstream

ACTIVATIONS = {
    "mish": (F.mish, TF.mish),
    "hardswish": (F.hardswish, TF.hardswish),
    "hardsigmoid": (F.hardsigmoid, TF.hardsigmoid),
    "softsign": (F.softsign, TF.softsign),
    "tanhshrink": (F.tanhshrink, TF.tanhshrink),
    "silu": (F.silu, TF.silu),
    "softplus": (F.softplus, TF.softplus),
    "hardtanh": (lambda x: F.hardtanh(x, -1.5, 2.0), lambda x: TF.hardtanh(x, -1.5, 2.0)),
    "relu6": (F.relu6, TF.relu6),
    "logsigmoid": (F.logsigmoid, TF.logsigmoid),
    "threshold": (lambda x: F.threshold(x, 0.5, -2.0), lambda x: TF.threshold(x, 0.5, -2.0)),
}
MODULES = {
    "mish": (nn.Mish, torch.nn.Mish), "hardswish": (nn.Hardswish, torch.nn.Hardswish),
    "hardsigmoid": (nn.Hardsigmoid, torch.nn.Hardsigmoid), "softsign": (nn.Softsign, torch.nn.Softsign),
    "tanhshrink": (nn.Tanhshrink, torch.nn.Tanhshrink), "silu": (nn.SiLU, torch.nn.SiLU),
    "hardtanh": (lambda **kw: nn.Hardtanh(-1.5, 2.0, **kw), lambda **kw: torch.nn.Hardtanh(-1.5, 2.0, **kw)),
    "relu6": (nn.ReLU6, torch.nn.ReLU6), "logsigmoid": (nn.LogSigmoid, torch.nn.LogSigmoid),
    "threshold": (lambda **kw: nn.Threshold(0.5, -2.0, **kw), lambda **kw: torch.nn.Threshold(0.5, -2.0, **kw)),
}
INPLACE = ["mish", "hardswish", "hardsigmoid", "silu", "hardtanh", "relu6", "threshold"]


def _data(rng, shape, dtype):
    x = rng.standard_normal(shape) * 3
    # kinks (hardswish's +-3, relu6's 6, hardtanh's -1.5 and 2 here, threshold's 0.5), both tails, next to kinks
    x.reshape(-1)[:12] = (0.0, 3.0, -3.0, 30.0, -30.0, 2.9999, -3.0001, 6.0, -1.5, 2.0, 0.5, 6.0001)
    return x.astype(dtype)


def _torch_reference(torch_fn, data, g):
    xt = torch.tensor(data.astype(np.float64), requires_grad=True)
    yt = torch_fn(xt)
    yt.backward(torch.tensor(g.astype(np.float64)))
    return yt.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_float64_matches_torch(rng, name):
    ours, theirs = ACTIVATIONS[name]
    data = _data(rng, (4, 5, 3), np.float64)
    g = random_upstream(data.shape, np.float64, rng)
    x = normlab.tensor(data, requires_grad=True)
    y = ours(x)
    y.backward(g)
    y_ref, dx_ref = _torch_reference(theirs, data, g)
    assert y.dtype == np.float64
    assert_close(y, y_ref, np.float64, f"{name} forward")
    assert_close(x.grad, dx_ref, np.float64, f"{name} grad")


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_float32_within_rounding_of_the_float64_reference(rng, name):
    ours, theirs = ACTIVATIONS[name]
    data = _data(rng, (6, 7), np.float32)
    g = random_upstream(data.shape, np.float32, rng)
    x = normlab.tensor(data, requires_grad=True)
    y = ours(x)
    y.backward(g)
    y_ref, dx_ref = _torch_reference(theirs, data, g)
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    scale = np.abs(data).astype(np.float64) + 1
    assert_float32_close(y, y_ref, scale=scale, what=f"{name} forward")
    assert_float32_close(x.grad, dx_ref, scale=np.abs(g).astype(np.float64) * scale, what=f"{name} grad")


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_numerical_gradient(rng, name):
    ours, _ = ACTIVATIONS[name]
    data = rng.standard_normal((3, 4)) * 2
    data[np.abs(np.abs(data) - 3) < 0.01] += 0.05  # away from the kinks at +-3
    g = rng.standard_normal((3, 4))
    x = normlab.tensor(data, requires_grad=True)
    ours(x).backward(g)
    numeric = numerical_gradient(lambda: float((ours(normlab.tensor(data)).numpy() * g).sum()), data)
    np.testing.assert_allclose(np.asarray(x.grad), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name,inplace", [(name, False) for name in MODULES] + [(name, True) for name in INPLACE])
def test_modules_and_inplace_match_torch(rng, name, inplace):
    ours_cls, torch_cls = MODULES[name]
    ours, theirs = (ours_cls(inplace=True), torch_cls(inplace=True)) if inplace else (ours_cls(), torch_cls())
    assert repr(ours) == repr(theirs)
    data = _data(rng, (5, 4), np.float64)
    g = random_upstream(data.shape, np.float64, rng)
    x, xt = normlab.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    h, ht = x * 1.5, xt * 1.5  # a non-leaf: in-place is allowed on it
    y, yt = ours(h), theirs(ht)
    if inplace:
        assert y is h and h._version == 1
    y.backward(g)
    yt.backward(torch.tensor(g))
    assert_close(y, yt, np.float64, "forward")
    assert_close(x.grad, xt.grad, np.float64, "grad")


def test_hardsigmoid_uses_torchs_float32_one_sixth_slope():
    """torch's backward multiplies by 1/6 rounded to float32 even in float64; normlab matches it bit for bit."""
    x = normlab.tensor(np.array([0.5]), requires_grad=True)
    F.hardsigmoid(x).backward(np.array([1.0]))
    xt = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    TF.hardsigmoid(xt).backward(torch.ones(1, dtype=torch.float64))
    assert np.asarray(x.grad)[0] == xt.grad.item() == float(np.float32(1 / 6))


@given(data=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                       elements=st.floats(-50, 50)),
       name=st.sampled_from(list(ACTIVATIONS)))
def test_shape_and_value_sweep(data, name):
    ours, theirs = ACTIVATIONS[name]
    g = np.cos(np.arange(data.size)).reshape(data.shape) + 0.5
    x = normlab.tensor(data, requires_grad=True)
    y = ours(x)
    y.backward(g)
    y_ref, dx_ref = _torch_reference(theirs, data, g)
    assert_close(y, y_ref, np.float64, "forward")
    assert_close(x.grad, dx_ref, np.float64, "grad")


def test_read_only_and_strided_inputs_and_writing_into_the_output(rng):
    data = _data(rng, (4, 6), np.float64)
    data.setflags(write=False)
    g = random_upstream((6, 4), np.float64, rng)
    for name, (ours, theirs) in ACTIVATIONS.items():
        x = normlab.tensor(data, requires_grad=True)
        y = ours(x.transpose(0, 1))  # a strided view
        np.asarray(y.detach())[...] = 123.0  # the user scribbles on the result: backward must not change
        y.backward(g)
        _, dx_ref = _torch_reference(lambda t: theirs(t.transpose(0, 1)), data, g)
        assert_close(x.grad, dx_ref, np.float64, name)


def test_empty_input():
    for ours, _ in ACTIVATIONS.values():
        x = normlab.tensor(np.zeros((0, 3)), requires_grad=True)
        y = ours(x)
        y.backward(np.zeros((0, 3)))
        assert y.shape == (0, 3) and x.grad.shape == (0, 3)


# --------------------------------------------------------------------- PReLU
@pytest.mark.parametrize("shape,num_parameters", [
    ((6,), 1), ((5, 4), 1), ((5, 4), 4), ((3, 4, 7), 4), ((2, 4, 3, 5), 4), ((2, 4, 3, 5), 1), ((4, 3), 1),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_prelu_matches_torch(rng, shape, num_parameters, dtype):
    ours = nn.PReLU(num_parameters, init=0.1, dtype=dtype)
    theirs = torch.nn.PReLU(num_parameters, init=0.1).double()
    ours.weight.data[...] = rng.uniform(-0.5, 0.5, num_parameters)
    theirs.load_state_dict({"weight": torch.tensor(np.asarray(ours.weight), dtype=torch.float64)})
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
    data = rng.standard_normal(shape).astype(dtype)
    data.reshape(-1)[0] = 0.0
    g = random_upstream(shape, dtype, rng)
    x, xt = normlab.tensor(data, requires_grad=True), torch.tensor(data.astype(np.float64), requires_grad=True)
    y, yt = ours(x), theirs(xt)
    y.backward(g)
    yt.backward(torch.tensor(g.astype(np.float64)))
    if dtype == np.float64:
        assert_close(y, yt, dtype, "forward")
        assert_close(x.grad, xt.grad, dtype, "dx")
        assert_close(ours.weight.grad, theirs.weight.grad, dtype, "dweight")
    else:
        assert_float32_close(y, yt.detach().numpy(), scale=np.abs(data), what="forward")
        assert_float32_close(x.grad, xt.grad.numpy(), scale=np.abs(g), what="dx")
        # dweight sums |g x| over the non-channel positions
        terms = np.abs(g.astype(np.float64) * data)
        axes = tuple(d for d in range(len(shape)) if d != 1) if num_parameters > 1 else None
        assert_float32_close(ours.weight.grad, theirs.weight.grad.numpy(),
                             scale=terms.sum(axis=axes).reshape(-1), what="dweight")


def test_prelu_numerical_gradients(rng):
    data = rng.standard_normal((3, 2, 4)) + 0.01
    weight = np.array([0.2, -0.3])
    g = rng.standard_normal(data.shape)
    x, w = normlab.tensor(data, requires_grad=True), normlab.tensor(weight, requires_grad=True)
    F.prelu(x, w).backward(g)

    def loss():
        return float((F.prelu(normlab.tensor(data), normlab.tensor(weight)).numpy() * g).sum())

    np.testing.assert_allclose(np.asarray(x.grad), numerical_gradient(loss, data), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.asarray(w.grad), numerical_gradient(loss, weight), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("call,message", [
    (lambda: nn.PReLU(3)(normlab.randn(2, 4)), r"prelu: expected input with 3 channels \(dim 1\)"),
    (lambda: nn.PReLU(3)(normlab.randn(5)), "prelu: expected input with 3 channels"),
    (lambda: F.prelu(normlab.randn(2, 3), normlab.ones(3, 1)), "prelu: expected a 1D weight"),
    (lambda: nn.PReLU(0), "PReLU: expected num_parameters to be a positive integer, got 0"),
])
def test_prelu_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_prelu_trains_its_slope_with_an_optimizer():
    act = nn.PReLU()
    opt = normlab.optim.SGD(act.parameters(), lr=0.1)
    before = float(act.weight.item())
    act(normlab.tensor([-1.0, -2.0])).sum().backward()
    opt.step()
    assert float(act.weight.item()) == pytest.approx(before + 0.3, rel=1e-6)


# --------------------------------------------------------------------- bounds, NaN and bad arguments
@pytest.mark.parametrize("size", [3, 8, 17])   # torch's scalar loop (short tensors, tails) and its vector loop
def test_bounds_and_nan_follow_torch(size):
    # at a bound the gradient is 0 (hardtanh, relu6: x <= min or x >= max; threshold: x <= t); a NaN input
    # stays NaN; threshold and logsigmoid pass a NaN's gradient as torch does everywhere
    data = np.resize(np.array([-1.5, 2.0, 0.0, 6.0, 0.5, np.nan, -np.inf, np.inf, 1.0]), size)
    g = np.arange(1.0, data.size + 1)
    for name in ("hardtanh", "relu6", "threshold", "logsigmoid"):
        ours, theirs = ACTIVATIONS[name]
        x = normlab.tensor(data, requires_grad=True)
        y = ours(x)
        y.backward(g)
        y_ref, dx_ref = _torch_reference(theirs, data, g)
        assert_close(y, y_ref, np.float64, f"{name} forward")
        if name in ("hardtanh", "relu6"):
            # torch gives a NaN's gradient 0 in its vector loop and dy in its scalar loop: normlab always 0
            assert np.all(np.asarray(x.grad)[np.isnan(data)] == 0)
            dx_ref[np.isnan(data)] = 0
        assert_close(x.grad, dx_ref, np.float64, f"{name} grad")


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.hardtanh(normlab.randn(3), 2.0, 1.0), ValueError, r"hardtanh: expected min_val <= max_val, got min_val=2.0"),
    (lambda: nn.Hardtanh(1.0, 1.0), ValueError, r"Hardtanh: expected max_val > min_val"),
    (lambda: F.relu6(np.arange(3)), TypeError, r"relu6: expected a floating-point input .* got dtype int64"),
    (lambda: nn.Threshold(0.1, "x")(normlab.randn(3)), TypeError, r"Threshold: expected value to be a real number"),
    (lambda: nn.LogSigmoid()(np.arange(3)), TypeError, r"logsigmoid: expected a floating-point input"),
    (lambda: F.glu(normlab.randn(2, 3)), ValueError, r"glu: expected an even size along dim -1 to halve, got size 3"),
    (lambda: nn.GLU(2)(normlab.randn(2, 4)), IndexError, r"glu: dim 2 is out of range for a 2D input"),
    (lambda: F.glu(normlab.tensor(1.0)), ValueError, r"glu: expected an input with at least one dimension"),
])
def test_bad_arguments_are_refused_naming_the_layer(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --------------------------------------------------------------------- GLU
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5), data=st.data())
def test_glu_matches_torch(dtype, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    shape = list(shape)
    shape[dim] *= 2                               # an even size along dim
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x_data = (rng.standard_normal(shape) * 4).astype(dtype)
    module = data.draw(st.booleans())
    x = normlab.tensor(x_data, requires_grad=True)
    y = nn.GLU(dim)(x) if module else F.glu(x, dim)
    g = random_upstream(y.shape, dtype, rng)
    y.backward(g)
    y_ref, dx_ref = _torch_reference(lambda t: TF.glu(t, dim), x_data, g)
    assert y.dtype == dtype and x.grad.dtype == dtype
    if dtype == np.float64:
        assert_close(y, y_ref, np.float64, "glu forward")
        assert_close(x.grad, dx_ref, np.float64, "glu grad")
    else:
        half = np.split(np.abs(x_data).astype(np.float64), 2, axis=dim)[0]
        assert_float32_close(y, y_ref, scale=half, what="glu forward")
        g_both = np.abs(np.concatenate([g, g], axis=dim)).astype(np.float64)     # dy reaches both halves
        scale = g_both * (np.concatenate([half, half], axis=dim) + 1)
        assert_float32_close(x.grad, dx_ref, scale=scale, what="glu grad")


def test_glu_numerical_gradient_and_repr(rng):
    data = rng.standard_normal((3, 4, 2))
    g = rng.standard_normal((3, 2, 2))
    x = normlab.tensor(data, requires_grad=True)
    F.glu(x, 1).backward(g)
    numeric = numerical_gradient(lambda: float((F.glu(normlab.tensor(data), 1).numpy() * g).sum()), data)
    np.testing.assert_allclose(np.asarray(x.grad), numeric, rtol=1e-6, atol=1e-8)
    assert repr(nn.GLU()) == repr(torch.nn.GLU()) and repr(nn.GLU(1)) == repr(torch.nn.GLU(1))
