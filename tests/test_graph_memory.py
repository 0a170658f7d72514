"""What the graph keeps alive: torch's retain_graph rule, and no input held that nothing saved."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

import normlab
import normlab.nn as nn
import normlab.nn.functional as F


def test_a_second_backward_through_saved_arrays_raises_like_torch():
    x = normlab.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()  # Mul saved both inputs
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    xt = torch.tensor([1.0, 2.0], requires_grad=True)
    yt = (xt * xt).sum()
    yt.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        yt.backward()


def test_retain_graph_keeps_it_and_gradients_add_up():
    x = normlab.tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, 4 * np.array([1.0, 2.0]))


def test_a_graph_that_saved_nothing_runs_twice_as_in_torch():
    x = normlab.tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    y = (x + 1.0).sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_an_intermediate_that_no_op_saved_is_freed_before_backward():
    """ReLU's input (BatchNorm's output) is not needed for backward: dropping it must free it."""
    layer = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16))
    x = normlab.randn(32, 8)
    hidden = layer(x)
    watch = weakref.ref(hidden)
    out = F.relu(hidden) * 2.0  # Mul by a number keeps nothing of ReLU's output either
    del hidden
    gc.collect()
    assert watch() is None, "the graph kept an input that no op saved"
    out.sum().backward()
    assert layer[0].weight.grad is not None


def test_saved_state_is_freed_as_the_backward_goes():
    x = normlab.tensor(np.random.default_rng(0).standard_normal((4, 5)), requires_grad=True)
    y = x.exp()
    node = y.grad_fn
    assert any(isinstance(v, np.ndarray) for v in vars(node).values())
    y.sum().backward()
    assert not any(isinstance(v, np.ndarray) for v in vars(node).values())
