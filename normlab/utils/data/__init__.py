"""``normlab.utils.data``: torch.utils.data's names, yielding Tensors as torch's DataLoader does.

The implementation is ``normlab.data.loader`` (which, under ``normlab.data``,
yields NumPy arrays for the lab); here the loader and ``TensorDataset`` give
Tensors: ``for x, y in DataLoader(TensorDataset(x, y), batch_size=64,
shuffle=True)`` gets a float Tensor batch and int64 labels, as in torch.

>>> import normlab
>>> from normlab.utils.data import DataLoader, TensorDataset
>>> data = TensorDataset(normlab.randn(10, 3), normlab.arange(10))
>>> x, y = next(iter(DataLoader(data, batch_size=4, shuffle=True)))
>>> x.shape, y.dtype
((4, 3), dtype('int64'))
"""
from normlab.data import loader as _loader
from normlab.data.loader import (  # noqa: F401
    BatchSampler,
    ConcatDataset,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    random_split,
)

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "DataLoader", "random_split",
           "default_collate", "default_convert", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler", "DistributedSampler"]


class TensorDataset(_loader.TensorDataset):
    """``normlab.data.TensorDataset`` whose items are Tensors (torch's ``TensorDataset``)."""

    yields_tensors = True


class DataLoader(_loader.DataLoader):
    """``normlab.data.DataLoader`` yielding Tensors, collated as torch's ``default_collate`` (see its arguments)."""

    yields_tensors = True
