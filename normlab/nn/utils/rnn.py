"""Batches of variable-length sequences, as ``torch.nn.utils.rnn``: padding and packing.

A *packed* batch keeps only the valid time steps: the rows of all sequences,
time-major, longest sequence first at every step, and ``batch_sizes[t]``, the
number of sequences still running at step t::

    lengths [2, 3, 1]  ->  sorted_indices [1, 0, 2], batch_sizes [3, 2, 1]
    data rows: (t=0: b1, b0, b2), (t=1: b1, b0), (t=2: b1)

The recurrent layers (``nn.RNN``/``LSTM``/``GRU``) run directly on it. Every
function here is differentiable in its data (a gather or a scatter of rows;
padding receives no gradient), and has torch's name, arguments and defaults,
so torch code ports unchanged. Differences: ``batch_sizes``,
``sorted_indices`` and ``unsorted_indices`` are int64 NumPy arrays, and
errors are ValueError/TypeError.

>>> import normlab
>>> from normlab.nn.utils.rnn import pad_sequence, pack_padded_sequence, pad_packed_sequence
>>> a, b = normlab.randn(3, 2), normlab.randn(1, 2)
>>> padded = pad_sequence([a, b])                       # (3, 2, 2), zeros after b's end
>>> packed = pack_padded_sequence(padded, [3, 1], enforce_sorted=False)
>>> packed.batch_sizes.tolist(), packed.data.shape
([2, 1, 1], (4, 2))
>>> out, lengths = pad_packed_sequence(packed)
>>> out.shape, lengths.tolist()
((3, 2, 2), [3, 1])
"""
from __future__ import annotations

import numbers
from collections import namedtuple

import numpy as np

from normlab.autograd.function import Function
from normlab.autograd.tensor import Tensor, as_tensor, cat

__all__ = ["PackedSequence", "pad_sequence", "pack_padded_sequence", "pad_packed_sequence", "pack_sequence",
           "unpad_sequence", "unpack_sequence", "check_lengths"]


class _GatherRows(Function):
    """out = a[index] over the first axis; backward scatters (the indices are distinct)."""

    def forward(self, a, *, index):
        self.shape, self.index = a.shape, index
        return a[index]

    def backward(self, g):
        grad = np.zeros(self.shape, dtype=g.dtype)
        grad[self.index] = g
        return (grad,)


class _ScatterRows(Function):
    """out = full((rows, *), padding); out[index] = a; backward gathers (padding gets no gradient)."""

    def forward(self, a, *, index, rows, padding_value):
        self.index = index
        out = np.full((rows,) + a.shape[1:], padding_value, dtype=a.dtype)
        out[index] = a
        return out

    def backward(self, g):
        return (g[self.index],)


_PackedSequenceBase = namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


class PackedSequence(_PackedSequenceBase):
    """The valid rows of a batch of sequences, time-major, longest first (``torch.nn.utils.rnn.PackedSequence``).

    ``data`` (N, *) Tensor, ``batch_sizes`` (T,) int64 array (non-increasing),
    ``sorted_indices`` (B,) the batch position of each packed column (None
    when the batch came sorted), ``unsorted_indices`` its inverse. Build it
    with ``pack_padded_sequence`` or ``pack_sequence``, not by hand.
    """

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        batch_sizes = np.asarray(batch_sizes, dtype=np.int64)
        if sorted_indices is not None:
            sorted_indices = np.asarray(sorted_indices, dtype=np.int64)
            if unsorted_indices is None:
                unsorted_indices = _invert(sorted_indices)
        if unsorted_indices is not None:
            unsorted_indices = np.asarray(unsorted_indices, dtype=np.int64)
        return super().__new__(cls, as_tensor(data), batch_sizes, sorted_indices, unsorted_indices)

    def to(self, dtype) -> "PackedSequence":
        return self._replace(data=self.data.to(dtype))

    def float(self) -> "PackedSequence":
        return self.to(np.float32)

    def double(self) -> "PackedSequence":
        return self.to(np.float64)

    @property
    def is_cuda(self) -> bool:
        return False

    def is_pinned(self) -> bool:
        return False


def _invert(permutation: np.ndarray) -> np.ndarray:
    inverse = np.empty_like(permutation)
    inverse[permutation] = np.arange(permutation.shape[0], dtype=permutation.dtype)
    return inverse


def check_lengths(name: str, lengths, batch: int, steps: int) -> np.ndarray:
    """``lengths`` as an int64 array, or a ValueError/TypeError naming ``name``, expected and given.

    Each must be an integer in 1 .. ``steps``, one per sequence of the batch.
    """
    if isinstance(lengths, Tensor) or type(lengths).__module__.startswith("torch"):
        lengths = np.asarray(lengths)
    array = np.asarray(lengths)
    if array.size == 0 or (array.dtype == object and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                                         for v in array.flat)):
        array = array.astype(np.int64)   # [] is an empty list of ints, not of floats
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer lengths, got {array.dtype} values {np.asarray(lengths).tolist()!r}")
    if array.ndim != 1 or array.shape[0] != batch:
        raise ValueError(f"{name}: expected {batch} lengths (one per sequence of the batch), "
                         f"got shape {array.shape}: {array.tolist()!r}")
    if batch and (array.min() < 1 or array.max() > steps):
        raise ValueError(f"{name}: expected every length in 1 .. {steps} (the padded sequence length), "
                         f"got {array.tolist()!r}")
    return array.astype(np.int64)


def _packing(lengths: np.ndarray, sorted_indices):
    """(batch_sizes, flat time-major row index of each packed row) for a batch of ``lengths``."""
    order = np.arange(lengths.shape[0]) if sorted_indices is None else sorted_indices
    sorted_lengths = lengths[order]
    steps = int(sorted_lengths.max()) if lengths.size else 0
    batch_sizes = (sorted_lengths[None, :] > np.arange(steps)[:, None]).sum(axis=1).astype(np.int64)
    batch = lengths.shape[0]
    index = np.concatenate([t * batch + order[:size] for t, size in enumerate(batch_sizes)]) if steps \
        else np.zeros(0, dtype=np.int64)
    return batch_sizes, index


def pack_padded_sequence(input, lengths, batch_first: bool = False, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, B, *) (or (B, T, *) with ``batch_first``) of sequences of ``lengths``.

    ``enforce_sorted=True`` requires lengths in decreasing order; otherwise the
    batch is sorted (stably, as torch) and ``sorted_indices`` remembers how.
    """
    x = as_tensor(input)
    if x.ndim < 2:
        raise ValueError(f"pack_padded_sequence: expected input of at least 2 dimensions (T, B, *), got shape {x.shape}")
    if batch_first:
        x = x.transpose(0, 1)
    steps, batch = x.shape[0], x.shape[1]
    lengths = check_lengths("pack_padded_sequence", lengths, batch, steps)
    if batch == 0:
        raise ValueError(f"pack_padded_sequence: cannot pack an empty batch, got input of shape {x.shape}")
    sorted_indices = None
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise ValueError(f"pack_padded_sequence: `lengths` must be sorted in decreasing order when "
                             f"enforce_sorted is True, got {lengths.tolist()}; pass enforce_sorted=False to sort")
    else:
        sorted_indices = np.argsort(-lengths, kind="stable").astype(np.int64)
    batch_sizes, index = _packing(lengths, sorted_indices)
    rows = x.reshape((steps * batch,) + x.shape[2:])
    return PackedSequence(_GatherRows.apply(rows, index=index), batch_sizes, sorted_indices)


def _lengths_of(sequence: PackedSequence) -> np.ndarray:
    """Each sequence's length, in batch order, from ``batch_sizes``."""
    batch_sizes = sequence.batch_sizes
    batch = int(batch_sizes[0]) if batch_sizes.size else 0
    sorted_lengths = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1).astype(np.int64)
    if sequence.sorted_indices is None:
        return sorted_lengths
    lengths = np.empty_like(sorted_lengths)
    lengths[sequence.sorted_indices] = sorted_lengths
    return lengths


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None):
    """Inverse of ``pack_padded_sequence``: (padded (T, B, *), lengths int64 Tensor), batch in its original order.

    ``total_length`` pads to that many steps (at least the longest sequence).
    """
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: expected a PackedSequence, got {type(sequence).__name__}")
    steps = int(sequence.batch_sizes.shape[0])
    if total_length is not None:
        if isinstance(total_length, bool) or not isinstance(total_length, numbers.Integral) or total_length < steps:
            raise ValueError(f"pad_packed_sequence: expected total_length to be an int >= {steps} (the longest "
                             f"sequence), got {total_length!r}")
        steps = int(total_length)
    lengths = _lengths_of(sequence)
    batch = lengths.shape[0]
    _, index = _packing(lengths, sequence.sorted_indices)
    data = sequence.data
    padded = _ScatterRows.apply(data, index=index, rows=steps * batch, padding_value=padding_value)
    padded = padded.reshape((steps, batch) + data.shape[1:])
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, Tensor(lengths)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right"):
    """Stack sequences (L_i, *) into (max L, B, *) (or (B, max L, *)), padded with ``padding_value``.

    ``padding_side="left"`` puts the padding before each sequence.
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: expected padding_side 'right' or 'left', got {padding_side!r}")
    tensors = [as_tensor(s) for s in sequences]
    if not tensors:
        raise ValueError("pad_sequence: expected a non-empty list of sequences")
    trailing = tensors[0].shape[1:]
    for i, s in enumerate(tensors):
        if s.ndim < 1 or s.shape[1:] != trailing:
            raise ValueError(f"pad_sequence: expected every sequence of shape (L, *{trailing}), "
                             f"got shape {s.shape} for sequence {i}")
    lengths = np.array([s.shape[0] for s in tensors], dtype=np.int64)
    steps, batch = int(lengths.max()), len(tensors)
    start = steps - lengths if padding_side == "left" else np.zeros(batch, dtype=np.int64)
    index = np.concatenate([(start[b] + np.arange(lengths[b])) * batch + b for b in range(batch)])
    padded = _ScatterRows.apply(cat(tensors, 0), index=index, rows=steps * batch, padding_value=padding_value)
    padded = padded.reshape((steps, batch) + trailing)
    return padded.transpose(0, 1) if batch_first else padded


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences (L_i, *): ``pack_padded_sequence(pad_sequence(sequences), lengths)``."""
    tensors = [as_tensor(s) for s in sequences]
    lengths = [s.shape[0] for s in tensors]
    return pack_padded_sequence(pad_sequence(tensors), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first: bool = False) -> list:
    """The list of sequences (L_i, *) inside a padded batch (inverse of ``pad_sequence``)."""
    padded = as_tensor(padded_sequences)
    if padded.ndim < 2:
        raise ValueError(f"unpad_sequence: expected at least 2 dimensions (T, B, *), got shape {padded.shape}")
    if not batch_first:
        padded = padded.transpose(0, 1)
    lengths = check_lengths("unpad_sequence", lengths, padded.shape[0], padded.shape[1])
    return [padded[b, :int(length)] for b, length in enumerate(lengths)]


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of sequences (L_i, *) inside a PackedSequence (inverse of ``pack_sequence``)."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
