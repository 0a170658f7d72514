"""Datasets for the lab: embedded (digits, MNIST-1D), synthetic (spirals, blobs), and local IDX files.

Every loader returns a ``DataSplits`` record: train and test arrays (features
float32, labels int64, both read-only because loaders cache them), the
number of classes, a name and a one-line description. Every split is fixed
by a seed, so the same call gives the same arrays on every machine. Nothing
is ever downloaded.

``get_dataset(name, **kwargs)`` looks a loader up by name;
``register_dataset`` adds one (the lab modules extend the registry this way).

>>> from normlab.data import get_dataset
>>> data = get_dataset("spirals", n_samples=300)
>>> data.x_train.shape, data.x_train.dtype, data.n_classes
((240, 2), dtype('float32'), 3)
"""
from __future__ import annotations

import os
import random
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from normlab.data.idx import MNIST_FILES, read_idx
from normlab.data.loader import TensorDataset

__all__ = [
    "DataSplits", "stratified_split", "load_digits", "load_mnist1d", "make_spirals", "make_blobs",
    "load_mnist", "load_fashion_mnist", "default_cache_dir", "register_dataset", "get_dataset",
    "list_datasets",
]


# ----------------------------------------------------------------------------
# The record every loader returns
# ----------------------------------------------------------------------------

def _read_only(array: np.ndarray, dtype) -> np.ndarray:
    # Always a private copy: freezing the caller's own array would surprise them.
    array = np.array(array, dtype=dtype, order="C", copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, repr=False)
class DataSplits:
    """A dataset's train and test arrays with its metadata.

    ``x_*`` are float32 of shape (N, *features); ``y_*`` int64 class indices
    in [0, n_classes). The arrays are read-only (loaders cache and share
    them); take ``.copy()`` to modify. ``train_set()``/``test_set()`` wrap
    them as ``TensorDataset``s for a ``DataLoader``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    description: str = ""
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x = _read_only(getattr(self, f"x_{split}"), np.float32)
            y = np.asarray(getattr(self, f"y_{split}"))
            if y.dtype.kind not in "iu":
                raise TypeError(f"DataSplits({self.name}): expected integer labels y_{split}, got dtype {y.dtype}")
            y = _read_only(y, np.int64)
            if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
                raise ValueError(f"DataSplits({self.name}): expected x_{split} of shape (N, ...) and y_{split} "
                                 f"of shape (N,), got {x.shape} and {y.shape}")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(f"DataSplits({self.name}): expected labels in [0, {self.n_classes}), got "
                                 f"y_{split} in [{y.min()}, {y.max()}]")
            object.__setattr__(self, f"x_{split}", x)
            object.__setattr__(self, f"y_{split}", y)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"DataSplits({self.name}): train and test samples differ in shape: "
                             f"{self.x_train.shape[1:]} vs {self.x_test.shape[1:]}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, e.g. (64,) for digits or (28, 28) for unflattened MNIST."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        """Values per sample (the input width of an MLP on the flattened sample)."""
        return int(np.prod(self.input_shape))

    def train_set(self) -> TensorDataset:
        return TensorDataset(self.x_train, self.y_train)

    def test_set(self) -> TensorDataset:
        return TensorDataset(self.x_test, self.y_test)

    def __repr__(self) -> str:
        return (f"DataSplits(name={self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
                f"input_shape={self.input_shape}, n_classes={self.n_classes})")


def stratified_split(labels, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_indices, test_indices): each class keeps its share in both parts, both orders shuffled.

    Each class sends round(test_fraction * count) of its samples to the test
    part, so class proportions match to within one sample per class.
    """
    labels = np.asarray(labels)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"stratified_split: expected test_fraction in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(test_fraction * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    # Shuffled, so that an unshuffled loader still sees mixed classes.
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _check_fraction(name: str, test_fraction) -> float:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ValueError(f"{name}: expected test_fraction in (0, 1), got {test_fraction!r}")
    return float(test_fraction)


def _check_count(name: str, arg: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected {arg} to be an integer >= {minimum}, got {value!r}")
    return int(value)


def _needs(package: str, dataset: str, error: ImportError):
    return ImportError(f"{dataset} needs the '{package}' package, which is part of normlab's 'lab' extra: "
                       f"pip install 'normlab[lab]' ({error})")


# In-memory cache: the same arguments give the same (read-only) record without recomputing it.
_memory: dict[tuple, DataSplits] = {}


# ----------------------------------------------------------------------------
# Embedded datasets
# ----------------------------------------------------------------------------

def load_digits(test_fraction: float = 0.2, seed: int = 0, standardize: bool = False) -> DataSplits:
    """scikit-learn's 8x8 handwritten digits (1797 samples, 64 features, 10 classes), split 80/20.

    The images ship inside scikit-learn, so this works offline. The split is
    stratified and fixed by ``seed`` (1438 train / 359 test by default).
    Pixels (integers 0..16) are scaled to [0, 1]; with ``standardize=True``
    each feature is instead centred and scaled by the TRAIN split's mean and
    standard deviation (constant pixels get scale 1).
    """
    test_fraction = _check_fraction("load_digits", test_fraction)
    key = ("digits", test_fraction, int(seed), bool(standardize))
    if key not in _memory:
        try:
            from sklearn.datasets import load_digits as sklearn_digits
        except ImportError as error:
            raise _needs("scikit-learn", "load_digits", error) from None
        bunch = sklearn_digits()
        x = bunch.data.astype(np.float64) / 16.0
        y = bunch.target.astype(np.int64)
        train, test = stratified_split(y, test_fraction, seed)
        x_train, x_test = x[train], x[test]
        how = "pixels scaled to [0, 1]"
        if standardize:
            mean, std = x_train.mean(axis=0), x_train.std(axis=0)
            std[std == 0] = 1.0
            x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
            how = "features standardized with the train split's statistics"
        _memory[key] = DataSplits(
            "digits", x_train, y[train], x_test, y[test], 10,
            f"scikit-learn 8x8 handwritten digits, 64 features, {how}; stratified split (seed {seed})",
            tuple(str(d) for d in range(10)))
    return _memory[key]


def default_cache_dir() -> Path:
    """Where normlab caches generated data: $NORMLAB_CACHE_DIR, else $XDG_CACHE_HOME/normlab, else ~/.cache/normlab."""
    if os.environ.get("NORMLAB_CACHE_DIR"):
        return Path(os.environ["NORMLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "normlab"


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read_npz(path: Path) -> dict | None:
    """The arrays of a cache file, or None when it is missing or unreadable (then it is regenerated)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:  # no pickle: a cache file cannot run code
            arrays = {k: archive[k] for k in _NPZ_KEYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        warnings.warn(f"normlab.data: ignoring unreadable cache file {path} ({error}); regenerating it")
        return None
    return arrays


def _write_npz(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temporary file then rename: a crash or a concurrent reader never sees half a file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _generate_mnist1d(num_samples: int, train_split: float, seed: int, shuffle_seq: bool) -> dict:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as error:
        raise _needs("mnist1d", "load_mnist1d", error) from None
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed, args.shuffle_seq = num_samples, train_split, seed, shuffle_seq
    # make_dataset seeds NumPy's and Python's global generators; put them back so that
    # loading data does not change anyone else's random stream.
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {"x_train": data["x"].astype(np.float32), "y_train": data["y"].astype(np.int64),
            "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int64)}


def load_mnist1d(num_samples: int = 5000, train_split: float = 0.8, seed: int = 42, shuffle_seq: bool = False,
                 cache_dir: str | os.PathLike | bool | None = None) -> DataSplits:
    """MNIST-1D (Greydanus, 2020): 10 classes of 1D signals of length 40, generated locally by ``mnist1d``.

    Greydanus, "Scaling down Deep Learning", 2020. The defaults are the
    package's own (5000 samples, 4000 train / 1000 test, seed 42); the signals
    are standardized over the whole set by the generator. ``shuffle_seq``
    permutes the 40 positions (the same permutation for every sample).

    Generated arrays are cached in memory. With ``cache_dir`` (a folder, or
    True for ``default_cache_dir()``) they are also cached on disk as an
    ``.npz`` file (no pickle), written atomically and regenerated if unreadable.
    """
    num_samples = _check_count("load_mnist1d", "num_samples", num_samples, minimum=10)
    if isinstance(train_split, bool) or not isinstance(train_split, (int, float)) or not 0 < train_split < 1:
        raise ValueError(f"load_mnist1d: expected train_split in (0, 1), got {train_split!r}")
    key = ("mnist1d", num_samples, float(train_split), int(seed), bool(shuffle_seq))
    if key in _memory:
        return _memory[key]
    arrays = None
    path = None
    if cache_dir is not None and cache_dir is not False:
        folder = default_cache_dir() if cache_dir is True else Path(os.fspath(cache_dir))
        path = folder / f"mnist1d-v1-n{num_samples}-split{train_split:g}-seed{seed}-shuffle{int(shuffle_seq)}.npz"
        arrays = _read_npz(path)
    if arrays is None:
        arrays = _generate_mnist1d(num_samples, float(train_split), int(seed), bool(shuffle_seq))
        if path is not None:
            _write_npz(path, arrays)
    _memory[key] = DataSplits(
        "mnist1d", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], 10,
        f"MNIST-1D: 10 classes of length-40 1D signals, generated with seed {seed}"
        + (", positions shuffled" if shuffle_seq else ""),
        tuple(str(d) for d in range(10)))
    return _memory[key]


# ----------------------------------------------------------------------------
# Synthetic tasks (NumPy only)
# ----------------------------------------------------------------------------

def _class_sizes(n_samples: int, n_classes: int) -> np.ndarray:
    # As even as possible: the first n_samples % n_classes classes get one more.
    return np.full(n_classes, n_samples // n_classes) + (np.arange(n_classes) < n_samples % n_classes)


def _finish(name, x, y, n_classes, test_fraction, seed, description) -> DataSplits:
    train, test = stratified_split(y, test_fraction, seed)
    return DataSplits(name, x[train], y[train], x[test], y[test], n_classes, description)


def make_spirals(n_samples: int = 1500, n_classes: int = 3, turns: float = 1.0, noise: float = 0.05,
                 test_fraction: float = 0.2, seed: int = 0) -> DataSplits:
    """Interleaved 2D spiral arms, one per class: not linearly separable, easy for a small MLP.

    Class k's points lie at radius r in [0.05, 1] and angle
    2*pi*(turns*r + k/n_classes), plus Gaussian noise of std ``noise`` on
    both coordinates. Features are in roughly [-1, 1].
    """
    name = "make_spirals"
    n_classes = _check_count(name, "n_classes", n_classes, minimum=2)
    n_samples = _check_count(name, "n_samples", n_samples, minimum=2 * n_classes)
    test_fraction = _check_fraction(name, test_fraction)
    if noise < 0 or turns <= 0:
        raise ValueError(f"{name}: expected noise >= 0 and turns > 0, got noise={noise!r}, turns={turns!r}")
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), _class_sizes(n_samples, n_classes))
    radius = rng.uniform(0.05, 1.0, n_samples)
    angle = 2 * np.pi * (turns * radius + y / n_classes)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x += noise * rng.standard_normal(x.shape)
    return _finish("spirals", x, y, n_classes, test_fraction, seed,
                   f"{n_classes} interleaved 2D spirals, {turns:g} turns, noise {noise:g} (seed {seed})")


def make_blobs(n_samples: int = 1000, n_classes: int = 4, n_features: int = 2, cluster_std: float = 1.0,
               center_box: float = 5.0, test_fraction: float = 0.2, seed: int = 0) -> DataSplits:
    """Isotropic Gaussian clusters, one per class, centres uniform in [-center_box, center_box]^n_features."""
    name = "make_blobs"
    n_classes = _check_count(name, "n_classes", n_classes, minimum=2)
    n_samples = _check_count(name, "n_samples", n_samples, minimum=2 * n_classes)
    n_features = _check_count(name, "n_features", n_features)
    test_fraction = _check_fraction(name, test_fraction)
    if cluster_std < 0 or center_box <= 0:
        raise ValueError(f"{name}: expected cluster_std >= 0 and center_box > 0, got {cluster_std!r}, {center_box!r}")
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-center_box, center_box, (n_classes, n_features))
    y = np.repeat(np.arange(n_classes), _class_sizes(n_samples, n_classes))
    x = centers[y] + cluster_std * rng.standard_normal((n_samples, n_features))
    return _finish("blobs", x, y, n_classes, test_fraction, seed,
                   f"{n_classes} Gaussian blobs in {n_features}D, std {cluster_std:g} (seed {seed})")


# ----------------------------------------------------------------------------
# Local IDX files (MNIST, Fashion-MNIST)
# ----------------------------------------------------------------------------

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


def _find_idx(root: Path, stem: str, dataset: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    expected = ", ".join(f"{s}[.gz]" for s in MNIST_FILES.values())
    raise FileNotFoundError(f"{dataset}: {root} has no {stem} or {stem}.gz; expected the four files {expected} "
                            "(normlab does not download them)")


def _load_idx_folder(root, dataset: str, flatten: bool, class_names) -> DataSplits:
    root = Path(os.fspath(root))
    arrays = {key: read_idx(_find_idx(root, stem, dataset)) for key, stem in MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{dataset}: expected {split} images of shape (N, H, W) and labels of shape (N,), "
                             f"got {images.shape} and {labels.shape}")
    x_train, x_test = (arrays[k].astype(np.float32) / 255.0 for k in ("train_images", "test_images"))
    if flatten:
        x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    return DataSplits(dataset, x_train, arrays["train_labels"].astype(np.int64), x_test,
                      arrays["test_labels"].astype(np.int64), 10,
                      f"{dataset} from local IDX files in {root}, pixels scaled to [0, 1]", class_names)


def load_mnist(root, flatten: bool = True) -> DataSplits:
    """MNIST from the four IDX files (raw or .gz) in the local folder ``root``; pixels scaled to [0, 1].

    ``flatten=True`` gives (N, 784) rows for an MLP, ``False`` keeps (N, 28, 28).
    """
    return _load_idx_folder(root, "mnist", flatten, tuple(str(d) for d in range(10)))


def load_fashion_mnist(root, flatten: bool = True) -> DataSplits:
    """Fashion-MNIST (Xiao et al., 2017) from the four IDX files in the local folder ``root``."""
    return _load_idx_folder(root, "fashion_mnist", flatten, FASHION_CLASSES)


# ----------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------

_registry: dict[str, tuple[Callable[..., DataSplits], str]] = {}


def register_dataset(name: str, loader: Callable[..., DataSplits] | None = None, description: str | None = None):
    """Register ``loader`` under ``name`` for ``get_dataset``; usable as a decorator.

    ``description`` defaults to the first line of the loader's docstring. Example::

        @register_dataset("two_blobs", description="two small Gaussian blobs")
        def two_blobs(seed=0):
            return make_blobs(40, n_classes=2, seed=seed)

        get_dataset("two_blobs").n_classes  # 2
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_dataset: expected a non-empty name, got {name!r}")

    def add(function):
        if name in _registry and _registry[name][0] is not function:
            raise ValueError(f"register_dataset: a dataset named {name!r} is already registered")
        summary = description or (function.__doc__ or "").strip().split("\n")[0]
        _registry[name] = (function, summary)
        return function

    return add if loader is None else add(loader)


def list_datasets() -> dict[str, str]:
    """Registered dataset names and their one-line descriptions."""
    return {name: summary for name, (_, summary) in sorted(_registry.items())}


def get_dataset(name: str, **kwargs) -> DataSplits:
    """Load the registered dataset ``name`` with the loader's keyword arguments."""
    if name not in _registry:
        raise ValueError(f"get_dataset: unknown dataset {name!r}; known: {', '.join(sorted(_registry))}")
    return _registry[name][0](**kwargs)


register_dataset("digits", load_digits)
register_dataset("mnist1d", load_mnist1d)
register_dataset("spirals", make_spirals)
register_dataset("blobs", make_blobs)
register_dataset("mnist", load_mnist)
register_dataset("fashion_mnist", load_fashion_mnist)
