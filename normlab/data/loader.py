"""Datasets, samplers and the ``DataLoader``: one implementation behind two import paths.

``normlab.utils.data`` (torch's path) yields Tensors, as torch's DataLoader
does: a batch of ``(x, y)`` samples is a list ``[x_batch, y_batch]`` of
Tensors, numbers become tensors (ints int64, floats float64), strings stay
lists, dicts are collated key by key (torch's ``default_collate``).

``normlab.data`` yields NumPy arrays: a batch is a tuple of arrays (one per
field), which the lab and ``normlab.train`` plot and feed to layers directly
(layers accept arrays; inputs never need a gradient).

The two differ only in their class attribute ``yields_tensors``. Array-backed
datasets fetch a whole batch with one fancy-indexing operation through
``get_batch(indices)``; the per-item ``__getitem__`` plus collate path is for
datasets that cannot do better.

>>> import numpy as np, normlab
>>> from normlab.data import TensorDataset, DataLoader
>>> data = TensorDataset(np.arange(10.0).reshape(5, 2), np.arange(5))
>>> _ = normlab.manual_seed(0)
>>> [y.tolist() for _, y in DataLoader(data, batch_size=2)]
[[0, 1], [2, 3], [4]]
>>> x, y = next(iter(normlab.utils.data.DataLoader(data, batch_size=2)))
>>> type(x).__name__, y.dtype
('Tensor', dtype('int64'))
"""
from __future__ import annotations

import bisect
import collections.abc
import math
import numbers
from typing import Callable, Iterator, Sequence

import numpy as np

from normlab._checks import NUMERIC_KINDS
from normlab.autograd.tensor import Tensor
from normlab.data.sampler import (
    BatchSampler,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
    _generator,
)

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "DataLoader", "collate",
           "default_collate", "default_convert", "random_split", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler", "DistributedSampler"]


def _as_array(value) -> np.ndarray:
    return value._data if isinstance(value, Tensor) else np.asarray(value)


# ----------------------------------------------------------------------------
# Collating samples into batches
# ----------------------------------------------------------------------------

def collate(samples: Sequence):
    """NumPy collation (``normlab.data``): tuples field by field, arrays stacked along a new first axis.

    >>> collate([(np.zeros(2), 1), (np.ones(2), 0)])[1]
    array([1, 0])
    """
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(np.stack([_as_array(sample[i]) for sample in samples]) for i in range(len(first)))
    return np.stack([_as_array(sample) for sample in samples])


def _numeric_array(value) -> bool:
    return isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in NUMERIC_KINDS


def default_collate(batch: Sequence):
    """torch's default collation: a list of samples into a batch of Tensors, recursively.

    Tensors and NumPy arrays are stacked along a new first axis; ints become an
    int64 tensor, floats a float64 tensor, bools a bool tensor; strings stay a
    list; dicts collate key by key; tuples and lists field by field (a list, as
    torch returns), named tuples keep their type.

    >>> default_collate([(np.zeros(2, np.float32), 1), (np.ones(2, np.float32), 0)])
    [tensor([[0., 0.],
            [1., 1.]]), tensor([1, 0])]
    """
    first = batch[0]
    if isinstance(first, Tensor) or _numeric_array(first):
        return Tensor(np.stack([_as_array(sample) for sample in batch]))
    if isinstance(first, (bool, np.bool_)):
        return Tensor(np.asarray(batch, dtype=bool))
    if isinstance(first, numbers.Integral):
        return Tensor(np.asarray(batch, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return Tensor(np.asarray(batch, dtype=np.float64))
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, collections.abc.Mapping):
        return {key: default_collate([sample[key] for sample in batch]) for key in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # a named tuple
        return type(first)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(first, collections.abc.Sequence):
        if any(len(sample) != len(first) for sample in batch):
            raise RuntimeError("default_collate: each element in the list of batch should be of equal size")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError(f"default_collate: a batch must contain tensors, NumPy arrays, numbers, dicts or lists; "
                    f"found {type(first).__name__}")


def default_convert(sample):
    """torch's conversion for unbatched loading (``batch_size=None``): arrays become Tensors, recursively."""
    if _numeric_array(sample):
        return Tensor(np.asarray(sample))
    if isinstance(sample, collections.abc.Mapping):
        return {key: default_convert(value) for key, value in sample.items()}
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(default_convert(value) for value in sample))
    if isinstance(sample, (tuple, list)):
        return [default_convert(value) for value in sample]
    return sample


# ----------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------

class Dataset:
    """A sized, indexable collection of samples (like ``torch.utils.data.Dataset``).

    Subclasses implement ``__len__`` and ``__getitem__(index)``. An
    array-backed subclass should also override ``get_batch(indices)`` to
    fetch a whole batch at once (as NumPy arrays); the default stacks
    ``__getitem__`` results. ``a + b`` concatenates two datasets.
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def get_batch(self, indices: np.ndarray):
        """The samples at ``indices`` (a 1D int array), collated into a batch of arrays."""
        return collate([self[int(i)] for i in indices])

    def __add__(self, other) -> "ConcatDataset":
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples (``__iter__``), as torch's: the DataLoader groups consecutive samples into batches."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} is an IterableDataset and has no len()")


class TensorDataset(Dataset):
    """Samples are the rows of equally long arrays (like ``torch.utils.data.TensorDataset``).

    Accepts NumPy arrays, Tensors (their memory, not a copy) or anything
    ``np.asarray`` takes. ``dataset[i]`` is a tuple of rows (Tensors under
    ``normlab.utils.data``, arrays under ``normlab.data``); a batch is one
    fancy-indexing per array.

    >>> ds = TensorDataset(np.zeros((4, 3)), np.arange(4))
    >>> len(ds), int(ds[1][1]), [a.shape for a in ds.get_batch(np.array([0, 2]))]
    (4, 1, [(2, 3), (2,)])
    """

    #: Items as Tensors (torch's path) or arrays.
    yields_tensors = False

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

    @property
    def tensors(self) -> tuple:
        """The stored data as Tensors sharing its memory (torch's ``TensorDataset.tensors``)."""
        return tuple(Tensor(a) for a in self.arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        rows = tuple(a[index] for a in self.arrays)
        return tuple(Tensor(np.asarray(r)) for r in rows) if self.yields_tensors else rows

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


class ConcatDataset(Dataset):
    """Several datasets one after the other (torch's ``ConcatDataset``)."""

    def __init__(self, datasets) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: expected at least one dataset")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset: an IterableDataset cannot be concatenated (it has no len())")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ConcatDataset: index {index} is out of range for {n} samples")
        index = index % n
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][int(index - start)]


def random_split(dataset, lengths: Sequence, generator: np.random.Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset``s.

    ``lengths`` are counts summing to ``len(dataset)``, or fractions summing to 1
    (as torch: the counts are floored and the remainder is handed out one by one
    from the first subset on).
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(v, float) and 0 <= v <= 1 for v in lengths) and math.isclose(sum(lengths), 1):
        counts = [int(math.floor(n * fraction)) for fraction in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(isinstance(v, bool) or not float(v).is_integer() or v < 0 for v in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: expected non-negative lengths summing to the dataset size {n} "
                         f"(or fractions summing to 1), got {lengths}")
    lengths = [int(v) for v in lengths]
    order = _generator(generator, "random_split").permutation(n)
    bounds = np.cumsum([0] + lengths)
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]


def _fetch(dataset, indices: np.ndarray):
    get_batch = getattr(dataset, "get_batch", None)
    if get_batch is not None:
        return get_batch(indices)
    # Any object with __len__ and __getitem__ works, one item at a time.
    return collate([dataset[int(i)] for i in indices])


def _fetches_batches(dataset) -> bool:
    """Does ``dataset`` fetch a batch of arrays at once (a ``get_batch`` of its own, not the per-item default)?"""
    if isinstance(dataset, Subset):
        return _fetches_batches(dataset.dataset)
    get_batch = getattr(type(dataset), "get_batch", None)
    return get_batch is not None and get_batch is not Dataset.get_batch


# ----------------------------------------------------------------------------
# The loader
# ----------------------------------------------------------------------------

class DataLoader:
    """Iterates over ``dataset`` in batches (torch's ``DataLoader`` arguments; one process).

    Args:
        dataset: a ``Dataset`` (or any object with ``__len__`` and
            ``__getitem__``), or an ``IterableDataset``.
        batch_size: samples per batch (``None``: no batching; each sample is
            converted as it is); the last batch is smaller unless ``drop_last``.
        shuffle: a fresh permutation every epoch (every ``iter``).
        sampler: the indices to load, in order (instead of ``shuffle``).
        batch_sampler: lists of indices, one per batch (instead of
            ``batch_size``, ``shuffle``, ``sampler`` and ``drop_last``).
        num_workers: accepted; normlab loads in the calling process whatever
            the number (batches and their order are the same).
        collate_fn: turns a list of samples into a batch (default: Tensors
            under ``normlab.utils.data``, NumPy arrays under ``normlab.data``).
        pin_memory, timeout, worker_init_fn, prefetch_factor,
            persistent_workers: accepted and ignored (no workers, no GPU).
        drop_last: drop the last incomplete batch.
        generator: the ``normlab.Generator`` (or ``np.random.Generator``) that
            shuffles; ``None`` means normlab's global generator, so
            ``normlab.manual_seed`` makes the order repeatable.

    ``len(loader)`` is the number of batches per epoch.

    >>> import numpy as np, normlab
    >>> loader = DataLoader(TensorDataset(np.arange(7)), batch_size=3, shuffle=True, drop_last=True)
    >>> _ = normlab.manual_seed(1)
    >>> len(loader), [b.shape for (b,) in loader]
    (2, [(3,), (3,)])
    """

    #: Batches as Tensors (torch's default_collate) or as NumPy arrays.
    yields_tensors = False

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn: Callable | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0, worker_init_fn=None,
                 multiprocessing_context=None, generator: np.random.Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")) and not hasattr(dataset, "__iter__"):
            raise TypeError(f"DataLoader: expected a dataset with __len__ and __getitem__, "
                            f"got {type(dataset).__name__}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                                       or batch_size <= 0):
            raise ValueError(f"DataLoader: expected batch_size to be a positive integer or None, got {batch_size!r}")
        shuffle = False if shuffle is None else shuffle
        for arg, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"DataLoader: expected {arg} to be a bool, got {value!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError(f"DataLoader: expected num_workers to be a non-negative integer, got {num_workers!r}")
        if generator is not None:
            _generator(generator, "DataLoader")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: expected collate_fn to be callable or None, got {type(collate_fn).__name__}")
        self.iterable = isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__")
        if self.iterable and (shuffle or sampler is not None or batch_sampler is not None):
            raise ValueError("DataLoader: an IterableDataset takes no shuffle, sampler or batch_sampler "
                             "(it decides its own order)")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        for arg, value in (("sampler", sampler), ("batch_sampler", batch_sampler)):
            if value is not None and not hasattr(value, "__iter__"):
                raise TypeError(f"DataLoader: expected {arg} to be an iterable of indices (a Sampler, a list, ...), "
                                f"got {type(value).__name__}")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        self.dataset = dataset
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.num_workers = int(num_workers)
        self.generator = generator
        self.collate_fn = collate_fn
        if not self.iterable:
            if sampler is None:
                sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
            if batch_sampler is None and self.batch_size is not None:
                batch_sampler = BatchSampler(sampler, self.batch_size, self.drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler

    def __len__(self) -> int:
        if self.iterable:
            raise TypeError("DataLoader: the length of a loader over an IterableDataset is unknown")
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def batch_indices(self) -> Iterator[np.ndarray]:
        """The index array of every batch of one epoch (draws the shuffle permutation)."""
        for batch in self.batch_sampler:
            yield np.asarray(batch, dtype=np.int64)

    def _collate(self, samples: list):
        if self.collate_fn is not None:
            return self.collate_fn(samples)
        return default_collate(samples) if self.yields_tensors else collate(samples)

    def _as_batch(self, arrays):
        """A batch fetched by ``get_batch`` (arrays): Tensors in a list (as torch) or unchanged."""
        if not self.yields_tensors:
            return arrays
        if isinstance(arrays, tuple):
            return [Tensor(np.asarray(a)) for a in arrays]
        return Tensor(np.asarray(arrays))

    def __iter__(self):
        if self.iterable:
            yield from self._iterate_stream()
        elif self.batch_sampler is None:  # batch_size=None: one sample at a time, not batched
            for index in self.sampler:
                sample = self.dataset[index]
                yield self.collate_fn(sample) if self.collate_fn is not None else (
                    default_convert(sample) if self.yields_tensors else sample)
        else:
            for indices in self.batch_indices():
                if self.collate_fn is not None:
                    yield self.collate_fn([self.dataset[int(i)] for i in indices])
                elif not self.yields_tensors or _fetches_batches(self.dataset):
                    yield self._as_batch(_fetch(self.dataset, indices))
                else:
                    yield self._collate([self.dataset[int(i)] for i in indices])

    def _iterate_stream(self):
        batch = []
        for sample in self.dataset:
            if self.batch_size is None:
                yield self.collate_fn(sample) if self.collate_fn is not None else (
                    default_convert(sample) if self.yields_tensors else sample)
                continue
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self._collate(batch)
                batch = []
        if batch and not self.drop_last and self.batch_size is not None:
            yield self._collate(batch)

    def __repr__(self) -> str:
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last})")
