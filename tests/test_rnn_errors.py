"""Bad input to the recurrent layers: a ValueError/TypeError naming the layer, the expected and the given,
raised before any state changes (the per-step running statistics of norm="batch" stay as they were)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import normlab
import normlab.nn as nn
from normlab.nn.utils.rnn import PackedSequence, pack_padded_sequence


def _buffers(module):
    return {name: b.detach().numpy().copy() for name, b in module.named_buffers()}


@pytest.fixture
def bn_lstm():
    module = nn.LSTM(3, 4, num_layers=2, bidirectional=True, norm="batch", max_steps=4, dtype=np.float64)
    for b in module.buffers():
        b.detach().numpy()[...] = np.random.default_rng(0).uniform(0.5, 1.5, b.shape)
    return module


GOOD_X = np.zeros((5, 2, 3))

BAD_CALLS = [  # (description, args, kwargs, error, message pattern)
    ("1-D input", (np.zeros(3),), {}, ValueError, r"LSTM: expected 3D input .* or 2D input .* got 1D input of shape \(3,\)"),
    ("4-D input", (np.zeros((5, 2, 3, 1)),), {}, ValueError, r"LSTM: expected 3D .* got 4D input"),
    ("feature size", (np.zeros((5, 2, 7)),), {}, ValueError, r"LSTM: expected input with last dimension 3 .* got shape \(5, 2, 7\)"),
    ("empty sequence", (np.zeros((0, 2, 3)),), {}, ValueError, r"LSTM: expected a sequence length larger than 0"),
    ("lengths too long", (GOOD_X,), dict(lengths=[6, 2]), ValueError, r"LSTM: expected every length in 1 \.\. 5 .* got \[6, 2\]"),
    ("zero length", (GOOD_X,), dict(lengths=[5, 0]), ValueError, r"LSTM: expected every length in 1 \.\. 5 .* got \[5, 0\]"),
    ("negative length", (GOOD_X,), dict(lengths=[-1, 5]), ValueError, r"LSTM: expected every length in 1 \.\. 5"),
    ("float lengths", (GOOD_X,), dict(lengths=[5.0, 2.5]), TypeError, r"LSTM: expected integer lengths, got float64"),
    ("bool lengths", (GOOD_X,), dict(lengths=[True, True]), TypeError, r"LSTM: expected integer lengths, got bool"),
    ("lengths count", (GOOD_X,), dict(lengths=[5, 2, 1]), ValueError, r"LSTM: expected 2 lengths .* got shape \(3,\)"),
    ("lengths 2-D", (GOOD_X,), dict(lengths=[[5, 2]]), ValueError, r"LSTM: expected 2 lengths .* got shape \(1, 2\)"),
    ("hx not a tuple", (GOOD_X, np.zeros((4, 2, 4))), {}, TypeError, r"LSTM: expected hx to be a tuple \(h_0, c_0\), got ndarray"),
    ("h0 shape", (GOOD_X, (np.zeros((2, 2, 4)), np.zeros((4, 2, 4)))), {}, ValueError,
     r"LSTM: expected h_0 of shape \(4, 2, 4\), got \(2, 2, 4\)"),
    ("c0 shape", (GOOD_X, (np.zeros((4, 2, 4)), np.zeros((4, 3, 4)))), {}, ValueError,
     r"LSTM: expected c_0 of shape \(4, 2, 4\), got \(4, 3, 4\)"),
    ("unbatched with 3-D state", (np.zeros((5, 3)), (np.zeros((4, 1, 4)), np.zeros((4, 1, 4)))), {}, ValueError,
     r"LSTM: expected h_0 of shape \(4, 4\), got \(4, 1, 4\)"),
    ("input dtype", (GOOD_X.astype(np.float32),), {}, TypeError,
     r"LSTM: expected input of dtype float64 \(the parameters' dtype\), got float32"),
    ("integer input", (np.zeros((5, 2, 3), dtype=np.int64),), {}, TypeError, r"LSTM: expected a floating-point input .* got dtype int64"),
    ("state dtype", (GOOD_X, (np.zeros((4, 2, 4), np.float32), np.zeros((4, 2, 4)))), {}, TypeError,
     r"LSTM: expected h_0 of dtype float64 .* got float32"),
    ("one sequence at a step", (GOOD_X,), dict(lengths=[5, 3]), ValueError,
     r"LSTM: norm='batch' needs at least 2 valid sequences at every time step in training .* \[2, 2, 2, 1, 1\]"),
    ("batch of one", (np.zeros((5, 1, 3)),), {}, ValueError, r"LSTM: norm='batch' needs at least 2 valid sequences"),
]


@pytest.mark.parametrize("description, args, kwargs, error, pattern", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_calls_raise_before_any_state_changes(bn_lstm, description, args, kwargs, error, pattern):
    before = _buffers(bn_lstm)
    with pytest.raises(error, match=pattern):
        bn_lstm(*args, **kwargs)
    for name, value in _buffers(bn_lstm).items():
        assert np.array_equal(value, before[name]), f"{name} changed by a failed call ({description})"


def test_bad_packed_sequences(bn_lstm):
    before = _buffers(bn_lstm)
    packed = pack_padded_sequence(np.zeros((5, 2, 3)), [5, 5])
    with pytest.raises(ValueError, match=r"LSTM: lengths must be None for a PackedSequence"):
        bn_lstm(packed, lengths=[5, 5])
    with pytest.raises(ValueError, match=r"LSTM: expected PackedSequence data of shape \(N, 3\), got \(10, 2\)"):
        bn_lstm(PackedSequence(normlab.zeros(10, 2, dtype=np.float64), packed.batch_sizes))
    with pytest.raises(ValueError, match=r"LSTM: expected non-increasing positive batch_sizes adding up to 10"):
        bn_lstm(PackedSequence(packed.data, [1, 2, 2, 2, 3]))
    for name, value in _buffers(bn_lstm).items():
        assert np.array_equal(value, before[name]), name


def test_gru_and_rnn_state_errors():
    gru = nn.GRU(3, 4, dtype=np.float64)
    with pytest.raises(TypeError, match=r"GRU: expected hx to be one tensor of shape \(1, 2, 4\), got a tuple"):
        gru(GOOD_X, (np.zeros((1, 2, 4)),))
    with pytest.raises(ValueError, match=r"GRU: expected hx of shape \(1, 2, 4\), got \(1, 2, 5\)"):
        gru(GOOD_X, np.zeros((1, 2, 5)))
    rnn = nn.RNN(3, 4, nonlinearity="relu", dtype=np.float32)
    with pytest.raises(TypeError, match=r"RNN: expected input of dtype float32 .* got float64"):
        rnn(GOOD_X)


@pytest.mark.parametrize("cls, kwargs, error, pattern", [
    (nn.LSTM, dict(norm="batch"), ValueError, r"LSTM: norm='batch' needs max_steps .* got max_steps=None"),
    (nn.GRU, dict(norm="batch", max_steps=0), ValueError, r"GRU: expected max_steps to be a positive integer, got 0"),
    (nn.RNN, dict(norm="group"), ValueError, r"RNN: expected norm None, 'layer' or 'batch', got 'group'"),
    (nn.RNN, dict(nonlinearity="sigmoid"), ValueError, r"RNN: expected nonlinearity 'tanh' or 'relu', got 'sigmoid'"),
    (nn.LSTM, dict(proj_size=2), ValueError, r"LSTM: proj_size is not supported .* got 2"),
    (nn.LSTM, dict(num_layers=0), ValueError, r"LSTM: expected num_layers to be a positive integer, got 0"),
    (nn.GRU, dict(dropout=1.5), ValueError, r"GRU: expected dropout to be a probability in \[0, 1\], got 1.5"),
    (nn.LSTMCell, dict(norm="batch"), ValueError, r"LSTMCell: norm='batch' needs max_steps"),
])
def test_bad_constructor_arguments(cls, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        cls(3, 4, **kwargs)


def test_cell_errors_leave_running_statistics_alone():
    cell = nn.GRUCell(3, 4, norm="batch", max_steps=2, dtype=np.float64)
    before = _buffers(cell)
    bad = [
        ((np.zeros((2, 5)),), {}, ValueError, r"GRUCell: expected input with last dimension 3 .* got shape \(2, 5\)"),
        ((np.zeros((2, 2, 3)),), {}, ValueError, r"GRUCell: expected 2D input \(B, 3\) or 1D input \(3,\), got 3D"),
        ((np.zeros((2, 3)), np.zeros((3, 4))), {}, ValueError, r"GRUCell: expected hx of shape \(2, 4\), got \(3, 4\)"),
        ((np.zeros((2, 3)),), dict(step=-1), ValueError, r"GRUCell: expected step to be a non-negative int, got -1"),
        ((np.zeros((1, 3)),), {}, ValueError, r"GRUCell: norm='batch' needs a batch of at least 2 in training, got 1"),
        ((np.zeros((2, 3), np.float32),), {}, TypeError, r"GRUCell: expected input of dtype float64 .* got float32"),
    ]
    for args, kwargs, error, pattern in bad:
        with pytest.raises(error, match=pattern):
            cell(*args, **kwargs)
    for name, value in _buffers(cell).items():
        assert np.array_equal(value, before[name]), name
    lstm_cell = nn.LSTMCell(3, 4, dtype=np.float64)
    with pytest.raises(TypeError, match=re.escape("LSTMCell: expected hx to be a tuple (h, c), got ndarray")):
        lstm_cell(np.zeros((2, 3)), np.zeros((2, 4)))


def test_a_good_call_after_the_errors_still_works(bn_lstm):
    output, (h_n, c_n) = bn_lstm(np.random.default_rng(0).standard_normal((5, 3, 3)), lengths=[5, 2, 5])
    assert output.shape == (5, 3, 8) and h_n.shape == (4, 3, 4)
