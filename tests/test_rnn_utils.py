"""normlab.nn.utils.rnn against torch.nn.utils.rnn: padding, packing, unpacking, and gradients through them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.utils import rnn as torch_rnn

import normlab
from normlab.nn.utils import rnn as nl_rnn
from tests.oracle import assert_close


def test_imports_like_torch():
    import normlab.nn.utils.rnn as module
    from normlab.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence  # noqa: F401

    assert normlab.nn.utils.rnn is module
    assert module.pad_sequence is nl_rnn.pad_sequence


@given(lengths=st.lists(st.integers(1, 5), min_size=1, max_size=5), features=st.integers(1, 3),
       batch_first=st.booleans(), enforce_sorted=st.booleans(), seed=st.integers(0, 999))
def test_pack_and_pad_match_torch(lengths, features, batch_first, enforce_sorted, seed):
    rng = np.random.default_rng(seed)
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    steps, batch = max(lengths) + 1, len(lengths)
    shape = (batch, steps, features) if batch_first else (steps, batch, features)
    x = rng.standard_normal(shape)
    ours = nl_rnn.pack_padded_sequence(normlab.tensor(x, requires_grad=True), lengths, batch_first, enforce_sorted)
    xt = torch.tensor(x, requires_grad=True)
    ref = torch_rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first, enforce_sorted)
    assert_close(ours.data, ref.data, what="packed data")
    assert ours.batch_sizes.tolist() == ref.batch_sizes.tolist()
    for mine, theirs in ((ours.sorted_indices, ref.sorted_indices), (ours.unsorted_indices, ref.unsorted_indices)):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            assert mine.tolist() == theirs.tolist()
    padded, out_lengths = nl_rnn.pad_packed_sequence(ours, batch_first, padding_value=-2.0, total_length=steps + 1)
    padded_ref, lengths_ref = torch_rnn.pad_packed_sequence(ref, batch_first, padding_value=-2.0,
                                                            total_length=steps + 1)
    assert_close(padded, padded_ref, what="padded")
    assert out_lengths.tolist() == lengths_ref.tolist()
    upstream = rng.standard_normal(padded_ref.shape)
    (padded_ref * torch.tensor(upstream)).sum().backward()
    x_ours = normlab.tensor(x, requires_grad=True)
    again = nl_rnn.pad_packed_sequence(nl_rnn.pack_padded_sequence(x_ours, lengths, batch_first, enforce_sorted),
                                       batch_first, total_length=steps + 1)[0]
    (again * normlab.tensor(upstream)).sum().backward()
    assert_close(x_ours.grad, xt.grad, what="gradient through pack and pad")


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(batch_first, padding_side, rng):
    arrays = [rng.standard_normal((n, 2, 3)) for n in (3, 5, 1)]
    ours_in = [normlab.tensor(a, requires_grad=True) for a in arrays]
    ref_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours = nl_rnn.pad_sequence(ours_in, batch_first, 0.5, padding_side)
    ref = torch_rnn.pad_sequence(ref_in, batch_first, 0.5, padding_side)
    assert_close(ours, ref, what="padded")
    upstream = rng.standard_normal(ref.shape)
    (ref * torch.tensor(upstream)).sum().backward()
    (ours * normlab.tensor(upstream)).sum().backward()
    for i, (a, b) in enumerate(zip(ours_in, ref_in)):
        assert_close(a.grad, b.grad, what=f"gradient of sequence {i}")


@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_pack_sequence_and_the_inverses(enforce_sorted, rng):
    arrays = [rng.standard_normal((n, 2)) for n in ((4, 2, 1) if enforce_sorted else (2, 4, 1))]
    ours = nl_rnn.pack_sequence(arrays, enforce_sorted=enforce_sorted)
    ref = torch_rnn.pack_sequence([torch.tensor(a) for a in arrays], enforce_sorted=enforce_sorted)
    assert_close(ours.data, ref.data, what="packed")
    assert ours.batch_sizes.tolist() == ref.batch_sizes.tolist()
    for original, back in zip(arrays, nl_rnn.unpack_sequence(ours)):
        assert np.array_equal(back.detach().numpy(), original)
    padded = nl_rnn.pad_sequence(arrays, batch_first=True)
    for original, back in zip(arrays, nl_rnn.unpad_sequence(padded, [len(a) for a in arrays], batch_first=True)):
        assert np.array_equal(back.detach().numpy(), original)


def test_packed_sequence_fields_and_conversions(rng):
    packed = nl_rnn.pack_padded_sequence(rng.standard_normal((3, 2, 4)), [2, 3], enforce_sorted=False)
    data, batch_sizes, sorted_indices, unsorted_indices = packed
    assert data.shape == (5, 4) and batch_sizes.dtype == np.int64
    assert sorted_indices.tolist() == [1, 0] and unsorted_indices.tolist() == [1, 0]
    assert packed.float().data.dtype == np.float32 and packed.double().data.dtype == np.float64
    assert not packed.is_cuda


def test_utils_errors():
    x = np.zeros((4, 3, 2))
    with pytest.raises(ValueError, match=r"pack_padded_sequence: `lengths` must be sorted in decreasing order"):
        nl_rnn.pack_padded_sequence(x, [2, 4, 1])
    with pytest.raises(ValueError, match=r"pack_padded_sequence: expected every length in 1 \.\. 4 .* got \[5, 4, 1\]"):
        nl_rnn.pack_padded_sequence(x, [5, 4, 1])
    with pytest.raises(ValueError, match=r"pack_padded_sequence: expected 3 lengths"):
        nl_rnn.pack_padded_sequence(x, [4, 1])
    with pytest.raises(TypeError, match=r"pack_padded_sequence: expected integer lengths"):
        nl_rnn.pack_padded_sequence(x, [4.0, 2.0, 1.0])
    with pytest.raises(ValueError, match=r"pack_padded_sequence: cannot pack an empty batch"):
        nl_rnn.pack_padded_sequence(np.zeros((4, 0, 2)), [])
    packed = nl_rnn.pack_padded_sequence(x, [4, 2, 1])
    with pytest.raises(ValueError, match=r"pad_packed_sequence: expected total_length to be an int >= 4 \(the longest sequence\), got 3"):
        nl_rnn.pad_packed_sequence(packed, total_length=3)
    with pytest.raises(TypeError, match=r"pad_packed_sequence: expected a PackedSequence, got ndarray"):
        nl_rnn.pad_packed_sequence(x)
    with pytest.raises(ValueError, match=r"pad_sequence: expected every sequence of shape \(L, \*\(2,\)\)"):
        nl_rnn.pad_sequence([np.zeros((3, 2)), np.zeros((3, 4))])
    with pytest.raises(ValueError, match=r"pad_sequence: expected padding_side 'right' or 'left', got 'up'"):
        nl_rnn.pad_sequence([np.zeros((3, 2))], padding_side="up")
