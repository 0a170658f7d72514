"""Gradient clipping (normlab.nn.utils) against torch.nn.utils."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
from tests.oracle import assert_close, assert_matches_reference

SHAPES = [(4, 3), (4,), (2, 4), (2,), (3, 2, 2)]
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def make_pair(grads, dtype, shapes=SHAPES, reference_dtype=np.float64):
    """normlab parameters in ``dtype`` and torch ones in ``reference_dtype`` with the same gradients (None: none).

    The torch reference is float64 (a float32 result is checked against it, never
    against torch's float32, whose reductions differ by CPU).
    """
    params, torch_params = [], []
    for shape, g in zip(shapes, grads):
        p = normlab.tensor(np.zeros(shape, dtype=dtype), requires_grad=True)
        tp = torch.zeros(shape, dtype=TORCH_DTYPE[np.dtype(reference_dtype).type], requires_grad=True)
        if g is not None:
            p.grad = g.astype(dtype)
            tp.grad = torch.from_numpy(g.astype(dtype).astype(reference_dtype))
        params.append(p)
        torch_params.append(tp)
    return params, torch_params


def random_grads(rng, dtype, scale=1.0, shapes=SHAPES, none_at=(3,)):
    return [None if i in none_at else scale * rng.standard_normal(s).astype(dtype) for i, s in enumerate(shapes)]


def assert_grads_equal(params, torch_params, dtype):
    for i, (p, tp) in enumerate(zip(params, torch_params)):
        if tp.grad is None:
            assert p.grad is None, f"grad {i} should stay None"
        else:
            assert p.grad.dtype == np.dtype(dtype)
            expected = tp.grad.numpy()
            assert_matches_reference(p.grad, expected, dtype, f"grad {i}", scale=np.abs(expected))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, "inf", 0.5, 3.0, -math.inf, 0])
@pytest.mark.parametrize("max_norm", [0.3, 1e6])  # clipping, and a max_norm so large nothing is clipped
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype, rng):
    grads = random_grads(rng, dtype, scale=2.0)
    params, torch_params = make_pair(grads, dtype)
    total = nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(torch_params, max_norm, norm_type=norm_type, foreach=False)
    assert isinstance(total, normlab.Tensor) and total.shape == () and total.dtype == np.dtype(dtype)
    assert_matches_reference(total, expected, dtype, "total norm", scale=np.abs(expected.numpy()))
    assert_grads_equal(params, torch_params, dtype)
    after = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], norm_type).item()
    if max_norm < 1 and norm_type != 0:
        assert after <= max_norm * (1 + 1e-5), "the clipped gradients' norm must be at most max_norm"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_total_norm_is_the_norm_before_clipping(dtype, rng):
    grads = random_grads(rng, dtype, none_at=())
    flat = np.concatenate([g.ravel() for g in grads]).astype(np.float64)
    params, _ = make_pair(grads, dtype)
    total = nn.utils.clip_grad_norm_(params, 0.01)
    np.testing.assert_allclose(total.item(), np.linalg.norm(flat), rtol=1e-6)
    scale = 0.01 / (np.linalg.norm(flat) + 1e-6)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g * scale, rtol=1e-5)


def test_single_tensor_mixed_dtypes_and_generators(rng):
    grad = rng.standard_normal((5, 3))
    p, tp = make_pair([grad], np.float64, shapes=[(5, 3)])
    total = nn.utils.clip_grad_norm_(p[0], 0.5)
    expected = torch.nn.utils.clip_grad_norm_(tp[0], 0.5)
    assert_close(total, expected, np.float64)
    assert_close(p[0].grad, tp[0].grad, np.float64)

    # float32 and float64 gradients together: the total is float64, each grad keeps its dtype.
    a, ta = make_pair([rng.standard_normal(4)], np.float32, shapes=[(4,)], reference_dtype=np.float32)
    b, tb = make_pair([rng.standard_normal(3)], np.float64, shapes=[(3,)])
    total = nn.utils.clip_grad_norm_(iter(a + b), 0.1)
    expected = torch.nn.utils.clip_grad_norm_(ta + tb, 0.1, foreach=False)
    assert total.dtype == np.float64 and expected.dtype == torch.float64
    assert_close(total, expected, np.float32)
    assert_close(a[0].grad, ta[0].grad, np.float32)
    assert_close(b[0].grad, tb[0].grad, np.float32)
    assert a[0].grad.dtype == np.float32


def test_no_gradients_gives_zero_and_changes_nothing():
    params, torch_params = make_pair([None] * len(SHAPES), np.float64)
    total = nn.utils.clip_grad_norm_(params, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(torch_params, 1.0)
    assert total.item() == expected.item() == 0.0
    assert all(p.grad is None for p in params)
    assert nn.utils.clip_grad_norm_([], 1.0).item() == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_error_if_nonfinite_raises_and_leaves_grads(bad, norm_type, rng):
    grads = random_grads(rng, np.float64)
    grads[0][1, 2] = bad
    params, torch_params = make_pair(grads, np.float64)
    before = [None if p.grad is None else np.array(p.grad) for p in params]
    with pytest.raises(RuntimeError, match=f"The total norm of order {float(norm_type)} .* is non-finite"):
        nn.utils.clip_grad_norm_(params, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(torch_params, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    for p, g in zip(params, before):
        if g is not None:
            np.testing.assert_array_equal(p.grad, g)
    # Without the flag both libraries scale by the non-finite norm the same way (NaNs included).
    total = nn.utils.clip_grad_norm_(params, 1.0, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(torch_params, 1.0, norm_type=norm_type, foreach=False)
    assert_close(total, expected, np.float64)
    assert_grads_equal(params, torch_params, np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("clip_value", [0.0, 0.25, 1.0, 10.0])
def test_clip_grad_value_matches_torch(clip_value, dtype, rng):
    grads = random_grads(rng, dtype, scale=1.5)
    grads[0][0, 0] = np.nan
    params, torch_params = make_pair(grads, dtype)
    assert nn.utils.clip_grad_value_(params, clip_value) is None
    torch.nn.utils.clip_grad_value_(torch_params, clip_value, foreach=False)
    assert_grads_equal(params, torch_params, dtype)
    # a single tensor
    p, tp = make_pair([grads[1]], dtype, shapes=[SHAPES[1]])
    nn.utils.clip_grad_value_(p[0], clip_value)
    torch.nn.utils.clip_grad_value_(tp[0], clip_value)
    assert_close(p[0].grad, tp[0].grad, dtype)


def test_clipping_acts_in_place():
    params, _ = make_pair([np.full(3, 10.0), np.full(2, -10.0)], np.float64, shapes=[(3,), (2,)])
    arrays = [p.grad for p in params]
    nn.utils.clip_grad_norm_(params, 1.0)
    nn.utils.clip_grad_value_(params, 0.1)
    assert all(p.grad is a for p, a in zip(params, arrays))


@pytest.mark.parametrize("call,error,message", [
    (lambda ps: nn.utils.clip_grad_norm_(ps, -1.0), ValueError, "clip_grad_norm_: expected max_norm >= 0, got -1.0"),
    (lambda ps: nn.utils.clip_grad_norm_(ps, float("nan")), ValueError, "expected max_norm >= 0, got nan"),
    (lambda ps: nn.utils.clip_grad_norm_(ps, "1"), TypeError, "expected max_norm to be a real number"),
    (lambda ps: nn.utils.clip_grad_norm_(ps, 1.0, norm_type="two"), TypeError, "norm_type to be a number or 'inf'"),
    (lambda ps: nn.utils.clip_grad_norm_(ps, 1.0, error_if_nonfinite="no"), TypeError, "error_if_nonfinite"),
    (lambda ps: nn.utils.clip_grad_norm_([np.zeros(3)], 1.0), TypeError, "iterable of Tensors"),
    (lambda ps: nn.utils.clip_grad_value_(ps, -0.5), ValueError, "clip_grad_value_: expected clip_value >= 0, got -0.5"),
])
def test_bad_arguments_are_refused_before_any_change(call, error, message, rng):
    params, _ = make_pair(random_grads(rng, np.float64, scale=5.0), np.float64)
    before = [None if p.grad is None else np.array(p.grad) for p in params]
    with pytest.raises(error, match=message):
        call(params)
    for p, g in zip(params, before):
        if g is not None:
            np.testing.assert_array_equal(p.grad, g)


@given(shapes=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 5)), min_size=1, max_size=4),
       norm_type=st.sampled_from([1.0, 2.0, 3.0, 0.5, math.inf]),
       max_norm=st.floats(1e-3, 10.0), scale=st.floats(1e-3, 1e3), seed=st.integers(0, 1000))
def test_clip_grad_norm_sweep(shapes, norm_type, max_norm, scale, seed):
    rng = np.random.default_rng(seed)
    grads = [scale * rng.standard_normal(s) for s in shapes]
    params, torch_params = make_pair(grads, np.float64, shapes=shapes)
    total = nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(torch_params, max_norm, norm_type, foreach=False)
    assert_close(total, expected, np.float64)
    assert_grads_equal(params, torch_params, np.float64)


def test_parameters_to_vector_and_back():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    vector = nn.utils.parameters_to_vector(model.parameters())
    reference = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    np.testing.assert_array_equal(vector.detach().numpy(), torch.nn.utils.parameters_to_vector(reference.parameters()).detach().numpy())
    new = np.arange(vector.shape[0], dtype=np.float32)
    nn.utils.vector_to_parameters(normlab.tensor(new), model.parameters())
    torch.nn.utils.vector_to_parameters(torch.from_numpy(new), reference.parameters())
    for p, tp in zip(model.parameters(), reference.parameters()):
        np.testing.assert_array_equal(p.data, tp.detach().numpy())
    with pytest.raises(ValueError, match="expected vec of size 26"):
        nn.utils.vector_to_parameters(np.zeros(25, dtype=np.float32), model.parameters())
