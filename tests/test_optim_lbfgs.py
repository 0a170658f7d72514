"""LBFGS against torch.optim.LBFGS: iteration for iteration, with and without the strong-Wolfe line search.

Both libraries run the same algorithm; the only differences are the summation
orders of dot products and norms (NumPy's BLAS vs torch's), which L-BFGS
carries forward and a non-convex problem amplifies (on the MLP below the
parameters drift apart from ~1e-15 to ~1e-7 (relative) over 40 iterations and ~1e-5 by
80), so the step-for-step tests stop after 30-40 iterations and compare with
the tolerance below; the counters (evaluations, iterations, history length)
agree exactly.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import normlab
import normlab.nn as nn
from normlab import optim

RTOL, ATOL = 1e-6, 1e-9


def _problem(kind, dtype=np.float64, seed=0):
    """(normlab params, torch params, normlab loss(), torch loss()) for a small problem."""
    rng = np.random.default_rng(seed)
    if kind == "rosenbrock":
        start = np.array([-1.5, 2.0, 0.5, -0.5])
        ours = [normlab.tensor(start.astype(dtype), requires_grad=True)]
        theirs = [torch.tensor(start, requires_grad=True)]

        def rosenbrock(x, lib):
            return lib.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

        return ours, theirs, lambda: rosenbrock(ours[0], normlab), lambda: rosenbrock(theirs[0], torch)
    normlab.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 5, dtype=dtype), nn.Tanh(), nn.Linear(5, 2, dtype=dtype))
    reference = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    reference.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in model.state_dict().items()})
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    xo, yo = normlab.tensor(x.astype(dtype)), normlab.tensor(y.astype(dtype))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ours, theirs = list(model.parameters()), list(reference.parameters())
    if kind == "mlp+unused":  # a parameter the loss never reaches: its gradient stays None (zeros in the flat vector)
        ours.append(normlab.tensor(np.ones(2, dtype=dtype), requires_grad=True))
        theirs.append(torch.ones(2, dtype=torch.float64, requires_grad=True))
    return ours, theirs, lambda: ((model(xo) - yo) ** 2).mean(), lambda: ((reference(xt) - yt) ** 2).mean()


def _closure(opt, loss):
    def closure():
        opt.zero_grad()
        value = loss()
        value.backward()
        return value
    return closure


def _compare(opt, topt, ours, theirs, what):
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(p), tp.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=what)
    mine, state = opt.state[ours[0]], topt.state[theirs[0]]
    assert (mine["func_evals"], mine["n_iter"]) == (state["func_evals"], state["n_iter"]), what
    assert len(mine["old_dirs"]) == len(state["old_dirs"]), what
    d = state["d"].numpy()
    np.testing.assert_allclose(mine["d"], d, rtol=0, atol=1e-6 * np.abs(d).max(), err_msg=what)


OPTIONS = [
    dict(),
    dict(line_search_fn="strong_wolfe"),
    dict(history_size=3, max_iter=8),
    dict(history_size=2, line_search_fn="strong_wolfe", max_iter=6, max_eval=9),
    dict(lr=0.5, max_iter=5),
    dict(lr=0.3, line_search_fn="strong_wolfe", tolerance_change=1e-5),
    dict(max_iter=1),
    dict(max_iter=3, max_eval=2, line_search_fn="strong_wolfe"),
    # A first step far too long: the line search brackets and zooms (~25 interpolations per step() call).
    dict(lr=5, line_search_fn="strong_wolfe"),
    dict(lr=20, line_search_fn="strong_wolfe", history_size=3),
    # A first step far too short: the line search extrapolates.
    dict(lr=0.01, line_search_fn="strong_wolfe"),
]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("kind", ["mlp", "rosenbrock", "mlp+unused"])
def test_matches_torch_step_for_step(kind, options):
    ours, theirs, loss, tloss = _problem(kind)
    opt, topt = optim.LBFGS(ours, **options), torch.optim.LBFGS(theirs, **options)
    for step in range(4):
        value, tvalue = opt.step(_closure(opt, loss)), topt.step(_closure(topt, tloss))
        np.testing.assert_allclose(value.item(), tvalue.item(), rtol=RTOL, err_msg=f"step {step}")
        _compare(opt, topt, ours, theirs, f"{kind}, step {step}")
        if opt.state[ours[0]]["n_iter"] >= 30:
            break
    assert opt.param_groups[0]["max_eval"] == topt.param_groups[0]["max_eval"]


def test_strong_wolfe_converges_on_rosenbrock_like_torch():
    """To the same stationary point as torch (from this start, the 4-d Rosenbrock's local minimum near -0.78)."""
    ours, theirs, loss, tloss = _problem("rosenbrock")
    opt = optim.LBFGS(ours, line_search_fn="strong_wolfe", max_iter=200, tolerance_grad=1e-12,
                      tolerance_change=1e-14)
    topt = torch.optim.LBFGS(theirs, line_search_fn="strong_wolfe", max_iter=200, tolerance_grad=1e-12,
                             tolerance_change=1e-14)
    opt.step(_closure(opt, loss))
    topt.step(_closure(topt, tloss))
    assert np.abs(np.asarray(ours[0].grad)).max() < 1e-5  # converged (the last gradient evaluated)
    np.testing.assert_allclose(np.asarray(ours[0]), theirs[0].detach().numpy(), atol=1e-9)


def test_float32_converges_to_the_least_squares_solution():
    """float32 against the exact (float64) minimizer of a linear least-squares problem."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((30, 4)), rng.standard_normal(30)
    exact = np.linalg.lstsq(a, b, rcond=None)[0]
    w = normlab.tensor(np.zeros(4, dtype=np.float32), requires_grad=True)
    a32, b32 = normlab.tensor(a.astype(np.float32)), normlab.tensor(b.astype(np.float32))
    opt = optim.LBFGS([w], line_search_fn="strong_wolfe", max_iter=50)
    opt.step(_closure(opt, lambda: ((a32 @ w - b32) ** 2).sum()))
    assert w.dtype == np.float32 and opt.state[w]["d"].dtype == np.float32
    np.testing.assert_allclose(np.asarray(w), exact, rtol=1e-4, atol=1e-5)


def test_stops_at_once_when_already_optimal():
    w = normlab.tensor(np.zeros(3), requires_grad=True)
    opt = optim.LBFGS([w])
    loss = opt.step(_closure(opt, lambda: (w ** 2).sum()))
    assert loss.item() == 0 and opt.state[w] == {"func_evals": 1, "n_iter": 0}


# ------------------------------------------------------------ state dicts
def _torch_state_as_numpy(state_dict):
    def convert(value):
        if isinstance(value, torch.Tensor):
            return value.numpy().copy()
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value
    return {"state": {i: {k: convert(v) for k, v in s.items()} for i, s in state_dict["state"].items()},
            "param_groups": [dict(g) for g in state_dict["param_groups"]]}


def _numpy_state_as_torch(state_dict):
    def convert(value):
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value.copy())
        if isinstance(value, np.generic):
            return torch.tensor(value.item(), dtype=torch.float64)
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value
    return {"state": {i: {k: convert(v) for k, v in s.items()} for i, s in state_dict["state"].items()},
            "param_groups": [dict(g) for g in state_dict["param_groups"]]}


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_state_dict_round_trip_continues_identically(line_search_fn):
    options = dict(line_search_fn=line_search_fn, history_size=4, max_iter=5)
    ours, _, loss, _ = _problem("mlp")
    start = [np.array(p) for p in ours]
    straight = optim.LBFGS(ours, **options)
    for _ in range(4):
        straight.step(_closure(straight, loss))
    expected = [np.array(p) for p in ours]

    for p, value in zip(ours, start):
        p.data[...] = value
    first = optim.LBFGS(ours, **options)
    for _ in range(2):
        first.step(_closure(first, loss))
    saved = first.state_dict()
    assert sorted(saved["state"]) == [0] and len(saved["state"][0]["old_dirs"]) > 0
    fresh = optim.LBFGS(ours, lr=0.1)
    fresh.load_state_dict(saved)
    saved["state"][0]["d"][...] = 0  # the optimizer holds its own copy
    for _ in range(2):
        fresh.step(_closure(fresh, loss))
    for p, value in zip(ours, expected):
        np.testing.assert_array_equal(np.asarray(p), value)


def test_state_dict_moves_between_torch_and_normlab():
    options = dict(line_search_fn="strong_wolfe", history_size=3, max_iter=4)
    ours, theirs, loss, tloss = _problem("mlp")
    opt, topt = optim.LBFGS(ours, **options), torch.optim.LBFGS(theirs, **options)
    for _ in range(2):
        opt.step(_closure(opt, loss))
        topt.step(_closure(topt, tloss))
    assert set(opt.state_dict()["state"][0]) == set(topt.state_dict()["state"][0])
    mine, torchs = opt.state_dict(), topt.state_dict()
    fresh, tfresh = optim.LBFGS(ours, **options), torch.optim.LBFGS(theirs, **options)
    fresh.load_state_dict(_torch_state_as_numpy(torchs))
    tfresh.load_state_dict(_numpy_state_as_torch(mine))
    for step in range(3):
        fresh.step(_closure(fresh, loss))
        tfresh.step(_closure(tfresh, tloss))
        _compare(fresh, tfresh, ours, theirs, f"after the exchange, step {step}")


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize("make,error,message", [
    (lambda ps: optim.LBFGS([{"params": ps[:1]}, {"params": ps[1:]}]), ValueError,
     "LBFGS doesn't support per-parameter options"),
    (lambda ps: optim.LBFGS(ps, line_search_fn="armijo"), ValueError,
     "LBFGS: expected line_search_fn to be None or 'strong_wolfe', got 'armijo'"),
    (lambda ps: optim.LBFGS(ps, max_iter=0), ValueError, "LBFGS: expected max_iter to be a positive integer, got 0"),
    (lambda ps: optim.LBFGS(ps, history_size=2.5), ValueError, "LBFGS: expected history_size to be a positive integer"),
    (lambda ps: optim.LBFGS(ps, lr=-1), ValueError, "LBFGS: expected lr >= 0, got -1"),
    (lambda ps: optim.LBFGS([ps[0], normlab.tensor(np.ones(2, dtype=np.float32), requires_grad=True)]), TypeError,
     "LBFGS: expected all parameters to have one dtype"),
])
def test_bad_options_are_refused(make, error, message):
    ours, _, _, _ = _problem("mlp")
    with pytest.raises(error, match=message):
        make(ours)


def test_a_second_group_and_a_missing_closure_are_refused():
    ours, _, _, _ = _problem("mlp")
    opt = optim.LBFGS(ours[:2])
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        opt.add_param_group({"params": ours[2:]})
    assert len(opt.param_groups) == 1
    with pytest.raises(TypeError, match="LBFGS: step\\(\\) needs a closure"):
        opt.step()
