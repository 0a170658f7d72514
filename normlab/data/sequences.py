"""Sequence tasks for recurrent nets: the adding problem, the temporal order problem, MNIST-1D read in time.

Every generator returns a ``SequenceSet``: inputs ``x`` padded to shape
(N, max_length, features) (batch first; ``x.transpose(1, 0, 2)`` is time-major),
the true ``lengths`` (N,), the targets ``y`` and a boolean ``mask`` (N, T)
that is True on the real steps. Lengths may vary within a set
(``min_length < max_length``): pad positions hold zeros, and the markers
that define a target are placed relative to each sequence's own length,
so a set of longer sequences tests the same rule at a longer range (train
on lengths <= T, test on longer ones). Every set is fixed by its ``seed``;
nothing is downloaded.

>>> from normlab.data import make_adding_problem
>>> train = make_adding_problem(100, min_length=10, max_length=20, seed=0)
>>> train.x.shape, bool(train.lengths.min() >= 10), train.y.dtype, train.task
((100, 20, 2), True, dtype('float32'), 'regression')
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from normlab.data.datasets import DataSplits, _check_count, _read_only
from normlab.data.loader import TensorDataset

__all__ = ["SequenceSet", "make_adding_problem", "make_temporal_order", "mnist1d_sequences",
           "TEMPORAL_ORDER_SYMBOLS"]


@dataclass(frozen=True, repr=False)
class SequenceSet:
    """One split of a sequence task: padded inputs, true lengths, targets.

    ``x``: float32 (N, T, features), zero after each sequence's end.
    ``lengths``: int64 (N,), each in [1, T]. ``y``: float32 (N,) for a
    regression task (``n_classes`` None), int64 class indices for a
    classification task. Arrays are read-only; ``mask`` is (N, T) bool.
    ``dataset()`` gives a ``TensorDataset(x, lengths, y)`` for a DataLoader.
    """

    name: str
    x: np.ndarray
    lengths: np.ndarray
    y: np.ndarray
    n_classes: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        x = _read_only(self.x, np.float32)
        lengths = _read_only(self.lengths, np.int64)
        kind = np.float32 if self.n_classes is None else np.int64
        y = _read_only(self.y, kind)
        if x.ndim != 3 or lengths.shape != (len(x),) or y.shape != (len(x),):
            raise ValueError(f"SequenceSet({self.name}): expected x (N, T, features), lengths (N,) and y (N,), "
                             f"got {x.shape}, {lengths.shape} and {y.shape}")
        if lengths.size and (lengths.min() < 1 or lengths.max() > x.shape[1]):
            raise ValueError(f"SequenceSet({self.name}): expected lengths in [1, {x.shape[1]}], "
                             f"got [{lengths.min()}, {lengths.max()}]")
        for name, value in (("x", x), ("lengths", lengths), ("y", y)):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def task(self) -> str:
        """``"regression"`` or ``"classification"``."""
        return "regression" if self.n_classes is None else "classification"

    @property
    def max_length(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.x.shape[2])

    @property
    def mask(self) -> np.ndarray:
        """(N, T) bool, True where step t < lengths[n] (a real step, not padding)."""
        return np.arange(self.max_length)[None, :] < self.lengths[:, None]

    def dataset(self) -> TensorDataset:
        return TensorDataset(self.x, self.lengths, self.y)

    def __repr__(self) -> str:
        return (f"SequenceSet(name={self.name!r}, n={len(self)}, lengths={self.lengths.min()}..{self.lengths.max()}, "
                f"features={self.n_features}, task={self.task!r})")


def _draw_lengths(name: str, rng: np.random.Generator, n_samples: int, min_length, max_length,
                  shortest: int) -> tuple[np.ndarray, int]:
    """(lengths drawn uniformly from [min_length, max_length], max_length): the padded size is always max_length."""
    max_length = _check_count(name, "max_length", max_length, minimum=shortest)
    min_length = max_length if min_length is None else _check_count(name, "min_length", min_length, shortest)
    if min_length > max_length:
        raise ValueError(f"{name}: expected min_length <= max_length, got {min_length} > {max_length}")
    return rng.integers(min_length, max_length + 1, size=n_samples), max_length


def make_adding_problem(n_samples: int = 1000, max_length: int = 50, min_length: int | None = None,
                        seed: int = 0) -> SequenceSet:
    """The adding problem (Hochreiter & Schmidhuber 1997; the form of Le, Jaitly & Hinton 2015).

    Each step has two inputs: a value drawn uniformly from [0, 1] and a
    marker. Exactly two steps are marked (marker 1.0): one at a uniformly
    drawn position in the first half of the sequence, ``[0, L // 2)``, one in
    the second half, ``[L // 2, L)``, where L is the sequence's own length.
    The target is the sum of the two marked values (regression, in [0, 2]).
    Predicting the constant 1 gives a mean squared error of 1/6, the
    baseline a model must beat.

    Lengths are drawn uniformly from [min_length, max_length]
    (``min_length=None``: all equal to ``max_length``; at least 2).
    """
    name = "make_adding_problem"
    n_samples = _check_count(name, "n_samples", n_samples)
    rng = np.random.default_rng(seed)
    lengths, T = _draw_lengths(name, rng, n_samples, min_length, max_length, shortest=2)
    x = np.zeros((n_samples, T, 2))
    mask = np.arange(T)[None, :] < lengths[:, None]
    x[:, :, 0] = rng.uniform(0.0, 1.0, (n_samples, T)) * mask
    half = lengths // 2
    first = (rng.random(n_samples) * half).astype(np.int64)
    second = half + (rng.random(n_samples) * (lengths - half)).astype(np.int64)
    rows = np.arange(n_samples)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    # Summed from the float32 values the model will see, so the target is exactly reachable.
    values = x[:, :, 0].astype(np.float32)
    y = values[rows, first] + values[rows, second]
    return SequenceSet("adding", x, lengths, y, None,
                       f"adding problem, lengths {lengths.min()}..{lengths.max()}, seed {seed}")


#: The temporal order problem's input symbols, in one-hot order.
TEMPORAL_ORDER_SYMBOLS = ("a", "b", "c", "d", "B", "E", "X", "Y")


def make_temporal_order(n_samples: int = 1000, max_length: int = 100, min_length: int | None = None,
                        n_markers: int = 2, seed: int = 0) -> SequenceSet:
    """The temporal order problem (Hochreiter & Schmidhuber 1997, experiment 6).

    Sequences of one-hot symbols (``TEMPORAL_ORDER_SYMBOLS``): ``B`` first,
    ``E`` last, random distractors ``a b c d`` in between, except at
    ``n_markers`` (2 or 3) steps that hold ``X`` or ``Y``. The class is the
    order of the markers read as binary digits, X = 0 and Y = 1, first
    marker most significant (2 markers: XX 0, XY 1, YX 2, YY 3; 3 markers:
    8 classes). Marker positions scale with the sequence's own length L, as
    the original's 10..20 and 50..60 of about 100 steps do: the first marker
    is drawn from [0.1 L, 0.2 L), the second from [0.5 L, 0.6 L) and a third
    from [0.3 L, 0.4 L) placed between them (the original's 3-marker
    variant also puts it in the middle).

    Lengths are drawn uniformly from [min_length, max_length] (at least 10).
    """
    name = "make_temporal_order"
    n_samples = _check_count(name, "n_samples", n_samples)
    if n_markers not in (2, 3):
        raise ValueError(f"{name}: expected n_markers to be 2 or 3, got {n_markers!r}")
    rng = np.random.default_rng(seed)
    lengths, T = _draw_lengths(name, rng, n_samples, min_length, max_length, shortest=10)
    symbols = rng.integers(0, 4, size=(n_samples, T))  # distractors a, b, c, d
    windows = [(0.1, 0.2), (0.3, 0.4), (0.5, 0.6)] if n_markers == 3 else [(0.1, 0.2), (0.5, 0.6)]
    bits = rng.integers(0, 2, size=(n_samples, n_markers))  # 0 = X, 1 = Y, in time order
    rows = np.arange(n_samples)
    for k, (low, high) in enumerate(windows):
        start = np.floor(low * lengths).astype(np.int64)
        stop = np.maximum(np.floor(high * lengths).astype(np.int64), start + 1)
        position = start + (rng.random(n_samples) * (stop - start)).astype(np.int64)
        symbols[rows, position] = 6 + bits[:, k]
    symbols[:, 0] = 4                      # B
    symbols[rows, lengths - 1] = 5         # E
    x = np.eye(len(TEMPORAL_ORDER_SYMBOLS))[symbols]
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    y = bits @ (2 ** np.arange(n_markers - 1, -1, -1))
    return SequenceSet("temporal_order", x, lengths, y, 2 ** n_markers,
                       f"temporal order problem, {n_markers} markers, lengths {lengths.min()}..{lengths.max()}, "
                       f"seed {seed}")


def mnist1d_sequences(data: DataSplits | None = None) -> tuple[SequenceSet, SequenceSet]:
    """(train, test) of MNIST-1D read as sequences: 40 steps of one value each, all of full length.

    ``data`` is a ``DataSplits`` from ``load_mnist1d`` (default: its default
    arguments). The GRU row of Greydanus (2020) reads the signal this way.
    """
    if data is None:
        from normlab.data.datasets import load_mnist1d
        data = load_mnist1d()
    if len(data.input_shape) != 1:
        raise ValueError(f"mnist1d_sequences: expected 1D samples (N, L), got samples of shape {data.input_shape}")
    splits = []
    for split in ("train", "test"):
        x = getattr(data, f"x_{split}")
        splits.append(SequenceSet(f"{data.name}_sequence", x[:, :, None], np.full(len(x), x.shape[1]),
                                  getattr(data, f"y_{split}"), data.n_classes,
                                  f"{data.description}; read as {x.shape[1]} steps of 1 value ({split})"))
    return splits[0], splits[1]
