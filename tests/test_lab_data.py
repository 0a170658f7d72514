"""Sequence tasks for the RNN experiments: shapes, seeds, padding, and each target rule recomputed independently."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from normlab.data import (
    TEMPORAL_ORDER_SYMBOLS,
    DataLoader,
    load_mnist1d,
    make_adding_problem,
    make_temporal_order,
    mnist1d_sequences,
)


def _check_padding(data, max_length):
    assert data.x.shape[:2] == (len(data), max_length) and data.x.dtype == np.float32
    assert data.lengths.dtype == np.int64 and not data.x.flags.writeable and not data.y.flags.writeable
    steps = np.arange(max_length)
    np.testing.assert_array_equal(data.mask, steps[None, :] < data.lengths[:, None])
    assert not data.x[~data.mask].any()  # zeros after each sequence's end


@given(n=st.integers(1, 40), max_length=st.integers(2, 30), shorter=st.integers(0, 28), seed=st.integers(0, 1000))
def test_adding_problem_target_is_the_sum_of_the_two_marked_values(n, max_length, shorter, seed):
    min_length = max(2, max_length - shorter)
    data = make_adding_problem(n, max_length=max_length, min_length=min_length, seed=seed)
    _check_padding(data, max_length)
    assert data.task == "regression" and data.n_classes is None and data.y.dtype == np.float32
    assert ((data.lengths >= min_length) & (data.lengths <= max_length)).all()
    for values, markers, length, target in zip(data.x[:, :, 0], data.x[:, :, 1], data.lengths, data.y):
        marked = np.flatnonzero(markers)
        assert len(marked) == 2 and set(markers[marked]) == {1.0}
        half = length // 2
        assert 0 <= marked[0] < half <= marked[1] < length
        assert ((values[:length] >= 0) & (values[:length] < 1)).all()
        assert target == np.float32(values[marked[0]]) + np.float32(values[marked[1]])


def test_adding_problem_baseline_is_one_sixth():
    # Predicting 1 for every sequence: E[(a + b - 1)^2] = Var(a + b) = 2 / 12 for a, b ~ U(0, 1).
    data = make_adding_problem(20000, max_length=10, seed=3)
    assert np.mean((data.y - 1.0) ** 2) == pytest.approx(1 / 6, rel=0.03)


def _decode(data):
    """Symbols of each sequence (argmax of the one-hot rows), -1 on padding."""
    symbols = data.x.argmax(axis=2)
    symbols[~data.mask] = -1
    return symbols


@given(n=st.integers(1, 30), max_length=st.integers(10, 60), shorter=st.integers(0, 50),
       markers=st.sampled_from([2, 3]), seed=st.integers(0, 1000))
def test_temporal_order_class_is_the_order_of_the_markers(n, max_length, shorter, markers, seed):
    min_length = max(10, max_length - shorter)
    data = make_temporal_order(n, max_length=max_length, min_length=min_length, n_markers=markers, seed=seed)
    _check_padding(data, max_length)
    assert data.n_classes == 2 ** markers and data.y.dtype == np.int64
    assert np.allclose(data.x[data.mask].sum(axis=1), 1.0)  # exactly one symbol per real step
    index = {symbol: k for k, symbol in enumerate(TEMPORAL_ORDER_SYMBOLS)}
    windows = [(0.1, 0.2), (0.3, 0.4), (0.5, 0.6)] if markers == 3 else [(0.1, 0.2), (0.5, 0.6)]
    for symbols, length, label in zip(_decode(data), data.lengths, data.y):
        assert symbols[0] == index["B"] and symbols[length - 1] == index["E"]
        positions = np.flatnonzero((symbols == index["X"]) | (symbols == index["Y"]))
        assert len(positions) == markers
        for position, (low, high) in zip(positions, windows):
            assert int(np.floor(low * length)) <= position < max(int(np.floor(high * length)),
                                                                   int(np.floor(low * length)) + 1)
        others = np.delete(symbols[1:length - 1], positions - 1)
        assert set(others.tolist()) <= {index[s] for s in "abcd"}
        word = "".join("X" if symbols[p] == index["X"] else "Y" for p in positions)
        assert label == int(word.replace("X", "0").replace("Y", "1"), 2)


def test_every_temporal_order_class_occurs():
    data = make_temporal_order(400, max_length=30, n_markers=3, seed=1)
    assert set(data.y.tolist()) == set(range(8))


@pytest.mark.parametrize("make", [make_adding_problem, make_temporal_order])
def test_same_seed_same_set_other_seed_other_set(make):
    a, b, c = make(50, max_length=20, min_length=10, seed=7), make(50, max_length=20, min_length=10, seed=7), \
        make(50, max_length=20, min_length=10, seed=8)
    for field in ("x", "lengths", "y"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x, c.x)


def test_longer_test_sequences_follow_the_same_rule():
    train = make_temporal_order(100, max_length=30, min_length=10, seed=0)
    test = make_temporal_order(100, max_length=120, min_length=60, seed=1)
    assert train.lengths.max() <= 30 and test.lengths.min() >= 60
    assert train.n_features == test.n_features == len(TEMPORAL_ORDER_SYMBOLS)


def test_sequences_batch_through_a_dataloader():
    data = make_adding_problem(10, max_length=8, min_length=4, seed=0)
    x, lengths, y = next(iter(DataLoader(data.dataset(), batch_size=4)))
    assert x.shape == (4, 8, 2) and lengths.shape == (4,) and y.shape == (4,)
    np.testing.assert_array_equal(x, data.x[:4])


def test_mnist1d_as_a_sequence():
    flat = load_mnist1d()
    train, test = mnist1d_sequences(flat)
    assert train.x.shape == (4000, 40, 1) and test.x.shape == (1000, 40, 1)
    np.testing.assert_array_equal(train.x[:, :, 0], flat.x_train)
    np.testing.assert_array_equal(test.y, flat.y_test)
    assert (train.lengths == 40).all() and train.n_classes == 10 and train.mask.all()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="min_length <= max_length"):
        make_adding_problem(10, max_length=5, min_length=6)
    with pytest.raises(ValueError, match="max_length to be an integer >= 2"):
        make_adding_problem(10, max_length=1)
    with pytest.raises(ValueError, match="max_length to be an integer >= 10"):
        make_temporal_order(10, max_length=9)
    with pytest.raises(ValueError, match="n_markers to be 2 or 3"):
        make_temporal_order(10, n_markers=4)
    with pytest.raises(ValueError, match="n_samples"):
        make_adding_problem(0)
