"""Samplers: which dataset indices a DataLoader visits, in which order (torch.utils.data's names).

``SequentialSampler`` and ``RandomSampler`` are what ``shuffle=False`` /
``shuffle=True`` mean; ``BatchSampler`` groups indices into batches; random
samplers draw from normlab's global generator or from ``generator=``.

``DistributedSampler`` gives each process of a data-parallel job its own
share of the dataset, every share the same length, so that every process
runs the same number of steps per epoch (a process with one step more would
wait forever for the others in its gradient allreduce).

>>> from normlab.data import DistributedSampler
>>> [list(DistributedSampler(range(10), num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
[[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
"""
from __future__ import annotations

import math
import numbers
from typing import Iterator

import numpy as np

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler", "DistributedSampler"]


class Sampler:
    """Base class: an iterable of dataset indices with a length (like ``torch.utils.data.Sampler``)."""

    def __init__(self, data_source=None) -> None:
        pass

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


def _generator(generator, name: str) -> np.random.Generator:
    if generator is None:
        # Looked up at every use, not stored: manual_seed replaces the global generator object.
        from normlab.random import default_generator
        return default_generator()
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{name}: expected generator to be a normlab.Generator, a numpy.random.Generator or None, "
                        f"got {type(generator).__name__}")
    return generator


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source) -> None:
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random permutation every epoch (or ``num_samples`` draws with ``replacement``)."""

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator=None) -> None:
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: expected replacement to be a bool, got {replacement!r}")
        if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, int)
                                        or num_samples <= 0):
            raise ValueError(f"RandomSampler: expected num_samples to be a positive integer, got {num_samples!r}")
        if generator is not None:
            _generator(generator, "RandomSampler")
        self.data_source, self.replacement, self._num_samples = data_source, replacement, num_samples
        self.generator = generator

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        rng, n = _generator(self.generator, "RandomSampler"), len(self.data_source)
        if self.replacement:
            return iter(rng.integers(0, n, size=self.num_samples).tolist())
        order = np.concatenate([rng.permutation(n) for _ in range(-(-self.num_samples // max(n, 1)))]) if n else []
        return iter(list(order[:self.num_samples]))

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order (a fresh one every epoch)."""

    def __init__(self, indices, generator=None) -> None:
        self.indices, self.generator = list(indices), generator

    def __iter__(self):
        order = _generator(self.generator, "SubsetRandomSampler").permutation(len(self.indices))
        return iter([self.indices[i] for i in order])

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probability proportional to ``weights``."""

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator=None) -> None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or (weights < 0).any() or not weights.sum() > 0:
            raise ValueError("WeightedRandomSampler: expected a 1D sequence of non-negative weights with a positive sum")
        if not replacement and num_samples > np.count_nonzero(weights):
            raise ValueError("WeightedRandomSampler: without replacement, num_samples must not exceed the number "
                             "of nonzero weights")
        self.weights, self.num_samples, self.replacement = weights, int(num_samples), replacement
        self.generator = generator

    def __iter__(self):
        rng = _generator(self.generator, "WeightedRandomSampler")
        drawn = rng.choice(len(self.weights), size=self.num_samples, replace=self.replacement,
                           p=self.weights / self.weights.sum())
        return iter(drawn.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size`` (the last one shorter unless ``drop_last``)."""

    def __init__(self, sampler, batch_size: int, drop_last: bool) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"BatchSampler: expected batch_size to be a positive integer, got {batch_size!r}")
        if not isinstance(drop_last, (bool, np.bool_)):
            raise TypeError(f"BatchSampler: expected drop_last to be a bool, got {drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), bool(drop_last)

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _non_negative_int(what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"DistributedSampler: expected {what} to be a non-negative integer, got {value!r}")
    return int(value)


class DistributedSampler(Sampler):
    """This process's share of ``dataset``: every ``num_replicas``-th index from ``rank`` (torch's semantics).

    Args:
        dataset: anything with ``len()``.
        num_replicas, rank: the number of processes and this one's rank; by
            default ``normlab.distributed.get_world_size()`` / ``get_rank()``.
        shuffle: permute the indices first, with a generator seeded by
            ``seed + epoch`` -- the same permutation on every process, a new
            one after each ``set_epoch``.
        seed: the same on every process.
        drop_last: drop the tail so that the dataset divides evenly; otherwise
            (default) repeat indices from the start until it does, so some
            samples appear twice in an epoch.

    Every share has ``len(sampler)`` indices. The permutation is NumPy's
    (``default_rng(seed + epoch)``), not torch's: the same rule, other orders.

    >>> sampler = DistributedSampler(range(5), num_replicas=2, rank=1, drop_last=True, seed=0)
    >>> len(sampler)
    2
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            from normlab import distributed as dist

            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        num_replicas = _non_negative_int("num_replicas", num_replicas)
        rank = _non_negative_int("rank", rank)
        if num_replicas == 0 or rank >= num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = bool(shuffle)
        self.seed = _non_negative_int("seed", seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        self.num_samples = n // num_replicas if self.drop_last else math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def indices(self) -> np.ndarray:
        """This epoch's indices of this process (int64)."""
        n = len(self.dataset)
        order = np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle else np.arange(n)
        if self.drop_last:
            order = order[:self.total_size]
        elif self.total_size > n:
            order = np.resize(order, self.total_size)  # repeats the order from its start, as often as needed
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` from the next iteration on (call it at the start of every epoch)."""
        self.epoch = _non_negative_int("epoch", epoch)
