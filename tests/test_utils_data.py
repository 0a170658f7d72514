"""``normlab.utils.data`` against torch.utils.data: batch structure, types, dtypes and values; sampler semantics.

Orders drawn at random differ between the libraries (different generators),
so shuffled epochs are checked for coverage and repeatability, and
everything deterministic is compared with torch element for element.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.utils.data as tud
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.utils.data as nud
from normlab import data as nd


def _same(ours, theirs, where="batch"):
    """Same nesting, container types, tensor dtypes and values."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, normlab.Tensor), f"{where}: {type(ours).__name__} instead of a Tensor"
        assert str(theirs.dtype) == f"torch.{ours.dtype.name}", f"{where}: {ours.dtype} vs {theirs.dtype}"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=where)
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), where
        for key in theirs:
            _same(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert type(ours).__name__ == type(theirs).__name__ and len(ours) == len(theirs), \
            f"{where}: {type(ours).__name__} vs {type(theirs).__name__}"
        for i, (o, t) in enumerate(zip(ours, theirs)):
            _same(o, t, f"{where}[{i}]")
    else:
        assert ours == theirs, where


def test_import_normlab_loads_the_torch_path():
    import subprocess
    import sys

    code = "import normlab; print(normlab.utils.data.DataLoader.__name__, normlab.utils.data.TensorDataset.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["DataLoader", "TensorDataset"]


@pytest.mark.parametrize("batch_size, drop_last", [(4, False), (4, True), (1, False), (10, False), (None, False)])
def test_tensor_dataset_batches_equal_torch(rng, batch_size, drop_last):
    x, y = rng.standard_normal((10, 3)).astype(np.float32), rng.integers(0, 5, 10)
    ours = nud.DataLoader(nud.TensorDataset(normlab.tensor(x), normlab.tensor(y)), batch_size=batch_size,
                          drop_last=drop_last)
    theirs = tud.DataLoader(tud.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=batch_size,
                            drop_last=drop_last)
    assert len(ours) == len(theirs)
    batches = list(ours)
    assert len(batches) == len(list(theirs))
    for i, (o, t) in enumerate(zip(batches, theirs)):
        _same(o, t, f"batch {i}")
    dataset = nud.TensorDataset(normlab.tensor(x), normlab.tensor(y))
    _same(dataset[3], tud.TensorDataset(torch.tensor(x), torch.tensor(y))[3], "dataset[3]")
    assert [t.shape for t in dataset.tensors] == [(10, 3), (10,)]


Pair = namedtuple("Pair", ["image", "label"])
SAMPLES = {
    "tuple of array and int": lambda i: (np.full(2, i, dtype=np.float32), i),
    "list of float64 array and float": lambda i: [np.arange(3.0) * i, float(i) / 2],
    "dict with a string": lambda i: {"x": np.ones((2, 2), np.float32) * i, "label": i, "name": f"item{i}"},
    "named tuple": lambda i: Pair(np.full(3, i, dtype=np.int64), i % 2 == 0),
    "nested": lambda i: {"pair": (np.full(1, i, np.float32), {"k": i}), "flag": bool(i % 2)},
    "numpy scalar": lambda i: np.float32(i) / 3,
    "int only": lambda i: i,
}


@pytest.mark.parametrize("name", SAMPLES)
def test_default_collate_equals_torch(name):
    make = SAMPLES[name]
    samples = [make(i) for i in range(5)]
    _same(nud.default_collate(samples), tud.default_collate(samples), name)

    class Ours(nud.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return make(i)

    class Theirs(tud.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return make(i)

    for batch_size in (2, None):
        for i, (o, t) in enumerate(zip(nud.DataLoader(Ours(), batch_size=batch_size),
                                       tud.DataLoader(Theirs(), batch_size=batch_size))):
            _same(o, t, f"{name} batch_size={batch_size} batch {i}")


def test_default_collate_refuses_what_torch_refuses():
    with pytest.raises(TypeError, match="default_collate: a batch must contain"):
        nud.default_collate([object(), object()])
    with pytest.raises(RuntimeError, match="each element in the list of batch should be of equal size"):
        nud.default_collate([[1, 2], [3]])


@given(n=st.integers(1, 30), batch_size=st.integers(1, 8), drop_last=st.booleans())
def test_shuffled_epochs_cover_the_data_once_and_repeat_under_a_seed(n, batch_size, drop_last):
    data = nud.TensorDataset(normlab.arange(n))
    loader = nud.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=drop_last)
    torch_loader = tud.DataLoader(tud.TensorDataset(torch.arange(n)), batch_size=batch_size, shuffle=True,
                                  drop_last=drop_last)
    normlab.manual_seed(11)
    epoch = [b[0].tolist() for b in loader]
    assert [len(b) for b in epoch] == [len(b[0]) for b in torch_loader]
    seen = sum(epoch, [])
    assert len(set(seen)) == len(seen) and (len(seen) == n or drop_last)
    normlab.manual_seed(11)
    assert [b[0].tolist() for b in loader] == epoch
    g1, g2 = normlab.Generator().manual_seed(3), normlab.Generator().manual_seed(3)
    first = [b[0].tolist() for b in nud.DataLoader(data, batch_size=batch_size, shuffle=True, generator=g1)]
    assert first == [b[0].tolist() for b in nud.DataLoader(data, batch_size=batch_size, shuffle=True, generator=g2)]


def test_samplers_and_batch_sampler_follow_torch():
    data = list(range(10))
    assert list(nud.SequentialSampler(data)) == list(tud.SequentialSampler(data))
    for drop_last in (False, True):
        ours = list(nud.BatchSampler(nud.SequentialSampler(data), 3, drop_last))
        theirs = list(tud.BatchSampler(tud.SequentialSampler(data), 3, drop_last))
        assert ours == theirs and len(nud.BatchSampler(range(10), 3, drop_last)) == len(theirs)
    random_order = list(nud.RandomSampler(data, generator=normlab.Generator().manual_seed(0)))
    assert sorted(random_order) == data and len(nud.RandomSampler(data)) == 10
    with_replacement = list(nud.RandomSampler(data, replacement=True, num_samples=25))
    assert len(with_replacement) == 25 and set(with_replacement) <= set(data)
    assert len(list(nud.RandomSampler(data, num_samples=23))) == 23 == len(tud.RandomSampler(data, num_samples=23))
    assert sorted(nud.SubsetRandomSampler([1, 5, 7])) == [1, 5, 7]
    weighted = list(nud.WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 50))
    assert set(weighted) <= {1, 3} and len(weighted) == 50
    loader = nud.DataLoader(nud.TensorDataset(normlab.arange(10)),
                            batch_sampler=nud.BatchSampler(nud.SequentialSampler(range(10)), 4, False))
    assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(loader) == 3
    subset = nud.DataLoader(nud.TensorDataset(normlab.arange(10)), batch_size=2, sampler=[9, 0, 4])
    assert [b[0].tolist() for b in subset] == [[9, 0], [4]]


@pytest.mark.parametrize("kwargs, message", [
    ({"sampler": [0, 1], "shuffle": True}, "sampler option is mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "drop_last": True}, "batch_sampler option is mutually exclusive"),
    ({"batch_size": None, "drop_last": True}, "mutually exclusive with drop_last"),
])
def test_conflicting_loader_options_raise_value_error_as_torch(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tud.DataLoader(tud.TensorDataset(torch.arange(4)), **kwargs)
    with pytest.raises(ValueError, match=message):
        nud.DataLoader(nud.TensorDataset(normlab.arange(4)), **kwargs)


def test_workers_and_pinning_are_accepted_and_change_nothing():
    data = nud.TensorDataset(normlab.arange(7))
    plain = [b[0].tolist() for b in nud.DataLoader(data, batch_size=3)]
    workers = nud.DataLoader(data, batch_size=3, num_workers=4, pin_memory=True, persistent_workers=True,
                             prefetch_factor=2, worker_init_fn=lambda i: None, timeout=5)
    assert [b[0].tolist() for b in workers] == plain
    with pytest.raises(ValueError, match="num_workers"):
        nud.DataLoader(data, num_workers=-1)


def test_random_split_subset_and_concat_follow_torch():
    data = nud.TensorDataset(normlab.arange(10))
    for lengths in ([3, 7], [0.3, 0.7], [0.34, 0.33, 0.33], [0.5, 0.5]):
        ours = nud.random_split(data, lengths, generator=normlab.Generator().manual_seed(1))
        theirs = tud.random_split(range(10), lengths, generator=torch.Generator().manual_seed(1))
        assert [len(s) for s in ours] == [len(s) for s in theirs], lengths
        assert sorted(sum(([int(s[i][0]) for i in range(len(s))] for s in ours), [])) == list(range(10))
    with pytest.raises(ValueError, match="random_split: expected non-negative lengths summing"):
        nud.random_split(data, [3, 3])
    both = nud.ConcatDataset([nud.TensorDataset(normlab.arange(3)), nud.TensorDataset(normlab.arange(10, 12))])
    reference = tud.ConcatDataset([tud.TensorDataset(torch.arange(3)), tud.TensorDataset(torch.arange(10, 12))])
    assert len(both) == len(reference) == 5
    assert [int(both[i][0]) for i in range(-5, 5)] == [int(reference[i][0]) for i in range(-5, 5)]
    assert len(data + data) == 20
    _same(next(iter(nud.DataLoader(nud.Subset(data, [4, 2]), batch_size=2))),
          next(iter(tud.DataLoader(tud.Subset(tud.TensorDataset(torch.arange(10)), [4, 2]), batch_size=2))))


def test_iterable_datasets_are_batched_in_their_own_order():
    class Ours(nud.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    class Theirs(tud.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    for kwargs in ({"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None}):
        ours, theirs = list(nud.DataLoader(Ours(), **kwargs)), list(tud.DataLoader(Theirs(), **kwargs))
        assert len(ours) == len(theirs), kwargs
        for o, t in zip(ours, theirs):
            _same(o, t if isinstance(t, torch.Tensor) or kwargs["batch_size"] else t)
    with pytest.raises(ValueError, match="IterableDataset takes no shuffle"):
        nud.DataLoader(Ours(), shuffle=True)


def test_the_numpy_path_is_unchanged_and_shares_the_implementation():
    assert issubclass(nud.DataLoader, nd.DataLoader) and nud.Subset is nd.Subset
    x, y = next(iter(nd.DataLoader(nd.TensorDataset(np.ones((4, 2)), np.arange(4)), batch_size=4)))
    assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
    x, y = next(iter(nud.DataLoader(nud.TensorDataset(np.ones((4, 2)), np.arange(4)), batch_size=4)))
    assert isinstance(x, normlab.Tensor) and y.dtype == np.int64
