"""Ranking, embedding and likelihood losses against torch: MarginRanking, HingeEmbedding, CosineEmbedding,
TripletMargin, PoissonNLL and GaussianNLL.

float64: the loss and the gradient of every input torch differentiates (random upstream gradient for
'none'), within the shared table; float32 against torch's float64 result on the same inputs
(assert_float32_close); numerical gradients in float64; shapes, reductions and options swept by hypothesis;
bad input refused naming the loss; modules' reprs and attributes equal to torch's.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import assert_close, assert_float32_close, numerical_gradient

REDUCTIONS = ["mean", "sum", "none"]


def _labels(rng, shape, with_zero=False):
    """+-1 labels (and some 0s, which torch's hinge/cosine losses treat by their own rule)."""
    return rng.choice([-1.0, 1.0, 0.0] if with_zero else [-1.0, 1.0], size=shape)


def _margin_ranking(rng, n, options):
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    y = _labels(rng, n)
    x2[0] = x1[0] + options.get("margin", 0.0) * y[0]        # exactly at the hinge's kink
    return [x1, x2, y], (0, 1, 2)


def _hinge(rng, n, options):
    x = rng.standard_normal(n) + 0.5
    x[0] = options.get("margin", 1.0)                        # margin - x = 0: the kink
    return [x, _labels(rng, n, with_zero=True)], (0,)


def _cosine(rng, n, options):
    x1, x2 = rng.standard_normal((n, 4)), rng.standard_normal((n, 4))
    x1[0] = 0.0                                              # a zero vector: cos = 0 through torch's 1e-12
    return [x1, x2, _labels(rng, n, with_zero=True)], (0, 1)


def _triplet(rng, n, options):
    return [rng.standard_normal((n, 5)) for _ in range(3)], (0, 1, 2)


def _poisson(rng, n, options):
    x = rng.standard_normal(n) if options.get("log_input", True) else rng.uniform(0.1, 3.0, n)
    y = rng.poisson(2.0, n).astype(np.float64) + rng.uniform(0, 1, n) * (rng.random(n) < 0.5)
    y[0] = 1.5                                               # Stirling's term applies above 1 only
    return [x, y], (0, 1)


def _gaussian(rng, n, options):
    var = rng.uniform(0.05, 2.0, (n, 3))
    var[0, 0] = 1e-8                                         # below eps: clamped, gradient as if not
    return [rng.standard_normal((n, 3)), rng.standard_normal((n, 3)), var], (0, 1, 2)


CASES = {
    "margin_ranking_loss": (_margin_ranking, [{}, {"margin": 0.5}, {"margin": -0.3}]),
    "hinge_embedding_loss": (_hinge, [{}, {"margin": 2.0}, {"margin": 0.0}]),
    "cosine_embedding_loss": (_cosine, [{}, {"margin": 0.3}, {"margin": -0.5}]),
    "triplet_margin_loss": (_triplet, [{}, {"margin": 0.5, "p": 1.0}, {"p": 3.0, "eps": 1e-3, "swap": True},
                                       {"swap": True, "margin": 2.0}]),
    "poisson_nll_loss": (_poisson, [{}, {"full": True}, {"log_input": False}, {"log_input": False, "full": True,
                                                                                "eps": 1e-3}]),
    "gaussian_nll_loss": (_gaussian, [{}, {"full": True}, {"eps": 1e-3}]),
}
IDS = [f"{name}-{i}" for name, (_, options) in CASES.items() for i in range(len(options))]
PARAMS = [(name, options) for name, (_, all_options) in CASES.items() for options in all_options]


def _run(name, options, reduction, arrays, differentiable, dtype, rng=None):
    """(ours, theirs, upstream): (loss, [gradient of each differentiable input]); torch in float64 on the same values.

    The upstream gradient is random for reduction 'none' (given ``rng``), 1.7 otherwise.
    """
    ours_in = [normlab.tensor(a.astype(dtype), requires_grad=i in differentiable) for i, a in enumerate(arrays)]
    theirs_in = [torch.tensor(a.astype(dtype).astype(np.float64), requires_grad=i in differentiable)
                 for i, a in enumerate(arrays)]
    loss = getattr(F, name)(*ours_in, reduction=reduction, **options)
    tloss = getattr(TF, name)(*theirs_in, reduction=reduction, **options)
    g = rng.standard_normal(tloss.shape) if rng is not None and reduction == "none" else np.full(tloss.shape, 1.7)
    loss.backward(g.astype(dtype))
    tloss.backward(torch.tensor(g, dtype=torch.float64))
    ours = (np.asarray(loss.detach()), [np.asarray(ours_in[i].grad) for i in differentiable])
    theirs = (tloss.detach().numpy(), [theirs_in[i].grad.numpy() for i in differentiable])
    return ours, theirs, g


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,options", PARAMS, ids=IDS)
def test_float64_matches_torch(name, options, reduction, rng):
    arrays, differentiable = CASES[name][0](rng, 6, options)
    ours, theirs, _ = _run(name, options, reduction, arrays, differentiable, np.float64, rng)
    assert_close(ours[0], theirs[0], np.float64, f"{name} {options} {reduction} loss")
    for i, a, b in zip(differentiable, ours[1], theirs[1]):
        assert_close(a, b, np.float64, f"{name} {options} {reduction} gradient of input {i}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,options", PARAMS, ids=IDS)
def test_float32_within_rounding_of_the_float64_reference(name, options, reduction, rng):
    arrays, differentiable = CASES[name][0](rng, 7, options)
    if name == "gaussian_nll_loss":
        arrays[2][0, 0] = 0.5      # float32 of 1e-8 is fine, but 1/v^2 at v = eps = 1e-6 amplifies rounding 1e12x
    ours, theirs, g = _run(name, options, reduction, arrays, differentiable, np.float32, rng)
    # every term is a few roundings of quantities of size |inputs| + 1 (e^x for Poisson's log input)
    size = sum(np.abs(a).sum(axis=tuple(range(1, a.ndim))) if a.ndim > 1 else np.abs(a) for a in arrays) + 1
    if name == "poisson_nll_loss" and options.get("log_input", True):
        size = size + np.exp(np.abs(arrays[0]))
    if name == "gaussian_nll_loss":
        size = size.sum() / np.min(arrays[2]) ** 2      # (x - y)^2 / var^2 in var's gradient
    scale = size if reduction == "none" else np.sum(size)
    assert_float32_close(ours[0], theirs[0], scale=scale, what=f"{name} loss", ulps=32)
    for i, a, b in zip(differentiable, ours[1], theirs[1]):
        assert_float32_close(a, b, scale=np.abs(b) + np.max(np.abs(g)) * np.max(size), what=f"{name} gradient {i}",
                             ulps=32)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")   # Poisson's NaN target gradient at y = 0
@given(name=st.sampled_from(list(CASES)), data=st.data(), n=st.integers(1, 9),
       reduction=st.sampled_from(REDUCTIONS))
def test_sweep_over_sizes_and_options(name, data, n, reduction):
    make, all_options = CASES[name]
    options = data.draw(st.sampled_from(all_options))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    arrays, differentiable = make(rng, n, options)
    ours, theirs, _ = _run(name, options, reduction, arrays, differentiable, np.float64, rng)
    assert_close(ours[0], theirs[0], np.float64, "loss")
    for a, b in zip(ours[1], theirs[1]):
        assert_close(a, b, np.float64, "gradient")


@pytest.mark.parametrize("name,options", PARAMS, ids=IDS)
def test_numerical_gradients(name, options, rng):
    arrays, differentiable = CASES[name][0](rng, 4, options)
    if name == "gaussian_nll_loss":
        arrays[2][0, 0] = 0.3                 # away from the clamp, where the loss is differentiable
    for i in differentiable:
        arrays[i] += 0.01 * rng.standard_normal(arrays[i].shape)     # off the kinks (hinge/cosine labels untouched)

    def loss():
        return float(getattr(F, name)(*arrays, reduction="sum", **options).detach().numpy())

    tensors = [normlab.tensor(a, requires_grad=i in differentiable) for i, a in enumerate(arrays)]
    getattr(F, name)(*tensors, reduction="sum", **options).backward()
    for i in differentiable:
        np.testing.assert_allclose(np.asarray(tensors[i].grad), numerical_gradient(loss, arrays[i]),
                                   rtol=1e-5, atol=1e-7, err_msg=f"{name} input {i}")


# ---------------------------------------------------------------- shapes torch accepts


def test_unbatched_and_broadcast_inputs_match_torch(rng):
    cases = [
        ("cosine_embedding_loss", [rng.standard_normal(5), rng.standard_normal(5), np.array(-1.0)], {"margin": -0.2}),
        ("triplet_margin_loss", [rng.standard_normal(5) for _ in range(3)], {}),
        ("margin_ranking_loss", [rng.standard_normal(4), rng.standard_normal(1), _labels(rng, 4)], {}),
        ("gaussian_nll_loss", [rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.uniform(0.5, 1, 4)], {}),
        ("gaussian_nll_loss", [rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 5)),
                               rng.uniform(0.5, 1, (2, 1, 5))], {"full": True}),
        ("poisson_nll_loss", [rng.standard_normal((3, 1)), rng.uniform(0, 3, 4)], {"full": True}),
    ]
    for name, arrays, options in cases:
        differentiable = tuple(i for i, a in enumerate(arrays) if a.ndim and name != "cosine_embedding_loss" or i < 2)
        ours, theirs, _ = _run(name, options, "mean", arrays, differentiable, np.float64)
        assert_close(ours[0], theirs[0], np.float64, f"{name} loss")
        for a, b in zip(ours[1], theirs[1]):
            assert_close(a, b, np.float64, f"{name} gradient")


def test_gaussian_nll_loss_takes_a_float_variance(rng):
    x, y = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    ours = F.gaussian_nll_loss(x, y, 0.5, full=True).item()
    theirs = TF.gaussian_nll_loss(torch.tensor(x), torch.tensor(y), 0.5, full=True).item()
    assert ours == pytest.approx(theirs, rel=1e-12)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_poisson_full_target_gradient_is_nan_at_zero_like_torch():
    # Stirling's term is masked out for y <= 1, but its derivative log(y) + ... at y = 0 is -inf * 0 = NaN in torch
    ours, theirs, _ = _run("poisson_nll_loss", {"full": True}, "sum", [np.array([0.3, 0.2]), np.array([0.0, 2.0])],
                           (0, 1), np.float64)
    assert np.isnan(theirs[1][1][0]) and np.isnan(ours[1][1][0])
    assert_close(ours[1][1], theirs[1][1], np.float64, "target gradient")


# ---------------------------------------------------------------- modules and bad input


MODULES = [
    ("MarginRankingLoss", (), {}), ("MarginRankingLoss", (0.5,), {"reduction": "sum"}),
    ("HingeEmbeddingLoss", (), {}), ("HingeEmbeddingLoss", (2.0,), {"reduction": "none"}),
    ("CosineEmbeddingLoss", (0.2,), {}),
    ("TripletMarginLoss", (), {}), ("TripletMarginLoss", (0.5, 1.0, 1e-3, True), {"reduction": "sum"}),
    ("PoissonNLLLoss", (False, True), {"eps": 1e-3}),
    ("GaussianNLLLoss", (), {"full": True, "eps": 1e-3, "reduction": "none"}),
]


@pytest.mark.parametrize("name,args,kwargs", MODULES, ids=[f"{m[0]}-{i}" for i, m in enumerate(MODULES)])
def test_modules_match_torch(name, args, kwargs, rng):
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs) and ours.state_dict() == {}
    for attribute in ("reduction", "margin", "p", "eps", "swap", "log_input", "full"):
        assert getattr(ours, attribute, None) == getattr(theirs, attribute, None), attribute
    function = {"MarginRankingLoss": "margin_ranking_loss", "HingeEmbeddingLoss": "hinge_embedding_loss",
                "CosineEmbeddingLoss": "cosine_embedding_loss", "TripletMarginLoss": "triplet_margin_loss",
                "PoissonNLLLoss": "poisson_nll_loss", "GaussianNLLLoss": "gaussian_nll_loss"}[name]
    arrays, _ = CASES[function][0](rng, 5, {})
    if name == "PoissonNLLLoss":
        arrays[0] = np.abs(arrays[0]) + 0.1       # a rate, not its log
    y = ours(*[normlab.tensor(a) for a in arrays])
    ty = theirs(*[torch.tensor(a) for a in arrays])
    assert_close(y, ty, np.float64, name)


def test_legacy_size_average_and_reduce_like_torch(rng):
    arrays, _ = _margin_ranking(rng, 5, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for size_average, reduce in ((False, None), (None, False), (True, True)):
            ours = F.margin_ranking_loss(*arrays, size_average=size_average, reduce=reduce)
            theirs = TF.margin_ranking_loss(*[torch.tensor(a) for a in arrays], size_average=size_average,
                                            reduce=reduce)
            assert_close(ours, theirs, np.float64, f"{size_average}, {reduce}")
            assert nn.TripletMarginLoss(size_average=size_average, reduce=reduce).reduction == \
                torch.nn.TripletMarginLoss(size_average=size_average, reduce=reduce).reduction


BAD = [
    (lambda: F.margin_ranking_loss(np.ones(3), np.ones(3), np.ones((3, 1))), ValueError,
     r"margin_ranking_loss: expected input1, input2 and target with one number of dimensions"),
    (lambda: F.margin_ranking_loss(np.ones(3), np.ones(4), np.ones(3)), ValueError,
     r"margin_ranking_loss: expected input1, input2, target of shapes that broadcast, got \(3,\), \(4,\), \(3,\)"),
    (lambda: F.hinge_embedding_loss(np.ones(3, dtype=np.int64), np.ones(3)), TypeError,
     r"hinge_embedding_loss: expected a floating-point input"),
    (lambda: F.hinge_embedding_loss(np.ones(3), np.ones(4)), ValueError,
     r"hinge_embedding_loss: expected input and target of shapes that broadcast"),
    (lambda: F.cosine_embedding_loss(np.ones((3, 4)), np.ones((3, 4)), np.ones((3, 1))), ValueError,
     r"cosine_embedding_loss: expected a 0D or 1D target"),
    (lambda: F.cosine_embedding_loss(np.ones(4), np.ones(4), np.ones(1)), ValueError,
     r"cosine_embedding_loss: a 1D target expects 2D inputs, got inputs of shapes \(4,\) and \(4,\)"),
    (lambda: F.triplet_margin_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones(3)), ValueError,
     r"triplet_margin_loss: expected anchor, positive and negative with one number of dimensions, got 2D, 2D and 1D"),
    (lambda: F.triplet_margin_loss(np.ones(3), np.ones(3), np.ones(3), margin=0), ValueError,
     r"triplet_margin_loss: expected margin > 0, got 0.0"),
    (lambda: nn.TripletMarginLoss(margin=-1.0), ValueError, r"TripletMarginLoss: expected margin to be greater than 0"),
    (lambda: F.poisson_nll_loss(np.ones(3), np.ones(4)), ValueError,
     r"poisson_nll_loss: expected input, target of shapes that broadcast"),
    (lambda: F.poisson_nll_loss(np.ones(3), np.ones(3), reduction="avg"), ValueError,
     r"poisson_nll_loss: expected reduction to be one of"),
    (lambda: F.gaussian_nll_loss(np.ones((3, 2)), np.ones((3, 2)), np.ones((2, 2))), ValueError,
     r"gaussian_nll_loss: expected var of the input's shape \(3, 2\).*got \(2, 2\)"),
    (lambda: F.gaussian_nll_loss(np.ones(3), np.ones(3), -np.ones(3)), ValueError,
     r"gaussian_nll_loss: expected every var entry to be non-negative"),
    (lambda: F.gaussian_nll_loss(np.ones(3), np.ones(3), -1.0), ValueError,
     r"gaussian_nll_loss: expected a non-negative var, got -1.0"),
    (lambda: nn.MarginRankingLoss(margin="big")(np.ones(2), np.ones(2), np.ones(2)), TypeError,
     r"margin_ranking_loss: expected margin to be a real number"),
]


@pytest.mark.parametrize("call,error,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_is_refused_naming_the_loss(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")               # NumPy's mean of an empty array
def test_empty_batch_like_torch():
    for name, arrays in (("margin_ranking_loss", [np.zeros(0)] * 3), ("triplet_margin_loss", [np.zeros((0, 3))] * 3),
                         ("gaussian_nll_loss", [np.zeros((0, 2)), np.zeros((0, 2)), np.ones((0, 2))])):
        for reduction in ("sum", "none"):
            ours = getattr(F, name)(*arrays, reduction=reduction)
            theirs = getattr(TF, name)(*[torch.tensor(a) for a in arrays], reduction=reduction)
            assert ours.shape == tuple(theirs.shape)
            assert_close(ours, theirs, np.float64, f"{name} {reduction}")
    assert math.isnan(F.triplet_margin_loss(*[np.zeros((0, 3))] * 3).item())       # a mean of nothing, as torch
