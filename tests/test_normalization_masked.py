"""Masked batch normalization: ``BatchNorm1d(C)(x, mask=)`` and ``F.batch_norm(..., mask=)`` on (N, C, L).

The oracle: masked BatchNorm on (N, C, L) is plain BatchNorm (torch's, float64)
on the (count, C) matrix of the valid positions only -- output, input
gradient, weight and bias gradients and running statistics -- with output 0
and gradient 0 at the masked positions, whatever they hold. Plus numerical
gradients in float64 and the bad-mask errors, raised before any state changes.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.normalization_checks import assert_matches
from tests.oracle import numerical_gradient, random_upstream


def _valid_rows(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, C, L) -> (count, C): the channel vectors at the valid positions, in (n, l) order."""
    return np.moveaxis(a, 1, 2)[mask]


def _scatter(rows: np.ndarray, mask: np.ndarray, shape) -> np.ndarray:
    """(count, C) -> (N, C, L) with zeros at the masked positions."""
    out = np.zeros((shape[0], shape[2], shape[1]))
    out[mask] = rows
    return np.moveaxis(out, 2, 1)


def _random_mask(rng, n, length, minimum=2):
    while True:
        mask = rng.random((n, length)) < 0.6
        if mask.sum() >= minimum:
            return mask


def _check_against_plain(x, mask, dy, weight, bias, running, momentum, training, dtype):
    """Ours on (N, C, L) with the mask vs torch on the valid rows, everything compared."""
    shape = x.shape
    ours_mean, ours_var = running[0].astype(dtype), running[1].astype(dtype)
    torch_mean, torch_var = torch.tensor(running[0]), torch.tensor(running[1])
    xn = normlab.tensor(x.astype(dtype), requires_grad=True)
    wn, bn = normlab.tensor(weight.astype(dtype), requires_grad=True), normlab.tensor(bias.astype(dtype),
                                                                                       requires_grad=True)
    y = F.batch_norm(xn, ours_mean, ours_var, wn, bn, training=training, momentum=momentum, mask=mask)
    y.backward(dy.astype(dtype))
    rows = torch.tensor(_valid_rows(x.astype(dtype).astype(np.float64), mask), requires_grad=True)
    wt, bt = torch.tensor(weight.astype(dtype).astype(np.float64), requires_grad=True), \
        torch.tensor(bias.astype(dtype).astype(np.float64), requires_grad=True)
    yt = TF.batch_norm(rows, torch_mean, torch_var, wt, bt, training=training, momentum=momentum)
    yt.backward(torch.tensor(_valid_rows(dy.astype(dtype).astype(np.float64), mask)))
    assert_matches(y, _scatter(yt.detach().numpy(), mask, shape), dtype, "output (0 where masked)")
    dx_terms = float(np.abs(dy).max() * np.abs(weight).max())
    assert_matches(xn.grad, _scatter(rows.grad.numpy(), mask, shape), dtype, "input gradient (0 where masked)",
                   at_least=dx_terms)
    assert_matches(wn.grad, wt.grad, dtype, "weight gradient")
    assert_matches(bn.grad, bt.grad, dtype, "bias gradient")
    assert_matches(ours_mean, torch_mean, dtype, "running_mean")
    assert_matches(ours_var, torch_var, dtype, "running_var (unbiased over the valid count)")
    masked = np.broadcast_to(~mask[:, None, :], shape)
    assert np.all(np.asarray(xn.grad)[masked] == 0) and np.all(y.detach().numpy()[masked] == 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(4, 3, 7), (2, 5, 40), (6, 2, 1), (3, 4, 33)])
@pytest.mark.parametrize("training", [True, False])
def test_masked_batch_norm_is_plain_batch_norm_over_the_valid_positions(shape, training, dtype, rng):
    n, c, length = shape
    mask = _random_mask(rng, n, length)
    x = rng.standard_normal(shape) * 2 + 1
    x[np.broadcast_to(~mask[:, None, :], shape)] = rng.choice([1e30, np.nan, -np.inf])  # padding holds anything
    dy = random_upstream(shape, np.float64, rng)
    weight, bias = rng.standard_normal(c), rng.standard_normal(c)
    running = (rng.standard_normal(c), rng.uniform(0.5, 2, c))
    _check_against_plain(x, mask, dy, weight, bias, running, 0.3, training, dtype)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 4), length=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_masked_batch_norm_sweep(n, c, length, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((n, length)) < 0.5
    if mask.sum() < 2:  # derived from the mask alone, not from the code under test
        mask.flat[:2] = True
        if mask.sum() < 2:
            return  # a (1, 1) input has one position: nothing to train on
    x = rng.standard_normal((n, c, length)) * 3 - 1
    dy = random_upstream(x.shape, np.float64, rng)
    weight, bias = rng.standard_normal(c), rng.standard_normal(c)
    _check_against_plain(x, mask, dy, weight, bias, (np.zeros(c), np.ones(c)), 0.1, True, np.float64)


def test_all_true_mask_is_plain_batch_norm(rng):
    x = rng.standard_normal((5, 3, 8))
    mask = np.ones((5, 8), bool)
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    dy = random_upstream(x.shape, np.float64, rng)
    grads = []
    for m in (mask, None):
        stats = (np.zeros(3), np.ones(3))
        xn = normlab.tensor(x, requires_grad=True)
        y = F.batch_norm(xn, *stats, weight, bias, training=True, mask=m)
        y.backward(dy)
        grads.append((y.detach().numpy(), np.asarray(xn.grad), *stats))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_numerical_gradients_with_a_mask(rng):
    mask = np.array([[True, False, True, True], [False, True, True, False], [True, True, False, True]])
    x = rng.standard_normal((3, 2, 4)) * 2 + 0.5
    weight, bias = rng.standard_normal(2), rng.standard_normal(2)
    dy = random_upstream(x.shape, np.float64, rng)

    def call(a, w, b):
        return F.batch_norm(a, None, None, w, b, training=True, mask=mask)
    tensors = [normlab.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    call(*tensors).backward(dy)
    arrays = [x, weight, bias]
    for name, tensor, array in zip(("x", "weight", "bias"), tensors, arrays):
        numeric = numerical_gradient(lambda: float(np.sum(call(*arrays).detach().numpy() * dy)), array)
        np.testing.assert_allclose(tensor.grad, numeric, rtol=1e-6, atol=1e-8, err_msg=f"d/d{name}")
    assert np.all(np.asarray(tensors[0].grad)[np.broadcast_to(~mask[:, None, :], x.shape)] == 0)


def test_module_with_mask_tracks_statistics_of_the_valid_positions(rng):
    layer = nn.BatchNorm1d(3, momentum=None, dtype=np.float64)
    reference = torch.nn.BatchNorm1d(3, momentum=None, dtype=torch.float64)
    for _ in range(3):
        mask = _random_mask(rng, 4, 6)
        x = rng.standard_normal((4, 3, 6)) * 2 + 3
        layer(x, mask=mask)
        reference(torch.tensor(_valid_rows(x, mask)))
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(layer.state_dict()[key], value.numpy(), rtol=1e-12, err_msg=key)
    layer.eval()
    mask = _random_mask(rng, 2, 5)
    x = rng.standard_normal((2, 3, 5))
    expected = _scatter(reference.eval()(torch.tensor(_valid_rows(x, mask))).detach().numpy(), mask, x.shape)
    np.testing.assert_allclose(layer(x, mask=mask).detach().numpy(), expected, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------- bad masks change nothing

@pytest.mark.parametrize("shape, mask, error, fragments", [
    ((4, 3, 5), np.ones((4, 4), bool), ValueError, ["BatchNorm1d", "(4, 5)", "(4, 4)"]),
    ((4, 3, 5), np.ones((4, 5), np.int64), TypeError, ["BatchNorm1d", "bool", "int64"]),
    ((4, 3, 5), [[True] * 5] * 4, TypeError, ["BatchNorm1d", "mask", "list"]),
    ((4, 3), np.ones((4, 1), bool), ValueError, ["BatchNorm1d", "(N, C, L)", "2D"]),
    ((4, 3, 5), np.zeros((4, 5), bool), ValueError, ["BatchNorm1d", "more than 1 valid", "got 0"]),
    ((4, 3, 5), np.eye(4, 5, dtype=bool) & (np.arange(4) == 0)[:, None], ValueError, ["got 1"]),
])
def test_bad_mask_raises_before_any_state_changes(shape, mask, error, fragments, rng):
    layer = nn.BatchNorm1d(3)
    layer(rng.standard_normal((6, 3, 5)).astype(np.float32))
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    with pytest.raises(error) as info:
        layer(rng.standard_normal(shape).astype(np.float32), mask=mask)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"
    for key, value in before.items():
        np.testing.assert_array_equal(layer.state_dict()[key], value, err_msg=key)


def test_too_few_valid_positions_are_fine_in_eval(rng):
    layer = nn.BatchNorm1d(3).eval()
    y = layer(rng.standard_normal((2, 3, 4)).astype(np.float32), mask=np.zeros((2, 4), bool))
    np.testing.assert_array_equal(y.detach().numpy(), 0)


def test_functional_mask_as_a_tensor(rng):
    x = rng.standard_normal((3, 2, 4))
    mask = _random_mask(rng, 3, 4)
    a = F.batch_norm(x, None, None, training=True, mask=normlab.tensor(mask)).detach().numpy()
    b = F.batch_norm(x, None, None, training=True, mask=mask).detach().numpy()
    np.testing.assert_array_equal(a, b)
