"""F.interpolate and Upsample / UpsamplingNearest2d / UpsamplingBilinear2d against PyTorch.

float64 against torch in float64; float32 against torch in float64 on the
same values within float32 rounding (``tests/conv_oracle.py``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.ops import upsampling as up_ops
from tests.conv_oracle import compare
from tests.oracle import numerical_gradient, random_upstream

DTYPES = [np.float64, np.float32]
LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


@st.composite
def interpolate_case(draw):
    dims = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["nearest", "nearest-exact", LINEAR[dims]]))
    spatial = tuple(draw(st.integers(1, 6 if dims < 3 else 4)) for _ in range(dims))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + spatial
    options = dict(mode=mode)
    if draw(st.booleans()):
        sizes = tuple(draw(st.integers(1, 9)) for _ in range(dims))
        options["size"] = sizes if dims > 1 or draw(st.booleans()) else sizes[0]
    else:
        factors = tuple(draw(st.sampled_from([0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 1.7])) for _ in range(dims))
        options["scale_factor"] = factors if draw(st.booleans()) else factors[0]
        options["recompute_scale_factor"] = draw(st.sampled_from([None, False, True]))
    if mode == LINEAR[dims]:
        options["align_corners"] = draw(st.sampled_from([None, False, True]))
    return shape, options, draw(st.sampled_from(DTYPES)), draw(st.integers(0, 2 ** 16))


def torch_output_shape(shape, options):
    """torch's output shape, or None where torch refuses (an independent reference for the filter)."""
    try:
        return tuple(TF.interpolate(torch.zeros(shape, dtype=torch.float64), **options).shape)
    except (RuntimeError, ValueError):
        return None


@given(interpolate_case())
@settings(max_examples=80)
def test_interpolate_matches_torch(case):
    shape, options, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if torch_output_shape(shape, options) is None:  # e.g. a factor that leaves no output
        with pytest.raises(ValueError, match="interpolate: "):
            F.interpolate(x, **options)
        return
    compare(lambda t: F.interpolate(t, **options), lambda t: TF.interpolate(t, **options), [x], dtype, rng,
            what=f"interpolate {options}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [
    dict(scale_factor=2, mode="bilinear", align_corners=False),   # the usual decoder / FPN upsampling
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(size=(23, 17), mode="bilinear"),
    dict(scale_factor=2),
    dict(size=(9, 30)),
    dict(scale_factor=0.5, mode="bilinear"),
], ids=str)
def test_image_sizes_match_torch(options, dtype, rng):
    compare(lambda t: F.interpolate(t, **options), lambda t: TF.interpolate(t, **options),
            [rng.standard_normal((2, 3, 14, 15))], dtype, rng, what=str(options))


def test_nearest_picks_torch_pixels_where_float32_rounding_decides(rng):
    """Sizes whose index o * in / out lands on an integer in exact arithmetic but not in float32."""
    for size, out in [(3, 7), (5, 13), (7, 10), (10, 3), (6, 11), (9, 7)]:
        x = rng.standard_normal((1, 1, size))
        for options in (dict(size=out), dict(scale_factor=out / size), dict(size=out, mode="nearest-exact")):
            expected = TF.interpolate(torch.tensor(x), **options).numpy()
            np.testing.assert_array_equal(F.interpolate(x, **options).numpy(), expected, err_msg=f"{size} {options}")


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_numerical_gradient(mode, rng):
    x = rng.standard_normal((1, 2, 3, 4))
    options = dict(size=(5, 7), mode=mode)
    g = random_upstream((1, 2, 5, 7), np.float64, rng)
    xn = normlab.tensor(x, requires_grad=True)
    F.interpolate(xn, **options).backward(g)
    numeric = numerical_gradient(lambda: float((F.interpolate(x, **options).numpy() * g).sum()), x)
    np.testing.assert_allclose(xn.grad, numeric, rtol=1e-6, atol=1e-8)


def test_axis_map_by_hand():
    """Linear, align_corners=False, 2 -> 4: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (last pixel twice)."""
    (low, w_low), (high, w_high) = up_ops.axis_map(2, 4, "linear", False, None)
    np.testing.assert_array_equal(low, [0, 0, 0, 1])
    np.testing.assert_array_equal(high, [1, 1, 1, 1])
    np.testing.assert_allclose(w_high, [0.0, 0.25, 0.75, 0.25])


def test_output_is_a_fresh_array(rng):
    x = normlab.tensor(rng.standard_normal((1, 1, 3, 3)))
    assert not np.shares_memory(F.interpolate(x, scale_factor=1).numpy(), x.numpy())


# ----------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------

MODULES = [
    ("Upsample", dict(scale_factor=2, mode="bilinear"), (2, 3, 4, 5)),
    ("Upsample", dict(size=(3, 7)), (2, 3, 4, 5)),
    ("Upsample", dict(scale_factor=(2, 1.5), mode="nearest-exact"), (1, 2, 4, 4)),
    ("Upsample", dict(size=7, mode="linear", align_corners=True), (2, 3, 4)),
    ("Upsample", dict(scale_factor=1.5, mode="trilinear"), (1, 2, 2, 3, 4)),
    ("UpsamplingNearest2d", dict(scale_factor=3), (1, 2, 3, 3)),
    ("UpsamplingBilinear2d", dict(size=(5, 6)), (1, 2, 3, 3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,options,shape", MODULES, ids=[f"{m[0]}-{m[1]}" for m in MODULES])
def test_module_matches_torch(name, options, shape, dtype, rng):
    ours, theirs = getattr(nn, name)(**options), getattr(torch.nn, name)(**options)
    assert repr(ours) == repr(theirs)
    for attribute in ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "name"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert ours.state_dict() == {}
    compare(ours, theirs, [rng.standard_normal(shape)], dtype, rng, what=name)


BAD = [
    ("neither", lambda: F.interpolate(np.zeros((1, 1, 4)), mode="nearest"), "interpolate: expected exactly one of size"),
    ("both", lambda: F.interpolate(np.zeros((1, 1, 4)), size=3, scale_factor=2), "interpolate: expected exactly one"),
    ("size length", lambda: F.interpolate(np.zeros((1, 1, 4, 4)), size=(3,)),
     "interpolate: expected size with one entry per spatial dimension (2"),
    ("mode rank", lambda: F.interpolate(np.zeros((1, 1, 4)), scale_factor=2, mode="bilinear"),
     "interpolate: mode 'bilinear' needs 4D input, got 3D input"),
    ("align_corners", lambda: F.interpolate(np.zeros((1, 1, 4)), scale_factor=2, align_corners=True),
     "interpolate: align_corners can only be set with the interpolating modes"),
    ("rank", lambda: F.interpolate(np.zeros((4, 4)), scale_factor=2), "interpolate: expected 3D, 4D or 5D input"),
    ("empty output", lambda: F.interpolate(np.zeros((1, 1, 4, 4)), scale_factor=0.1),
     "interpolate: expected output sizes greater than 0, got [0, 0]"),
    ("mode", lambda: F.interpolate(np.zeros((1, 1, 4)), scale_factor=2, mode="cubic"),
     "interpolate: expected mode to be one of"),
    ("recompute with size", lambda: F.interpolate(np.zeros((1, 1, 4)), size=3, recompute_scale_factor=True),
     "interpolate: recompute_scale_factor is not meaningful with an explicit size"),
    ("float size", lambda: F.interpolate(np.zeros((1, 1, 4)), size=3.0), "interpolate: expected size to be an int"),
    ("module", lambda: nn.Upsample(scale_factor=2, mode="linear")(np.zeros((1, 1, 4, 4))),
     "Upsample: mode 'linear' needs 3D input, got 4D input"),
]


@pytest.mark.parametrize("what,call,message", BAD, ids=[c[0] for c in BAD])
def test_bad_input(what, call, message):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert message in str(info.value)
