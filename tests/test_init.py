"""normlab.nn.init against torch.nn.init: gains, fans, bounds and standard deviations, orthogonality.

Random draws cannot be compared sample by sample across libraries, so each
formula is checked twice: (1) a bound/std written out here reproduces torch's
initialiser *exactly* (torch's kaiming_uniform_ with a seeded generator equals
torch's uniform_(-bound, bound) with the same seed), and (2) normlab's
initialiser equals normlab's uniform_(-bound, bound) with the same seed.
Large draws then compare the empirical ranges and standard deviations.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
from normlab.nn import init

NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
SHAPES = [(20, 30), (30, 20), (16, 8, 3), (8, 4, 3, 3)]


def fans(shape):
    """torch's fan_in / fan_out: dims 0 and 1 times the receptive field (the product of the rest)."""
    receptive_field = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive_field, shape[0] * receptive_field


def seeded(seed=0):
    return np.random.default_rng(seed)


def torch_seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------- gains
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_calculate_gain_matches_torch(nonlinearity):
    assert init.calculate_gain(nonlinearity) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity), rel=1e-15)


@pytest.mark.parametrize("param", [None, 0, 0.2, 1, 3, math.sqrt(5), -0.5])
def test_leaky_relu_gain_matches_torch(param):
    ours = init.calculate_gain("leaky_relu", param)
    assert ours == pytest.approx(torch.nn.init.calculate_gain("leaky_relu", param), rel=1e-15)
    slope = 0.01 if param is None else param
    assert ours == pytest.approx(math.sqrt(2.0 / (1 + slope ** 2)), rel=1e-15)


def test_gain_table_values():
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("selu") == pytest.approx(3 / 4)
    assert init.calculate_gain("sigmoid") == 1


@pytest.mark.parametrize("args", [("softplus",), ("leaky_relu", True), ("leaky_relu", "0.2")])
def test_calculate_gain_refuses_what_torch_refuses(args):
    with pytest.raises(ValueError):
        torch.nn.init.calculate_gain(*args)
    with pytest.raises(ValueError, match="calculate_gain"):
        init.calculate_gain(*args)


# ------------------------------------------------- xavier and kaiming bounds
def xavier_std(shape, gain):
    fan_in, fan_out = fans(shape)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def kaiming_std(shape, a, mode, nonlinearity):
    fan_in, fan_out = fans(shape)
    fan = fan_in if mode.lower() == "fan_in" else fan_out
    return torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)


KAIMING_CASES = [
    (shape, a, mode, nonlinearity)
    for shape in SHAPES
    for a, mode, nonlinearity in [(0, "fan_in", "leaky_relu"), (math.sqrt(5), "fan_in", "leaky_relu"),
                                  (0.2, "fan_out", "leaky_relu"), (0, "fan_out", "relu"), (0, "fan_in", "tanh"),
                                  (0, "fan_in", "linear"), (0, "FAN_OUT", "selu")]
]


@pytest.mark.parametrize("shape,a,mode,nonlinearity", KAIMING_CASES)
@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_kaiming_formula_reproduces_torch_and_normlab(kind, shape, a, mode, nonlinearity):
    std = kaiming_std(shape, a, mode, nonlinearity)
    bound = math.sqrt(3.0) * std
    # (1) the formula is torch's: same generator state, same numbers
    t = torch.empty(shape, dtype=torch.float64)
    getattr(torch.nn.init, f"kaiming_{kind}_")(t, a=a, mode=mode, nonlinearity=nonlinearity, generator=torch_seeded())
    expected = torch.empty(shape, dtype=torch.float64)
    if kind == "uniform":
        expected.uniform_(-bound, bound, generator=torch_seeded())
    else:
        expected.normal_(0.0, std, generator=torch_seeded())
    np.testing.assert_allclose(t.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-15)
    # (2) normlab uses the same formula
    w = np.empty(shape)
    out = getattr(init, f"kaiming_{kind}_")(w, a=a, mode=mode, nonlinearity=nonlinearity, generator=seeded())
    assert out is w
    reference = np.empty(shape)
    if kind == "uniform":
        init.uniform_(reference, -bound, bound, generator=seeded())
    else:
        init.normal_(reference, 0.0, std, generator=seeded())
    np.testing.assert_allclose(w, reference, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, init.calculate_gain("relu"), 0.5])
@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_xavier_formula_reproduces_torch_and_normlab(kind, gain, shape):
    std = xavier_std(shape, gain)
    bound = math.sqrt(3.0) * std
    t = torch.empty(shape, dtype=torch.float64)
    getattr(torch.nn.init, f"xavier_{kind}_")(t, gain=gain, generator=torch_seeded(1))
    expected = torch.empty(shape, dtype=torch.float64)
    if kind == "uniform":
        expected.uniform_(-bound, bound, generator=torch_seeded(1))
    else:
        expected.normal_(0.0, std, generator=torch_seeded(1))
    np.testing.assert_allclose(t.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-15)
    w = normlab.zeros(*shape, dtype=np.float64)
    out = getattr(init, f"xavier_{kind}_")(w, gain=gain, generator=seeded(1))
    assert out is w
    reference = np.empty(shape)
    if kind == "uniform":
        init.uniform_(reference, -bound, bound, generator=seeded(1))
    else:
        init.normal_(reference, 0.0, std, generator=seeded(1))
    np.testing.assert_allclose(w.data, reference, rtol=1e-12, atol=1e-15)


@given(shape=st.lists(st.integers(1, 6), min_size=2, max_size=4).map(tuple),
       a=st.floats(0, 3), mode=st.sampled_from(["fan_in", "fan_out"]),
       nonlinearity=st.sampled_from(["leaky_relu", "relu", "tanh", "linear", "sigmoid", "selu"]),
       seed=st.integers(0, 2 ** 16))
def test_kaiming_uniform_sweep(shape, a, mode, nonlinearity, seed):
    bound = math.sqrt(3.0) * kaiming_std(shape, a, mode, nonlinearity)
    w, reference = np.empty(shape), np.empty(shape)
    init.kaiming_uniform_(w, a=a, mode=mode, nonlinearity=nonlinearity, generator=seeded(seed))
    init.uniform_(reference, -bound, bound, generator=seeded(seed))
    np.testing.assert_allclose(w, reference, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,kwargs,expected_std,uniform", [
    ("kaiming_uniform_", dict(nonlinearity="relu"), math.sqrt(2 / 512), True),
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 256), False),
    ("xavier_uniform_", dict(), math.sqrt(2 / (512 + 256)), True),
    ("xavier_normal_", dict(gain=5 / 3), 5 / 3 * math.sqrt(2 / (512 + 256)), False),
])
def test_large_draws_have_torch_statistics(name, kwargs, expected_std, uniform):
    """Empirical std (and range for uniform draws) of 131072 samples, normlab and torch alike."""
    shape = (256, 512)
    ours = getattr(init, name)(np.empty(shape, dtype=np.float32), generator=seeded(3), **kwargs)
    theirs = getattr(torch.nn.init, name)(torch.empty(shape), generator=torch_seeded(3), **kwargs).detach().numpy()
    for values, who in [(ours, "normlab"), (theirs, "torch")]:
        assert values.dtype == np.float32, who
        assert abs(values.mean()) < 4 * expected_std / math.sqrt(values.size), who
        assert values.std() == pytest.approx(expected_std, rel=0.01), who
        if uniform:
            bound = math.sqrt(3) * expected_std
            assert np.abs(values).max() <= bound * (1 + 1e-6), who
            assert np.abs(values).max() > 0.999 * bound, who


def test_kaiming_mode_and_fan_errors_like_torch():
    with pytest.raises(ValueError, match="mode 'fan_avg' not supported"):
        init.kaiming_uniform_(np.empty((3, 4)), mode="fan_avg")
    with pytest.raises(ValueError):
        torch.nn.init.kaiming_uniform_(torch.empty(3, 4), mode="fan_avg")
    for fn in (init.kaiming_normal_, init.xavier_uniform_, init.xavier_normal_):
        with pytest.raises(ValueError, match="fewer than 2 dimensions"):
            fn(np.empty(5))


def test_zero_element_kaiming_is_a_no_op():
    w = np.empty((0, 4))
    assert init.kaiming_uniform_(w) is w
    assert init.kaiming_normal_(normlab.zeros(3, 0)).shape == (3, 0)


# ------------------------------------------------------------ orthogonal
@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5), (5, 2, 3), (3, 4, 2)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_orthogonal_is_orthogonal_with_gain(shape, gain, dtype):
    w = normlab.zeros(*shape, dtype=dtype)
    assert init.orthogonal_(w, gain=gain) is w
    assert w.dtype == dtype
    rows = shape[0]
    flat = w.data.reshape(rows, -1).astype(np.float64)
    gram = flat.T @ flat if rows >= flat.shape[1] else flat @ flat.T
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(gram.shape[0]), atol=tol * gain ** 2)
    # and torch's orthogonal_ has the same property
    t = torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64), gain=gain).reshape(rows, -1)
    tgram = t.T @ t if rows >= t.shape[1] else t @ t.T
    np.testing.assert_allclose(tgram.detach().numpy(), gain ** 2 * np.eye(gram.shape[0]), atol=1e-12 * gain ** 2)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6)])
def test_orthogonal_follows_torchs_algorithm(shape):
    """QR of a standard normal (rows, cols) matrix, transposed when rows < cols, columns signed by diag(R)."""
    rows, cols = shape
    gaussian = seeded(9).standard_normal((rows, cols))
    if rows < cols:
        gaussian = gaussian.T
    q, r = np.linalg.qr(gaussian)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    w = init.orthogonal_(np.empty(shape), gain=1.5, generator=seeded(9))
    np.testing.assert_allclose(w, 1.5 * q, rtol=1e-12, atol=1e-14)


def test_orthogonal_refuses_vectors_like_torch():
    with pytest.raises(ValueError):
        torch.nn.init.orthogonal_(torch.empty(4))
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(np.empty(4))


# ------------------------------------------------------- simple fillers
@pytest.mark.parametrize("container", ["tensor", "ndarray"])
def test_zeros_ones_constant_eye(container):
    def make(*shape):
        return normlab.tensor(np.full(shape, 7.0, dtype=np.float32)) if container == "tensor" \
            else np.full(shape, 7.0, dtype=np.float32)

    def values(x):
        return x.data if isinstance(x, normlab.Tensor) else x

    for fn, expected in [(init.zeros_, 0.0), (init.ones_, 1.0), (lambda x: init.constant_(x, -2.5), -2.5)]:
        x = make(3, 4)
        assert fn(x) is x
        assert values(x).dtype == np.float32
        np.testing.assert_array_equal(values(x), np.full((3, 4), expected, dtype=np.float32))
    x = make(3, 5)
    init.eye_(x)
    np.testing.assert_array_equal(values(x), torch.nn.init.eye_(torch.empty(3, 5)).detach().numpy())
    with pytest.raises(ValueError):
        init.eye_(make(2, 2, 2))


def test_normal_and_uniform_statistics():
    x = init.normal_(np.empty(200_000), mean=2.0, std=0.5, generator=seeded(4))
    assert x.mean() == pytest.approx(2.0, abs=0.005)
    assert x.std() == pytest.approx(0.5, rel=0.01)
    u = init.uniform_(np.empty(200_000), a=-3.0, b=1.0, generator=seeded(5))
    assert u.min() >= -3.0 and u.max() < 1.0
    assert u.min() < -2.999 and u.max() > 0.999
    assert u.mean() == pytest.approx(-1.0, abs=0.01)
    assert u.std() == pytest.approx(4 / math.sqrt(12), rel=0.01)
    # defaults like torch: uniform_ on [0, 1), normal_ with mean 0 and std 1
    d = init.uniform_(np.empty(50_000), generator=seeded(6))
    assert d.min() >= 0 and d.max() < 1
    n = init.normal_(np.empty(50_000), generator=seeded(7))
    assert n.std() == pytest.approx(1.0, rel=0.02)


def test_trunc_normal_matches_torch_distribution():
    ours = init.trunc_normal_(np.empty(200_000), mean=0.5, std=1.0, a=-1.0, b=1.5, generator=seeded(8))
    theirs = torch.nn.init.trunc_normal_(torch.empty(200_000, dtype=torch.float64), mean=0.5, std=1.0, a=-1.0,
                                         b=1.5, generator=torch_seeded(8)).detach().numpy()
    assert ours.min() >= -1.0 and ours.max() <= 1.5
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.01)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.01)


def test_global_seed_makes_init_repeatable():
    normlab.manual_seed(42)
    a = init.kaiming_normal_(np.empty((5, 5)))
    normlab.manual_seed(42)
    b = init.kaiming_normal_(np.empty((5, 5)))
    c = init.kaiming_normal_(np.empty((5, 5)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_bad_targets_are_refused():
    with pytest.raises(TypeError, match="expected a Tensor or ndarray"):
        init.zeros_([1.0, 2.0])


# ------------------------------------------------------ Linear's default
def test_linear_default_init_is_kaiming_uniform_sqrt5_and_bias_bound():
    """torch's Linear: weight ~ U(+-1/sqrt(fan_in)) via kaiming_uniform_(a=sqrt(5)), then bias ~ U(+-1/sqrt(fan_in))."""
    normlab.manual_seed(11)
    layer = nn.Linear(30, 20)
    normlab.manual_seed(11)
    weight = init.kaiming_uniform_(np.empty((20, 30), dtype=np.float32), a=math.sqrt(5))
    bound = 1 / math.sqrt(30)
    bias = init.uniform_(np.empty(20, dtype=np.float32), -bound, bound)
    np.testing.assert_array_equal(layer.weight.data, weight)
    np.testing.assert_array_equal(layer.bias.data, bias)


def test_linear_default_init_distribution_matches_torch():
    fan_in = 300
    bound = 1 / math.sqrt(fan_in)
    ours = nn.Linear(fan_in, 400)
    torch.manual_seed(0)
    theirs = torch.nn.Linear(fan_in, 400)
    for who, weight, bias in [("normlab", ours.weight.data, ours.bias.data),
                              ("torch", theirs.weight.detach().numpy(), theirs.bias.detach().numpy())]:
        assert weight.dtype == np.float32 and bias.dtype == np.float32, who
        assert np.abs(weight).max() <= bound * (1 + 1e-6), who
        assert np.abs(weight).max() > 0.999 * bound, who
        assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.01), who
        assert np.abs(bias).max() <= bound * (1 + 1e-6), who
        assert np.abs(bias).max() > 0.9 * bound, who
    assert nn.Linear(3, 2, dtype=np.float64).weight.dtype == np.float64
