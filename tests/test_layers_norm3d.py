"""BatchNorm3d and InstanceNorm3d against torch: outputs, gradients and running statistics over several steps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import normlab
import normlab.nn as nn
from tests.oracle import assert_close, assert_float32_close, numerical_gradient, random_upstream

CASES = {
    "BatchNorm3d": (lambda **o: nn.BatchNorm3d(3, **o), lambda: torch.nn.BatchNorm3d(3), (4, 3, 2, 3, 5)),
    "BatchNorm3d(momentum=None)": (lambda **o: nn.BatchNorm3d(3, momentum=None, **o),
                                   lambda: torch.nn.BatchNorm3d(3, momentum=None), (2, 3, 2, 2, 3)),
    "BatchNorm3d(affine=False)": (lambda **o: nn.BatchNorm3d(3, affine=False, **o),
                                  lambda: torch.nn.BatchNorm3d(3, affine=False), (4, 3, 2, 3, 5)),
    "InstanceNorm3d": (lambda **o: nn.InstanceNorm3d(3, **o), lambda: torch.nn.InstanceNorm3d(3), (4, 3, 2, 3, 5)),
    "InstanceNorm3d(affine, tracked)": (
        lambda **o: nn.InstanceNorm3d(3, affine=True, track_running_stats=True, **o),
        lambda: torch.nn.InstanceNorm3d(3, affine=True, track_running_stats=True), (4, 3, 2, 3, 5)),
    "InstanceNorm3d(unbatched)": (lambda **o: nn.InstanceNorm3d(3, affine=True, **o),
                                  lambda: torch.nn.InstanceNorm3d(3, affine=True), (3, 2, 3, 5)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_in_training_and_eval(rng, name):
    make, make_torch, shape = CASES[name]
    ours, theirs = make(dtype=np.float64), make_torch().double()
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
    for p in theirs.parameters():  # non-trivial affine parameters
        with torch.no_grad():
            p.copy_(torch.tensor(rng.standard_normal(p.shape)))
    ours.load_state_dict({k: v.numpy().copy() for k, v in theirs.state_dict().items()})
    for step, training in enumerate([True, True, True, False]):
        ours.train(training)
        theirs.train(training)
        data = rng.standard_normal(shape) * (step + 1) + step
        x, xt = normlab.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
        y, yt = ours(x), theirs(xt)
        g = random_upstream(shape, np.float64, rng)
        y.backward(g)
        yt.backward(torch.tensor(g))
        assert_close(y, yt, np.float64, f"step {step} output")
        assert_close(x.grad, xt.grad, np.float64, f"step {step} dx")
        for (key, mine), (_, value) in zip(ours.state_dict().items(), theirs.state_dict().items()):
            assert_close(mine, value.numpy(), np.float64, f"step {step} {key}")
        for (pname, p), tp in zip(ours.named_parameters(), theirs.parameters()):
            assert_close(p.grad, tp.grad, np.float64, f"step {step} d{pname}")
            p.grad, tp.grad = None, None


@pytest.mark.parametrize("name", ["BatchNorm3d", "InstanceNorm3d"])
def test_float32_statistics_stay_stable(rng, name):
    """float32 input with mean 1e4 and std 1 still normalizes to unit variance (two-pass statistics)."""
    make, make_torch, shape = CASES[name]
    ours = make(dtype=np.float32)
    data = (rng.standard_normal(shape) + 1e4).astype(np.float32)
    y = ours(normlab.tensor(data))
    reference = make_torch().double()(torch.tensor(data.astype(np.float64))).detach().numpy()
    assert y.dtype == np.float32
    # the input is rounded at 1e4: its float32 spacing, relative to std 1, bounds the error
    assert_float32_close(y, reference, scale=1e4, ulps=8, what="output")


def test_numerical_gradient(rng):
    layer = nn.BatchNorm3d(2, dtype=np.float64)
    layer.weight.data[...] = [1.5, -0.5]
    data = rng.standard_normal((2, 2, 2, 1, 3))
    g = rng.standard_normal(data.shape)
    x = normlab.tensor(data, requires_grad=True)
    layer(x).backward(g)
    numeric = numerical_gradient(lambda: float((np.asarray(layer(normlab.tensor(data)).detach()) * g).sum()), data)
    np.testing.assert_allclose(np.asarray(x.grad), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("call,message", [
    (lambda: nn.BatchNorm3d(3)(normlab.randn(2, 3, 4, 4)), r"BatchNorm3d: expected 5D input \(N, C, D, H, W\)"),
    (lambda: nn.BatchNorm3d(3)(normlab.randn(2, 4, 1, 2, 2)), "BatchNorm3d: expected input with 3 channels"),
    (lambda: nn.InstanceNorm3d(3)(normlab.randn(3, 4, 4)), "InstanceNorm3d: expected 4D or 5D input"),
    (lambda: nn.InstanceNorm3d(3, affine=True)(normlab.randn(2, 4, 1, 2, 2)), "InstanceNorm3d: expected input with 3"),
])
def test_bad_input_raises_before_any_state_changes(call, message):
    with pytest.raises(ValueError, match=message):
        call()
    layer = nn.BatchNorm3d(3)
    with pytest.raises(ValueError):
        layer(normlab.randn(2, 3, 4))
    assert int(layer.num_batches_tracked.item()) == 0
