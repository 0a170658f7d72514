"""normlab.optim.lr_scheduler against torch.optim.lr_scheduler: the same learning-rate sequences, to the last bit.

Each test builds the same optimizer (two parameter groups with different lrs)
in both libraries, builds the scheduler with one factory taking the
scheduler module, steps both for many epochs and compares, every epoch, the
lr of every group (and the momentum or beta1 the cyclic schedules move) with
``==``: the formulas are torch's, in torch's order.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.optim import lr_scheduler as T

import normlab
from normlab import optim
from normlab.optim import lr_scheduler as S

EPOCHS = 40


def _optimizers(kind="SGD", **options):
    """The same two-group optimizer in normlab and torch (lrs 0.1 and 0.03)."""
    ours = [normlab.tensor(np.ones(3), requires_grad=True), normlab.tensor(np.ones(2), requires_grad=True)]
    theirs = [torch.ones(3, dtype=torch.float64, requires_grad=True),
              torch.ones(2, dtype=torch.float64, requires_grad=True)]

    def groups(ps):
        return [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.03}]

    return (getattr(optim, kind)(groups(ours), lr=0.1, **options),
            getattr(torch.optim, kind)(groups(theirs), lr=0.1, foreach=False, **options))


def _watched(opt):
    """What a schedule may change: each group's lr, momentum and beta1."""
    return [(g["lr"], g.get("momentum"), g["betas"][0] if "betas" in g else None) for g in opt.param_groups]


def run_side_by_side(make, kind="SGD", epochs=EPOCHS, metrics=None, options=None):
    """Step ``make(module, optimizer)`` in both libraries; compare every epoch; return the two schedulers."""
    opt, topt = _optimizers(kind, **(options or {}))
    ours, theirs = make(S, opt), make(T, topt)
    assert _watched(opt) == _watched(topt), "after construction"
    assert ours.get_last_lr() == theirs.get_last_lr(), "get_last_lr after construction"
    for epoch in range(epochs):
        opt.step()
        topt.step()
        if metrics is None:
            ours.step()
            theirs.step()
        else:
            ours.step(metrics[epoch])
            theirs.step(metrics[epoch])
        assert _watched(opt) == _watched(topt), f"epoch {epoch + 1}"
        assert ours.get_last_lr() == theirs.get_last_lr(), f"get_last_lr at epoch {epoch + 1}"
        assert getattr(ours, "last_epoch", None) == getattr(theirs, "last_epoch", None)
    return ours, theirs


def _comparable(state):
    """A scheduler state dict with its nested members and functions made comparable."""
    out = {}
    for key, value in state.items():
        if key == "_schedulers":
            value = [_comparable(s) for s in value]
        out[key] = value
    return out


CASES = {
    "StepLR(1, 0.5)": lambda m, o: m.StepLR(o, step_size=1, gamma=0.5),
    "StepLR(3, 0.1)": lambda m, o: m.StepLR(o, step_size=3),
    "StepLR(7, 0.9)": lambda m, o: m.StepLR(o, 7, gamma=0.9),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.93),
    "CosineAnnealingLR(5)": lambda m, o: m.CosineAnnealingLR(o, T_max=5),
    "CosineAnnealingLR(10, 0.01)": lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
    "CosineAnnealingLR(7, 0.2)": lambda m, o: m.CosineAnnealingLR(o, 7, 0.2),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda epoch: 0.95 ** epoch / (1 + epoch % 3)),
    "LambdaLR(per group)": lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: min(1.0, (e + 1) / 6)]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda epoch: 0.97 if epoch % 2 else 0.99),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, total_iters=4),
    "LinearLR(decay)": lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=9),
    "LinearLR(defaults)": lambda m, o: m.LinearLR(o),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=3),
    "ConstantLR(defaults)": lambda m, o: m.ConstantLR(o),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=6, power=2.0),
    "PolynomialLR(defaults)": lambda m, o: m.PolynomialLR(o),
    "SequentialLR(warmup, cosine)": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, 0.1, total_iters=3), m.CosineAnnealingLR(o, T_max=12)], milestones=[3]),
    "SequentialLR(3 phases)": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, 0.5, total_iters=2), m.ExponentialLR(o, 0.9), m.StepLR(o, 4, 0.5)], milestones=[2, 6]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, 0.2, total_iters=4), m.ExponentialLR(o, 0.9)]),
    "CosineAnnealingWarmRestarts(3, 2)": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001),
    "CosineAnnealingWarmRestarts(5)": lambda m, o: m.CosineAnnealingWarmRestarts(o, 5),
    "CyclicLR(triangular)": lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=4),
    "CyclicLR(triangular2)": lambda m, o: m.CyclicLR(o, [0.01, 0.02], [0.1, 0.3], 3, 5, mode="triangular2"),
    "CyclicLR(exp_range)": lambda m, o: m.CyclicLR(o, 0.01, 0.1, 5, mode="exp_range", gamma=0.97),
    "CyclicLR(scale_fn)": lambda m, o: m.CyclicLR(o, 0.01, 0.1, 4, scale_fn=lambda x: 1 / (1 + x),
                                                  scale_mode="iterations", cycle_momentum=False),
    "OneCycleLR(cos)": lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=EPOCHS),
    "OneCycleLR(linear, groups)": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], epochs=4, steps_per_epoch=10,
                                                            anneal_strategy="linear", pct_start=0.25),
    "OneCycleLR(three_phase)": lambda m, o: m.OneCycleLR(o, 0.8, total_steps=EPOCHS, three_phase=True,
                                                         base_momentum=0.8, max_momentum=0.9, div_factor=10.0),
    "OneCycleLR(no momentum)": lambda m, o: m.OneCycleLR(o, 0.5, total_steps=EPOCHS, cycle_momentum=False,
                                                         final_div_factor=100.0),
}
MOMENTUM_CASES = [name for name in CASES if name.startswith(("CyclicLR", "OneCycleLR"))]


@pytest.mark.parametrize("name", list(CASES))
def test_lr_sequence_equals_torch(name):
    ours, theirs = run_side_by_side(CASES[name], options={"momentum": 0.9})
    assert _comparable(ours.state_dict()).keys() == _comparable(theirs.state_dict()).keys()


@pytest.mark.parametrize("name", MOMENTUM_CASES)
def test_momentum_cycling_moves_adams_beta1(name):
    run_side_by_side(CASES[name], kind="Adam")


@pytest.mark.parametrize("name", ["OneCycleLR(cos)", "CyclicLR(triangular)"])
def test_cycling_needs_momentum_or_betas(name):
    opt, _ = _optimizers("Adagrad")
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        CASES[name](S, opt)


@pytest.mark.parametrize("schedule", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
                                      "ConstantLR", "PolynomialLR"])
def test_closed_form_with_an_epoch_argument_equals_torch(schedule):
    """step(epoch) jumps with the closed form (torch deprecates it but still does it); then step() chains on."""
    make = {"StepLR": lambda m, o: m.StepLR(o, 3, 0.5), "MultiStepLR": lambda m, o: m.MultiStepLR(o, [2, 4, 4], 0.5),
            "ExponentialLR": lambda m, o: m.ExponentialLR(o, 0.9),
            "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, 6),
            "LinearLR": lambda m, o: m.LinearLR(o, 0.2, total_iters=5),
            "ConstantLR": lambda m, o: m.ConstantLR(o, 0.3, 3),
            "PolynomialLR": lambda m, o: m.PolynomialLR(o, 8, 1.5)}[schedule]
    opt, topt = _optimizers()
    ours, theirs = make(S, opt), make(T, topt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in [3, 7, 1, 0, 5, 5, 12]:
            opt.step()
            topt.step()
            with pytest.warns(UserWarning, match="epoch parameter"):
                ours.step(epoch)
            theirs.step(epoch)
            assert _watched(opt) == _watched(topt), f"jump to {epoch}"
            ours.step()
            theirs.step()
            assert _watched(opt) == _watched(topt), f"one after {epoch}"


def test_two_chainable_schedulers_compose_like_torch():
    """Two schedulers on one optimizer, stepped together: each multiplies the lr the other left."""
    run_side_by_side(lambda m, o: (m.StepLR(o, 3, 0.5), m.LambdaLR(o, lambda e: 1.0))[0], epochs=1)
    opt, topt = _optimizers()
    pairs = [(S.ExponentialLR(opt, 0.9), T.ExponentialLR(topt, 0.9)),
             (S.MultiStepLR(opt, [4, 8], 0.1), T.MultiStepLR(topt, [4, 8], 0.1)),
             (S.CosineAnnealingLR(opt, 10), T.CosineAnnealingLR(topt, 10))]
    for epoch in range(25):
        opt.step()
        topt.step()
        for ours, theirs in pairs:
            ours.step()
            theirs.step()
        assert _watched(opt) == _watched(topt), f"epoch {epoch + 1}"


def test_warm_restarts_with_fractional_epochs():
    opt, topt = _optimizers()
    ours = S.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=3, eta_min=0.005)
    theirs = T.CosineAnnealingWarmRestarts(topt, T_0=2, T_mult=3, eta_min=0.005)
    batches = 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in range(12):
            for batch in range(batches):
                opt.step()
                topt.step()
                ours.step(epoch + batch / batches)
                theirs.step(epoch + batch / batches)
                assert _watched(opt) == _watched(topt), (epoch, batch)
                assert (ours.T_cur, ours.T_i, ours.last_epoch) == (theirs.T_cur, theirs.T_i, theirs.last_epoch)


PLATEAU_METRICS = [1.0, 0.9, 0.9, 0.95, 0.91, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.49999, 0.7, 0.6, 0.3,
                   0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]


@pytest.mark.parametrize("options", [
    dict(),
    dict(patience=0),
    dict(patience=1, factor=0.5, cooldown=2),
    dict(mode="max", patience=1, factor=0.5),
    dict(threshold_mode="abs", threshold=0.05, patience=2),
    dict(mode="max", threshold_mode="abs", threshold=0.01, patience=0, cooldown=1),
    dict(patience=0, factor=0.2, min_lr=[0.005, 0.01]),
    dict(patience=0, factor=0.5, min_lr=0.02, eps=1e-3),
], ids=str)
def test_reduce_on_plateau_equals_torch(options):
    metrics = [m if options.get("mode") != "max" else -m for m in PLATEAU_METRICS]
    ours, theirs = run_side_by_side(lambda m, o: m.ReduceLROnPlateau(o, **options), epochs=len(metrics),
                                    metrics=metrics)
    assert ours.state_dict() == {k: v for k, v in theirs.state_dict().items()}
    # a one-element tensor works as the metric, as in torch
    ours.step(normlab.tensor(0.1))
    theirs.step(torch.tensor(0.1))
    assert ours.get_last_lr() == theirs.get_last_lr()


# --------------------------------------------------------------- state dicts
@pytest.mark.parametrize("name", ["StepLR(3, 0.1)", "MultiStepLR", "CosineAnnealingLR(10, 0.01)", "LambdaLR",
                                  "SequentialLR(warmup, cosine)", "ChainedScheduler",
                                  "CosineAnnealingWarmRestarts(3, 2)", "CyclicLR(triangular2)", "OneCycleLR(cos)",
                                  "LinearLR", "PolynomialLR"])
def test_state_dict_is_torchs_and_moves_both_ways(name):
    """After 13 epochs: ours equals torch's state dict; each loads into a fresh scheduler of the other library."""
    make = CASES[name]
    ours, theirs = run_side_by_side(make, epochs=13, options={"momentum": 0.9})
    mine, torchs = _comparable(ours.state_dict()), _comparable(theirs.state_dict())
    assert mine == torchs

    # A fresh pair (same optimizers' state: lrs and momenta as after 13 epochs), loaded crosswise.
    opt, topt = _optimizers(momentum=0.9)
    fresh, tfresh = make(S, opt), make(T, topt)
    for group, saved in zip(opt.param_groups, ours.optimizer.param_groups):
        group.update({k: v for k, v in saved.items() if k != "params"})
    for group, saved in zip(topt.param_groups, theirs.optimizer.param_groups):
        group.update({k: v for k, v in saved.items() if k != "params"})
    fresh.load_state_dict(theirs.state_dict())
    tfresh.load_state_dict(ours.state_dict())
    for epoch in range(13, EPOCHS):
        for o in (opt, topt, ours.optimizer, theirs.optimizer):
            o.step()
        for s in (fresh, tfresh, ours, theirs):
            s.step()
        assert _watched(opt) == _watched(theirs.optimizer) == _watched(topt) == _watched(ours.optimizer), epoch


def test_state_dict_is_a_copy():
    opt, _ = _optimizers()
    sched = S.MultiStepLR(opt, [3, 5])
    saved = sched.state_dict()
    saved["base_lrs"][0] = 123.0
    saved["milestones"][7] = 1
    assert sched.base_lrs[0] == 0.1 and 7 not in sched.milestones


def test_lambda_state_dict_keeps_callable_objects_attributes():
    class Warmup:
        def __init__(self, steps):
            self.steps = steps

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.steps)

    opt, _ = _optimizers()
    sched = S.LambdaLR(opt, [Warmup(4), lambda e: 1.0])
    saved = sched.state_dict()
    assert saved["lr_lambdas"] == [{"steps": 4}, None]
    other = S.LambdaLR(_optimizers()[0], [Warmup(9), lambda e: 1.0])
    other.load_state_dict(saved)
    assert other.lr_lambdas[0].steps == 4


def test_resuming_with_last_epoch_equals_torch():
    """A scheduler rebuilt with last_epoch=k after the optimizer's state (with initial_lr) was restored."""
    opt, topt = _optimizers(momentum=0.9)
    S.CosineAnnealingLR(opt, T_max=10)
    T.CosineAnnealingLR(topt, T_max=10)
    ours, theirs = S.CosineAnnealingLR(opt, T_max=10, last_epoch=4), T.CosineAnnealingLR(topt, T_max=10, last_epoch=4)
    for epoch in range(12):
        assert _watched(opt) == _watched(topt), epoch
        opt.step()
        topt.step()
        ours.step()
        theirs.step()


def test_resuming_without_initial_lr_is_refused():
    opt, _ = _optimizers()
    with pytest.raises(KeyError, match=r"StepLR: param 'initial_lr' is not specified in param_groups\[0\]"):
        S.StepLR(opt, 2, last_epoch=3)


# ------------------------------------------------------------------- warnings
def test_warns_when_stepped_before_the_optimizer():
    opt, _ = _optimizers()
    sched = S.StepLR(opt, 2)
    with pytest.warns(UserWarning, match=r"lr_scheduler.step\(\)` before `optimizer.step\(\)"):
        sched.step()


def test_no_warning_in_the_right_order_and_get_lr_outside_step_warns():
    opt, _ = _optimizers()
    sched = S.ExponentialLR(opt, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


def test_onecycle_refuses_stepping_past_total_steps():
    opt, _ = _optimizers(momentum=0.9)
    sched = S.OneCycleLR(opt, 1.0, total_steps=3)
    for _ in range(2):
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 4 times"):
        opt.step()
        sched.step()
        sched.step()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("make,error,message", [
    (lambda o: S.StepLR(o, 0), ValueError, "StepLR: expected step_size to be a positive integer, got 0"),
    (lambda o: S.StepLR(o, 2, gamma="0.1"), TypeError, "StepLR: expected gamma to be a real number"),
    (lambda o: S.StepLR([], 2), TypeError, "StepLR: expected a normlab.optim Optimizer, got list"),
    (lambda o: S.StepLR(torch.optim.SGD([torch.ones(1, requires_grad=True)]), 2), TypeError, "got SGD"),
    (lambda o: S.StepLR(o, 2, last_epoch=-2), ValueError, "StepLR: expected last_epoch to be an integer >= -1"),
    (lambda o: S.MultiStepLR(o, [1.5]), TypeError, "MultiStepLR: expected integer milestones"),
    (lambda o: S.ConstantLR(o, factor=1.5), ValueError, r"ConstantLR: expected factor in \[0, 1\], got 1.5"),
    (lambda o: S.LinearLR(o, start_factor=0), ValueError, "LinearLR: expected start_factor in"),
    (lambda o: S.LinearLR(o, end_factor=-0.1), ValueError, "LinearLR: expected end_factor in"),
    (lambda o: S.CosineAnnealingLR(o, T_max=0), ValueError, "CosineAnnealingLR: expected T_max > 0, got 0"),
    (lambda o: S.LambdaLR(o, [lambda e: 1.0]), ValueError, "LambdaLR: expected 2 lr_lambdas, got 1"),
    (lambda o: S.MultiplicativeLR(o, 0.9), TypeError, "MultiplicativeLR: expected lr_lambda to be a function"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2)], milestones=[3]), ValueError, "one milestone fewer"),
    (lambda o: S.SequentialLR(o, [], milestones=[]), ValueError, "at least one scheduler"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.ReduceLROnPlateau(o)], [2]), ValueError, "needs the metric"),
    (lambda o: S.SequentialLR(o, [S.StepLR(_optimizers()[0], 2)], []), ValueError, "the same optimizer"),
    (lambda o: S.ReduceLROnPlateau(o, mode="mean"), ValueError, "ReduceLROnPlateau: expected mode 'min' or 'max'"),
    (lambda o: S.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "expected threshold_mode 'rel' or 'abs'"),
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), ValueError, r"expected factor in \[0, 1\)"),
    (lambda o: S.ReduceLROnPlateau(o, patience=-1), ValueError, "expected patience to be a non-negative integer"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "min_lr to have one value per param group"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, mode="sawtooth"), ValueError, "CyclicLR: expected mode"),
    (lambda o: S.CyclicLR(o, 0.1, 1.0, step_size_up=0), ValueError, "step_size_up to be a positive integer"),
    (lambda o: S.OneCycleLR(o, 1.0), ValueError, "either total_steps OR"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=10, pct_start=1), ValueError, "pct_start to be a float"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=10, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, "T_0 to be a positive integer"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0.5), ValueError, "T_mult to be a positive integer"),
])
def test_bad_arguments_are_refused_before_the_optimizer_changes(make, error, message):
    opt, _ = _optimizers(momentum=0.9)

    def options():  # initial_lr is added by the member schedulers some cases build first
        return [{k: v for k, v in g.items() if k not in ("params", "initial_lr")} for g in opt.param_groups]

    before = options()
    with pytest.raises(error, match=message):
        make(opt)
    assert options() == before


def test_reduce_on_plateau_refuses_a_non_numeric_metric():
    opt, _ = _optimizers()
    sched = S.ReduceLROnPlateau(opt)
    with pytest.raises(TypeError, match="ReduceLROnPlateau: expected the metric to be a number, got str"):
        sched.step("low")
    assert sched.last_epoch == 0


def test_load_state_dict_refuses_unknown_keys():
    opt, _ = _optimizers()
    sched = S.StepLR(opt, 2)
    saved = sched.state_dict()
    with pytest.raises(ValueError, match="StepLR: unexpected key.* in state dict: bogus"):
        sched.load_state_dict(dict(saved, bogus=1, last_epoch=9))
    assert sched.last_epoch == 0
    sched.load_state_dict(dict(saved, verbose=False))  # written by older torch versions: ignored


def test_a_typical_training_loop_with_adadelta_and_steplr():
    """The PyTorch MNIST example's pattern: Adadelta(lr=1.0) + StepLR(step_size=1, gamma=0.7), per epoch."""
    normlab.manual_seed(0)
    model = normlab.nn.Linear(4, 1, dtype=np.float64)
    reference = torch.nn.Linear(4, 1).double()
    reference.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    opt, topt = optim.Adadelta(model.parameters(), lr=1.0), torch.optim.Adadelta(reference.parameters(), lr=1.0)
    sched, tsched = S.StepLR(opt, step_size=1, gamma=0.7), T.StepLR(topt, step_size=1, gamma=0.7)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)), rng.standard_normal((32, 1))
    for epoch in range(5):
        for batch in range(4):
            xb, yb = x[batch * 8:(batch + 1) * 8], y[batch * 8:(batch + 1) * 8]
            opt.zero_grad()
            topt.zero_grad()
            loss = ((model(normlab.tensor(xb)) - normlab.tensor(yb)) ** 2).mean()
            tloss = ((reference(torch.tensor(xb)) - torch.tensor(yb)) ** 2).mean()
            loss.backward()
            tloss.backward()
            opt.step()
            topt.step()
            assert math.isclose(loss.item(), tloss.item(), rel_tol=1e-12)
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == tsched.get_last_lr()
    for p, tp in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(np.asarray(p), tp.detach().numpy(), rtol=1e-12)


@given(schedule=st.sampled_from(["StepLR", "CosineAnnealingLR", "OneCycleLR", "CyclicLR", "LinearLR",
                                 "CosineAnnealingWarmRestarts", "PolynomialLR"]),
       size=st.integers(1, 12), factor=st.floats(0.05, 0.95), second=st.floats(0.0, 0.2), flag=st.booleans())
def test_option_sweep(schedule, size, factor, second, flag):
    """Random options within each schedule's range; ``size``, ``factor``, ``second``, ``flag`` are its own options."""
    make = {
        "StepLR": lambda m, o: m.StepLR(o, step_size=size, gamma=factor),
        "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=size, eta_min=second * 0.1),
        "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=factor, total_steps=EPOCHS + size, pct_start=second + 0.1,
                                                anneal_strategy="cos" if flag else "linear", three_phase=flag),
        "CyclicLR": lambda m, o: m.CyclicLR(o, second * 0.1, factor, step_size_up=size,
                                            mode="triangular2" if flag else "exp_range", gamma=factor),
        "LinearLR": lambda m, o: m.LinearLR(o, start_factor=factor, end_factor=second if flag else 1.0,
                                            total_iters=size),
        "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=size, T_mult=1 + flag,
                                                                                  eta_min=second * 0.01),
        "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=size, power=factor * 3),
    }[schedule]
    run_side_by_side(make, options={"momentum": 0.9})
