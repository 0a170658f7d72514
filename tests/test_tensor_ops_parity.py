"""Tensor methods and functions torch code uses daily, against torch in float64 with random upstream gradients.

Each case calls normlab and torch with the same arguments (the same keyword
names), compares every output (values exactly for indices) and, through a
random upstream gradient on every floating-point output, every input's
gradient. Hypothesis sweeps shapes and dims for the reductions.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import normlab
from tests.oracle import assert_close, assert_float32_close, numerical_gradient, random_upstream

INF = float("inf")


def _outputs(value) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def compare(ours_fn, torch_fn, arrays, rng, *, grad=True, what=""):
    """Run both on float64 copies of ``arrays``; compare outputs and the gradient of every input."""
    ours_in = [normlab.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    torch_in = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    ours_out, torch_out = _outputs(ours_fn(*ours_in)), _outputs(torch_fn(*torch_in))
    assert len(ours_out) == len(torch_out), f"{what}: {len(ours_out)} outputs, torch {len(torch_out)}"
    seeds = []
    for i, (o, t) in enumerate(zip(ours_out, torch_out)):
        if not isinstance(t, torch.Tensor):
            assert o == t, f"{what} output {i}"
            continue
        assert isinstance(o, normlab.Tensor), f"{what} output {i}: expected a Tensor, got {type(o).__name__}"
        assert o.dtype == np.dtype(str(t.dtype).replace("torch.", "")), f"{what} output {i}: dtype {o.dtype} vs {t.dtype}"
        assert_close(o, t, np.float64, f"{what} output {i}")
        if grad and t.requires_grad:
            assert o.requires_grad, f"{what} output {i} should require grad"
            seeds.append((o, t, random_upstream(tuple(t.shape), np.float64, rng)))
    if not seeds:
        return
    sum((o * g).sum() for o, _, g in seeds).backward()
    sum((t * torch.from_numpy(g)).sum() for _, t, g in seeds).backward()
    for i, (o, t) in enumerate(zip(ours_in, torch_in)):
        if t.requires_grad:
            expected = t.grad if t.grad is not None else torch.zeros_like(t)
            actual = o.grad if o.grad is not None else np.zeros(o.shape)
            assert_close(actual, expected, np.float64, f"{what} gradient of input {i}")


def _data(rng, shape, domain="any"):
    x = rng.standard_normal(shape)
    if domain == "positive":
        return np.abs(x) + 0.5
    if domain == "away":  # away from 0 (reciprocal, abs at its kink)
        return np.sign(x) * (np.abs(x) + 0.3)
    if domain == "unit":  # inside (-1, 1), for tan and log1p
        return np.tanh(x) * 0.9
    return x


# ------------------------------------------------------------------ elementwise
UNARY = [
    ("exp", lambda x: x.exp(), "any"), ("log", lambda x: x.log(), "positive"), ("sqrt", lambda x: x.sqrt(), "positive"),
    ("sin", lambda x: x.sin(), "any"), ("cos", lambda x: x.cos(), "any"), ("tan", lambda x: x.tan(), "unit"),
    ("log1p", lambda x: x.log1p(), "unit"), ("expm1", lambda x: x.expm1(), "any"),
    ("log2", lambda x: x.log2(), "positive"), ("log10", lambda x: x.log10(), "positive"),
    ("reciprocal", lambda x: x.reciprocal(), "away"), ("rsqrt", lambda x: x.rsqrt(), "positive"),
    ("square", lambda x: x.square(), "any"), ("abs", lambda x: x.abs(), "away"), ("abs()", lambda x: abs(x), "away"),
    ("sign", lambda x: x.sign(), "any"), ("floor", lambda x: (3 * x).floor(), "any"),
    ("ceil", lambda x: (3 * x).ceil(), "any"), ("round", lambda x: (3 * x).round(), "any"),
    ("round(decimals)", lambda x: x.round(decimals=2), "any"), ("trunc", lambda x: (3 * x).trunc(), "any"),
    ("sigmoid", lambda x: x.sigmoid(), "any"), ("tanh", lambda x: x.tanh(), "any"), ("relu", lambda x: x.relu(), "away"),
    ("neg", lambda x: x.neg(), "any"), ("clamp", lambda x: x.clamp(min=-0.5, max=0.4), "any"),
    ("clamp(min)", lambda x: x.clamp(min=0.1), "any"), ("clamp_min", lambda x: x.clamp_min(-0.2), "any"),
    ("clamp_max", lambda x: x.clamp_max(0.3), "any"), ("pow", lambda x: x.pow(3), "any"),
    ("pow(real)", lambda x: x.pow(2.5), "positive"), ("rpow", lambda x: 2.0 ** x, "any"),
    ("softmax", lambda x: x.softmax(dim=1), "any"), ("log_softmax", lambda x: x.log_softmax(0), "any"),
    ("remainder", lambda x: x.remainder(0.7), "any"), ("%", lambda x: x % 0.7, "any"),
    ("div floor", lambda x: x.div(0.3, rounding_mode="floor"), "any"),
    ("div trunc", lambda x: x.div(0.3, rounding_mode="trunc"), "any"),
    ("sinh", lambda x: x.sinh(), "any"), ("cosh", lambda x: x.cosh(), "any"), ("asin", lambda x: x.asin(), "unit"),
    ("acos", lambda x: x.acos(), "unit"), ("atan", lambda x: x.atan(), "any"), ("exp2", lambda x: x.exp2(), "any"),
    ("fmod", lambda x: x.fmod(0.7), "any"), ("lerp", lambda x: x.lerp(x * x, 0.3), "any"),
    ("addcmul", lambda x: x.addcmul(x, x.exp(), value=0.5), "any"),
    ("addcdiv", lambda x: x.addcdiv(x, x.exp(), value=-2), "any"),
    ("addmm", lambda x: x[:, :3].addmm(x, x.t(), beta=0.5, alpha=2.0), "any"),
    ("diagonal", lambda x: x.diagonal(1), "any"), ("diagonal dims", lambda x: x.diagonal(-1, 1, 0), "any"),
    ("trace", lambda x: x.trace(), "any"), ("diff", lambda x: x.diff(), "any"),
    ("diff twice", lambda x: x.diff(2, dim=0, append=x[:1]), "any"),
    ("kthvalue", lambda x: x.kthvalue(2, 1), "any"), ("kthvalue keepdim", lambda x: x.kthvalue(3, dim=0, keepdim=True), "any"),
]


@pytest.mark.parametrize("name, op, domain", UNARY, ids=[c[0] for c in UNARY])
def test_elementwise_methods_match_torch(rng, name, op, domain):
    compare(op, op, [_data(rng, (3, 4), domain)], rng, what=name)


FUNCTIONS = ["exp", "log", "sqrt", "sin", "cos", "log1p", "expm1", "reciprocal", "rsqrt", "square", "abs", "sign",
             "floor", "ceil", "trunc", "sigmoid", "tanh", "relu", "neg"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functional_forms_match_torch(rng, name):
    compare(getattr(normlab, name), getattr(torch, name), [_data(rng, (2, 3), "positive")], rng, what=name)


def test_floor_division_and_integer_division_match_torch(rng):
    x = rng.standard_normal((3, 4)) * 3
    np.testing.assert_array_equal((normlab.tensor(x) // 0.7).numpy(), (torch.tensor(x) // 0.7).numpy())
    a, b = np.array([-7, 7, -6, 5]), np.array([2, -2, 4, 3])
    for mode in ("floor", "trunc"):
        ours = normlab.tensor(a).div(normlab.tensor(b), rounding_mode=mode)
        theirs = torch.tensor(a).div(torch.tensor(b), rounding_mode=mode)
        assert ours.dtype == np.int64 and ours.tolist() == theirs.tolist(), mode
    assert (normlab.tensor(a) % normlab.tensor(b)).tolist() == (torch.tensor(a) % torch.tensor(b)).tolist()
    assert (normlab.tensor(a) // 2).tolist() == (torch.tensor(a) // 2).tolist()
    # a float quotient rounded by a rounding mode has a zero gradient, as torch's
    t = normlab.tensor(x, requires_grad=True)
    t.div(0.7, rounding_mode="floor").sum().backward()
    assert not t.grad.numpy().any()


def test_integer_inputs_are_promoted_to_the_default_float_dtype_as_torch():
    for name in ("exp", "log", "sqrt", "sin", "cos", "reciprocal", "rsqrt", "log1p"):
        ours, theirs = getattr(normlab.arange(1, 4), name)(), getattr(torch.arange(1, 4), name)()
        assert ours.dtype == np.float32 and theirs.dtype == torch.float32, name
        assert_float32_close(ours, getattr(np, {"rsqrt": "sqrt"}.get(name, name))(np.arange(1.0, 4.0)) ** (
            -1 if name == "rsqrt" else 1), scale=1.0, what=name)


BINARY = [
    ("add alpha", lambda a, b: a.add(b, alpha=2.5)), ("sub alpha", lambda a, b: a.sub(b, alpha=-0.5)),
    ("mul", lambda a, b: a.mul(b)), ("div", lambda a, b: a.div(b)), ("maximum", lambda a, b: a.maximum(b)),
    ("minimum", lambda a, b: a.minimum(b)), ("max(other)", lambda a, b: a.max(b)), ("min(other)", lambda a, b: a.min(b)),
    ("remainder", lambda a, b: a.remainder(b)), ("pow", lambda a, b: a.abs().pow(b)),
]


@pytest.mark.parametrize("name, op", BINARY, ids=[c[0] for c in BINARY])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1))])
def test_binary_methods_match_torch_with_broadcasting(rng, name, op, shapes):
    a, b = _data(rng, shapes[0], "away"), _data(rng, shapes[1], "away")
    compare(op, op, [a, b], rng, what=name)


def test_where_masked_fill_and_the_free_functions(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    mask = rng.random((3, 4)) > 0.5
    compare(lambda x, y: normlab.where(normlab.tensor(mask), x, y), lambda x, y: torch.where(torch.tensor(mask), x, y),
            [a, b], rng, what="where")
    compare(lambda x, y: x.where(normlab.tensor(mask), y), lambda x, y: x.where(torch.tensor(mask), y), [a, b], rng,
            what="Tensor.where")
    compare(lambda x: x.masked_fill(normlab.tensor(mask[0]), -1.5), lambda x: x.masked_fill(torch.tensor(mask[0]), -1.5),
            [a], rng, what="masked_fill")
    compare(lambda x: normlab.clamp(x, min=-0.1), lambda x: torch.clamp(x, min=-0.1), [a], rng, what="torch.clamp")
    compare(lambda x: normlab.pow(2.0, x), lambda x: torch.pow(2.0, x), [a], rng, what="pow(number, tensor)")
    (idx,) = normlab.where(normlab.tensor([True, False, True]))
    assert idx.tolist() == torch.where(torch.tensor([True, False, True]))[0].tolist()


def test_comparisons_and_logic_give_bool_tensors_as_torch(rng):
    a, b = rng.integers(0, 3, (4, 5)).astype(np.float64), rng.integers(0, 3, (5,)).astype(np.float64)
    ta, tb, na, nb = torch.tensor(a), torch.tensor(b), normlab.tensor(a), normlab.tensor(b)
    for name in ("eq", "ne", "lt", "le", "gt", "ge", "greater", "less_equal", "not_equal"):
        ours, theirs = getattr(na, name)(nb), getattr(ta, name)(tb)
        assert ours.dtype == np.bool_ and np.array_equal(ours.numpy(), theirs.numpy()), name
        assert np.array_equal(getattr(normlab, name)(na, 1.0).numpy(), getattr(torch, name)(ta, 1.0).numpy()), name
    m, n = na > 0, nb < 2
    assert np.array_equal((m & n).numpy(), ((ta > 0) & (tb < 2)).numpy())
    assert np.array_equal((m | n).numpy(), ((ta > 0) | (tb < 2)).numpy())
    assert np.array_equal((m ^ n).numpy(), ((ta > 0) ^ (tb < 2)).numpy())
    assert np.array_equal((~m).numpy(), (~(ta > 0)).numpy())
    assert np.array_equal(m.logical_and(n).numpy(), (ta > 0).logical_and(tb < 2).numpy())
    assert np.array_equal(normlab.logical_not(m).numpy(), torch.logical_not(ta > 0).numpy())
    x = np.array([1.0, np.nan, np.inf, -np.inf])
    for name in ("isnan", "isinf", "isfinite"):
        assert np.array_equal(getattr(normlab.tensor(x), name)().numpy(), getattr(torch.tensor(x), name)().numpy())
    assert normlab.equal(na, normlab.tensor(a)) and not normlab.equal(na, nb)
    assert normlab.allclose(na, na + 1e-9) == torch.allclose(ta, ta + 1e-9)
    assert np.array_equal(na.isclose(na + 1e-3).numpy(), ta.isclose(ta + 1e-3).numpy())
    with pytest.raises(TypeError, match="operator ~: expected a bool or integer tensor"):
        ~normlab.tensor([1.0])


# ------------------------------------------------------------------ reductions
def _dims(ndim):
    return st.one_of(st.none(), st.integers(-ndim, ndim - 1),
                     st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))


@st.composite
def shape_and_dim(draw, single=False):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    dim = draw(st.integers(-len(shape), len(shape) - 1) if single else _dims(len(shape)))
    return shape, dim, draw(st.booleans())


@pytest.mark.filterwarnings("ignore:.*degrees of freedom")  # torch warns where var divides by 0 (both give nan)
@given(case=shape_and_dim(), op=st.sampled_from(["sum", "mean", "var", "std", "logsumexp", "norm1", "norm2",
                                                  "norm3", "norm_inf", "norm_-inf", "amax", "amin", "var_mean",
                                                  "std_mean", "var0"]))
def test_reductions_over_any_dims_match_torch(case, op):
    shape, dim, keepdim = case
    rng = np.random.default_rng(abs(hash((shape, dim, keepdim, op))) % 2**32)
    x = rng.standard_normal(shape)
    if op.startswith("norm"):
        p = {"inf": INF, "-inf": -INF}.get(op[5:], None) or float(op[4:])
        fn = lambda t: t.norm(p=p, dim=dim, keepdim=keepdim)  # noqa: E731
    elif op == "logsumexp":
        fn = lambda t: t.logsumexp(dim=() if dim is None else dim, keepdim=keepdim)  # noqa: E731
        if dim is None:
            fn = lambda t: t.logsumexp(dim=tuple(range(t.ndim)), keepdim=keepdim)  # noqa: E731
    elif op in ("var", "std", "var_mean", "std_mean"):
        fn = lambda t: getattr(t, op)(dim=dim, keepdim=keepdim)  # noqa: E731
        if op in ("var_mean", "std_mean"):
            fn = lambda t: getattr(torch if isinstance(t, torch.Tensor) else normlab, op)(t, dim, keepdim=keepdim)  # noqa: E731
    elif op == "var0":
        fn = lambda t: t.var(dim=dim, correction=0, keepdim=keepdim)  # noqa: E731
    else:
        fn = lambda t: getattr(t, op)(dim=dim, keepdim=keepdim) if dim is not None else getattr(t, op)()  # noqa: E731
    compare(fn, fn, [x], rng, what=f"{op} {shape} dim={dim} keepdim={keepdim}")


@given(case=shape_and_dim(single=True), op=st.sampled_from(["prod", "prod_zero", "cumsum", "max", "min", "sort",
                                                            "sort_desc", "topk", "topk_small", "median", "argmax",
                                                            "argmin", "argsort", "logsumexp"]))
def test_reductions_along_one_dim_match_torch(case, op):
    shape, dim, keepdim = case
    rng = np.random.default_rng(abs(hash((shape, dim, keepdim, op))) % 2**32)
    x = rng.standard_normal(shape)
    if op == "prod_zero":  # an exact zero (or two): the gradient must not divide by it
        x.reshape(-1)[rng.integers(0, x.size, 2)] = 0.0
    k = min(2, shape[dim])
    fns = {
        "prod": lambda t: t.prod(dim, keepdim=keepdim), "prod_zero": lambda t: t.prod(dim=dim, keepdim=keepdim),
        "cumsum": lambda t: t.cumsum(dim), "max": lambda t: t.max(dim, keepdim), "min": lambda t: t.min(dim=dim),
        "sort": lambda t: t.sort(dim), "sort_desc": lambda t: t.sort(dim=dim, descending=True),
        "topk": lambda t: t.topk(k, dim), "topk_small": lambda t: t.topk(k, dim=dim, largest=False),
        "median": lambda t: t.median(dim, keepdim), "argmax": lambda t: t.argmax(dim, keepdim=keepdim),
        "argmin": lambda t: t.argmin(dim=dim), "argsort": lambda t: t.argsort(dim, descending=keepdim),
        "logsumexp": lambda t: t.logsumexp(dim, keepdim),
    }
    compare(fns[op], fns[op], [x], rng, what=f"{op} {shape} dim={dim} keepdim={keepdim}")


def test_whole_tensor_reductions_and_namedtuple_fields(rng):
    x = rng.standard_normal((3, 5))
    for fn in (lambda t: t.prod(), lambda t: t.median(), lambda t: t.argmax(), lambda t: t.norm(),
               lambda t: t.max(), lambda t: t.sum(dtype=torch.float64 if isinstance(t, torch.Tensor) else np.float64)):
        compare(fn, fn, [x], rng)
    ours, theirs = normlab.tensor(x).max(1), torch.tensor(x).max(1)
    assert np.array_equal(ours.indices.numpy(), theirs.indices.numpy())
    values, indices = normlab.tensor(x).sort(descending=True)
    assert np.array_equal(indices.numpy(), torch.tensor(x).sort(descending=True).indices.numpy())
    assert normlab.tensor(x).count_nonzero().item() == torch.tensor(x).count_nonzero().item()


def test_sort_is_stable_and_puts_nan_where_torch_does():
    x = np.array([[2.0, 1.0, 2.0, np.nan, 1.0, 0.0]])
    for descending in (False, True):
        ours = normlab.tensor(x).sort(dim=1, descending=descending, stable=True)
        theirs = torch.tensor(x).sort(dim=1, descending=descending, stable=True)
        assert np.array_equal(ours.indices.numpy(), theirs.indices.numpy()), descending
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())


def test_norm_splits_a_tied_infinity_norm_gradient_as_torch(rng):
    x = np.array([[1.0, -3.0, 3.0, 2.0]])
    compare(lambda t: t.norm(p=INF), lambda t: t.norm(p=INF), [x], rng, what="inf-norm with a tie")
    compare(lambda t: t.norm(p=2), lambda t: t.norm(p=2), [np.zeros((2, 3))], rng, what="2-norm at zero")


# ------------------------------------------------------------------ shapes and indexing
SHAPE_OPS = [
    ("view_as", lambda t: t.view_as(t.reshape(4, 6))),
    ("reshape_as", lambda t: t.reshape_as(t.reshape(6, 4))), ("expand", lambda t: t[:, :1].expand(2, 3, 4)),
    ("expand -1", lambda t: t[:1].expand(5, -1, -1)), ("expand_as", lambda t: t[:, :1].expand_as(t)),
    ("repeat", lambda t: t.repeat(2, 1, 3)), ("repeat new dims", lambda t: t.repeat(2, 1, 1, 2)),
    ("contiguous", lambda t: t.transpose(0, 2).contiguous()), ("flatten", lambda t: t.flatten(1)),
    ("flatten range", lambda t: t.flatten(0, 1)), ("unflatten", lambda t: t.unflatten(2, (2, 2))),
    ("unflatten -1", lambda t: t.unflatten(-1, (2, -1))), ("squeeze dims", lambda t: t[:, :1, :1].squeeze((1, 2))),
    ("squeeze", lambda t: t[:1].squeeze()), ("unsqueeze", lambda t: t.unsqueeze(-1)),
    ("permute", lambda t: t.permute(2, 0, 1)), ("transpose", lambda t: t.transpose(0, -1)),
    ("t", lambda t: t[0].t()), ("mT", lambda t: t.mT), ("movedim", lambda t: t.movedim(0, -1)),
    ("movedim many", lambda t: t.movedim((0, 1), (2, 0))), ("swapaxes", lambda t: t.swapaxes(0, 1)),
    ("narrow", lambda t: t.narrow(1, 1, 2)), ("select", lambda t: t.select(2, -1)),
    ("index_select", lambda t: t.index_select(1, _index(t, [2, 0, 2]))),
    ("unbind", lambda t: t.unbind(1)), ("flip", lambda t: t.flip(0, 2)), ("roll", lambda t: t.roll(1, 2)),
    ("roll flat", lambda t: t.roll(5)), ("roll many", lambda t: t.roll((1, -2), (0, 2))),
    ("tril", lambda t: t.tril()), ("triu(1)", lambda t: t.triu(1)), ("tril(-1)", lambda t: t.tril(diagonal=-1)),
    ("split", lambda t: t.split(2, dim=2)), ("split sizes", lambda t: t.split([1, 2], 1)),
    ("chunk", lambda t: t.chunk(3, dim=1)),
    ("repeat_interleave", lambda t: t.repeat_interleave(2, dim=1)), ("repeat_interleave flat", lambda t: t.repeat_interleave(2)),
    ("repeat_interleave counts", lambda t: t.repeat_interleave(_index(t, [1, 0, 3]), dim=1)),
    ("tile", lambda t: t.tile((2, 1))), ("broadcast_to", lambda t: t[:, :1].broadcast_to(2, 3, 4)),
    ("diag of a matrix", lambda t: t[0].diag()), ("diag above", lambda t: t[0].diag(1)), ("diag below", lambda t: t[1].diag(-1)),
    ("diag of a vector", lambda t: t[0, 0].diag()), ("diag of a vector, offset", lambda t: t[0, 1].diag(-2)),
    ("outer", lambda t: t[0, 0].outer(t[1, 2])),
]


def _index(like, values):
    return torch.tensor(values) if isinstance(like, torch.Tensor) else normlab.tensor(values)


@pytest.mark.parametrize("name, op", SHAPE_OPS, ids=[c[0] for c in SHAPE_OPS])
def test_shape_methods_match_torch(rng, name, op):
    compare(op, op, [rng.standard_normal((2, 3, 4))], rng, what=name)


def test_unique_and_module_lookups_match_torch(rng):
    x = rng.integers(0, 4, (3, 5)).astype(np.float64)
    for kwargs in ({}, {"return_inverse": True}, {"return_counts": True}, {"return_inverse": True, "return_counts": True},
                   {"dim": 1}):
        ours, theirs = normlab.tensor(x).unique(**kwargs), torch.tensor(x).unique(**kwargs)
        for o, t in zip(_outputs(ours), _outputs(theirs)):
            assert o.tolist() == t.tolist() and o.dtype.name == str(t.dtype).replace("torch.", ""), kwargs
    model = normlab.nn.Sequential(normlab.nn.Linear(2, 3), normlab.nn.Sequential(normlab.nn.BatchNorm1d(3)))
    reference = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sequential(torch.nn.BatchNorm1d(3)))
    assert type(model.get_submodule("1.0")).__name__ == type(reference.get_submodule("1.0")).__name__
    assert model.get_parameter("0.bias") is model[0].bias and model.get_buffer("1.0.running_var") is model[1][0].running_var
    assert model.get_submodule("") is model
    for lookup in (lambda m: m.get_submodule("2"), lambda m: m.get_parameter("0.nothing"), lambda m: m.get_buffer("0.weight")):
        with pytest.raises(AttributeError):
            lookup(reference)
        with pytest.raises(AttributeError):
            lookup(model)


def test_nonzero_hstack_vstack_and_sampling(rng):
    x = rng.integers(0, 2, (3, 4)).astype(np.float64)
    assert normlab.tensor(x).nonzero().tolist() == torch.tensor(x).nonzero().tolist()
    for ours, theirs in zip(normlab.nonzero(normlab.tensor(x), as_tuple=True), torch.nonzero(torch.tensor(x), as_tuple=True)):
        assert ours.tolist() == theirs.tolist() and ours.dtype == np.int64
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    for name in ("hstack",):
        compare(lambda u, v: getattr(normlab, name)([u, v]), lambda u, v: getattr(torch, name)([u, v]), [a, b], rng)
    compare(lambda u, v: normlab.vstack([u[0], v[0, :1].expand(3)]), lambda u, v: torch.vstack([u[0], v[0, :1].expand(3)]),
            [a, b], rng, what="vstack")
    weights = normlab.tensor([[0.0, 2.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    drawn = normlab.multinomial(weights, 3, replacement=True)
    assert drawn.shape == (2, 3) and set(drawn[0].tolist()) <= {1, 3} and drawn[1].tolist() == [0, 0, 0]
    assert sorted(normlab.multinomial(normlab.ones(5), 5).tolist()) == list(range(5))  # without replacement
    coins = normlab.full((1000,), 0.25).bernoulli()
    assert set(coins.tolist()) <= {0.0, 1.0} and 0.15 < coins.mean().item() < 0.35
    samples = normlab.normal(2.0, 0.5, (2000,), generator=normlab.Generator().manual_seed(0))
    assert abs(samples.mean().item() - 2.0) < 0.05 and abs(samples.std().item() - 0.5) < 0.05


def test_masked_select_cat_stack_and_free_functions(rng):
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    mask = rng.random(3) > 0.4
    compare(lambda t: t.masked_select(_index(t, mask)), lambda t: t.masked_select(_index(t, mask)), [x], rng)
    for lib in ("cat", "stack", "concat"):
        compare(lambda a, b: getattr(normlab, lib)([a, b], dim=-1), lambda a, b: getattr(torch, lib)([a, b], dim=-1),
                [x, y], rng, what=lib)
    compare(lambda a: normlab.unbind(a, 0), lambda a: torch.unbind(a, 0), [x], rng)
    compare(lambda a: normlab.flatten(a), lambda a: torch.flatten(a), [x], rng)


@given(dim=st.integers(-3, 2), seed=st.integers(0, 10**6), smaller=st.booleans())
def test_gather_scatter_and_scatter_add_match_torch(dim, seed, smaller):
    rng = np.random.default_rng(seed)
    shape = (3, 4, 2)
    axis = dim % 3
    index_shape = tuple(max(1, s - 1) if smaller and d != axis else s for d, s in enumerate(shape))
    index = rng.integers(0, shape[axis], index_shape)  # repeats: the gradient must add up
    # src as large as index: torch's backward cannot handle a larger src (ours gives its extra part 0)
    x, src = rng.standard_normal(shape), rng.standard_normal(index_shape)
    compare(lambda t: t.gather(dim, _index(t, index)), lambda t: t.gather(dim, _index(t, index)), [x], rng, what="gather")
    compare(lambda t: normlab.gather(t, dim, _index(t, index)), lambda t: torch.gather(t, dim, _index(t, index)),
            [x], rng, what="torch.gather")
    compare(lambda t, s: t.scatter_add(dim, _index(t, index), s), lambda t, s: t.scatter_add(dim, _index(t, index), s),
            [x, src], rng, what="scatter_add")
    # scatter with repeated indices is order-dependent in torch: use a permutation along dim
    unique = np.argsort(rng.random(index_shape), axis=axis) % shape[axis]
    compare(lambda t, s: t.scatter(dim, _index(t, unique), s), lambda t, s: t.scatter(dim, _index(t, unique), s),
            [x, src], rng, what="scatter")
    compare(lambda t: t.scatter(dim, _index(t, unique), value=2.5), lambda t: t.scatter(dim, _index(t, unique), value=2.5),
            [x], rng, what="scatter value")


def test_scatter_reads_the_leading_block_of_a_larger_source(rng):
    x, src = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    index = np.array([[1], [0], [3]])
    ours_x, ours_src = normlab.tensor(x, requires_grad=True), normlab.tensor(src, requires_grad=True)
    y = ours_x.scatter(1, normlab.tensor(index), ours_src)
    np.testing.assert_array_equal(y.detach().numpy(), torch.tensor(x).scatter(1, torch.tensor(index), torch.tensor(src)))
    g = rng.standard_normal((3, 4))
    (y * normlab.tensor(g)).sum().backward()
    expected = np.zeros((3, 4))
    expected[:, 0] = g[np.arange(3), index[:, 0]]  # src[i][0] went to column index[i][0]
    np.testing.assert_array_equal(ours_src.grad.numpy(), expected)


def test_in_place_scatter_follows_the_version_rules(rng):
    x = rng.standard_normal((3, 4))
    index = np.array([[0, 1], [2, 3], [1, 0]])
    compare(lambda t: (t * 1).scatter_(1, _index(t, index), 0.0 * t[:, :2] + 1.5),
            lambda t: (t * 1).scatter_(1, _index(t, index), 0.0 * t[:, :2] + 1.5), [x], rng, what="scatter_")
    compare(lambda t: (t * 1).scatter_add_(1, _index(t, index), t[:, :2]),
            lambda t: (t * 1).scatter_add_(1, _index(t, index), t[:, :2]), [x], rng, what="scatter_add_")
    leaf = normlab.tensor(x, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf.scatter_(1, normlab.tensor(index), 0.0 * x[:, :2])


INDICES = [
    ("int", lambda t: t[1]), ("negative", lambda t: t[-1, -2]), ("slice step", lambda t: t[::2, 1::2]),
    ("None", lambda t: t[None, :, None]), ("ellipsis", lambda t: t[..., 1]),
    ("bool mask", lambda t: t[_index(t, np.array([True, False, True]))]),
    ("bool mask 2d", lambda t: t[_index(t, np.arange(12).reshape(3, 4) % 3 == 0)]),
    ("int tensor repeats", lambda t: t[_index(t, [0, 2, 0, 0])]),
    ("list", lambda t: t[[1, 1, 2]]), ("two int tensors", lambda t: t[_index(t, [0, 2, 2]), _index(t, [1, 3, 1])]),
    ("mixed", lambda t: t[1:, _index(t, [3, 0, 3])]), ("2d int tensor", lambda t: t[_index(t, [[0, 1], [1, 1]])]),
]


@pytest.mark.parametrize("name, op", INDICES, ids=[c[0] for c in INDICES])
def test_getitem_of_every_index_kind_matches_torch(rng, name, op):
    compare(op, op, [rng.standard_normal((3, 4))], rng, what=name)


# ------------------------------------------------------------------ einsum and linalg
EINSUMS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]), ("ij,jk", [(2, 3), (3, 4)]),
    ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("ij->", [(2, 3)]), ("ij->j", [(2, 3)]), ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(5, 2, 3), (3, 4)]), ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("i,i->", [(4,), (4,)]), ("ij,ij->i", [(3, 4), (1, 4)]), ("ijk->kji", [(2, 3, 4)]), ("iij->j", [(2, 2, 3)]),
    ("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 2)]), ("ba", [(2, 3)]),
]


@pytest.mark.parametrize("equation, shapes", EINSUMS, ids=[e for e, _ in EINSUMS])
def test_einsum_matches_torch_forward_and_backward(rng, equation, shapes):
    arrays = [rng.standard_normal(s) for s in shapes]
    compare(lambda *t: normlab.einsum(equation, *t), lambda *t: torch.einsum(equation, *t), arrays, rng, what=equation)
    compare(lambda *t: normlab.einsum(equation, list(t)), lambda *t: torch.einsum(equation, list(t)), arrays, rng,
            what=equation + " (list)")


def test_einsum_refuses_bad_equations():
    with pytest.raises(ValueError, match="einsum: the equation 'ij,jk->ik' has 2 operand"):
        normlab.einsum("ij,jk->ik", normlab.ones(2, 3))
    with pytest.raises(ValueError, match="do not match an operand of shape"):
        normlab.einsum("ij->i", normlab.ones(2, 3, 4))
    with pytest.raises(ValueError, match="output label 'z'"):
        normlab.einsum("ij->z", normlab.ones(2, 3))


LINALG = [
    ("vector_norm", lambda m, x: m.linalg.vector_norm(x)), ("vector_norm ord 3", lambda m, x: m.linalg.vector_norm(x, 3, dim=1)),
    ("vector_norm inf", lambda m, x: m.linalg.vector_norm(x, ord=INF, dim=(0, 1), keepdim=True)),
    ("vector_norm 0.5", lambda m, x: m.linalg.vector_norm(x, ord=0.5)),
    ("vector_norm 0", lambda m, x: m.linalg.vector_norm(x, ord=0)),
    ("norm", lambda m, x: m.linalg.norm(x)), ("norm dim", lambda m, x: m.linalg.norm(x, dim=1)),
    ("norm fro", lambda m, x: m.linalg.norm(x, "fro")), ("norm 1", lambda m, x: m.linalg.norm(x, 1)),
    ("norm -1", lambda m, x: m.linalg.norm(x, ord=-1)), ("norm inf", lambda m, x: m.linalg.norm(x, INF)),
    ("norm -inf", lambda m, x: m.linalg.norm(x, -INF)), ("norm vector ord", lambda m, x: m.linalg.norm(x[0], 3)),
    ("matrix_norm", lambda m, x: m.linalg.matrix_norm(x, keepdim=True)),
    ("matrix_norm 1", lambda m, x: m.linalg.matrix_norm(x, 1)), ("torch.norm", lambda m, x: m.norm(x, 3, 0)),
]


@pytest.mark.parametrize("name, op", LINALG, ids=[c[0] for c in LINALG])
def test_linalg_norms_match_torch(rng, name, op):
    compare(lambda t: op(normlab, t), lambda t: op(torch, t), [rng.standard_normal((3, 4))], rng, what=name)


def test_unsupported_norms_say_so():
    with pytest.raises(NotImplementedError, match="nuc"):
        normlab.ones(2, 2).norm(p="nuc")
    with pytest.raises(NotImplementedError, match="ord=2 is not supported"):
        normlab.linalg.matrix_norm(normlab.ones(2, 2), 2)


def test_numerical_gradients_of_the_new_composite_rules(rng):
    x = rng.standard_normal((3, 4))
    x[0, 1] = 0.0  # prod's gradient at an exact zero
    cases = {
        "prod": lambda t: t.prod(1), "einsum diagonal": lambda t: normlab.einsum("ii->i", t[:, :3]),
        "vector_norm 3": lambda t: normlab.linalg.vector_norm(t + 2.0, 3, dim=0),
        "logsumexp": lambda t: t.logsumexp(0), "repeat": lambda t: t.repeat(2, 3),
        "gather": lambda t: t.gather(1, normlab.tensor([[0, 0], [3, 1], [2, 2]])),
    }
    for name, op in cases.items():
        weights = rng.standard_normal(op(normlab.tensor(x)).shape)
        t = normlab.tensor(x.copy(), requires_grad=True)
        (op(t) * weights).sum().backward()
        expected = numerical_gradient(lambda: float((op(normlab.tensor(x)).numpy() * weights).sum()), x)
        np.testing.assert_allclose(t.grad.numpy(), expected, rtol=1e-6, atol=1e-8, err_msg=name)


def test_float32_stays_float32_within_rounding_of_the_float64_result(rng):
    x = rng.standard_normal((4, 5))
    cases = {"logsumexp": lambda t: t.logsumexp(1), "norm": lambda t: t.norm(dim=0), "prod": lambda t: t.prod(1),
             "cumsum": lambda t: t.cumsum(1), "einsum": lambda t: normlab.einsum("ij,kj->ik", t, t),
             "sin": lambda t: t.sin(), "rsqrt": lambda t: (t * t + 1).rsqrt()}
    for name, op in cases.items():
        t32 = normlab.tensor(x.astype(np.float32), requires_grad=True)
        y32 = op(t32)
        y64 = op(normlab.tensor(x.astype(np.float32).astype(np.float64)))
        assert y32.dtype == np.float32, name
        assert_float32_close(y32, y64, scale=np.abs(y64.numpy()) + 1.0, what=name, ulps=64)
        y32.sum().backward()
        assert t32.grad.dtype == np.float32, name


# ------------------------------------------------------------------ factories and small API
def test_factories_match_torch_dtypes_shapes_and_values():
    cases = [
        ("zeros", (2, 3), {}), ("ones", ((2, 3),), {}), ("zeros", (2,), {"dtype": "int64"}),
        ("full", ((2, 2), 3), {}), ("full", ((2,), 1.5), {}), ("full", ((2,), True), {}),
        ("arange", (5,), {}), ("arange", (1, 4), {}), ("arange", (0, 1, 0.25), {}), ("arange", (0.0, 3), {}),
        ("arange", (5,), {"dtype": "float64"}), ("linspace", (0, 1, 5), {}), ("eye", (3,), {}), ("eye", (2, 3), {}),
        ("tensor", ([[1, 2], [3, 4]],), {}), ("tensor", ([1.5, 2.0],), {}), ("tensor", ([True, False],), {}),
        ("tensor", (3.0,), {}), ("as_tensor", ([1, 2],), {"dtype": "float64"}),
    ]
    for name, args, kwargs in cases:
        ours = getattr(normlab, name)(*args, **{k: getattr(normlab, v) for k, v in kwargs.items()})
        theirs = getattr(torch, name)(*args, **{k: getattr(torch, v) for k, v in kwargs.items()})
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), (name, args)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-7, err_msg=f"{name}{args}")
    x = normlab.ones(2, 3, dtype=normlab.float64)
    for name in ("zeros_like", "ones_like", "empty_like", "rand_like", "randn_like"):
        made = getattr(normlab, name)(x)
        assert made.shape == (2, 3) and made.dtype == np.float64, name
    assert normlab.full_like(x, 7).numpy().tolist() == [[7.0] * 3] * 2
    assert normlab.empty(2, 3).shape == (2, 3)
    for made in (x.new_zeros(4), x.new_ones((1, 2)), x.new_full((2,), 3.0), x.new_empty(3), x.new_tensor([1, 2])):
        assert made.dtype == np.float64
    assert normlab.ones(2, requires_grad=True).requires_grad
    assert normlab.randn(2, 3, dtype=normlab.float64).dtype == np.float64


def test_random_factories_are_seeded_and_in_range():
    normlab.manual_seed(3)
    a = normlab.randint(0, 10, (50,))
    b = normlab.randint(5, size=(50,))
    p = normlab.randperm(20)
    normlab.manual_seed(3)
    assert np.array_equal(a.numpy(), normlab.randint(0, 10, (50,)).numpy())
    assert a.dtype == np.int64 and 0 <= a.min().item() and a.max().item() < 10 and b.max().item() < 5
    assert sorted(p.tolist()) == list(range(20)) and p.dtype == np.int64
    g = normlab.Generator().manual_seed(5)
    first = normlab.rand(4, generator=g)
    assert np.array_equal(first.numpy(), normlab.rand(4, generator=normlab.Generator().manual_seed(5)).numpy())
    assert g.initial_seed() == 5
    assert ((first.numpy() >= 0) & (first.numpy() < 1)).all()


def test_small_api_matches_torch(rng):
    x = rng.standard_normal((2, 3))
    n, t = normlab.tensor(x), torch.tensor(x)
    assert n.numel() == t.numel() and n.nelement() == t.nelement() and n.dim() == t.dim()
    assert n.size() == tuple(t.size()) and n.size(-1) == t.size(-1) and n.element_size() == t.element_size()
    assert n.tolist() == t.tolist() and n[0, 1].item() == t[0, 1].item()
    assert normlab.is_tensor(n) and not normlab.is_tensor(x) and normlab.numel(n) == 6
    assert n.is_floating_point() and not normlab.arange(3).is_floating_point()
    assert n.is_contiguous() and not n.t().is_contiguous() and n.t().contiguous().is_contiguous()
    assert n.contiguous() is n
    assert n.mm(n.t()).shape == (2, 2) and n[0].dot(n[1]).shape == ()
    assert normlab.bmm(normlab.ones(4, 2, 3), normlab.ones(4, 3, 5)).shape == (4, 2, 5)
    with pytest.raises(ValueError, match="bmm: expected 3D tensors"):
        normlab.ones(2, 3).bmm(normlab.ones(3, 2))
    with normlab.inference_mode():
        assert not (normlab.ones(2, requires_grad=True) * 2).requires_grad
    with normlab.inference_mode(False):
        assert (normlab.ones(2, requires_grad=True) * 2).requires_grad

    @normlab.no_grad
    def bare(v):
        return v * 2

    @normlab.inference_mode()
    def called(v):
        return v * 2

    assert not bare(normlab.ones(2, requires_grad=True)).requires_grad
    assert not called(normlab.ones(2, requires_grad=True)).requires_grad
    assert normlab.is_grad_enabled()
