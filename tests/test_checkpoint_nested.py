"""Checkpoints as torch users write them: nested dicts with a model, an optimizer and numbers; torch.save refused.

A nested checkpoint must come back exactly (types, key types, order, values)
and resume training as if it had never stopped; a flat state_dict must stay
the plain safetensors file torch reads; a torch.save file must be refused
from its first bytes, without unpickling, with a message that says how to
convert it.
"""
from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import safetensors.torch
import torch
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.test_checkpoint import _forbid_pickle, assert_state_equal, mlp, torch_mlp


def _equal(a, b, where="checkpoint"):
    """``a`` (loaded) equals ``b`` (saved): types (an OrderedDict comes back a dict, in order), key types, values."""
    if isinstance(b, dict):
        assert type(a) is dict, f"{where}: {type(a).__name__} instead of a dict"
    else:
        assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), where
        assert [type(k) for k in a] == [type(k) for k in b], f"{where}: key types"
        for key in a:
            _equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _equal(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic, normlab.Tensor)):
        x, y = np.asarray(a), np.asarray(b)
        assert x.dtype == y.dtype and x.shape == y.shape, where
        np.testing.assert_array_equal(x, y, err_msg=where)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


def test_a_training_checkpoint_round_trips_exactly(tmp_path, rng):
    model = mlp(np.float64)
    opt = normlab.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    F.mse_loss(model(normlab.tensor(rng.standard_normal((6, 5)))), normlab.zeros(6, 3, dtype=normlab.float64)).backward()
    opt.step()
    checkpoint = {
        "model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "loss": 0.25, "name": "mlp",
        "best": None, "done": False, "history": [1.5, 1.25, float("nan"), float("inf")], "shape": (2, 3),
        "tensor": normlab.arange(4), "scalar": np.float32(0.5), "nested": {"deep": [{"x": np.eye(2)}, []], 7: "int key"},
    }
    path = tmp_path / "checkpoint.safetensors"
    normlab.save(checkpoint, path)
    _equal(normlab.load(path), checkpoint)
    buffer = io.BytesIO()
    normlab.save(checkpoint, buffer)
    buffer.seek(0)
    _equal(normlab.load(buffer), checkpoint)


def test_resuming_from_a_checkpoint_continues_exactly_as_uninterrupted_training(tmp_path, rng):
    x, y = rng.standard_normal((8, 5)), rng.standard_normal((8, 3))

    def step(model, opt):
        opt.zero_grad()
        F.mse_loss(model(normlab.tensor(x)), normlab.tensor(y)).backward()
        opt.step()

    normlab.manual_seed(0)
    straight = mlp(np.float64)
    straight_opt = normlab.optim.AdamW(straight.parameters(), lr=1e-2)
    for _ in range(4):
        step(straight, straight_opt)

    normlab.manual_seed(0)
    first = mlp(np.float64)
    first_opt = normlab.optim.AdamW(first.parameters(), lr=1e-2)
    for _ in range(2):
        step(first, first_opt)
    path = tmp_path / "resume.safetensors"
    normlab.save({"model": first.state_dict(), "optimizer": first_opt.state_dict(), "epoch": 2}, path)

    resumed = mlp(np.float64)
    resumed_opt = normlab.optim.AdamW(resumed.parameters(), lr=1e-2)
    checkpoint = normlab.load(path)
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt.load_state_dict(checkpoint["optimizer"])
    for _ in range(checkpoint["epoch"], 4):
        step(resumed, resumed_opt)
    assert_state_equal(resumed.state_dict(), straight.state_dict())


def test_the_model_inside_a_nested_checkpoint_is_readable_by_torch(tmp_path):
    model = mlp()
    path = tmp_path / "nested.safetensors"
    normlab.save({"model": model.state_dict(), "epoch": 1}, path)
    tensors = safetensors.torch.load_file(str(path))
    reference = torch_mlp()
    reference.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    assert_state_equal(model.state_dict(), reference.state_dict())


def test_a_flat_state_dict_stays_a_plain_safetensors_file(tmp_path):
    model = mlp()
    path = tmp_path / "flat.safetensors"
    normlab.save(model.state_dict(), path)
    with safetensors.safe_open(str(path), "np") as file:
        assert "normlab.structure" not in (file.metadata() or {})
    torch_mlp().load_state_dict(safetensors.torch.load_file(str(path)))  # strict: the same keys as torch's


def test_colliding_tensor_names_stay_apart(tmp_path):
    # ("a", "b.c") and ("a.b", "c") flatten to the same dotted name
    checkpoint = {"a": {"b.c": np.zeros(1)}, "a.b": {"c": np.ones(1)}}
    path = tmp_path / "collide.safetensors"
    normlab.save(checkpoint, path)
    _equal(normlab.load(path), checkpoint)


json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.text(max_size=5),
                        st.floats(allow_nan=False, width=64),
                        st.integers(0, 3).map(lambda n: np.arange(n, dtype=np.float32)))
trees = st.recursive(json_leaves, lambda children: st.one_of(
    st.lists(children, max_size=3), st.lists(children, max_size=3).map(tuple),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers(-3, 3)), children, max_size=3)), max_leaves=8)


@given(tree=st.dictionaries(st.text(min_size=1, max_size=4), trees, max_size=4))
def test_any_nesting_of_supported_values_round_trips(tmp_path_factory, tree):
    if "__metadata__" in tree:
        return
    path = tmp_path_factory.mktemp("tree") / "t.safetensors"
    normlab.save(tree, path)
    _equal(normlab.load(path), tree)


# ------------------------------------------------------------ torch.save files
@pytest.mark.parametrize("zip_format", [True, False])
@pytest.mark.parametrize("what", ["state_dict", "checkpoint"])
def test_a_torch_save_file_is_refused_with_how_to_convert_it(tmp_path, monkeypatch, zip_format, what):
    model = torch_mlp()
    obj = model.state_dict() if what == "state_dict" else {"model": model.state_dict(), "epoch": 3}
    path = tmp_path / "model.pt"
    torch.save(obj, str(path), _use_new_zipfile_serialization=zip_format)
    _forbid_pickle(monkeypatch)
    with pytest.raises(ValueError) as info:
        normlab.load(path)
    message = str(info.value)
    assert str(path) in message and "is not a valid safetensors file" in message
    assert "PyTorch pickle checkpoint" in message or "Python pickle" in message
    assert "will not unpickle" in message and "safetensors.torch.save_file" in message


def test_the_conversion_the_message_gives_works(tmp_path):
    reference = torch_mlp()
    pt, converted = tmp_path / "model.pt", tmp_path / "model.safetensors"
    torch.save({"model": reference.state_dict(), "epoch": 3}, str(pt))
    sd = torch.load(str(pt), weights_only=True)["model"]          # the steps of the message
    safetensors.torch.save_file(sd, str(converted))
    model = mlp()
    model.load_state_dict(normlab.load(converted))
    assert_state_equal(model.state_dict(), reference.state_dict())


def test_other_foreign_files_are_named(tmp_path):
    npz = tmp_path / "arrays.npz"
    np.savez(npz, a=np.ones(2))
    with pytest.raises(ValueError, match="NumPy .npz archive"):
        normlab.load(npz)
    pkl = tmp_path / "plain.pkl"
    pkl.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="Python pickle"):
        normlab.load(pkl)


# ------------------------------------------------------------ load_state_dict inputs
def test_load_state_dict_takes_torch_tensors_and_array_likes_and_names_foreign_types():
    reference = torch_mlp()
    model = mlp()
    model.load_state_dict(reference.state_dict())  # torch tensors straight from torch's state_dict
    assert_state_equal(model.state_dict(), reference.state_dict())
    as_lists = {k: v.tolist() for k, v in reference.state_dict().items()}

    class ArrayLike:
        def __init__(self, value):
            self.value = value

        def __array__(self, dtype=None, copy=None):
            return np.asarray(self.value, dtype=dtype)

    model.load_state_dict({k: ArrayLike(v) for k, v in as_lists.items()})
    assert_state_equal(model.state_dict(), reference.state_dict())
    with pytest.raises(TypeError) as info:
        model.load_state_dict({**reference.state_dict(), "0.weight": "abc"})
    assert "expected an array" in str(info.value) and "got str 'abc'" in str(info.value)
    bad = {**reference.state_dict(), "0.weight": torch.zeros(4, 5, dtype=torch.bfloat16)}
    with pytest.raises(TypeError) as info:
        model.load_state_dict(bad)
    message = str(info.value)
    assert "torch.Tensor" in message and "expected Tensor, got Tensor" not in message
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):
        model.load_state_dict({**reference.state_dict(), "0.weight": torch.zeros(2, 2)})
