"""normlab.save / normlab.load: safetensors round trips, torch interop both ways, atomic writes, no pickle."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.checkpoint as checkpoint
import normlab.nn as nn


def mlp(dtype=np.float32):
    return nn.Sequential(nn.Linear(5, 4, dtype=dtype), nn.Tanh(), nn.Linear(4, 3, dtype=dtype))


def torch_mlp(dtype=torch.float32):
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).to(dtype)


def assert_state_equal(ours, theirs):
    """Same keys (same order), shapes, dtypes and values; torch tensors converted to NumPy."""
    assert list(ours) == list(theirs)
    for key in theirs:
        expected = theirs[key]
        expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
        actual = np.asarray(ours[key])
        assert actual.dtype == expected.dtype, key
        assert actual.shape == expected.shape, key
        np.testing.assert_array_equal(actual, expected, err_msg=key)


# ------------------------------------------------------------ round trips
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normlab_round_trip_keeps_order_dtype_and_values(tmp_path, dtype):
    model = mlp(dtype)
    path = tmp_path / "mlp.safetensors"
    normlab.save(model.state_dict(), path)
    loaded = normlab.load(path)
    assert type(loaded) is dict
    assert_state_equal(loaded, model.state_dict())
    fresh = mlp(dtype)
    fresh.load_state_dict(loaded)
    assert_state_equal(fresh.state_dict(), model.state_dict())
    # the arrays are the caller's own: writable, not tied to each other
    loaded["0.weight"][...] = 0
    assert not np.any(normlab.load(path)["0.weight"] == 0)


def test_all_dtypes_shapes_layouts_and_tensor_values(tmp_path, rng):
    base = rng.standard_normal((4, 6))
    state = {
        "transposed": base.T,                                   # non-contiguous (Fortran-ordered view)
        "strided": base[::2, 1::3],                             # non-contiguous slice
        "fortran": np.asfortranarray(base.astype(np.float32)),
        "half": base.astype(np.float16),
        "scalar_int": np.array(7, dtype=np.int64),              # like num_batches_tracked
        "scalar_float": np.float64(2.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "mask": base > 0,
        "int8": np.arange(-4, 4, dtype=np.int8),
        "uint16": np.arange(5, dtype=np.uint16),
        "int32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "tensor": normlab.tensor(base.astype(np.float32), requires_grad=True),
        "param": nn.Parameter(np.ones((2, 2))),
    }
    path = tmp_path / "mixed.safetensors"
    normlab.save(state, path)
    loaded = normlab.load(path)
    assert list(loaded) == list(state)
    for key, value in state.items():
        expected = np.asarray(value.data if isinstance(value, normlab.Tensor) else value)
        assert loaded[key].dtype == expected.dtype, key
        assert loaded[key].shape == expected.shape, key
        np.testing.assert_array_equal(loaded[key], expected, err_msg=key)


@given(shapes=st.lists(st.lists(st.integers(0, 4), max_size=3), min_size=0, max_size=5),
       dtype=st.sampled_from([np.float32, np.float64, np.int64, np.float16, np.uint8]))
def test_round_trip_sweep(tmp_path_factory, shapes, dtype):
    rng = np.random.default_rng(len(shapes))
    state = {f"layer{i}.value": (rng.standard_normal(s) * 10).astype(dtype) for i, s in enumerate(shapes)}
    path = tmp_path_factory.mktemp("sweep") / "s.safetensors"
    normlab.save(state, path)
    assert_state_equal(normlab.load(path), state)


def test_metadata_is_stored_in_the_header(tmp_path):
    path = tmp_path / "m.safetensors"
    normlab.save({"w": np.ones(2)}, str(path), metadata={"epoch": "3"})
    with safetensors.safe_open(str(path), framework="np") as file:
        assert file.metadata()["epoch"] == "3"


# ------------------------------------------------------- torch interop
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normlab_checkpoint_loads_into_torch(tmp_path, dtype, rng):
    model = mlp(dtype)
    path = tmp_path / "from_normlab.safetensors"
    normlab.save(model.state_dict(), path)
    reference = torch_mlp({np.float32: torch.float32, np.float64: torch.float64}[dtype])
    result = reference.load_state_dict(safetensors.torch.load_file(str(path)))  # strict
    assert not result.missing_keys and not result.unexpected_keys
    assert_state_equal(model.state_dict(), reference.state_dict())
    x = rng.standard_normal((6, 5)).astype(dtype)
    np.testing.assert_allclose(model(normlab.tensor(x)).detach().numpy(), reference(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_torch_checkpoint_loads_into_normlab(tmp_path, rng):
    reference = torch_mlp()
    path = tmp_path / "from_torch.safetensors"
    safetensors.torch.save_file(reference.state_dict(), str(path))
    model = mlp()
    loaded = normlab.load(path)
    model.load_state_dict(loaded)  # strict
    assert_state_equal(model.state_dict(), reference.state_dict())
    x = rng.standard_normal((6, 5)).astype(np.float32)
    np.testing.assert_allclose(model(normlab.tensor(x)).detach().numpy(), reference(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_foreign_file_comes_back_in_the_order_of_its_bytes(tmp_path):
    reference = torch_mlp()
    path = tmp_path / "t.safetensors"
    safetensors.torch.save_file(reference.state_dict(), str(path))
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    header.pop("__metadata__", None)
    by_offset = sorted(header, key=lambda k: header[k]["data_offsets"])
    assert list(normlab.load(path)) == by_offset


def _batchnorm_models():
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
    reference = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                                    torch.nn.Linear(4, 3))
    return model, reference


def _train_steps(model, rng, steps=3, library="normlab"):
    for _ in range(steps):  # forward passes in training mode move the running stats
        x = rng.standard_normal((8, 5)).astype(np.float32) * 2 + 1
        model(normlab.tensor(x) if library == "normlab" else torch.from_numpy(x))


def test_batchnorm_checkpoint_round_trips_both_ways(tmp_path, rng):
    """Running stats and the int64 num_batches_tracked survive normlab -> torch and torch -> normlab."""
    model, reference = _batchnorm_models()
    _train_steps(model, rng, steps=3)
    path = tmp_path / "bn_normlab.safetensors"
    normlab.save(model.state_dict(), path)
    from_normlab = safetensors.torch.load_file(str(path))
    assert from_normlab["1.num_batches_tracked"].dtype == torch.int64
    assert int(from_normlab["1.num_batches_tracked"]) == 3
    reference.load_state_dict(from_normlab)
    assert_state_equal(model.state_dict(), reference.state_dict())

    _train_steps(reference, rng, steps=2, library="torch")
    path = tmp_path / "bn_torch.safetensors"
    safetensors.torch.save_file(reference.state_dict(), str(path))
    fresh, _ = _batchnorm_models()
    fresh.load_state_dict(normlab.load(path))
    assert_state_equal(fresh.state_dict(), reference.state_dict())
    assert fresh.state_dict()["1.num_batches_tracked"] == 5
    fresh.eval()
    reference.eval()
    x = rng.standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(fresh(normlab.tensor(x)).detach().numpy(), reference(torch.from_numpy(x)).detach().numpy(),
                               rtol=2e-5, atol=2e-6)


# -------------------------------------------------------------- atomicity
def _leftovers(directory, keep):
    return sorted(name for name in os.listdir(directory) if name != keep)


@pytest.mark.parametrize("failure", ["write", "fsync", "replace"])
def test_a_failed_write_leaves_the_existing_file_intact(tmp_path, monkeypatch, failure):
    path = tmp_path / "model.safetensors"
    old = {"w": np.arange(4.0)}
    normlab.save(old, path)
    old_bytes = path.read_bytes()

    if failure == "write":
        def half_then_fail(file, data):
            file.write(data[: len(data) // 2])  # part of the bytes reach the disk, then the disk is full
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(checkpoint, "_write_all", half_then_fail)
    else:
        def fail(*args):
            raise OSError(5, f"simulated {failure} failure")
        monkeypatch.setattr(os, failure, fail)

    with pytest.raises(OSError):
        normlab.save({"w": np.zeros(1000), "extra": np.ones(3)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert_state_equal(normlab.load(path), old)
    assert _leftovers(tmp_path, "model.safetensors") == [], "the temporary file must be removed"


def test_saving_over_an_existing_file_replaces_it_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "model.safetensors"
    normlab.save({"w": np.arange(4.0)}, path)
    normlab.save({"v": np.ones((2, 2), dtype=np.float32)}, path)
    assert list(normlab.load(path)) == ["v"]
    assert _leftovers(tmp_path, "model.safetensors") == []


@pytest.mark.parametrize("state,error,message", [
    ({1: np.ones(2)}, TypeError, "keys must be strings, got int 1"),
    ({"w": {1.0, 2.0}}, TypeError, r"cannot store a builtins.set at checkpoint\['w'\]"),
    ({"opt": {"state": [object()]}}, TypeError, r"cannot store a builtins.object at checkpoint\['opt'\]\['state'\]\[0\]"),
    ({"w": np.array(["a", "b"])}, TypeError, "dtype <U1 of key 'w' cannot be stored"),
    ({"w": np.ones(2, dtype=np.complex128)}, TypeError, "cannot be stored"),
    ({"__metadata__": np.ones(2)}, ValueError, "reserved"),
    ([("w", np.ones(2))], TypeError, r"expected a dict \(a state_dict or a checkpoint dict\), got list"),
])
def test_bad_state_dicts_are_refused_and_nothing_is_written(tmp_path, state, error, message):
    path = tmp_path / "model.safetensors"
    normlab.save({"w": np.arange(3.0)}, path)
    old_bytes = path.read_bytes()
    with pytest.raises(error, match=message):
        normlab.save(state, path)
    assert path.read_bytes() == old_bytes
    assert _leftovers(tmp_path, "model.safetensors") == []


def test_saving_into_a_missing_directory_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        normlab.save({"w": np.ones(2)}, tmp_path / "no_such_dir" / "m.safetensors")


# ------------------------------------------------ corrupt or foreign files
def _good_bytes(tmp_path):
    path = tmp_path / "good.safetensors"
    normlab.save({"a": np.arange(6, dtype=np.float32), "b": np.ones((2, 3))}, path)
    return path.read_bytes()


@pytest.mark.parametrize("make,message", [
    (lambda good: b"", "0 bytes is too short"),
    (lambda good: good[:5], "too short"),
    (lambda good: good[:-7], "file not fully covered|incomplete"),        # truncated data
    (lambda good: good[:40], "header claims"),                            # truncated inside the header
    (lambda good: good + b"\0" * 16, "not fully covered|incomplete"),     # trailing garbage
    (lambda good: (2 ** 40).to_bytes(8, "little") + good[8:], "header claims"),
    (lambda good: good[:8] + b"\xff" * 20 + good[28:], "not JSON"),       # a corrupt header
    (lambda good: good[:8] + b"[" + good[9:], "not JSON|not a JSON object"),
    (lambda good: b"PK\x03\x04" + b"\0" * 60, "header claims"),            # a zip (torch.save) header
])
def test_corrupt_files_are_refused_with_the_path(tmp_path, make, message):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(make(_good_bytes(tmp_path)))
    with pytest.raises(ValueError, match=message) as info:
        normlab.load(path)
    assert str(path) in str(info.value)


def test_a_corrupt_offset_is_refused(tmp_path):
    good = _good_bytes(tmp_path)
    n = int.from_bytes(good[:8], "little")
    header = json.loads(good[8:8 + n])
    header["a"]["data_offsets"] = [0, 999]
    text = json.dumps(header).encode()
    path = tmp_path / "offsets.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + good[8 + n:])
    with pytest.raises(ValueError, match="is not a valid safetensors file") as info:
        normlab.load(path)
    assert str(path) in str(info.value)


def test_a_torch_pickle_checkpoint_is_refused_without_unpickling(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    torch.save(torch_mlp().state_dict(), str(path))
    _forbid_pickle(monkeypatch)
    with pytest.raises(ValueError, match="is not a valid safetensors file") as info:
        normlab.load(path)
    assert str(path) in str(info.value)


def test_bfloat16_is_refused_naming_the_key(tmp_path):
    path = tmp_path / "bf16.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(3, dtype=torch.bfloat16)}, str(path))
    with pytest.raises(ValueError, match="tensor 'w' has dtype BF16"):
        normlab.load(path)


def _forbid_pickle(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle must never be used to load a checkpoint")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)


def test_save_and_load_never_use_pickle(tmp_path, monkeypatch):
    _forbid_pickle(monkeypatch)
    monkeypatch.setattr(pickle, "dump", lambda *a, **k: (_ for _ in ()).throw(AssertionError("pickle.dump")))
    monkeypatch.setattr(pickle, "dumps", lambda *a, **k: (_ for _ in ()).throw(AssertionError("pickle.dumps")))
    model = mlp()
    path = tmp_path / "m.safetensors"
    normlab.save(model.state_dict(), path)
    assert_state_equal(normlab.load(path), model.state_dict())
    assert b"\x80\x04" not in path.read_bytes()[:2]  # no pickle protocol header
