"""Comparing the convolution family (conv, transposed conv, pad, interpolate) with PyTorch.

``compare`` (functions) and ``compare_modules`` (layers) run ours and
torch's with the same inputs and a random upstream gradient, then check the
output and every gradient:

* float64: against torch in float64, |ours - torch| <= 1e-10 |torch| +
  1e-12 (sum of |terms|) (the same sums in another order);
* float32: against torch in float64 on the same (float32) values, within
  float32 rounding of the magnitudes involved (``oracle.assert_float32_close``),
  never against torch's float32.

The magnitudes come from the op itself: each op here is linear in each
input with the others fixed, so running torch on |inputs| with upstream |g|
gives, for the output and for every gradient, the sum of |terms| that were
rounded on the way.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

import normlab
from tests.oracle import assert_float32_close, random_upstream, to_numpy


def assert_matches(actual, expected, scale, dtype, what: str, ulps: float = 16.0) -> None:
    """``actual`` (ours, in ``dtype``) against ``expected`` (torch in float64), ``scale`` the sums of |terms|."""
    a = to_numpy(actual)
    assert a is not None, f"{what}: normlab gave None"
    assert a.shape == expected.shape, f"{what}: shape {a.shape} != torch's {expected.shape}"
    assert a.dtype == np.dtype(dtype), f"{what}: dtype {a.dtype}, expected {np.dtype(dtype)}"
    if np.dtype(dtype) == np.float32:
        assert_float32_close(a, expected, scale=scale, what=what, ulps=ulps)
        return
    bound = 1e-10 * np.abs(expected) + 1e-12 * np.abs(scale)
    bad = ~((np.abs(a - expected) <= bound) | (np.isnan(a) & np.isnan(expected)))
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, np.abs(a - expected) - bound, -np.inf)), a.shape)
        raise AssertionError(f"{what}: {int(bad.sum())} of {a.size} values off; worst at {i}: got {a[i]!r}, "
                             f"torch {expected[i]!r}, bound {bound[i]!r}")


def _run_torch(theirs, arrays, upstream):
    tensors = [None if a is None else torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y = theirs(*tensors)
    y.backward(torch.tensor(upstream, dtype=torch.float64))
    return to_numpy(y), [None if t is None else to_numpy(t.grad) for t in tensors]


def compare(ours, theirs, arrays, dtype, rng, what: str = "", needs=None, ulps: float = 16.0):
    """Check ``ours(*tensors)`` against ``theirs(*torch_tensors)``: the output and each needed gradient.

    ``arrays``: the inputs (None for an absent optional one), cast to ``dtype``;
    ``needs``: which inputs require grad (default: every one given); a
    gradient not needed must stay None. Returns our output Tensor.
    """
    dtype = np.dtype(dtype)
    arrays = [None if a is None else np.asarray(a).astype(dtype) for a in arrays]
    needs = needs or [a is not None for a in arrays]
    tensors = [None if a is None else normlab.tensor(a, requires_grad=bool(need)) for a, need in zip(arrays, needs)]
    y = ours(*tensors)
    g = random_upstream(y.shape, dtype, rng)
    y.backward(g)
    expected_y, expected_grads = _run_torch(theirs, arrays, g)
    scale_y, scale_grads = _run_torch(theirs, [None if a is None else np.abs(a) for a in arrays], np.abs(g))
    assert_matches(y, expected_y, scale_y, dtype, f"{what} output", ulps)
    for i, t in enumerate(tensors):
        if t is None:
            continue
        if needs[i]:
            assert_matches(t.grad, expected_grads[i], scale_grads[i], dtype, f"{what} gradient of input {i}", ulps)
        else:
            assert t.grad is None, f"{what}: input {i} needs no gradient but got one"
    return y


def compare_modules(ours, theirs, x, dtype, rng, *forward_args, ulps: float = 16.0):
    """Our module against torch's (given the same parameter values): output, input and parameter gradients.

    ``theirs`` is a float64 torch module; ``ours`` holds its parameters in ``dtype``.
    """
    dtype = np.dtype(dtype)
    theirs.load_state_dict({k: torch.tensor(np.asarray(v), dtype=torch.float64)
                            for k, v in ours.state_dict().items()})
    magnitudes = copy.deepcopy(theirs)
    with torch.no_grad():
        for p in magnitudes.parameters():
            p.abs_()
    x = np.asarray(x).astype(dtype)
    xn = normlab.tensor(x, requires_grad=True)
    ours.zero_grad()
    y = ours(xn, *forward_args)
    g = random_upstream(y.shape, dtype, rng)
    y.backward(g)
    results = []
    for module, inputs, upstream in ((theirs, x, g), (magnitudes, np.abs(x), np.abs(g))):
        xt = torch.tensor(inputs, dtype=torch.float64, requires_grad=True)
        module.zero_grad()
        yt = module(xt, *forward_args)
        yt.backward(torch.tensor(upstream, dtype=torch.float64))
        results.append((to_numpy(yt), to_numpy(xt.grad), {n: to_numpy(p.grad) for n, p in module.named_parameters()}))
    (expected_y, expected_dx, expected_dp), (scale_y, scale_dx, scale_dp) = results
    what = repr(ours)
    assert_matches(y, expected_y, scale_y, dtype, f"{what} output", ulps)
    assert_matches(xn.grad, expected_dx, scale_dx, dtype, f"{what} input gradient", ulps)
    for name, p in ours.named_parameters():
        assert_matches(p.grad, expected_dp[name], scale_dp[name], dtype, f"{what} gradient of {name}", ulps)
    return y


CONV_ATTRIBUTES = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                   "padding_mode", "output_padding", "transposed", "_reversed_padding_repeated_twice")


def assert_same_module_layout(ours, theirs, attributes=CONV_ATTRIBUTES) -> None:
    """state_dict keys (in order) and shapes, repr and ``attributes`` as the torch module's."""
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key in theirs_state:
        assert ours_state[key].shape == tuple(theirs_state[key].shape), key
    assert repr(ours) == repr(theirs)
    for attribute in attributes:
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
