"""Losses against torch: BCE, BCE-with-logits, L1, SmoothL1, Huber, KL-div, MSE, cross-entropy and NLL.

Every reduction; weights, pos_weight, ignore_index, label smoothing, beta and
delta; gradients for the input and, where torch gives one, for the target
(random upstream gradients for 'none'); float32 against torch's float64
result on the same inputs; torch's legacy size_average/reduce flags.
"""
from __future__ import annotations

import warnings

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
from tests.oracle import assert_close, assert_float32_close, numerical_gradient

REDUCTIONS = ["mean", "sum", "none"]


def _inputs(name, rng, shape=(4, 3)):
    """(input, target) arrays suited to each loss; target requires grad where torch differentiates it."""
    if name == "binary_cross_entropy":
        x = rng.uniform(0.02, 0.98, shape)
        x.reshape(-1)[:2] = (0.0, 1.0)[:x.size]  # exact 0 and 1: torch floors the logs at -100
        return x, rng.uniform(0, 1, shape)
    if name == "binary_cross_entropy_with_logits":
        x = rng.standard_normal(shape) * 4
        x.reshape(-1)[:2] = (40.0, -40.0)[:x.size]
        return x, rng.uniform(0, 1, shape)
    if name == "kl_div":
        x = np.log(rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]))
        y = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
        return x, y
    x, y = rng.standard_normal(shape), rng.standard_normal(shape)
    y.reshape(-1)[0] = x.reshape(-1)[0]  # a tie: |d| has no derivative there (torch: 0)
    return x, y


CASES = {
    "l1": ("l1_loss", {}),
    "mse": ("mse_loss", {}),
    "smooth_l1(beta=1)": ("smooth_l1_loss", {}),
    "smooth_l1(beta=0.5)": ("smooth_l1_loss", {"beta": 0.5}),
    "smooth_l1(beta=0)": ("smooth_l1_loss", {"beta": 0.0}),
    "smooth_l1(beta=2.5)": ("smooth_l1_loss", {"beta": 2.5}),
    "huber(delta=1)": ("huber_loss", {}),
    "huber(delta=0.3)": ("huber_loss", {"delta": 0.3}),
    "huber(delta=2)": ("huber_loss", {"delta": 2.0}),
    "bce": ("binary_cross_entropy", {}),
    "bce_with_logits": ("binary_cross_entropy_with_logits", {}),
    "kl_div": ("kl_div", {}),
}


def _run(name, options, reduction, x, y, dtype, rng, target_grad=True):
    """normlab in ``dtype`` and torch in float64: (ours, theirs) as (loss, dinput, dtarget)."""
    ours_fn, torch_fn = getattr(F, name), getattr(TF, name)
    xo = normlab.tensor(x.astype(dtype), requires_grad=True)
    yo = normlab.tensor(y.astype(dtype), requires_grad=target_grad)
    xt = torch.tensor(x.astype(dtype).astype(np.float64), requires_grad=True)
    yt = torch.tensor(y.astype(dtype).astype(np.float64), requires_grad=target_grad)
    torch_options = {k: (torch.tensor(np.asarray(v, dtype=np.float64)) if isinstance(v, np.ndarray) else v)
                     for k, v in options.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's 'mean' warning, in both
        loss = ours_fn(xo, yo, reduction=reduction, **options)
        tloss = torch_fn(xt, yt, reduction=reduction, **torch_options)
    g = rng.standard_normal(loss.shape) if reduction == "none" else np.array(1.7)
    loss.backward(g.astype(dtype))
    tloss.backward(torch.tensor(g))
    theirs = (tloss.detach().numpy(), xt.grad.numpy(), yt.grad.numpy() if target_grad else None)
    ours = (np.asarray(loss.detach()), np.asarray(xo.grad), np.asarray(yo.grad) if target_grad else None)
    return ours, theirs, g


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_float64_matches_torch(rng, case, reduction):
    name, options = CASES[case]
    x, y = _inputs(name, rng)
    ours, theirs, _ = _run(name, options, reduction, x, y, np.float64, rng)
    for what, a, b in zip(("loss", "dinput", "dtarget"), ours, theirs):
        assert_close(a, b, np.float64, f"{case} {reduction} {what}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_float32_within_rounding_of_the_float64_reference(rng, case, reduction):
    name, options = CASES[case]
    x, y = _inputs(name, rng, (6, 5))
    ours, theirs, g = _run(name, options, reduction, x, y, np.float32, rng)
    # Elementwise terms are O(|x| + |y| + 1); a reduction adds up to n of them.
    scale = np.abs(x) + np.abs(y) + 1
    loss_scale = scale if reduction == "none" else scale.sum()
    assert_float32_close(ours[0], theirs[0], scale=loss_scale * (2 if name == "kl_div" else 1), ulps=32,
                         what=f"{case} loss")
    grad_scale = np.abs(g) * scale * (1 if reduction != "none" else 1)
    for what, a, b in zip(("dinput", "dtarget"), ours[1:], theirs[1:]):
        assert_float32_close(a, b, scale=grad_scale + np.abs(b), ulps=32, what=f"{case} {what}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weights_and_pos_weight_match_torch(rng, reduction):
    x, y = _inputs("binary_cross_entropy_with_logits", rng, (5, 3))
    weight = rng.uniform(0.5, 2, 3)
    pos_weight = rng.uniform(0.5, 3, 3)
    for name, options in [("binary_cross_entropy_with_logits", {"weight": weight}),
                          ("binary_cross_entropy_with_logits", {"pos_weight": pos_weight}),
                          ("binary_cross_entropy_with_logits", {"weight": weight, "pos_weight": pos_weight}),
                          ("binary_cross_entropy", {"weight": weight}),
                          ("l1_loss", {"weight": rng.uniform(0.5, 2, (5, 3))}),
                          ("mse_loss", {"weight": rng.uniform(0.5, 2, (5, 3))}),
                          ("huber_loss", {"weight": rng.uniform(0.5, 2, (5, 3)), "delta": 0.7})]:
        xin = 1 / (1 + np.exp(-x)) if name == "binary_cross_entropy" else x
        ours, theirs, _ = _run(name, options, reduction, xin, y, np.float64, rng)
        for what, a, b in zip(("loss", "dinput", "dtarget"), ours, theirs):
            assert_close(a, b, np.float64, f"{name} {list(options)} {reduction} {what}")


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_reductions_and_log_target(rng, reduction, log_target):
    x, y = _inputs("kl_div", rng, (3, 2, 5))
    y.reshape(-1)[1] = 0.0  # a zero probability: contributes 0 (0 log 0 = 0)
    if log_target:
        y = np.log(y + 0.01)
    ours, theirs, _ = _run("kl_div", {"log_target": log_target}, reduction, x, y, np.float64, rng,
                           target_grad=log_target)
    for what, a, b in zip(("loss", "dinput", "dtarget"), ours, theirs):
        if b is not None:
            assert_close(a, b, np.float64, f"{what}")


def test_kl_div_target_gradient_at_zero_is_nan_like_torch():
    """torch differentiates y log y as xlogy: d/dy = log y + y / y, so nan at y = 0; normlab gives the same."""
    ours, theirs, _ = _run("kl_div", {}, "sum", np.log(np.array([[0.5, 0.5]])), np.array([[0.0, 1.0]]),
                           np.float64, np.random.default_rng(0))
    np.testing.assert_array_equal(np.isnan(ours[2]), np.isnan(theirs[2]))
    assert_close(ours[0], theirs[0], np.float64, "loss")


def test_kl_div_mean_warns_like_torch():
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(normlab.zeros(2, 3), normlab.ones(2, 3) / 3)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits", "smooth_l1_loss",
                                  "huber_loss", "kl_div", "l1_loss"])
def test_numerical_gradients(rng, name):
    x, y = _inputs(name, rng, (3, 4))
    if name == "binary_cross_entropy":
        x = np.clip(x, 0.05, 0.95)
    if name in ("l1_loss", "smooth_l1_loss", "huber_loss"):
        y = x + rng.choice([-1.5, -0.3, 0.4, 2.0], x.shape)  # away from the kinks
    for which in (0, 1):
        xo, yo = normlab.tensor(x, requires_grad=True), normlab.tensor(y, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(F, name)(xo, yo, reduction="sum").backward()

            def loss():
                return float(getattr(F, name)(normlab.tensor(x), normlab.tensor(y), reduction="sum").item())

            numeric = numerical_gradient(loss, x if which == 0 else y)
        np.testing.assert_allclose(np.asarray((xo, yo)[which].grad), numeric, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------- cross-entropy and NLL
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [
    {}, {"ignore_index": 1}, {"weight": True}, {"weight": True, "ignore_index": 2}, {"label_smoothing": 0.2},
    {"label_smoothing": 0.1, "weight": True, "ignore_index": 0},
], ids=str)
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5), (2, 4, 3, 2)], ids=str)
def test_cross_entropy_and_nll_match_torch(rng, reduction, options, shape):
    logits = rng.standard_normal(shape)
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    target.reshape(-1)[:2] = (1, 2)  # the ignored classes occur
    weight = rng.uniform(0.5, 2, shape[1])
    opts = {k: (weight if k == "weight" else v) for k, v in options.items()}
    topts = {k: (torch.tensor(weight) if k == "weight" else v) for k, v in options.items()}
    g = rng.standard_normal(target.shape) if reduction == "none" else np.array(0.9)
    for ours_fn, torch_fn, takes_smoothing in ((F.cross_entropy, TF.cross_entropy, True),
                                               (F.nll_loss, TF.nll_loss, False)):
        if not takes_smoothing and "label_smoothing" in opts:
            continue
        x, xt = normlab.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
        loss = ours_fn(x, target, reduction=reduction, **opts)
        tloss = torch_fn(xt, torch.tensor(target), reduction=reduction, **topts)
        loss.backward(g)
        tloss.backward(torch.tensor(g))
        assert_close(loss, tloss, np.float64, f"{ours_fn.__name__} loss")
        assert_close(x.grad, xt.grad, np.float64, f"{ours_fn.__name__} grad")


def test_cross_entropy_with_probabilities_and_all_targets_ignored_match_torch(rng):
    logits = rng.standard_normal((4, 3))
    probs = rng.dirichlet(np.ones(3), 4)
    for reduction in REDUCTIONS:
        for smoothing in (0.0, 0.3):
            x, xt = normlab.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
            loss = F.cross_entropy(x, probs, reduction=reduction, label_smoothing=smoothing)
            tloss = TF.cross_entropy(xt, torch.tensor(probs), reduction=reduction, label_smoothing=smoothing)
            assert_close(loss, tloss, np.float64, "soft targets")
    ignored = np.full(4, 2)
    loss = F.cross_entropy(normlab.tensor(logits), ignored, ignore_index=2)
    tloss = TF.cross_entropy(torch.tensor(logits), torch.tensor(ignored), ignore_index=2)
    assert np.isnan(loss.item()) and np.isnan(tloss.item())  # 0 / 0, as torch


# ----------------------------------------------------------------------- modules
MODULE_PAIRS = [
    (lambda: nn.BCELoss(), lambda: torch.nn.BCELoss(), "prob"),
    (lambda: nn.BCELoss(weight=normlab.tensor([0.5, 2.0, 1.0], dtype=np.float64), reduction="sum"),
     lambda: torch.nn.BCELoss(weight=torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64), reduction="sum"), "prob"),
    (lambda: nn.BCEWithLogitsLoss(pos_weight=normlab.tensor([3.0, 1.0, 0.5], dtype=np.float64)),
     lambda: torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64)), "logit"),
    (lambda: nn.L1Loss(reduction="none"), lambda: torch.nn.L1Loss(reduction="none"), "real"),
    (lambda: nn.SmoothL1Loss(beta=0.5), lambda: torch.nn.SmoothL1Loss(beta=0.5), "real"),
    (lambda: nn.HuberLoss(delta=0.5), lambda: torch.nn.HuberLoss(delta=0.5), "real"),
    (lambda: nn.KLDivLoss(reduction="batchmean", log_target=True),
     lambda: torch.nn.KLDivLoss(reduction="batchmean", log_target=True), "real"),
    (lambda: nn.MSELoss(reduction="sum"), lambda: torch.nn.MSELoss(reduction="sum"), "real"),
]


@pytest.mark.parametrize("make,make_torch,kind", MODULE_PAIRS)
def test_loss_modules_match_torch(rng, make, make_torch, kind):
    ours, theirs = make(), make_torch()
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = rng.uniform(0.05, 0.95, (4, 3)) if kind == "prob" else rng.standard_normal((4, 3))
    y = rng.uniform(0, 1, (4, 3))
    xo, xt = normlab.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    loss, tloss = ours(xo, y), theirs(xt, torch.tensor(y))
    g = rng.standard_normal(loss.shape)
    loss.backward(g)
    tloss.backward(torch.tensor(g))
    assert_close(loss, tloss, np.float64, "loss")
    assert_close(xo.grad, xt.grad, np.float64, "grad")


@pytest.mark.parametrize("size_average,reduce", [(None, False), (False, None), (True, True), (False, True),
                                                 (True, False)])
def test_legacy_size_average_and_reduce_map_like_torch(rng, size_average, reduce):
    x, y = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        ours = nn.L1Loss(size_average, reduce)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.nn.L1Loss(size_average, reduce)
    assert ours.reduction == theirs.reduction
    assert_close(ours(x, y), theirs(torch.tensor(x), torch.tensor(y)), np.float64, "loss")
    with pytest.warns(UserWarning, match="size_average"):
        loss = F.mse_loss(normlab.tensor(x), y, size_average, reduce)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_close(loss, TF.mse_loss(torch.tensor(x), torch.tensor(y), size_average, reduce), np.float64, "mse")


def test_positional_arguments_follow_torchs_signatures(rng):
    """torch: CrossEntropyLoss(weight, size_average, ignore_index, reduce, reduction, label_smoothing)."""
    logits, target = rng.standard_normal((5, 3)), np.array([0, 1, 2, 1, 0])
    ours = nn.CrossEntropyLoss(None, None, 1, None, "sum", 0.1)
    theirs = torch.nn.CrossEntropyLoss(None, None, 1, None, "sum", 0.1)
    assert_close(ours(logits, target), theirs(torch.tensor(logits), torch.tensor(target)), np.float64, "ce")
    assert_close(F.nll_loss(logits, target, None, None, 2), TF.nll_loss(torch.tensor(logits), torch.tensor(target),
                                                                          None, None, 2), np.float64, "nll")


# --------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,error,message", [
    (lambda: F.binary_cross_entropy(normlab.tensor([0.5, 1.5]), normlab.tensor([0.0, 1.0])), ValueError,
     "binary_cross_entropy: expected every input to be a probability in"),
    (lambda: F.binary_cross_entropy(normlab.tensor([0.5, 0.5]), normlab.tensor([1.0])), ValueError,
     r"binary_cross_entropy: expected target of the input's shape \(2,\), got \(1,\)"),
    (lambda: F.binary_cross_entropy_with_logits(normlab.zeros(2, 3), normlab.zeros(3)), ValueError,
     "binary_cross_entropy_with_logits: expected target of the input's shape"),
    (lambda: F.l1_loss(normlab.zeros(2, 3), normlab.zeros(4)), ValueError, "l1_loss: input of shape"),
    (lambda: F.smooth_l1_loss(normlab.zeros(2), normlab.zeros(2), beta=-1.0), ValueError,
     "smooth_l1_loss: expected beta >= 0, got -1.0"),
    (lambda: F.huber_loss(normlab.zeros(2), normlab.zeros(2), delta=0.0), ValueError,
     "huber_loss: expected delta > 0, got 0.0"),
    (lambda: F.kl_div(normlab.zeros(2), normlab.zeros(2), reduction="avg"), ValueError,
     "kl_div: expected reduction to be one of"),
    (lambda: nn.BCELoss(reduction="batchmean"), ValueError, "BCELoss: expected reduction to be one of"),
    (lambda: F.mse_loss(normlab.zeros(2, 2), normlab.zeros(2, 2), weight=np.ones(3)), ValueError,
     "mse_loss: expected weight of the input's shape"),
    (lambda: F.l1_loss(np.zeros(3, dtype=np.int64), np.zeros(3)), TypeError,
     "l1_loss: expected a floating-point input"),
])
def test_bad_input_raises(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_broadcasting_target_warns_and_broadcasts_like_torch(rng):
    x, y = rng.standard_normal((4, 3)), rng.standard_normal(3)
    xo, xt = normlab.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    with pytest.warns(UserWarning, match="different to the input size"):
        loss = F.smooth_l1_loss(xo, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tloss = TF.smooth_l1_loss(xt, torch.tensor(y))
    loss.backward()
    tloss.backward()
    assert_close(loss, tloss, np.float64, "loss")
    assert_close(xo.grad, xt.grad, np.float64, "grad")


def test_integer_targets_are_taken_as_floats():
    loss = F.binary_cross_entropy_with_logits(normlab.tensor([0.0, 2.0], dtype=np.float64), np.array([0, 1]))
    expected = TF.binary_cross_entropy_with_logits(torch.tensor([0.0, 2.0], dtype=torch.float64),
                                                   torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert_close(loss, expected, np.float64, "loss")


def test_empty_batch_like_torch():
    for name in ("l1_loss", "smooth_l1_loss", "binary_cross_entropy_with_logits", "mse_loss"):
        x = normlab.tensor(np.zeros((0, 3)), requires_grad=True)
        for reduction in REDUCTIONS:
            loss = getattr(F, name)(x, np.zeros((0, 3)), reduction=reduction)
            theirs = getattr(TF, name)(torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, 3, dtype=torch.float64),
                                       reduction=reduction)
            assert_close(loss, theirs, np.float64, f"{name} {reduction}")


@given(case=st.sampled_from(list(CASES)), reduction=st.sampled_from(REDUCTIONS),
       shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), seed=st.integers(0, 2 ** 16))
def test_shape_sweep(case, reduction, shape, seed):
    rng = np.random.default_rng(seed)
    name, options = CASES[case]
    x, y = _inputs(name, rng, shape)
    ours, theirs, _ = _run(name, options, reduction, x, y, np.float64, rng)
    for what, a, b in zip(("loss", "dinput", "dtarget"), ours, theirs):
        assert_close(a, b, np.float64, f"{case} {reduction} {what}")
