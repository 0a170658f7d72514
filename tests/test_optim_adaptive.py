"""RMSprop, Adagrad, Adadelta, Adamax, NAdam and RAdam against torch.optim: 20 steps over option grids.

float64: every parameter after every step equals torch's (the same elementwise
operations in the same order; a few ulps). float32: normlab in float32 against
torch in float64 from the same float32 start and gradients, within float32
rounding of the magnitudes involved (tests/oracle.py:assert_float32_close).
The gradients are random and one parameter gets one only on even steps (a
parameter without grad must be skipped: no update, no state, no step count).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import normlab
from normlab import optim
from tests.oracle import assert_float32_close
from tests.test_optim import make_models, random_grads, set_grads
from tests.test_optim import test_training_on_a_real_loss_matches_torch as train_against_torch

NAMES = ["RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"]
STEPS = 20
TOL64 = dict(rtol=1e-12, atol=1e-14)


def _grid(**axes):
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


GRIDS = {
    "RMSprop": _grid(lr=[0.01], alpha=[0.99, 0.5], momentum=[0.0, 0.9], centered=[False, True],
                     weight_decay=[0.0, 0.1], maximize=[False, True]),
    "Adagrad": _grid(lr=[0.1], lr_decay=[0.0, 0.05], weight_decay=[0.0, 0.1], initial_accumulator_value=[0.0, 0.5],
                     eps=[1e-10, 1e-3], maximize=[False, True]),
    "Adadelta": _grid(lr=[1.0, 0.3], rho=[0.9, 0.5, 1.0], eps=[1e-6, 1e-3], weight_decay=[0.0, 0.1],
                      maximize=[False, True]),
    "Adamax": _grid(lr=[0.01], betas=[(0.9, 0.999), (0.5, 0.8)], eps=[1e-8, 1e-3], weight_decay=[0.0, 0.1],
                    maximize=[False, True]),
    "NAdam": _grid(lr=[0.01], betas=[(0.9, 0.999), (0.5, 0.8)], weight_decay=[0.0, 0.1], momentum_decay=[4e-3, 0.1],
                   decoupled_weight_decay=[False, True], maximize=[False, True]),
    # beta2 = 0.8 makes rho_t pass 5 within the 20 steps: both of RAdam's branches run.
    "RAdam": _grid(lr=[0.01], betas=[(0.9, 0.999), (0.5, 0.8)], eps=[1e-8, 1e-3], weight_decay=[0.0, 0.1],
                   decoupled_weight_decay=[False, True], maximize=[False, True]),
}
CASES = [(name, options) for name in NAMES for options in GRIDS[name]]


def _id(case):
    name, options = case
    return name + "(" + ",".join(f"{k}={v}" for k, v in options.items() if k != "lr") + ")"


def assert_state_close(ours, theirs, dtype):
    """Same indices, keys and values as torch's state dict; per-element state in the parameter's dtype."""
    assert sorted(ours["state"]) == sorted(theirs["state"])
    for index, entry in theirs["state"].items():
        mine = ours["state"][index]
        assert set(mine) == set(entry), (index, set(mine), set(entry))
        for key, value in entry.items():
            expected = value.detach().numpy()
            if key in ("step", "mu_product"):  # scalars torch keeps in float32
                assert mine[key].dtype == expected.dtype, key
                np.testing.assert_allclose(mine[key], expected, rtol=0 if key == "step" else 1e-7, err_msg=key)
                continue
            assert mine[key].dtype == np.dtype(dtype), key
            if dtype == np.float64:
                np.testing.assert_allclose(mine[key], expected, err_msg=f"{key} of parameter {index}", **TOL64)
    for mine, group in zip(ours["param_groups"], theirs["param_groups"]):
        assert mine["params"] == group["params"]
        for key, value in mine.items():
            assert key in group, f"option {key!r} is not one of torch's"
            assert (tuple(value) == tuple(group[key])) if key == "betas" else value == group[key], key


def drive(make_ours, make_theirs, dtype, groups=None, steps=STEPS, seed=0):
    """Both optimizers on the same gradients; compare the parameters after every step and the state at the end."""
    model, reference = make_models(dtype, seed)
    params, torch_params = list(model.parameters()), list(reference.parameters())
    spec = groups or (lambda ps: ps)
    opt, topt = make_ours(spec(params)), make_theirs(spec(torch_params))
    rng = np.random.default_rng(seed + 1)
    # float32 error bound: float32 roundings of the start and of every update applied so far
    moved = [np.abs(np.asarray(p, dtype=np.float64)) for p in params]
    before = [tp.detach().numpy().copy() for tp in torch_params]
    for step in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        set_grads(params, torch_params, random_grads(params, rng, step, dtype))
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(params, torch_params)):
            now = tp.detach().numpy()
            assert p.dtype == np.dtype(dtype)
            if dtype == np.float64:
                np.testing.assert_allclose(np.asarray(p), now, err_msg=f"step {step + 1}, parameter {i}", **TOL64)
            else:
                moved[i] = moved[i] + np.abs(now - before[i])
                assert_float32_close(p, now, scale=moved[i], ulps=32, what=f"step {step + 1}, parameter {i}")
            before[i] = now.copy()
    assert_state_close(opt.state_dict(), topt.state_dict(), dtype)
    return opt, topt, params, torch_params


def _torch(name, **options):
    return lambda ps: getattr(torch.optim, name)(ps, foreach=False, **options)


def _ours(name, **options):
    return lambda ps: getattr(optim, name)(ps, **options)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_matches_torch_over_20_steps(case, dtype):
    name, options = case
    drive(_ours(name, **options), _torch(name, **options), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", NAMES)
def test_defaults_match_torch(name, dtype):
    opt, topt, _, _ = drive(_ours(name), _torch(name), dtype)
    for key, value in opt.defaults.items():
        assert topt.defaults[key] == value, key


def _two_groups(params):
    return [{"params": params[:2], "lr": 0.03},
            {"params": params[2:], "weight_decay": 0.05, "maximize": True}]


@pytest.mark.parametrize("name,options", [
    ("RMSprop", dict(momentum=0.5, centered=True)), ("Adagrad", dict(lr_decay=0.01)), ("Adadelta", dict(rho=0.8)),
    ("Adamax", dict(betas=(0.8, 0.9))), ("NAdam", dict(decoupled_weight_decay=True)), ("RAdam", dict(betas=(0.8, 0.9))),
])
def test_param_groups_match_torch(name, options):
    drive(_ours(name, **options), _torch(name, **options), np.float64, groups=_two_groups)


@given(name=st.sampled_from(NAMES), lr=st.floats(1e-4, 0.5), beta1=st.floats(0.0, 0.99),
       beta2=st.floats(0.0, 0.9999), decay=st.floats(0.0, 1.0), eps=st.sampled_from([1e-10, 1e-8, 1e-6, 1e-3, 0.1]),
       weight_decay=st.floats(0.0, 0.5), flag=st.booleans(), maximize=st.booleans())
def test_option_sweep(name, lr, beta1, beta2, decay, eps, weight_decay, flag, maximize):
    """Random options within torch's ranges; ``decay`` and ``flag`` mean each optimizer's own option."""
    options = dict(lr=lr, eps=eps, weight_decay=weight_decay, maximize=maximize)
    options.update({
        "RMSprop": dict(alpha=decay, momentum=beta1, centered=flag),
        "Adagrad": dict(lr_decay=decay, initial_accumulator_value=beta2),
        "Adadelta": dict(rho=decay),
        "Adamax": dict(betas=(beta1, beta2)),
        "NAdam": dict(betas=(beta1, beta2), momentum_decay=decay, decoupled_weight_decay=flag),
        "RAdam": dict(betas=(beta1, beta2), decoupled_weight_decay=flag),
    }[name])
    drive(_ours(name, **options), _torch(name, **options), np.float64, steps=8)


@pytest.mark.parametrize("name,options", [
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)), ("Adagrad", dict(lr=0.1)), ("Adadelta", dict()),
    ("Adamax", dict(lr=0.01)), ("NAdam", dict(lr=0.01)), ("RAdam", dict(lr=0.01, weight_decay=1e-3)),
])
def test_training_on_a_real_loss_matches_torch(name, options):
    """Gradients from normlab's own backward vs torch's, 20 steps, float64; the loss goes down."""
    train_against_torch(name, options)


# ------------------------------------------------------------ state dicts
MAKERS = {
    "RMSprop": dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01),
    "Adagrad": dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    "Adadelta": dict(rho=0.8, weight_decay=0.01),
    "Adamax": dict(lr=0.01, betas=(0.8, 0.9)),
    "NAdam": dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True),
    "RAdam": dict(lr=0.01, betas=(0.5, 0.8)),
}


def _apply(opt, params, grads):
    opt.zero_grad()
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.copy()
    opt.step()


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_identically(name):
    """Save after 10 steps, load into a fresh optimizer built with other options, continue: bit-identical."""
    rng = np.random.default_rng(11)
    model, _ = make_models(np.float64)
    params = list(model.parameters())
    sequence = [random_grads(params, rng, step, np.float64) for step in range(STEPS)]
    start = [np.array(p) for p in params]
    straight = optim.__dict__[name](params, **MAKERS[name])
    for grads in sequence:
        _apply(straight, params, grads)
    expected = [np.array(p) for p in params]

    for p, value in zip(params, start):
        p.data[...] = value
    first = optim.__dict__[name](params, **MAKERS[name])
    for grads in sequence[:10]:
        _apply(first, params, grads)
    saved = first.state_dict()
    snapshot = {i: {k: np.array(v, copy=True) for k, v in s.items()} for i, s in saved["state"].items()}
    _apply(first, params, sequence[10])  # the saved dict holds copies: it must not move
    for i, entry in snapshot.items():
        for key, value in entry.items():
            np.testing.assert_array_equal(saved["state"][i][key], value)

    for p, value in zip(params, start):
        p.data[...] = value
    again = optim.__dict__[name](params, **MAKERS[name])
    for grads in sequence[:10]:
        _apply(again, params, grads)
    fresh = optim.__dict__[name](params, lr=0.5)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == MAKERS[name]["lr"] if "lr" in MAKERS[name] else True
    for grads in sequence[10:]:
        _apply(fresh, params, grads)
    for p, value in zip(params, expected):
        np.testing.assert_array_equal(np.asarray(p), value)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_moves_between_torch_and_normlab(name):
    """torch's state dict (as NumPy) loads into normlab and normlab's into torch; both then continue equal."""
    opt, topt, params, torch_params = drive(_ours(name, **MAKERS[name]), _torch(name, **MAKERS[name]), np.float64,
                                            steps=6)
    torch_state = topt.state_dict()
    as_numpy = {"state": {i: {k: v.detach().numpy().copy() for k, v in s.items()}
                          for i, s in torch_state["state"].items()},
                "param_groups": [dict(g) for g in torch_state["param_groups"]]}
    fresh = optim.__dict__[name](params, lr=0.9)
    fresh.load_state_dict(as_numpy)
    ours = opt.state_dict()
    tfresh = getattr(torch.optim, name)(torch_params, lr=0.9, foreach=False)
    tfresh.load_state_dict({"state": {i: {k: torch.from_numpy(np.array(v)) for k, v in s.items()}
                                      for i, s in ours["state"].items()},
                            "param_groups": [dict(g, foreach=False) for g in ours["param_groups"]]})
    # torch casts every loaded state value but 'step' to the parameter's dtype, so its reloaded NAdam carries
    # mu_product on in float64 (its uninterrupted run, and normlab's reloaded one, keep float32): a few 1e-12 apart.
    tol = dict(rtol=1e-10, atol=1e-12) if name == "NAdam" else TOL64
    rng = np.random.default_rng(21)
    for step in range(6, 12):
        fresh.zero_grad()
        tfresh.zero_grad()
        set_grads(params, torch_params, random_grads(params, rng, step, np.float64))
        fresh.step()
        tfresh.step()
        for p, tp in zip(params, torch_params):
            np.testing.assert_allclose(np.asarray(p), tp.detach().numpy(), **tol)


def test_adagrad_keeps_state_for_every_parameter_from_the_start_as_torch():
    model, reference = make_models(np.float64)
    opt = optim.Adagrad(model.parameters(), initial_accumulator_value=0.25)
    topt = torch.optim.Adagrad(reference.parameters(), initial_accumulator_value=0.25, foreach=False)
    assert_state_close(opt.state_dict(), topt.state_dict(), np.float64)
    extra = normlab.tensor(np.ones(3), requires_grad=True)
    opt.add_param_group({"params": [extra], "initial_accumulator_value": 2.0})
    np.testing.assert_array_equal(opt.state[extra]["sum"], np.full(3, 2.0))


def test_nadam_refuses_a_bad_mu_product_and_changes_nothing():
    model, _ = make_models(np.float64)
    params = list(model.parameters())
    opt = optim.NAdam(params)
    _apply(opt, params, random_grads(params, np.random.default_rng(0), 0, np.float64))
    bad = opt.state_dict()
    bad["state"][0]["mu_product"] = np.array([0.5, 0.5])
    before = opt.state_dict()
    with pytest.raises(ValueError, match="NAdam: state 'mu_product' of parameter 0: expected a finite scalar"):
        opt.load_state_dict(bad)
    np.testing.assert_array_equal(opt.state_dict()["state"][0]["exp_avg"], before["state"][0]["exp_avg"])


@pytest.mark.parametrize("name,missing", [("RMSprop", "square_avg"), ("Adadelta", "acc_delta"), ("Adamax", "exp_inf"),
                                          ("NAdam", "mu_product"), ("RAdam", "exp_avg_sq"), ("Adagrad", "sum")])
def test_load_refuses_incomplete_state(name, missing):
    model, _ = make_models(np.float64)
    params = list(model.parameters())
    opt = optim.__dict__[name](params, **MAKERS[name])
    _apply(opt, params, random_grads(params, np.random.default_rng(0), 0, np.float64))
    bad = opt.state_dict()
    del bad["state"][0][missing]
    with pytest.raises(ValueError, match=f"{name}: the state of parameter 0 is missing '{missing}'"):
        opt.load_state_dict(bad)


def test_rmsprop_options_switched_on_between_steps_start_their_buffers_at_zero():
    """torch raises KeyError when momentum or centered is switched on after the first step; normlab starts them."""
    model, _ = make_models(np.float64)
    params = list(model.parameters())
    opt = optim.RMSprop(params)
    rng = np.random.default_rng(4)
    _apply(opt, params, random_grads(params, rng, 0, np.float64))
    opt.param_groups[0].update(momentum=0.9, centered=True)
    grads = random_grads(params, rng, 2, np.float64)
    _apply(opt, params, grads)
    state = opt.state[params[0]]
    np.testing.assert_allclose(state["grad_avg"], 0.01 * grads[0], rtol=1e-12)
    assert np.any(state["momentum_buffer"] != 0)


# ------------------------------------------------------------- validation
@pytest.mark.parametrize("make,error,message", [
    (lambda ps: optim.RMSprop(ps, lr=-1), ValueError, "RMSprop: expected lr >= 0, got -1"),
    (lambda ps: optim.RMSprop(ps, alpha=-0.1), ValueError, "RMSprop: expected alpha >= 0, got -0.1"),
    (lambda ps: optim.RMSprop(ps, momentum=-0.5), ValueError, "RMSprop: expected momentum >= 0"),
    (lambda ps: optim.RMSprop(ps, eps=-1e-8), ValueError, "RMSprop: expected eps >= 0"),
    (lambda ps: optim.RMSprop(ps, centered=1), TypeError, "RMSprop: expected centered to be a bool"),
    (lambda ps: optim.Adagrad(ps, lr_decay=-1), ValueError, "Adagrad: expected lr_decay >= 0, got -1"),
    (lambda ps: optim.Adagrad(ps, initial_accumulator_value=-1), ValueError,
     "Adagrad: expected initial_accumulator_value >= 0"),
    (lambda ps: optim.Adagrad(ps, weight_decay=float("nan")), ValueError, "Adagrad: expected weight_decay >= 0"),
    (lambda ps: optim.Adadelta(ps, rho=1.5), ValueError, r"Adadelta: expected rho in \[0, 1\], got 1.5"),
    (lambda ps: optim.Adadelta(ps, lr="1"), TypeError, "Adadelta: expected lr to be a real number"),
    (lambda ps: optim.Adamax(ps, betas=(1.0, 0.9)), ValueError, r"Adamax: expected betas\[0\] in \[0, 1\)"),
    (lambda ps: optim.NAdam(ps, momentum_decay=-1), ValueError, "NAdam: expected momentum_decay >= 0"),
    (lambda ps: optim.NAdam(ps, betas=(0.9,)), ValueError, "NAdam: expected betas to be a pair"),
    (lambda ps: optim.NAdam(ps, decoupled_weight_decay="yes"), TypeError, "decoupled_weight_decay to be a bool"),
    (lambda ps: optim.RAdam(ps, betas=(0.9, 1.0)), ValueError, r"RAdam: expected betas\[1\] in \[0, 1\)"),
    (lambda ps: optim.RAdam(ps, eps=-1.0), ValueError, "RAdam: expected eps >= 0"),
    (lambda ps: optim.RMSprop([{"params": ps[:2]}, {"params": ps[2:], "alpha": -1}]), ValueError,
     "RMSprop: expected alpha >= 0 in param group 1, got -1"),
])
def test_bad_options_are_refused(make, error, message):
    model, _ = make_models(np.float64)
    with pytest.raises(error, match=message):
        make(list(model.parameters()))


@pytest.mark.parametrize("name", NAMES)
def test_bad_option_set_between_steps_is_refused_before_any_update(name):
    model, _ = make_models(np.float64)
    params = list(model.parameters())
    opt = optim.__dict__[name](params)
    opt.param_groups[0]["lr"] = -1.0
    before = [np.array(p) for p in params]
    for p in params:
        p.grad = np.ones(p.shape)
    with pytest.raises(ValueError, match=f"{name}: expected lr >= 0 in param group 0, got -1.0"):
        opt.step()
    for p, value in zip(params, before):
        np.testing.assert_array_equal(np.asarray(p), value)
