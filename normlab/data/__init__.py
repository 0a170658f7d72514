"""Data for normlab: datasets that need no download, IDX files from disk, and a ``DataLoader``.

Sequence tasks for recurrent nets (adding problem, temporal order, MNIST-1D
as a sequence) come as ``SequenceSet`` records (see ``normlab.data.sequences``).

Batches are tuples of NumPy arrays (see ``normlab.data.loader``); datasets
come as ``DataSplits`` records (see ``normlab.data.datasets``).

>>> import normlab
>>> from normlab.data import get_dataset, DataLoader
>>> data = get_dataset("blobs", n_samples=100)
>>> _ = normlab.manual_seed(0)
>>> x, y = next(iter(DataLoader(data.train_set(), batch_size=16, shuffle=True)))
>>> x.shape, y.shape, x.dtype, y.dtype
((16, 2), (16,), dtype('float32'), dtype('int64'))
"""
from normlab.data.datasets import (
    FASHION_CLASSES,
    DataSplits,
    default_cache_dir,
    get_dataset,
    list_datasets,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_mnist1d,
    make_blobs,
    make_spirals,
    register_dataset,
    stratified_split,
)
from normlab.data.idx import read_idx, write_idx
from normlab.data.loader import DataLoader, Dataset, Subset, TensorDataset, collate, random_split
from normlab.data.sampler import DistributedSampler, Sampler
from normlab.data.sequences import (
    TEMPORAL_ORDER_SYMBOLS,
    SequenceSet,
    make_adding_problem,
    make_temporal_order,
    mnist1d_sequences,
)

__all__ = [
    "Dataset", "TensorDataset", "Subset", "DataLoader", "collate", "random_split", "Sampler", "DistributedSampler",
    "DataSplits", "stratified_split", "load_digits", "load_mnist1d", "make_spirals", "make_blobs",
    "load_mnist", "load_fashion_mnist", "FASHION_CLASSES", "read_idx", "write_idx", "default_cache_dir",
    "register_dataset", "get_dataset", "list_datasets",
    "SequenceSet", "make_adding_problem", "make_temporal_order", "mnist1d_sequences", "TEMPORAL_ORDER_SYMBOLS",
]
