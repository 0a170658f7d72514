"""normlab.data: DataLoader batching and shuffling, the embedded and synthetic datasets, IDX files."""
from __future__ import annotations

import gzip
import random
import struct
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import normlab
from normlab import data as nd
from normlab.data import datasets as datasets_module


def _epoch(loader):
    return [tuple(np.array(a) for a in batch) for batch in loader]


# ----------------------------------------------------------------------------
# DataLoader
# ----------------------------------------------------------------------------

@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), drop_last=st.booleans(), shuffle=st.booleans())
def test_loader_batches_cover_the_dataset(n, batch_size, drop_last, shuffle):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n)
    loader = nd.DataLoader(nd.TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)
    batches = _epoch(loader)
    expected_batches = n // batch_size if drop_last else -(-n // batch_size)
    assert len(loader) == len(batches) == expected_batches
    sizes = [len(b[1]) for b in batches]
    assert all(s == batch_size for s in sizes[:-1])
    if drop_last:
        assert all(s == batch_size for s in sizes)
    seen = np.concatenate([b[1] for b in batches]) if batches else np.array([], dtype=int)
    assert len(np.unique(seen)) == len(seen)  # no sample twice in one epoch
    assert len(seen) == (n // batch_size) * batch_size if drop_last else len(seen) == n
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))
    for bx, by in batches:  # rows stay paired with their labels
        np.testing.assert_array_equal(bx, x[by])
        assert bx.dtype == np.float32 and by.dtype == y.dtype


def test_shuffle_is_repeatable_under_manual_seed_and_differs_between_epochs():
    dataset = nd.TensorDataset(np.arange(100))
    loader = nd.DataLoader(dataset, batch_size=10, shuffle=True)
    normlab.manual_seed(7)
    first, second = _epoch(loader), _epoch(loader)
    normlab.manual_seed(7)
    again_first, again_second = _epoch(loader), _epoch(loader)
    for a, b in zip(first + second, again_first + again_second):
        np.testing.assert_array_equal(a[0], b[0])
    order1 = np.concatenate([b[0] for b in first])
    order2 = np.concatenate([b[0] for b in second])
    assert not np.array_equal(order1, order2)          # a fresh permutation every epoch
    assert not np.array_equal(order1, np.arange(100))  # actually shuffled
    normlab.manual_seed(8)
    assert not np.array_equal(np.concatenate([b[0] for b in _epoch(loader)]), order1)


def test_explicit_generator_is_used_and_leaves_the_global_one_alone():
    dataset = nd.TensorDataset(np.arange(50))
    order = lambda g: np.concatenate([b[0] for b in nd.DataLoader(dataset, 7, shuffle=True, generator=g)])
    normlab.manual_seed(0)
    before = normlab.random.default_generator().bit_generator.state
    a = order(np.random.default_rng(3))
    assert normlab.random.default_generator().bit_generator.state == before
    b = order(np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.random.default_rng(3).permutation(50))


def test_tensor_dataset_batches_by_fancy_indexing_not_per_item():
    class Counting(nd.TensorDataset):
        calls = 0

        def __getitem__(self, index):
            Counting.calls += 1
            return super().__getitem__(index)

    loader = nd.DataLoader(Counting(np.zeros((30, 2)), np.arange(30)), batch_size=8, shuffle=True)
    assert sum(len(b[1]) for b in loader) == 30
    assert Counting.calls == 0


def test_plain_dataset_and_collate_fn():
    class Squares(nd.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], dtype=np.float64), i

    (x, y), (x2, y2), (x3, y3) = nd.DataLoader(Squares(), batch_size=2)
    np.testing.assert_array_equal(x, [[0, 0], [1, 1]])
    np.testing.assert_array_equal(y3, [4])
    assert x.dtype == np.float64 and y.dtype.kind == "i"

    class NotADatasetSubclass:  # duck typing: __len__ and __getitem__ are enough
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.full(2, i)

    batches = list(nd.DataLoader(NotADatasetSubclass(), batch_size=2))
    np.testing.assert_array_equal(batches[0], [[0, 0], [1, 1]])
    sums = list(nd.DataLoader(Squares(), batch_size=5, collate_fn=lambda s: sum(item[1] for item in s)))
    assert sums == [10]


def test_loader_accepts_tensors_and_yields_arrays():
    dataset = nd.TensorDataset(normlab.tensor(np.ones((4, 2))), np.arange(4))
    x, y = next(iter(nd.DataLoader(dataset, batch_size=4)))
    assert isinstance(x, np.ndarray) and x.shape == (4, 2)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 2.5}, ValueError, "batch_size"),
    ({"batch_size": True}, ValueError, "batch_size"),
    ({"shuffle": "yes"}, TypeError, "shuffle"),
    ({"generator": 3}, TypeError, "generator"),
    ({"collate_fn": 3}, TypeError, "collate_fn"),
])
def test_loader_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=f"DataLoader: .*{message}"):
        nd.DataLoader(nd.TensorDataset(np.arange(3)), **kwargs)
    with pytest.raises(TypeError, match="DataLoader: expected a dataset"):
        nd.DataLoader(5)


def test_tensor_dataset_checks_lengths():
    with pytest.raises(ValueError, match=r"TensorDataset: .*equal length.*\[3, 4\]"):
        nd.TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        nd.TensorDataset()
    with pytest.raises(ValueError, match="0D"):
        nd.TensorDataset(np.float64(1.0))


def test_subset_and_random_split():
    dataset = nd.TensorDataset(np.arange(20) * 10)
    subset = nd.Subset(dataset, [3, 5, 7])
    assert len(subset) == 3 and int(subset[1][0]) == 50
    (batch,) = next(iter(nd.DataLoader(subset, batch_size=3)))
    np.testing.assert_array_equal(batch, [30, 50, 70])
    parts = nd.random_split(dataset, [15, 5], generator=np.random.default_rng(0))
    values = np.concatenate([nd.DataLoader(p, batch_size=100).__iter__().__next__()[0] for p in parts])
    np.testing.assert_array_equal(np.sort(values), np.arange(20) * 10)
    with pytest.raises(ValueError, match="summing to the dataset size 20"):
        nd.random_split(dataset, [15, 4])
    with pytest.raises(IndexError, match="Subset"):
        nd.Subset(dataset, [20])


# ----------------------------------------------------------------------------
# Embedded and synthetic datasets
# ----------------------------------------------------------------------------

def _check_record(data, n_train, n_test, shape, n_classes):
    assert data.x_train.shape == (n_train,) + shape and data.x_test.shape == (n_test,) + shape
    assert data.y_train.shape == (n_train,) and data.y_test.shape == (n_test,)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.n_classes == n_classes and data.input_shape == shape
    assert set(np.unique(data.y_train)) == set(range(n_classes)) == set(np.unique(data.y_test))
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()
    assert not data.x_train.flags.writeable and not data.y_test.flags.writeable  # the cache cannot be corrupted
    assert data.description and data.name


def test_digits_split_shapes_scaling_and_stratification():
    from sklearn.datasets import load_digits as sklearn_digits

    data = nd.load_digits()
    _check_record(data, 1438, 359, (64,), 10)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    # Every digit keeps its share: per-class test counts are 20% of the class, rounded.
    counts = np.bincount(sklearn_digits().target)
    np.testing.assert_array_equal(np.bincount(data.y_test), np.round(0.2 * counts).astype(int))
    # The rows are sklearn's rows (scaled by 1/16), train and test disjoint and together complete.
    rows = np.concatenate([data.x_train, data.x_test]) * 16
    reference = sklearn_digits().data
    assert sorted(map(bytes, rows.astype(np.uint8))) == sorted(map(bytes, reference.astype(np.uint8)))
    assert nd.load_digits() is data  # memory cache
    other = nd.load_digits(seed=1)
    assert not np.array_equal(other.y_train, data.y_train)


def test_digits_standardize_uses_train_statistics():
    data = nd.load_digits(standardize=True)
    mean, std = data.x_train.mean(axis=0), data.x_train.std(axis=0)
    varying = std > 0
    np.testing.assert_allclose(mean, 0, atol=1e-5)
    np.testing.assert_allclose(std[varying], 1, rtol=1e-4)
    assert abs(float(data.x_test.mean())) < 0.2


def test_mnist1d_matches_the_generator_and_restores_global_random_state():
    from mnist1d.data import get_dataset_args, make_dataset

    datasets_module._memory.clear()
    np.random.seed(123)
    random.seed(123)
    numpy_before, python_before = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    data = nd.load_mnist1d(num_samples=300, seed=5)
    assert np.random.random() == numpy_before and random.random() == python_before
    _check_record(data, 240, 60, (40,), 10)
    args = get_dataset_args()
    args.num_samples, args.seed = 300, 5
    reference = make_dataset(args)
    np.testing.assert_array_equal(data.x_train, reference["x"].astype(np.float32))
    np.testing.assert_array_equal(data.y_test, reference["y_test"])
    datasets_module._memory.clear()
    again = nd.load_mnist1d(num_samples=300, seed=5)
    assert again is not data
    np.testing.assert_array_equal(again.x_test, data.x_test)
    assert not np.array_equal(nd.load_mnist1d(num_samples=300, seed=6).x_train, data.x_train)


def test_mnist1d_disk_cache_is_npz_and_survives_corruption(tmp_path, monkeypatch):
    datasets_module._memory.clear()
    data = nd.load_mnist1d(num_samples=200, seed=1, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    with np.load(path, allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["x_train"], data.x_train)

    # A second process (empty memory cache) reads the file instead of regenerating.
    datasets_module._memory.clear()
    monkeypatch.setattr(datasets_module, "_generate_mnist1d", lambda *a: pytest.fail("regenerated"))
    np.testing.assert_array_equal(nd.load_mnist1d(num_samples=200, seed=1, cache_dir=tmp_path).y_test, data.y_test)
    monkeypatch.undo()

    path.write_bytes(b"not a zip file")
    datasets_module._memory.clear()
    with pytest.warns(UserWarning, match="unreadable cache file"):
        regenerated = nd.load_mnist1d(num_samples=200, seed=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(regenerated.x_train, data.x_train)
    with np.load(path, allow_pickle=False) as archive:  # rewritten
        assert archive["x_test"].shape == (40, 40)
    assert not list(tmp_path.glob("*.tmp"))

    monkeypatch.setenv("NORMLAB_CACHE_DIR", str(tmp_path / "env"))
    assert nd.default_cache_dir() == tmp_path / "env"
    datasets_module._memory.clear()
    nd.load_mnist1d(num_samples=200, seed=1, cache_dir=True)
    assert len(list((tmp_path / "env").glob("mnist1d-*.npz"))) == 1


@pytest.mark.parametrize("maker, kwargs, n_features, n_classes", [
    (nd.make_spirals, {"n_samples": 301, "n_classes": 3}, 2, 3),
    (nd.make_spirals, {"n_samples": 100, "n_classes": 5, "turns": 2.0}, 2, 5),
    (nd.make_blobs, {"n_samples": 250, "n_classes": 4, "n_features": 7}, 7, 4),
])
def test_synthetic_tasks_are_seeded_and_balanced(maker, kwargs, n_features, n_classes):
    data = maker(**kwargs, seed=3)
    n = kwargs["n_samples"]
    assert len(data.x_train) + len(data.x_test) == n
    _check_record(data, len(data.x_train), len(data.x_test), (n_features,), n_classes)
    counts = np.bincount(np.concatenate([data.y_train, data.y_test]))
    assert counts.max() - counts.min() <= 1
    same = maker(**kwargs, seed=3)
    np.testing.assert_array_equal(same.x_train, data.x_train)
    assert not np.array_equal(maker(**kwargs, seed=4).x_train, data.x_train)


def test_spirals_are_separable_only_nonlinearly():
    # Arms are interleaved: the nearest class centroid classifies badly, 1-nearest-neighbour well.
    data = nd.make_spirals(n_samples=900, noise=0.02)
    centroids = np.stack([data.x_train[data.y_train == k].mean(0) for k in range(3)])
    nearest_centroid = np.argmin(((data.x_test[:, None] - centroids) ** 2).sum(-1), axis=1)
    distances = ((data.x_test[:, None] - data.x_train[None]) ** 2).sum(-1)
    nearest_neighbour = data.y_train[np.argmin(distances, axis=1)]
    assert (nearest_centroid == data.y_test).mean() < 0.7
    assert (nearest_neighbour == data.y_test).mean() > 0.9


@pytest.mark.parametrize("call, message", [
    (lambda: nd.make_spirals(n_samples=3, n_classes=3), "n_samples"),
    (lambda: nd.make_spirals(noise=-1), "noise"),
    (lambda: nd.make_blobs(n_classes=1), "n_classes"),
    (lambda: nd.make_blobs(test_fraction=1.0), "test_fraction"),
    (lambda: nd.load_digits(test_fraction=0), "test_fraction"),
    (lambda: nd.load_mnist1d(train_split=1.5), "train_split"),
])
def test_dataset_arguments_are_checked(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_stratified_split_keeps_proportions():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    train, test = nd.stratified_split(labels, 0.2, seed=0)
    assert np.bincount(labels[test]).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))


def test_data_splits_validates_and_copies():
    x = np.zeros((4, 2), dtype=np.float32)
    record = nd.DataSplits("t", x, np.arange(4) % 2, x[:2], np.array([0, 1]), 2)
    assert x.flags.writeable  # the caller's array is not frozen
    assert len(record.train_set()) == 4 and len(record.test_set()) == 2
    with pytest.raises(ValueError, match=r"labels in \[0, 2\)"):
        nd.DataSplits("t", x, np.array([0, 1, 2, 0]), x[:2], np.array([0, 1]), 2)
    with pytest.raises(TypeError, match="integer labels"):
        nd.DataSplits("t", x, np.zeros(4), x[:2], np.array([0, 1]), 2)


def test_registry_lists_and_dispatches():
    names = nd.list_datasets()
    assert {"digits", "mnist1d", "spirals", "blobs", "mnist", "fashion_mnist"} <= set(names)
    assert all(isinstance(description, str) and description for description in names.values())
    data = nd.get_dataset("blobs", n_samples=40, n_classes=2, seed=9)
    np.testing.assert_array_equal(data.x_train, nd.make_blobs(n_samples=40, n_classes=2, seed=9).x_train)
    with pytest.raises(ValueError, match="unknown dataset 'nope'; known: .*digits"):
        nd.get_dataset("nope")
    with pytest.raises(ValueError, match="already registered"):
        nd.register_dataset("digits", lambda: None)


# ----------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------

def _idx_bytes(type_code: int, shape: tuple, payload: bytes) -> bytes:
    # Built by hand with struct (not with write_idx) so the reader is checked against the format itself.
    return struct.pack(">BBBB", 0, 0, type_code, len(shape)) + struct.pack(f">{len(shape)}i", *shape) + payload


@pytest.mark.parametrize("type_code, dtype", [
    (0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8"),
])
@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_raw_and_gzip(tmp_path, type_code, dtype, compressed):
    values = np.arange(-12, 12).reshape(2, 3, 4) if dtype[1] in "if" else np.arange(24).reshape(2, 3, 4)
    values = values.astype(dtype)
    raw = _idx_bytes(type_code, values.shape, values.tobytes())
    # The name says nothing: gzip is recognised by content.
    path = tmp_path / "file-idx3"
    path.write_bytes(gzip.compress(raw) if compressed else raw)
    array = nd.read_idx(path)
    assert array.shape == (2, 3, 4) and array.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(array, values)
    array[0, 0, 0] = 1  # a writable, native array
    out = tmp_path / "round.gz"
    nd.write_idx(out, array)
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(nd.read_idx(out), array)


def test_read_idx_refuses_bad_files(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x01\x08\x01" + struct.pack(">i", 2) + b"\x00\x00")
    with pytest.raises(ValueError, match="bad magic number 0x00010801"):
        nd.read_idx(path)
    path.write_bytes(_idx_bytes(0x07, (2,), b"\x00\x00"))
    with pytest.raises(ValueError, match="bad magic number"):
        nd.read_idx(path)
    path.write_bytes(_idx_bytes(0x08, (2, 3), b"\x00" * 5))
    with pytest.raises(ValueError, match=r"holds 5 bytes of data but its header \(2, 3\)"):
        nd.read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 4)
    with pytest.raises(ValueError, match="ends inside its header"):
        nd.read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        nd.read_idx(path)
    path.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ValueError, match="cannot be decompressed"):
        nd.read_idx(path)
    with pytest.raises(FileNotFoundError, match="does not download"):
        nd.read_idx(tmp_path / "missing")


def test_load_mnist_from_a_local_folder(tmp_path):
    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
              "t10k": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)}
    labels = {"train": np.array([0, 1, 2, 3, 4, 9], np.uint8), "t10k": np.array([5, 6, 7], np.uint8)}
    for split in ("train", "t10k"):
        # Mixed on purpose: raw images, gzip labels.
        (tmp_path / f"{split}-images-idx3-ubyte").write_bytes(_idx_bytes(0x08, (len(images[split]), 28, 28),
                                                                          images[split].tobytes()))
        (tmp_path / f"{split}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(_idx_bytes(0x08, (len(labels[split]),), labels[split].tobytes())))
    data = nd.load_fashion_mnist(tmp_path)
    assert data.x_train.shape == (6, 784) and data.x_test.shape == (3, 784) and data.class_names[9] == "Ankle boot"
    np.testing.assert_allclose(data.x_train[1], images["train"][1].reshape(-1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_test, [5, 6, 7])
    assert nd.get_dataset("mnist", root=tmp_path, flatten=False).x_test.shape == (3, 28, 28)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"):
        nd.load_mnist(tmp_path)


def test_loading_data_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nd.make_spirals()
        nd.load_digits()
