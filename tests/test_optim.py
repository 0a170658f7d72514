"""normlab.optim against torch.optim: 20 steps, step for step, over a grid of options.

Gradients are random (drawn once per step and given to both libraries), so the
tests check the update rules alone; one test also trains on a real loss. One
parameter receives a gradient only on even steps: a parameter whose grad is
None must be skipped entirely (no update, no state, no step count).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
from normlab import optim
from tests.oracle import assert_float32_close

# Tighter than the shared table for float64: the update is a handful of
# elementwise operations in the same order as torch, so only a few ulps may differ.
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14)}
# float32 runs are compared with torch in float64 from the same start and the same
# (float32) gradients, never with torch's float32 (its vector paths differ by CPU):
# parameters and state are O(1), so the bound is 64 float32 roundings of |value| + 1.
FLOAT32_ULPS = 64
STEPS = 20


def make_models(dtype, seed=0):
    """A small normlab MLP in ``dtype`` and the same torch MLP in float64 (the reference) with identical weights."""
    normlab.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4, dtype=dtype), nn.Tanh(), nn.Linear(4, 2, dtype=dtype))
    reference = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    reference.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in model.state_dict().items()})
    return model, reference


def assert_matches_reference(ours, reference, dtype, what: str, exact: bool = False) -> None:
    """``ours`` (in ``dtype``) against torch's float64 value: float64 within TOL, float32 within its roundings."""
    reference = reference.detach().numpy() if isinstance(reference, torch.Tensor) else np.asarray(reference)
    if exact:
        np.testing.assert_array_equal(np.asarray(ours), reference, err_msg=what)
    elif np.dtype(dtype) == np.float64:
        np.testing.assert_allclose(np.asarray(ours), reference, err_msg=what, **TOL[np.float64])
    else:
        assert_float32_close(ours, reference, scale=1.0, what=what, ulps=FLOAT32_ULPS)


def random_grads(params, rng, step, dtype):
    """One random gradient per parameter; the last parameter only gets one on even steps."""
    grads = [rng.standard_normal(p.shape).astype(dtype) for p in params]
    if step % 2 == 1:
        grads[-1] = None
    return grads


def set_grads(params, torch_params, grads):
    for p, tp, g in zip(params, torch_params, grads):
        p.grad = None if g is None else g.copy()
        tp.grad = None if g is None else torch.from_numpy(g.astype(np.float64))


def assert_params_close(params, torch_params, dtype, what):
    for i, (p, tp) in enumerate(zip(params, torch_params)):
        assert_matches_reference(p, tp, dtype, f"{what}: parameter {i}")
        assert p.dtype == np.dtype(dtype)


def assert_state_dicts_close(ours, theirs, dtype, what="state"):
    """normlab's optimizer state dict has torch's layout: same indices, keys and values."""
    assert sorted(ours["state"]) == sorted(theirs["state"]), f"{what}: state indices differ"
    for index, entry in theirs["state"].items():
        mine = ours["state"][index]
        assert set(mine) == set(entry), f"{what}: state keys of parameter {index}: {set(mine)} vs {set(entry)}"
        for key, value in entry.items():
            if value is None:
                assert mine[key] is None
                continue
            assert_matches_reference(mine[key], value, dtype, f"{what}: {key} of parameter {index}",
                                     exact=key == "step")
            if key != "step":
                assert mine[key].dtype == np.dtype(dtype)
    assert len(ours["param_groups"]) == len(theirs["param_groups"])
    for mine, group in zip(ours["param_groups"], theirs["param_groups"]):
        assert mine["params"] == group["params"]
        for key, value in mine.items():
            assert key in group, f"{what}: option {key!r} is not one of torch's"
            if key == "betas":
                assert tuple(value) == tuple(group[key])
            else:
                assert value == group[key], f"{what}: option {key}"


def run_against_torch(make_ours, make_theirs, dtype, groups=None, steps=STEPS, seed=0):
    """Drive both optimizers with the same gradients; compare parameters every step and state at the end."""
    model, reference = make_models(dtype, seed)
    params, torch_params = list(model.parameters()), list(reference.parameters())
    spec = groups or (lambda ps: ps)
    opt, topt = make_ours(spec(params)), make_theirs(spec(torch_params))
    rng = np.random.default_rng(seed + 1)
    for step in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        set_grads(params, torch_params, random_grads(params, rng, step, dtype))
        opt.step()
        topt.step()
        assert_params_close(params, torch_params, dtype, f"step {step + 1}")
    assert_state_dicts_close(opt.state_dict(), topt.state_dict(), dtype)
    return opt, topt


# ------------------------------------------------------------------- grids
SGD_GRID = [
    dict(lr=0.05, momentum=m, dampening=d, weight_decay=wd, nesterov=n, maximize=mx)
    for m, d, wd, n, mx in itertools.product([0.0, 0.9], [0.0, 0.5], [0.0, 0.01], [False, True], [False, True])
    if not n or (m > 0 and d == 0)
]
ADAM_GRID = [
    dict(lr=0.01, betas=b, eps=e, weight_decay=wd, amsgrad=a, maximize=mx)
    for b, e, wd, a, mx in itertools.product([(0.9, 0.999), (0.5, 0.8)], [1e-8], [0.0, 0.1], [False, True],
                                             [False, True])
] + [dict(lr=0.003, betas=(0.0, 0.0), eps=1e-3, weight_decay=0.0, amsgrad=True, maximize=False)]
DTYPES = [np.float64, np.float32]


def _id(options):
    return ",".join(f"{k}={v}" for k, v in options.items() if k != "lr")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("options", SGD_GRID, ids=_id)
def test_sgd_matches_torch(options, dtype):
    run_against_torch(lambda ps: optim.SGD(ps, **options),
                      lambda ps: torch.optim.SGD(ps, foreach=False, **options), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("options", ADAM_GRID, ids=_id)
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_matches_torch(name, options, dtype):
    run_against_torch(lambda ps: getattr(optim, name)(ps, **options),
                      lambda ps: getattr(torch.optim, name)(ps, foreach=False, **options), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_defaults_match_torch(name, dtype):
    """Only the parameters given: every default (lr=1e-3, AdamW's weight_decay=1e-2, ...) is torch's."""
    opt, topt = run_against_torch(lambda ps: getattr(optim, name)(ps),
                                  lambda ps: getattr(torch.optim, name)(ps, foreach=False), dtype)
    for key, value in opt.defaults.items():
        assert topt.defaults[key] == value, key


def _two_groups(params):
    # Different lr per group, and per-group overrides of other options.
    return [{"params": params[:2], "lr": 0.1},
            {"params": params[2:], "weight_decay": 0.05, "maximize": True}]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name,options", [
    ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.01, momentum=0.5, dampening=0.3)),
    ("Adam", dict(lr=0.003, amsgrad=True)),
    ("AdamW", dict(lr=0.003, betas=(0.8, 0.99))),
])
def test_param_groups_match_torch(name, options, dtype):
    run_against_torch(lambda ps: getattr(optim, name)(ps, **options),
                      lambda ps: getattr(torch.optim, name)(ps, foreach=False, **options),
                      dtype, groups=_two_groups)


@given(lr=st.floats(1e-4, 0.5), momentum=st.floats(0.0, 0.99), dampening=st.floats(0.0, 1.0),
       weight_decay=st.floats(0.0, 0.5), nesterov=st.booleans(), maximize=st.booleans())
def test_sgd_option_sweep(lr, momentum, dampening, weight_decay, nesterov, maximize):
    if nesterov and (momentum == 0 or dampening != 0):
        dampening = 0.0
        momentum = max(momentum, 0.1)
    options = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                   nesterov=nesterov, maximize=maximize)
    run_against_torch(lambda ps: optim.SGD(ps, **options),
                      lambda ps: torch.optim.SGD(ps, foreach=False, **options), np.float64, steps=8)


@given(lr=st.floats(1e-4, 0.1), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.0, 0.9999),
       eps=st.sampled_from([1e-8, 1e-6, 1e-3, 0.1]), weight_decay=st.floats(0.0, 0.5),
       amsgrad=st.booleans(), decoupled=st.booleans())
def test_adam_option_sweep(lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled):
    name = "AdamW" if decoupled else "Adam"
    options = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
    run_against_torch(lambda ps: getattr(optim, name)(ps, **options),
                      lambda ps: getattr(torch.optim, name)(ps, foreach=False, **options), np.float64, steps=8)


@pytest.mark.parametrize("name,options", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
])
def test_training_on_a_real_loss_matches_torch(name, options):
    """Gradients from backward through the model (normlab's own backward vs torch's), 20 steps, float64."""
    dtype = np.float64
    model, reference = make_models(dtype, seed=3)
    opt = getattr(optim, name)(model.parameters(), **options)
    topt = getattr(torch.optim, name)(reference.parameters(), foreach=False, **options)
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        topt.zero_grad()
        loss = ((model(normlab.tensor(x)) - normlab.tensor(y)) ** 2).mean()
        tloss = ((reference(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean()
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)
        losses.append(loss.item())
        for p, tp in zip(model.parameters(), reference.parameters()):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert losses[-1] < losses[0], "the optimizer should reduce the loss"


# ------------------------------------------------------------ state dicts
MAKERS = {
    "SGD": dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "Adam": dict(lr=0.01, betas=(0.8, 0.95), amsgrad=True, weight_decay=0.01),
    "AdamW": dict(lr=0.01, weight_decay=0.1),
}


def _grads_sequence(params, n, dtype, seed=11):
    rng = np.random.default_rng(seed)
    return [random_grads(params, rng, step, dtype) for step in range(n)]


def _apply(opt, params, grads):
    opt.zero_grad()
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.copy()
    opt.step()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_round_trip_continues_identically(name, dtype):
    """Save after 10 steps, load into a fresh optimizer, continue 10 steps: bit-identical to never stopping."""
    model, _ = make_models(dtype)
    params = list(model.parameters())
    sequence = _grads_sequence(params, STEPS, dtype)

    straight = getattr(optim, name)(params, **MAKERS[name])
    start = [np.array(p) for p in params]
    for grads in sequence:
        _apply(straight, params, grads)
    expected = [np.array(p) for p in params]

    for p, value in zip(params, start):
        p.data[...] = value
    first = getattr(optim, name)(params, **MAKERS[name])
    for grads in sequence[:10]:
        _apply(first, params, grads)
    saved = first.state_dict()
    snapshot = {i: {k: np.array(v, copy=True) for k, v in s.items()} for i, s in saved["state"].items()}
    for grads in sequence[10:12]:
        _apply(first, params, grads)  # keeps going: the saved dict must not change (it holds copies)
    for i, entry in snapshot.items():
        for key, value in entry.items():
            np.testing.assert_array_equal(saved["state"][i][key], value)

    # Rewind the parameters to step 10 and continue from the saved state in a fresh optimizer,
    # built with other options: the loaded groups must replace them.
    model2, _ = make_models(dtype, seed=5)
    params2 = list(model2.parameters())
    first_again = getattr(optim, name)(params, **MAKERS[name])
    for p, value in zip(params, start):
        p.data[...] = value
    for grads in sequence[:10]:
        _apply(first_again, params, grads)
    for p2, p in zip(params2, params):
        p2.data[...] = p.data
    fresh = getattr(optim, name)(params2, lr=0.5)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == MAKERS[name]["lr"]
    for grads in sequence[10:]:
        _apply(fresh, params2, grads)
    for p2, value in zip(params2, expected):
        np.testing.assert_array_equal(p2.data, value)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_moves_between_torch_and_normlab(name, dtype):
    """torch's state dict (as NumPy) loads into normlab and normlab's into torch; both then continue equal."""
    model, reference = make_models(dtype)
    params, torch_params = list(model.parameters()), list(reference.parameters())
    opt = getattr(optim, name)(params, **MAKERS[name])
    topt = getattr(torch.optim, name)(torch_params, foreach=False, **MAKERS[name])
    rng = np.random.default_rng(21)
    for step in range(6):
        opt.zero_grad()
        topt.zero_grad()
        set_grads(params, torch_params, random_grads(params, rng, step, dtype))
        opt.step()
        topt.step()

    # torch -> normlab: a fresh normlab optimizer takes torch's state (tensors converted to arrays).
    torch_state = topt.state_dict()
    as_numpy = {
        "state": {i: {k: (None if v is None else v.detach().numpy().copy()) for k, v in s.items()}
                  for i, s in torch_state["state"].items()},
        "param_groups": [dict(g) for g in torch_state["param_groups"]],
    }
    fresh = getattr(optim, name)(params, lr=0.9)
    fresh.load_state_dict(as_numpy)
    # normlab -> torch: a fresh torch optimizer takes normlab's state.
    ours = opt.state_dict()
    tfresh = getattr(torch.optim, name)(torch_params, lr=0.9, foreach=False)
    tfresh.load_state_dict({
        "state": {i: {k: (None if v is None else torch.from_numpy(np.array(v))) for k, v in s.items()}
                  for i, s in ours["state"].items()},
        "param_groups": [dict(g, foreach=False) for g in ours["param_groups"]],
    })
    for step in range(6, 12):
        fresh.zero_grad()
        tfresh.zero_grad()
        set_grads(params, torch_params, random_grads(params, rng, step, dtype))
        fresh.step()
        tfresh.step()
        assert_params_close(params, torch_params, dtype, f"step {step + 1} after the exchange")


def _trained(name="Adam", dtype=np.float64):
    model, _ = make_models(dtype)
    params = list(model.parameters())
    opt = getattr(optim, name)(params, **MAKERS[name])
    for grads in _grads_sequence(params, 3, dtype):
        _apply(opt, params, grads)
    return opt, params


def _assert_unchanged(opt, before):
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert sorted(after["state"]) == sorted(before["state"])
    for i, entry in before["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(after["state"][i][key], value)


@pytest.mark.parametrize("corrupt,message", [
    (lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0], params=[])), "2 parameter groups"),
    (lambda sd: sd["param_groups"][0]["params"].pop(), "has 3 parameters, the optimizer's group has 4"),
    (lambda sd: sd["state"][0].update(exp_avg=np.zeros((9, 9))), r"'exp_avg' of parameter 0: expected shape \(4, 3\)"),
    (lambda sd: sd["state"][1].pop("max_exp_avg_sq"), "parameter 1 is missing 'max_exp_avg_sq'"),
    (lambda sd: sd["state"].update({7: {}}), "state for parameter 7, which is in no param group"),
    (lambda sd: sd["param_groups"][0].update(lr=-0.5), "Adam: expected lr >= 0 in param group 0, got -0.5"),
    (lambda sd: sd["state"][0].update(step=np.array(-1.0)), "non-negative scalar step"),
    (lambda sd: sd.pop("state"), "'state' and 'param_groups'"),
])
def test_load_state_dict_refuses_bad_input_and_changes_nothing(corrupt, message):
    opt, params = _trained("Adam")
    before = opt.state_dict()
    bad = opt.state_dict()
    corrupt(bad)
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(bad)
    _assert_unchanged(opt, before)


def test_sgd_load_requires_momentum_buffers():
    opt, _ = _trained("SGD")
    before = opt.state_dict()
    bad = opt.state_dict()
    bad["state"][2] = {"momentum_buffer": None}
    with pytest.raises(ValueError, match="SGD: the state of parameter 2 is missing 'momentum_buffer'"):
        opt.load_state_dict(bad)
    _assert_unchanged(opt, before)


def test_loaded_state_is_cast_to_the_parameter_dtype_and_copied():
    opt, params = _trained("Adam", np.float32)
    saved = opt.state_dict()
    as_f64 = {"state": {i: {k: v.astype(np.float64) if k != "step" else v for k, v in s.items()}
                        for i, s in saved["state"].items()},
              "param_groups": saved["param_groups"]}
    opt.load_state_dict(as_f64)
    for p in params:
        assert opt.state[p]["exp_avg"].dtype == np.float32
    as_f64["state"][0]["exp_avg"][...] = 123.0  # the optimizer keeps its own copy
    assert not np.any(opt.state[params[0]]["exp_avg"] == 123.0)


# ---------------------------------------------------------- validation
@pytest.mark.parametrize("make,error,message", [
    (lambda ps: optim.SGD(ps, lr=-1), ValueError, "SGD: expected lr >= 0, got -1"),
    (lambda ps: optim.SGD(ps, momentum=-0.1), ValueError, "SGD: expected momentum >= 0, got -0.1"),
    (lambda ps: optim.SGD(ps, weight_decay=-1e-4), ValueError, "SGD: expected weight_decay >= 0, got -0.0001"),
    (lambda ps: optim.SGD(ps, nesterov=True), ValueError, "nesterov momentum requires momentum > 0 and dampening == 0"),
    (lambda ps: optim.SGD(ps, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "dampening=0.1"),
    (lambda ps: optim.SGD(ps, lr=float("nan")), ValueError, "SGD: expected lr >= 0, got nan"),
    (lambda ps: optim.SGD(ps, lr="0.1"), TypeError, "SGD: expected lr to be a real number"),
    (lambda ps: optim.SGD(ps, nesterov="yes"), TypeError, "SGD: expected nesterov to be a bool"),
    (lambda ps: optim.Adam(ps, lr=-1e-3), ValueError, "Adam: expected lr >= 0, got -0.001"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), ValueError, r"Adam: expected betas\[0\] in \[0, 1\), got 1.0"),
    (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), ValueError, r"Adam: expected betas\[1\] in \[0, 1\), got -0.1"),
    (lambda ps: optim.Adam(ps, betas=0.9), ValueError, "Adam: expected betas to be a pair"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), ValueError, "Adam: expected eps >= 0, got -1e-08"),
    (lambda ps: optim.AdamW(ps, weight_decay=-0.01), ValueError, "AdamW: expected weight_decay >= 0, got -0.01"),
    (lambda ps: optim.AdamW(ps, amsgrad=None), TypeError, "AdamW: expected amsgrad to be a bool"),
    (lambda ps: optim.SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": -2}]), ValueError,
     "SGD: expected lr >= 0 in param group 1, got -2"),
    (lambda ps: optim.SGD([]), ValueError, "SGD: optimizer got an empty parameter list"),
    (lambda ps: optim.SGD(ps[0]), TypeError, "got a single Tensor"),
    (lambda ps: optim.SGD(set(ps)), TypeError, "ordered collections"),
    (lambda ps: optim.SGD([ps[0], ps[0]]), ValueError, "the same parameter more than once"),
    (lambda ps: optim.SGD([{"params": ps[:2]}, {"params": ps[1:]}]), ValueError, "more than one parameter group"),
    (lambda ps: optim.SGD([ps[0] * 2]), ValueError, "can't optimize a non-leaf Tensor"),
    (lambda ps: optim.SGD([np.zeros(3)]), TypeError, "can only optimize Tensors"),
])
def test_bad_options_are_refused(make, error, message):
    model, _ = make_models(np.float64)
    with pytest.raises(error, match=message):
        make(list(model.parameters()))


def test_bad_gradient_shape_is_refused_before_any_update():
    model, _ = make_models(np.float64)
    params = list(model.parameters())
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    before = [np.array(p) for p in params]
    for p in params:
        p.grad = np.ones_like(p.data)
    with pytest.raises(RuntimeError, match=r"assigned grad has data of a different size"):
        params[-1].grad = np.ones(7)  # refused at assignment, as in torch
    params[-1].data = np.zeros(7)  # the parameter changed shape under its gradient
    before[-1] = np.zeros(7)
    with pytest.raises(ValueError, match=r"SGD: expected the gradient of a parameter of shape \(7,\)"):
        opt.step()
    for p, value in zip(params, before):
        np.testing.assert_array_equal(p.data, value)
    assert len(opt.state) == 0


def test_step_checks_options_changed_between_steps():
    model, _ = make_models(np.float64)
    opt = optim.Adam(model.parameters())
    opt.param_groups[0]["lr"] = -1.0  # e.g. a broken schedule
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    with pytest.raises(ValueError, match="Adam: expected lr >= 0 in param group 0, got -1.0"):
        opt.step()
    assert len(opt.state) == 0


# ------------------------------------------------------------- behaviour
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_parameters_without_grad_are_skipped(name):
    model, _ = make_models(np.float64)
    params = list(model.parameters())
    opt = getattr(optim, name)(params, lr=0.1, weight_decay=0.1)
    before = [np.array(p) for p in params]
    params[0].grad = np.ones_like(params[0].data)
    opt.step()
    assert not np.array_equal(params[0].data, before[0])
    for p, value in zip(params[1:], before[1:]):
        np.testing.assert_array_equal(p.data, value)  # not even weight decay touches them
    assert all(p not in opt.state or not opt.state[p] for p in params[1:])


def test_updates_are_in_place():
    model, _ = make_models(np.float32)
    params = list(model.parameters())
    arrays = [np.asarray(p) for p in params]
    opt = optim.AdamW(params, lr=0.1)
    for p in params:
        p.grad = np.ones_like(p.data)
    opt.step()
    assert all(np.asarray(p) is a for p, a in zip(params, arrays))
    assert all(p.dtype == np.float32 for p in params)


def test_zero_grad_to_none_or_to_zeros():
    model, _ = make_models(np.float64)
    params = list(model.parameters())
    opt = optim.SGD(params, lr=0.1)
    for p in params:
        p.grad = np.ones_like(p.data)
    grads = [p.grad for p in params]
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.any() for p, g in zip(params, grads))
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_calls_the_closure_and_returns_its_loss():
    model, _ = make_models(np.float64)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = normlab.tensor(np.ones((2, 3)))

    def closure():
        opt.zero_grad()
        loss = model(x).pow(2).sum()
        loss.backward()
        return loss

    with normlab.no_grad():
        loss = opt.step(closure)  # the closure records a graph even under no_grad
    assert loss.item() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_add_param_group_uses_defaults_and_named_parameters():
    model, reference = make_models(np.float64)
    first, second = model[0], model[2]
    opt = optim.SGD(first.named_parameters(), lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    opt.add_param_group({"params": list(second.parameters()), "lr": 0.01})
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.01
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [second.weight]})
    assert len(opt.param_groups) == 2

    topt = torch.optim.SGD(reference[0].parameters(), lr=0.1, momentum=0.9, foreach=False)
    topt.add_param_group({"params": list(reference[2].parameters()), "lr": 0.01})
    params, torch_params = list(model.parameters()), list(reference.parameters())
    rng = np.random.default_rng(3)
    for step in range(5):
        set_grads(params, torch_params, random_grads(params, rng, step, np.float64))
        opt.step()
        topt.step()
    assert_params_close(params, torch_params, np.float64, "after add_param_group")


def test_repr_lists_groups_like_torch():
    model, _ = make_models(np.float64)
    text = repr(optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    assert text.startswith("SGD (\nParameter Group 0\n")
    assert "    lr: 0.1\n" in text and "    momentum: 0.9\n" in text and text.endswith(")")


def test_amsgrad_switched_on_between_steps_starts_its_maximum():
    model, _ = make_models(np.float64)
    params = list(model.parameters())
    opt = optim.Adam(params, lr=0.01)
    for grads in _grads_sequence(params, 2, np.float64):
        _apply(opt, params, grads)
    opt.param_groups[0]["amsgrad"] = True
    _apply(opt, params, _grads_sequence(params, 1, np.float64, seed=2)[0])
    for p in params[:-1]:
        np.testing.assert_array_equal(opt.state[p]["max_exp_avg_sq"], opt.state[p]["exp_avg_sq"])
