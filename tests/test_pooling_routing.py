"""The visible routing helper (checked against backward), bad-input errors, and module constructors/reprs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.ops import pooling as ops
from tests.oracle import random_upstream
from tests.test_pooling_common import close, distinct_input, pool_configs, refused_all_padding, tied_input

FUNCTIONAL = {name: getattr(F, name) for name in ops.ROUTED_OPS}


def backward_of(op_name, x, dy, *args, **kwargs):
    xt = normlab.tensor(x, requires_grad=True)
    y = FUNCTIONAL[op_name](xt, *args, **kwargs)
    y.backward(dy)
    return y.detach().numpy(), xt.grad


# ---------------------------------------------------------------- routing agrees with backward


@given(case=pool_configs(), kind=st.sampled_from(["max", "min"]), tie=st.sampled_from(["first", "split"]),
       nan=st.sampled_from(["propagate", "ignore"]), ties=st.booleans())
def test_extremum_routing_agrees_with_backward(case, kind, tie, nan, ties):
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = tied_input(shape, np.float64, rng, nan_fraction=0.1) if ties else distinct_input(shape, np.float64, rng)
    op_name = f"{kind}_pool{n}d"
    if refused_all_padding(lambda v, **c: ops.routing(op_name, v, **c), n, x, config):
        return
    r = ops.routing(op_name, x, tie=tie, nan=nan, **config)
    dy = random_upstream(r.output.shape, np.float64, rng)
    y, dx = backward_of(op_name, x, dy, tie=tie, nan=nan, **config)
    np.testing.assert_array_equal(r.output, y)
    assert r.weights.shape == y.shape + x.shape[-n:]
    close(r.input_gradient(dy), dx, np.float64, "routing vs backward")
    # every output routes a total weight of exactly 1 (one winner, or shares summing to 1)
    np.testing.assert_allclose(r.weights.sum(axis=tuple(range(-n, 0))), 1.0, rtol=1e-12)


@given(case=pool_configs(dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.integers(1, 6)))
def test_avg_routing_agrees_with_backward(case, count_include_pad, divisor_override):
    n, shape, config, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    config = dict(config, count_include_pad=count_include_pad)
    if n >= 2:
        config["divisor_override"] = divisor_override
    op_name = f"avg_pool{n}d"
    r = ops.routing(op_name, x, **config)
    dy = random_upstream(r.output.shape, np.float64, rng)
    y, dx = backward_of(op_name, x, dy, **config)
    np.testing.assert_array_equal(r.output, y)
    close(r.input_gradient(dy), dx, np.float64, "routing vs backward")
    # the routing is also the forward map: y = sum_i weights[o, i] x_i
    xs = x.reshape(x.shape[:-n] + (1,) * n + x.shape[-n:])
    close((r.weights * xs).sum(axis=tuple(range(-n, 0))), y, np.float64, "routing as forward")


@pytest.mark.parametrize("kind,args,kwargs", [
    ("adaptive_avg", ((3, 2),), {}),
    ("adaptive_max", ((2, 3),), {}),
    ("adaptive_max", ((2, 3),), {"tie": "split"}),
    ("lp", (2, 2), {"ceil_mode": True}),
    ("lp", (1.5, (2, 3)), {"stride": 1}),
    ("lp", (math.inf, 2), {}),
    ("adaptive_avg_pool1d", (4,), {}),
    ("lp_pool1d", (3, 3), {"stride": 2}),
    ("adaptive_avg_pool3d", ((2, None, 3),), {}),
    ("adaptive_max_pool3d", (2,), {}),
    ("lp_pool3d", (2, (2, 1, 2)), {"ceil_mode": True}),
])
def test_other_routings_agree_with_backward(kind, args, kwargs, rng):
    op_name = ops.SHORT_NAMES.get(kind, kind)
    shape = {"1d": (2, 3, 7), "2d": (2, 3, 5, 7), "3d": (2, 3, 3, 4, 5)}[op_name[-2:]]
    x = tied_input(shape, np.float64, rng) if "split" in kwargs.values() else np.abs(rng.standard_normal(shape)) + 0.1
    r = ops.routing(kind, x, *args, **kwargs)
    dy = random_upstream(r.output.shape, np.float64, rng)
    y, dx = backward_of(op_name, x, dy, *args, **kwargs)
    close(r.output, y, np.float64, "output")
    close(r.input_gradient(dy), dx, np.float64, "routing vs backward")


def test_routing_of_a_single_image_and_its_edges():
    image = np.array([[1.0, 5.0, 2.0, 0.0],
                      [3.0, 4.0, 7.0, 6.0]])
    r = ops.routing("max", image, 2)
    np.testing.assert_array_equal(r.output, [[5.0, 7.0]])
    assert r.weights.shape == (1, 2, 2, 4)
    assert r.edges() == [((0, 0), (0, 1), 1.0), ((0, 1), (1, 2), 1.0)]
    avg = ops.routing("avg", image, 2)
    assert len(avg.edges()) == 8 and all(w == 0.25 for _, _, w in avg.edges())
    batched = ops.routing("avg_pool2d", image[None, None], 2, padding=1, count_include_pad=False)
    # the corner window holds one real element: it gets the whole gradient
    assert batched.weights[0, 0, 0, 0, 0, 0] == 1.0


def test_routing_rejects_unknown_kinds_and_large_inputs():
    with pytest.raises(ValueError, match="unknown kind 'median'"):
        ops.routing("median", np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="too large"):
        ops.routing("avg", np.zeros((64, 64, 64, 64), dtype=np.float32), 1)


# ---------------------------------------------------------------- bad input


BAD_INPUTS = [
    (lambda: F.max_pool2d(np.zeros((4, 4)), 2), ValueError, r"max_pool2d: expected 3D or 4D input.*got 2D.*\(4, 4\)"),
    (lambda: F.max_pool1d(np.zeros((1, 2, 3, 4)), 2), ValueError, r"max_pool1d: expected 2D or 3D input.*got 4D"),
    (lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4), dtype=np.int64), 2), TypeError, r"avg_pool2d: .*floating-point.*int64"),
    (lambda: F.max_pool2d(np.zeros((1, 0, 4, 4)), 2), ValueError, r"max_pool2d: expected non-zero channel.*\(1, 0, 4, 4\)"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 8, 8)), 3, padding=2), ValueError,
     r"max_pool2d: padding should be at most half of kernel_size, got padding=\(2, 2\) and kernel_size=\(3, 3\)"),
    (lambda: F.avg_pool1d(np.zeros((1, 1, 8)), 2, padding=2), ValueError, r"padding=2 and kernel_size=2"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 2, 3)), 5), ValueError,
     r"spatial size \(2, 3\) is too small for kernel_size=\(5, 5\).*output size would be \(0, 0\)"),
    (lambda: F.max_pool1d(np.zeros((1, 1, 4)), 3, dilation=2), ValueError, r"spatial size 4 .* output size would be 0"),
    (lambda: F.max_pool1d(np.zeros((1, 1, 2)), 2, 1, 1, 3), ValueError, r"lies entirely in the padding \(input size 2"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 0), ValueError, r"kernel_size to be >= 1, got 0"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 2, stride=0), ValueError, r"stride to be >= 1, got 0"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 2, padding=-1), ValueError, r"padding to be >= 0, got -1"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), (2, 2, 2)), ValueError, r"tuple of 2 ints, got \(2, 2, 2\)"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 2.5), TypeError, r"kernel_size to be an int"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 2, tie="last"), ValueError, r"tie to be one of .*'last'"),
    (lambda: F.min_pool1d(np.zeros((1, 1, 4)), 2, nan="drop"), ValueError, r"min_pool1d: expected nan to be one of"),
    (lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, divisor_override=0), ValueError, r"divisor_override .* got 0"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((1, 1, 4, 4)), (0, 2)), ValueError, r"output_size entries to be positive"),
    (lambda: F.adaptive_max_pool1d(np.zeros((1, 1, 4)), (2, 2)), ValueError, r"output_size to be an int or a tuple of 1"),
    (lambda: F.lp_pool2d(np.ones((1, 1, 4, 4)), 0, 2), ValueError, r"norm_type to be a non-zero real number, got 0"),
    (lambda: F.max_unpool2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), 2), TypeError, r"integer indices.*float64"),
    (lambda: F.max_unpool2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 3), dtype=np.int64), 2), ValueError,
     r"indices of the input's shape \(1, 1, 2, 2\), got \(1, 1, 2, 3\)"),
    (lambda: F.max_unpool2d(np.zeros((1, 1, 2, 2)), np.full((1, 1, 2, 2), 16), 2), ValueError,
     r"invalid max index 16 \(output plane of size \(4, 4\)\)"),
    (lambda: F.max_unpool1d(np.zeros((1, 1, 2)), np.zeros((1, 1, 2), dtype=np.int64), 2, output_size=[6]), ValueError,
     r"invalid output_size \(6,\) \(dim 0 must be between 2 and 6"),
    (lambda: nn.MaxPool2d(3, padding=2)(np.zeros((1, 1, 8, 8))), ValueError, r"^MaxPool2d: padding should be"),
    (lambda: F.max_pool3d(np.zeros((1, 4, 4)), 2), ValueError, r"max_pool3d: expected 4D or 5D input.*got 3D"),
    (lambda: F.avg_pool3d(np.zeros((1, 1, 4, 4, 4)), (2, 2)), ValueError, r"avg_pool3d: .*tuple of 3 ints, got \(2, 2\)"),
    (lambda: nn.MaxPool3d(2, padding=(0, 2, 0))(np.zeros((1, 1, 4, 4, 4))), ValueError,
     r"^MaxPool3d: padding should be at most half of kernel_size, got padding=\(0, 2, 0\)"),
    (lambda: nn.AvgPool3d(3)(np.zeros((1, 1, 4, 2, 4))), ValueError,
     r"^AvgPool3d: input of spatial size \(4, 2, 4\) is too small for kernel_size=\(3, 3, 3\)"),
    (lambda: nn.MinPool3d(2)(np.zeros((1, 1, 4, 4, 4), dtype=np.int64)), TypeError, r"^MinPool3d: expected a floating"),
    (lambda: nn.AdaptiveMaxPool3d((2, 2))(np.zeros((1, 1, 4, 4, 4))), ValueError,
     r"^AdaptiveMaxPool3d: expected output_size to be an int or a tuple of 3"),
    (lambda: nn.AdaptiveAvgPool3d(2)(np.zeros((1, 1, 0, 4, 4))), ValueError, r"^AdaptiveAvgPool3d: expected non-zero"),
    (lambda: F.max_pool3d(np.zeros((1, 1, 2, 4, 4)), 2, 1, 1, 3), ValueError, r"along depth lies entirely in the padding"),
    (lambda: nn.AvgPool1d(9)(np.zeros((1, 1, 8))), ValueError, r"^AvgPool1d: input of spatial size 8"),
    (lambda: nn.MinPool2d(2)(np.zeros((8, 8))), ValueError, r"^MinPool2d: expected 3D or 4D"),
    (lambda: nn.LPPool1d(2, 3)(np.zeros((1, 1, 8), dtype=np.int32)), TypeError, r"^LPPool1d: expected a floating-point"),
]


@pytest.mark.parametrize("call,error,pattern", BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_input_is_refused_naming_layer_and_sizes(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_torch_also_refuses_what_we_refuse():
    # the refusals above are torch's (it raises RuntimeError where we raise ValueError), not stricter rules
    import torch.nn.functional as TF
    for torch_call in (lambda: TF.max_pool2d(torch.zeros(1, 1, 8, 8), 3, padding=2),
                       lambda: TF.max_pool2d(torch.zeros(1, 1, 2, 3), 5),
                       lambda: TF.max_pool2d(torch.zeros(1, 0, 4, 4), 2),
                       lambda: TF.avg_pool2d(torch.zeros(1, 1, 4, 4), 2, divisor_override=0)):
        with pytest.raises(RuntimeError):
            torch_call()


def test_an_empty_batch_is_allowed_like_torch():
    x = normlab.tensor(np.zeros((0, 2, 6, 6)), requires_grad=True)
    y = F.max_pool2d(x, 2)
    assert y.shape == (0, 2, 3, 3)
    y.backward(np.zeros(y.shape))
    assert x.grad.shape == (0, 2, 6, 6)


# ---------------------------------------------------------------- module constructors


MODULES = [
    ("MaxPool1d", (3,), dict(stride=2, padding=1, dilation=2, return_indices=True, ceil_mode=True)),
    ("MaxPool2d", ((3, 2),), dict(stride=(2, 1), padding=(1, 0))),
    ("AvgPool1d", (3,), dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("AvgPool2d", (3,), dict(stride=1, padding=1, divisor_override=2)),
    ("AdaptiveAvgPool1d", (3,), {}),
    ("AdaptiveAvgPool2d", ((None, 3),), {}),
    ("AdaptiveMaxPool1d", (3,), dict(return_indices=True)),
    ("AdaptiveMaxPool2d", (3,), {}),
    ("LPPool1d", (2, 3), {}),
    ("LPPool2d", (1.5, (2, 3)), dict(stride=1, ceil_mode=True)),
    ("MaxUnpool1d", (3,), {}),
    ("MaxUnpool2d", (3,), dict(stride=2, padding=1)),
    ("MaxPool3d", ((3, 2, 1),), dict(stride=(2, 1, 1), padding=(1, 0, 0), dilation=(1, 2, 1), ceil_mode=True)),
    ("AvgPool3d", (3,), dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False, divisor_override=5)),
    ("AdaptiveAvgPool3d", ((1, None, 3),), {}),
    ("AdaptiveMaxPool3d", (2,), dict(return_indices=True)),
    ("LPPool3d", (2, (2, 3, 1)), dict(stride=1)),
    ("MaxUnpool3d", ((2, 3, 2),), dict(stride=2, padding=1)),
]


@pytest.mark.parametrize("name,args,kwargs", MODULES, ids=[m[0] for m in MODULES])
def test_module_attributes_and_repr_match_torch(name, args, kwargs):
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    for attribute in ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices",
                      "count_include_pad", "divisor_override", "output_size", "norm_type"):
        if hasattr(theirs, attribute):
            assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert ours.state_dict() == {}


def test_min_pool_modules_mirror_max_pool_and_show_non_default_options():
    assert repr(nn.MinPool2d(2)) == repr(torch.nn.MaxPool2d(2)).replace("MaxPool2d", "MinPool2d")
    assert repr(nn.MinPool3d(2, 1)) == repr(torch.nn.MaxPool3d(2, 1)).replace("MaxPool3d", "MinPool3d")
    assert repr(nn.MaxPool1d(2, tie="split", nan="ignore")).endswith("ceil_mode=False, tie='split', nan='ignore')")
    assert nn.MinPool1d(3).stride == 3
