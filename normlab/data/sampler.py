"""Samplers: which dataset indices a DataLoader visits, in which order (torch.utils.data's names).

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

__all__ = ["Sampler", "DistributedSampler"]


class Sampler:
    """Base class: an iterable of dataset indices with a length (like ``torch.utils.data.Sampler``)."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


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
