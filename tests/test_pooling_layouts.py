"""Every kernel path of max / min / average pooling against torch: dense windows read in place, padded,
or laid side by side in a strip; general loops for dilated, larger or float64 windows.

The hypothesis tests elsewhere draw small planes (a strip of several); these
shapes make sure the big-plane paths run too, and the first test pins which
path each case takes, so that a change of the layout constants keeps them covered.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import normlab
import normlab.nn.functional as F
from normlab.ops.pooling import geometry, kernels
from tests.oracle import random_upstream
from tests.test_pooling_common import close, distinct_input, tied_input, torch_reference

# (input shape, kwargs, the path float32 takes)
CASES = [
    ((2, 3, 40, 36), dict(kernel_size=2), "direct"),
    ((2, 3, 41, 37), dict(kernel_size=2, ceil_mode=True), "padded"),
    ((2, 3, 40, 38), dict(kernel_size=3, stride=2, padding=1), "padded"),
    ((2, 3, 40, 38), dict(kernel_size=3, stride=1, padding=1), "padded"),
    ((2, 3, 60, 57), dict(kernel_size=3, stride=3), "direct"),
    ((2, 3, 33, 34), dict(kernel_size=2, stride=1), "direct"),
    ((3, 5, 7, 7), dict(kernel_size=2), "strip"),
    ((3, 5, 7, 7), dict(kernel_size=3, stride=2, padding=1), "strip"),
    ((3, 5, 7, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), "strip"),
    ((2, 3, 101), dict(kernel_size=2), "direct"),
    ((2, 3, 101), dict(kernel_size=3, stride=2, padding=1), "padded"),
    ((4, 6, 13), dict(kernel_size=3, stride=2, padding=1), "strip"),
    ((2, 3, 40, 38), dict(kernel_size=(2, 3), stride=2), "general"),
    ((2, 3, 40, 38), dict(kernel_size=4, stride=2, padding=2), "general"),
    ((2, 3, 1, 40, 36), dict(kernel_size=(1, 2, 2)), "direct"),      # a 3d pool of depth 1: the 2d loops
    ((2, 3, 6, 10, 12), dict(kernel_size=2), "general"),
    ((2, 3, 7, 10, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), "general"),
]
IDS = [f"{shape}-{'-'.join(f'{k}{v}' for k, v in kwargs.items())}" for shape, kwargs, _ in CASES]


def _windows(shape, kwargs):
    n = len(shape) - 2
    kernel, stride, padding, dilation = geometry.normalize_pool_args(
        "t", n, kwargs["kernel_size"], kwargs.get("stride"), kwargs.get("padding", 0))
    return geometry.pool_windows("t", shape[-n:], kernel, stride, padding, dilation, kwargs.get("ceil_mode", False))


@pytest.mark.parametrize("shape,kwargs,path", CASES, ids=IDS)
def test_each_case_takes_the_path_it_names(shape, kwargs, path):
    windows = _windows(shape, kwargs)
    if path == "general":
        assert not kernels._dense(windows, np.dtype(np.float32))
        return
    assert kernels._dense(windows, np.dtype(np.float32))
    assert not kernels._dense(windows, np.dtype(np.float64))          # float64 takes the general loops
    strip = kernels._strip(windows)
    assert (strip.batch > 1) == (path == "strip")
    assert strip.direct == (path == "direct")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["max", "min", "avg"])
@pytest.mark.parametrize("shape,kwargs,path", CASES, ids=IDS)
def test_every_path_matches_torch(shape, kwargs, path, kind, dtype, rng):
    n = len(shape) - 2
    x = distinct_input(shape, dtype, rng) if kind != "avg" else rng.standard_normal(shape).astype(dtype)
    torch_max = getattr(TF, f"max_pool{n}d")
    theirs = {"max": lambda t: torch_max(t, **kwargs), "min": lambda t: -torch_max(-t, **kwargs),
              "avg": lambda t: getattr(TF, f"avg_pool{n}d")(t, **kwargs)}[kind]
    ours = getattr(F, f"{kind}_pool{n}d")
    dy = random_upstream(ours(x, **kwargs).shape, dtype, rng)
    ty, tdx, ty_scale, tdx_scale = torch_reference(theirs, x, dy, scale_input=None if kind == "avg" else x)
    xt = normlab.tensor(x, requires_grad=True)
    y = ours(xt, **kwargs)
    y.backward(dy)
    close(y, ty, dtype, "output", scale=ty_scale)
    close(xt.grad, tdx, dtype, "input gradient", scale=tdx_scale)


@pytest.mark.parametrize("shape,kwargs,path", [c for c in CASES if c[2] != "general"],
                         ids=[i for i, c in zip(IDS, CASES) if c[2] != "general"])
def test_dense_paths_keep_torchs_tie_and_nan_rules(shape, kwargs, path, rng):
    # ties, infinities and NaNs in float32 (the dense loops): torch's values, indices and gradient
    n = len(shape) - 2
    x = tied_input(shape, np.float32, rng, levels=3, nan_fraction=0.05, inf_fraction=0.05)
    torch_max = getattr(TF, f"max_pool{n}d")
    dy = random_upstream(getattr(F, f"max_pool{n}d")(x, **kwargs).shape, np.float32, rng)
    ty, tdx, _, tdx_scale = torch_reference(lambda t: torch_max(t, **kwargs), x, dy, scale_input=x)
    _, tidx = torch_max(torch.tensor(x.astype(np.float64)), return_indices=True, **kwargs)
    xt = normlab.tensor(x, requires_grad=True)
    y, idx = getattr(F, f"max_pool{n}d")(xt, return_indices=True, **kwargs)
    y.backward(dy)
    close(y, ty, np.float32, "output")
    np.testing.assert_array_equal(idx.detach().numpy(), tidx.detach().numpy(), err_msg="indices")
    close(xt.grad, tdx, np.float32, "input gradient", scale=tdx_scale)
