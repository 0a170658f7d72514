"""``Dataset``, ``TensorDataset``, ``Subset`` and ``DataLoader``: batches of NumPy arrays.

A batch is a tuple of NumPy arrays (one per field: inputs, labels, ...), not
Tensors. Layers and losses accept plain arrays, inputs never need a gradient,
and arrays are what a user inspects or plots; wrap with ``normlab.tensor``
when a Tensor is wanted. A dataset that returns a single array per item
yields single arrays.

Array-backed datasets fetch a whole batch with one fancy-indexing operation
through ``Dataset.get_batch(indices)``; the per-item ``__getitem__`` plus
``collate`` path exists only for datasets that cannot do better.

>>> import numpy as np, normlab
>>> from normlab.data import TensorDataset, DataLoader
>>> data = TensorDataset(np.arange(10.0).reshape(5, 2), np.arange(5))
>>> _ = normlab.manual_seed(0)
>>> [y.tolist() for _, y in DataLoader(data, batch_size=2)]
[[0, 1], [2, 3], [4]]
"""
from __future__ import annotations

import numbers
from typing import Callable, Iterator, Sequence

import numpy as np

from normlab.autograd.tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "DataLoader", "collate", "random_split"]


def _as_array(value) -> np.ndarray:
    return value._data if isinstance(value, Tensor) else np.asarray(value)


def collate(samples: Sequence):
    """Stack a list of samples into a batch: tuples field by field, arrays along a new first axis.

    >>> collate([(np.zeros(2), 1), (np.ones(2), 0)])[1]
    array([1, 0])
    """
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(np.stack([_as_array(sample[i]) for sample in samples]) for i in range(len(first)))
    return np.stack([_as_array(sample) for sample in samples])


class Dataset:
    """A sized, indexable collection of samples (like ``torch.utils.data.Dataset``).

    Subclasses implement ``__len__`` and ``__getitem__(index)``. An
    array-backed subclass should also override ``get_batch(indices)`` to
    fetch a whole batch at once; the default stacks ``__getitem__`` results.
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def get_batch(self, indices: np.ndarray):
        """The samples at ``indices`` (a 1D int array), collated into a batch."""
        return collate([self[int(i)] for i in indices])


class TensorDataset(Dataset):
    """Samples are the rows of equally long arrays (like ``torch.utils.data.TensorDataset``).

    Accepts NumPy arrays, Tensors (their ``.data``) or anything ``np.asarray``
    takes; the arrays are kept without copying. ``dataset[i]`` is a tuple of
    rows; a batch is one fancy-indexing per array.

    >>> ds = TensorDataset(np.zeros((4, 3)), np.arange(4))
    >>> len(ds), int(ds[1][1]), [a.shape for a in ds.get_batch(np.array([0, 2]))]
    (4, 1, [(2, 3), (2,)])
    """

    def __init__(self, *arrays) -> None:
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array, got none")
        self.arrays = tuple(_as_array(a) for a in arrays)
        for position, array in enumerate(self.arrays):
            if array.ndim == 0:
                raise ValueError(f"TensorDataset: expected arrays with a first (sample) axis, "
                                 f"got a 0D array at position {position}")
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: expected arrays of equal length along the first axis, "
                             f"got lengths {lengths}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices: np.ndarray):
        return tuple(a[indices] for a in self.arrays)

    def __repr__(self) -> str:
        fields = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.arrays)
        return f"TensorDataset({fields})"


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (keeps the parent's fast ``get_batch``)."""

    def __init__(self, dataset, indices) -> None:
        indices = np.asarray(indices)
        if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
            raise ValueError(f"Subset: expected a 1D sequence of integer indices, got shape {indices.shape} "
                             f"and dtype {indices.dtype}")
        n = len(dataset)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"Subset: indices must lie in [-{n}, {n}) for a dataset of {n} samples")
        self.dataset = dataset
        self.indices = indices.astype(np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices: np.ndarray):
        return _fetch(self.dataset, self.indices[indices])


def random_split(dataset, lengths: Sequence[int], generator: np.random.Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths (which must sum to its size)."""
    lengths = [int(n) for n in lengths]
    if any(n < 0 for n in lengths) or sum(lengths) != len(dataset):
        raise ValueError(f"random_split: expected non-negative lengths summing to the dataset size {len(dataset)}, "
                         f"got {lengths}")
    order = _generator(generator, "random_split").permutation(len(dataset))
    bounds = np.cumsum([0] + lengths)
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]


def _generator(generator, name: str) -> np.random.Generator:
    if generator is None:
        # Looked up at every use, not stored: manual_seed replaces the global generator object.
        from normlab.random import default_generator
        return default_generator()
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{name}: expected generator to be a numpy.random.Generator or None, "
                        f"got {type(generator).__name__}")
    return generator


def _fetch(dataset, indices: np.ndarray):
    get_batch = getattr(dataset, "get_batch", None)
    if get_batch is not None:
        return get_batch(indices)
    # Any object with __len__ and __getitem__ works, one item at a time.
    return collate([dataset[int(i)] for i in indices])


class DataLoader:
    """Iterates over ``dataset`` in batches of NumPy arrays (torch's ``DataLoader`` arguments, single process).

    Args:
        dataset: a ``Dataset`` (or any object with ``__len__`` and ``__getitem__``).
        batch_size: samples per batch; the last batch is smaller unless ``drop_last``.
        shuffle: draw a fresh permutation at the start of every epoch (every ``iter``).
        drop_last: drop the last incomplete batch.
        generator: the ``np.random.Generator`` that shuffles; ``None`` means
            normlab's global generator, so ``normlab.manual_seed`` makes the
            order repeatable.
        collate_fn: if given, batches are built from per-item ``dataset[i]``
            and passed through it (a list of samples in, a batch out).
        sampler: an iterable of indices with a length (e.g. a
            ``DistributedSampler``) giving the order instead of ``shuffle``.

    ``len(loader)`` is the number of batches per epoch.

    >>> import numpy as np, normlab
    >>> loader = DataLoader(TensorDataset(np.arange(7)), batch_size=3, shuffle=True, drop_last=True)
    >>> _ = normlab.manual_seed(1)
    >>> len(loader), [b.shape for (b,) in loader]
    (2, [(3,), (3,)])
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 generator: np.random.Generator | None = None,
                 collate_fn: Callable | None = None, sampler=None) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: expected a dataset with __len__ and __getitem__, "
                            f"got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"DataLoader: expected batch_size to be a positive integer, got {batch_size!r}")
        for arg, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"DataLoader: expected {arg} to be a bool, got {value!r}")
        if generator is not None:
            _generator(generator, "DataLoader")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if sampler is not None and not (hasattr(sampler, "__iter__") and hasattr(sampler, "__len__")):
            raise TypeError(f"DataLoader: expected sampler to be an iterable of indices with a length, "
                            f"got {type(sampler).__name__}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: expected collate_fn to be callable or None, got {type(collate_fn).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator
        self.collate_fn = collate_fn
        self.sampler = sampler

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batch_indices(self) -> Iterator[np.ndarray]:
        """The index array of every batch of one epoch (draws the shuffle permutation)."""
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
        elif self.shuffle:
            order = _generator(self.generator, "DataLoader").permutation(len(self.dataset))
        else:
            order = np.arange(len(self.dataset))
        n = len(order)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def __iter__(self):
        for indices in self.batch_indices():
            if self.collate_fn is not None:
                yield self.collate_fn([self.dataset[int(i)] for i in indices])
            else:
                yield _fetch(self.dataset, indices)

    def __repr__(self) -> str:
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last})")
