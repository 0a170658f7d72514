"""cosine_similarity / CosineSimilarity and pairwise_distance / PairwiseDistance against torch.

float64: forward and both input gradients (random upstream gradient) within the shared table;
float32: against torch's float64 result on the same float32 inputs (assert_float32_close);
numerical gradients in float64; shapes, broadcasting, dims and options swept by hypothesis.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import assert_close, assert_float32_close, numerical_gradient, random_upstream


def _torch_reference(fn, a, b, g):
    ta = torch.tensor(a.astype(np.float64), requires_grad=True)
    tb = torch.tensor(b.astype(np.float64), requires_grad=True)
    y = fn(ta, tb)
    y.backward(torch.tensor(np.asarray(g, dtype=np.float64)))
    return y.detach().numpy(), ta.grad.numpy(), tb.grad.numpy()


def _ours(fn, a, b, g):
    ta, tb = normlab.tensor(a, requires_grad=True), normlab.tensor(b, requires_grad=True)
    y = fn(ta, tb)
    y.backward(g)
    return y, ta.grad, tb.grad


@st.composite
def pairs(draw):
    """Two shapes that broadcast (one side may drop leading axes or have size-1 axes) and a seed."""
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    other = [1 if draw(st.integers(0, 3)) == 0 else size for size in shape]
    other = other[draw(st.integers(0, len(other) - 1)):]
    if draw(st.booleans()):
        shape, other = other, shape
    return tuple(shape), tuple(other), draw(st.integers(0, 2**32 - 1))


def _inputs(shape1, shape2, dtype, rng, small_fraction=0.0):
    a = rng.standard_normal(shape1)
    b = rng.standard_normal(shape2)
    if small_fraction:
        a[rng.random(shape1) < small_fraction] *= 1e-9       # some vectors with a norm below eps
    return a.astype(dtype), b.astype(dtype)


def _sum_to_shape(values, shape):
    """Sum a broadcast array back down to ``shape`` (the gradient of a broadcast input)."""
    values = values.sum(axis=tuple(range(values.ndim - len(shape))))
    return values.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


def _cosine_gradient_magnitudes(a, b, dim, eps, g):
    """The magnitudes float32 rounds on the way to each gradient: |dy| (|v| + |y| |x| / ||x||) / c per element."""
    shapes = (a.shape, b.shape)
    a, b = np.broadcast_arrays(a.astype(np.float64), b.astype(np.float64))
    g = np.expand_dims(np.abs(g.astype(np.float64)), dim)
    norms = [np.sqrt((x * x).sum(axis=dim, keepdims=True)) for x in (a, b)]
    clamped = [np.maximum(n, eps) for n in norms]
    u, v = a / clamped[0], b / clamped[1]
    y = np.abs((u * v).sum(axis=dim, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        directions = [np.nan_to_num(np.abs(x) / n) for x, n in zip((a, b), norms)]
    return tuple(_sum_to_shape(g * (np.abs(other) + y * direction) / c, shape)
                 for other, direction, c, shape in zip((v, u), directions, clamped, shapes))


# ---------------------------------------------------------------- cosine similarity


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@given(case=pairs(), data=st.data())
def test_cosine_similarity_matches_torch(dtype, case, data):
    shape1, shape2, seed = case
    rng = np.random.default_rng(seed)
    ndim = max(len(shape1), len(shape2))
    dim = data.draw(st.integers(-ndim, ndim - 1))
    eps = data.draw(st.sampled_from([1e-8, 1e-3, 0.5]))
    a, b = _inputs(shape1, shape2, dtype, rng, small_fraction=data.draw(st.sampled_from([0.0, 0.3])))
    theirs = lambda x1, x2: TF.cosine_similarity(x1, x2, dim, eps)   # noqa: E731
    y_ref = theirs(torch.tensor(a.astype(np.float64)), torch.tensor(b.astype(np.float64)))
    g = random_upstream(y_ref.shape, dtype, rng)
    y_ref, da_ref, db_ref = _torch_reference(theirs, a, b, g)
    module = data.draw(st.booleans())
    ours = nn.CosineSimilarity(dim, eps) if module else (lambda x1, x2: F.cosine_similarity(x1, x2, dim, eps))
    y, da, db = _ours(ours, a, b, g)
    assert y.dtype == dtype and da.dtype == dtype and db.dtype == dtype
    if dtype == np.float64:
        assert_close(y, y_ref, np.float64, "forward")
        assert_close(da, da_ref, np.float64, "x1 gradient")
        assert_close(db, db_ref, np.float64, "x2 gradient")
    else:
        # y sums |u v| <= 1 per vector; the gradients round terms of size |dy| (|v| + |y| |x| / ||x||) / c
        assert_float32_close(y, y_ref, scale=1.0, what="forward")
        da_scale, db_scale = _cosine_gradient_magnitudes(a, b, dim, eps, g)
        assert_float32_close(da, da_ref, scale=da_scale, what="x1 gradient")
        assert_float32_close(db, db_ref, scale=db_scale, what="x2 gradient")


def test_cosine_similarity_of_zero_and_tiny_vectors_follows_torch(rng):
    # a zero vector: y = 0 and its gradient g v / eps (the norm's kink contributes 0); a vector shorter than
    # eps: its value is clamped, but the gradient still carries the unclamped norm's derivative (torch)
    a = np.array([[0.0, 0.0, 0.0], [1e-10, -2e-10, 3e-10], [1.0, 2.0, 3.0]])
    b = rng.standard_normal((3, 3))
    g = random_upstream((3,), np.float64, rng)
    y_ref, da_ref, db_ref = _torch_reference(TF.cosine_similarity, a, b, g)
    y, da, db = _ours(F.cosine_similarity, a, b, g)
    assert_close(y, y_ref, np.float64, "forward")
    assert_close(da, da_ref, np.float64, "x1 gradient")
    assert_close(db, db_ref, np.float64, "x2 gradient")
    assert y.detach().numpy()[0] == 0.0


def test_cosine_similarity_numerical_gradient(rng):
    a, b = rng.standard_normal((3, 4, 2)), rng.standard_normal((4, 1))
    g = rng.standard_normal((3, 2))
    _, da, db = _ours(F.cosine_similarity, a, b, g)

    def loss():
        return float((F.cosine_similarity(a, b).numpy() * g).sum())

    np.testing.assert_allclose(np.asarray(da), numerical_gradient(loss, a), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.asarray(db), numerical_gradient(loss, b), rtol=1e-6, atol=1e-8)


def test_cosine_similarity_stays_within_one_for_parallel_vectors():
    x = np.full((4, 1000), 1e3, dtype=np.float32)
    y = F.cosine_similarity(x, 3 * x).numpy()
    assert np.all(np.abs(y) <= 1.0 + 1e-6)
    np.testing.assert_allclose(y, 1.0, rtol=1e-6)


# ---------------------------------------------------------------- pairwise distance


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@given(case=pairs(), p=st.sampled_from([1.0, 2.0, 3.0, 1.5, math.inf]), eps=st.sampled_from([1e-6, 0.0, 0.3]),
       keepdim=st.booleans(), module=st.booleans())
def test_pairwise_distance_matches_torch(dtype, case, p, eps, keepdim, module):
    shape1, shape2, seed = case
    rng = np.random.default_rng(seed)
    a, b = _inputs(shape1, shape2, dtype, rng)
    theirs = lambda x1, x2: TF.pairwise_distance(x1, x2, p, eps, keepdim)   # noqa: E731
    y_ref = theirs(torch.tensor(a.astype(np.float64)), torch.tensor(b.astype(np.float64)))
    g = random_upstream(y_ref.shape, dtype, rng)
    y_ref, da_ref, db_ref = _torch_reference(theirs, a, b, g)
    ours = nn.PairwiseDistance(p, eps, keepdim) if module else (
        lambda x1, x2: F.pairwise_distance(x1, x2, p, eps, keepdim))
    y, da, db = _ours(ours, a, b, g)
    assert y.dtype == dtype and da.dtype == dtype
    if dtype == np.float64:
        assert_close(y, y_ref, np.float64, "forward")
        assert_close(da, da_ref, np.float64, "x1 gradient")
        assert_close(db, db_ref, np.float64, "x2 gradient")
    else:
        assert_float32_close(y, y_ref, scale=np.abs(y_ref), what="forward", ulps=32)
        # |d norm / d x_i| <= 1 for p >= 1; summed over broadcast axes
        _, da_scale, db_scale = _torch_reference(lambda x1, x2: theirs(x1, x2) + 0 * (x1.sum() + x2.sum()),
                                                 np.abs(a) + 1, -np.abs(b) - 1, np.abs(g))
        assert_float32_close(da, da_ref, scale=np.abs(da_scale), what="x1 gradient", ulps=64)
        assert_float32_close(db, db_ref, scale=np.abs(db_scale), what="x2 gradient", ulps=64)


def test_pairwise_distance_numerical_gradient(rng):
    a, b = rng.standard_normal((3, 5)), rng.standard_normal(5)
    for p in (1.5, 2.0, 3.0):
        g = rng.standard_normal(3)
        _, da, db = _ours(lambda x1, x2: F.pairwise_distance(x1, x2, p), a, b, g)

        def loss():
            return float((F.pairwise_distance(a, b, p).numpy() * g).sum())

        np.testing.assert_allclose(np.asarray(da), numerical_gradient(loss, a), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(np.asarray(db), numerical_gradient(loss, b), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- modules, bad input, returned arrays


def test_module_reprs_and_attributes_match_torch():
    for ours, theirs in ((nn.CosineSimilarity(), torch.nn.CosineSimilarity()),
                         (nn.CosineSimilarity(0, 1e-3), torch.nn.CosineSimilarity(0, 1e-3)),
                         (nn.PairwiseDistance(), torch.nn.PairwiseDistance()),
                         (nn.PairwiseDistance(1.0, 1e-3, True), torch.nn.PairwiseDistance(1.0, 1e-3, True))):
        assert repr(ours) == repr(theirs)
        for attribute in ("dim", "eps", "norm", "keepdim"):
            assert getattr(ours, attribute, None) == getattr(theirs, attribute, None), attribute
        assert ours.state_dict() == {}


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.cosine_similarity(np.ones((2, 3)), np.ones((2, 4))), ValueError,
     r"cosine_similarity: expected x1 and x2 of shapes that broadcast, got \(2, 3\) and \(2, 4\)"),
    (lambda: nn.CosineSimilarity(dim=2)(np.ones((2, 3)), np.ones((2, 3))), IndexError,
     r"CosineSimilarity: dim 2 is out of range for inputs broadcast to shape \(2, 3\)"),
    (lambda: F.cosine_similarity(np.ones(3, dtype=np.float32), np.ones(3)), TypeError,
     r"cosine_similarity: expected x1 and x2 of one dtype, got float32 and float64"),
    (lambda: nn.PairwiseDistance()(np.ones((2, 3), dtype=np.int64), np.ones((2, 3))), TypeError,
     r"PairwiseDistance: expected a floating-point x1"),
    (lambda: F.pairwise_distance(np.ones(3), np.ones(3), p="two"), TypeError,
     r"pairwise_distance: expected p to be a real number"),
    (lambda: F.pairwise_distance(np.float64(1.0), np.float64(2.0)), ValueError,
     r"pairwise_distance: expected inputs with at least one dimension"),
])
def test_bad_input_is_refused_naming_the_layer(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_writing_into_inputs_views_and_the_output_cannot_change_backward(rng):
    a, b = rng.standard_normal((4, 6)), rng.standard_normal(6)
    g = random_upstream((4,), np.float64, rng)
    _, da_ref, db_ref = _torch_reference(TF.cosine_similarity, a, b, g)
    ta = normlab.tensor(a.T.copy().T, requires_grad=True)          # a Fortran-ordered input
    tb = normlab.tensor(b, requires_grad=True)
    y = F.cosine_similarity(ta, tb)
    y.detach().numpy()[...] = 7.0                                 # the caller's output: backward must not read it
    y.backward(g)
    assert_close(ta.grad, da_ref, np.float64, "x1 gradient")
    assert_close(tb.grad, db_ref, np.float64, "x2 gradient")


def test_empty_batch(rng):
    a = normlab.tensor(np.zeros((0, 3)), requires_grad=True)
    y = F.cosine_similarity(a, np.ones(3))
    assert y.shape == (0,)
    y.backward(np.zeros(0))
    assert a.grad.shape == (0, 3)
    assert F.pairwise_distance(np.zeros((0, 3)), np.ones(3)).shape == (0,)
