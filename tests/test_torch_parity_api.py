"""torch's device and dtype API on normlab's CPU, DataParallel, and clear errors for non-numeric input.

The device API is checked against torch on this (CPU-only) machine: what
torch answers without a GPU, normlab answers always.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import assert_close, random_upstream

CPU_ONLY = "normlab runs on the CPU only"


# ------------------------------------------------------------------ devices
def test_device_objects_behave_as_torch_devices():
    for spec in (("cpu",), ("cpu:0",), ("cpu", 0)):
        ours, theirs = normlab.device(*spec), torch.device(*spec)
        assert repr(ours) == repr(theirs) and str(ours) == str(theirs), spec
        assert ours.type == theirs.type and ours.index == theirs.index, spec
    assert normlab.device("cpu") == normlab.device("cpu") == "cpu"
    assert normlab.device("cpu") != normlab.device("cpu:0") and normlab.device("cpu") != "cuda"
    assert len({normlab.device("cpu"), normlab.device("cpu")}) == 1
    assert normlab.device(normlab.device("cpu")) == "cpu"
    assert normlab.randn(2).device == normlab.device("cpu") and str(normlab.randn(2).device) == "cpu"
    assert normlab.randn(2).is_cuda is False


@pytest.mark.parametrize("make", [
    lambda: normlab.device("cuda"), lambda: normlab.device("cuda:1"), lambda: normlab.device("mps"),
    lambda: normlab.device(0), lambda: normlab.zeros(2, device="cuda"), lambda: normlab.tensor([1.0], device="cuda:0"),
    lambda: normlab.randn(2).to("cuda"), lambda: normlab.randn(2).to(device="cuda"), lambda: normlab.randn(2).cuda(),
    lambda: nn.Linear(2, 2).cuda(), lambda: nn.Linear(2, 2).to("cuda"), lambda: normlab.cuda.current_device(),
    lambda: normlab.arange(3, device="cuda"), lambda: normlab.randn(2).new_zeros(3, device="cuda"),
    lambda: normlab.load("unused.safetensors", map_location="cuda:0"),
])
def test_every_request_for_a_gpu_says_normlab_runs_on_the_cpu(make):
    with pytest.raises(RuntimeError, match=CPU_ONLY + r".*normlab.cuda.is_available\(\) is False"):
        make()


def test_device_selection_idiom_picks_the_cpu():
    device = normlab.device("cuda" if normlab.cuda.is_available() else "cpu")
    model = nn.Linear(3, 2).to(device)
    x = normlab.randn(4, 3).to(device, non_blocking=True)
    assert model(x).device == device
    assert normlab.cuda.is_available() == torch.cuda.is_available() is False
    assert normlab.cuda.device_count() == torch.cuda.device_count() == 0
    assert normlab.accelerator.is_available() == torch.accelerator.is_available()
    assert normlab.accelerator.current_accelerator() == torch.accelerator.current_accelerator()
    assert normlab.backends.mps.is_available() == torch.backends.mps.is_available()
    assert normlab.cuda.manual_seed(1) is None and normlab.cuda.manual_seed_all(1) is None
    assert normlab.cuda.empty_cache() is None and normlab.cuda.is_initialized() is False


def test_cudnn_flags_exist_with_torch_defaults_and_change_nothing(rng):
    for flag in ("deterministic", "benchmark", "enabled"):
        assert getattr(normlab.backends.cudnn, flag) == getattr(torch.backends.cudnn, flag), flag
    x = rng.standard_normal((4, 3))
    before = nn.Linear(3, 2).double()
    normlab.backends.cudnn.deterministic, normlab.backends.cudnn.benchmark = True, True
    try:
        assert np.array_equal(before(normlab.tensor(x)).detach().numpy(), before(normlab.tensor(x)).detach().numpy())
    finally:
        normlab.backends.cudnn.deterministic, normlab.backends.cudnn.benchmark = False, False
    normlab.use_deterministic_algorithms(True)
    assert normlab.are_deterministic_algorithms_enabled()
    normlab.use_deterministic_algorithms(False)


# ------------------------------------------------------------------ dtypes
DTYPES = ["float32", "float", "float64", "double", "float16", "half", "int64", "long", "int32", "int", "int16",
          "short", "int8", "uint8", "bool"]


@pytest.mark.parametrize("name", DTYPES)
def test_dtype_objects_name_the_same_types_as_torch(name):
    ours, theirs = np.dtype(getattr(normlab, name)), getattr(torch, name)
    assert str(theirs) == f"torch.{ours.name}"
    assert normlab.zeros(2, dtype=getattr(normlab, name)).dtype == getattr(normlab, name)
    assert str(torch.zeros(2, dtype=theirs).dtype) == f"torch.{ours.name}"


CASTS = ["long", "int", "float", "double", "bool", "half", "short", "byte", "char"]


@pytest.mark.parametrize("method", CASTS)
def test_cast_methods_give_torch_dtypes_and_values(rng, method):
    x = rng.standard_normal((3, 4)) * 3
    ours, theirs = getattr(normlab.tensor(x), method)(), getattr(torch.tensor(x), method)()
    assert str(theirs.dtype) == f"torch.{ours.dtype.name}"
    np.testing.assert_array_equal(ours.numpy().astype(np.float64), theirs.numpy().astype(np.float64))


def test_to_accepts_every_torch_form_and_is_differentiable_between_floats(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    t = normlab.tensor(x, requires_grad=True)
    other = normlab.zeros(1, dtype=normlab.float64)
    for result in (t.to(normlab.float64), t.to("cpu", normlab.float64), t.to(dtype=normlab.float64),
                   t.to(normlab.device("cpu"), dtype=normlab.float64), t.to(other), t.type(normlab.float64),
                   t.double(), t.type_as(other)):
        assert result.dtype == np.float64 and result.requires_grad
    assert t.to("cpu") is t and t.to(normlab.float32) is t and t.cpu() is t
    copied = t.to("cpu", copy=True)
    assert copied is not t and np.shares_memory(copied.detach().numpy(), x) is False
    g = random_upstream((2, 3), np.float64, rng)
    (t.to(normlab.float64) * normlab.tensor(g)).sum().backward()
    reference = torch.tensor(x, requires_grad=True)
    (reference.to(torch.float64) * torch.tensor(g)).sum().backward()
    assert t.grad.dtype == np.float32
    assert_close(t.grad, reference.grad, np.float32)
    integer = t.to(normlab.long)
    assert integer.dtype == np.int64 and not integer.requires_grad
    assert t.type() == "normlab.FloatTensor" and normlab.arange(2).type() == "normlab.LongTensor"
    with pytest.raises(TypeError, match="Tensor.to: expected a dtype"):
        t.to(3.5)


def test_default_dtype_and_float_info():
    assert normlab.get_default_dtype() == np.float32 and str(torch.get_default_dtype()) == "torch.float32"
    assert normlab.tensor([1.0]).dtype == normlab.float32 and normlab.randn(2).dtype == normlab.float32
    assert normlab.finfo(normlab.float32).eps == torch.finfo(torch.float32).eps
    assert normlab.iinfo(normlab.int64).max == torch.iinfo(torch.int64).max


def test_module_to_type_cpu_and_the_refused_precisions(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    weight = model[0].weight
    opt = normlab.optim.SGD(model.parameters(), lr=0.1)
    assert model.to("cpu") is model and model.cpu() is model and model.to(device="cpu") is model
    model.to(normlab.float64)
    assert weight.dtype == np.float64 and model[0].weight is weight  # the same Parameter, as torch
    assert model[1].num_batches_tracked.dtype == np.int64
    model.to("cpu", normlab.float32)
    assert weight.dtype == np.float32
    model.type(normlab.float64)
    assert weight.dtype == np.float64
    model.to(normlab.zeros(1, dtype=normlab.float32))
    assert weight.dtype == np.float32
    model(normlab.randn(5, 3)).sum().backward()
    opt.step()  # the optimizer built before the casts still updates the same parameters
    with pytest.raises(TypeError, match="half precision is not supported"):
        model.half()
    with pytest.raises(TypeError, match="expected float32 or float64"):
        model.to(normlab.int64)


# ------------------------------------------------------------------ DataParallel
def test_data_parallel_runs_the_module_as_torch_does_without_gpus(rng):
    torch_inner = torch.nn.Linear(3, 2).double()
    ours_inner = nn.Linear(3, 2).double()
    ours_inner.load_state_dict(torch_inner.state_dict())
    ours, theirs = nn.DataParallel(ours_inner, device_ids=[0, 1]), torch.nn.DataParallel(torch_inner, device_ids=[0, 1])
    assert ours.module is ours_inner and ours.device_ids == theirs.device_ids == []
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["module.weight", "module.bias"]
    x = rng.standard_normal((4, 3))
    xo, xt = normlab.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yo, yt = ours(xo), theirs(xt)
    assert_close(yo, yt, np.float64, "output")
    g = random_upstream((4, 2), np.float64, rng)
    (yo * normlab.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    assert_close(xo.grad, xt.grad, np.float64, "input gradient")
    assert_close(ours.module.weight.grad, theirs.module.weight.grad, np.float64, "weight gradient")
    fresh = nn.DataParallel(nn.Linear(3, 2).double())
    fresh.load_state_dict(theirs.state_dict())  # a torch DataParallel checkpoint loads as is
    assert_close(fresh.module.weight, theirs.module.weight, np.float64)
    assert normlab.nn.parallel.DataParallel is nn.DataParallel
    with pytest.raises(TypeError, match="DataParallel: expected a normlab Module"):
        nn.DataParallel(torch_inner)


# ------------------------------------------------------------------ non-numeric input
BAD_INPUTS = [
    ("normlab.tensor", lambda bad: normlab.tensor(bad)),
    ("normlab.as_tensor", lambda bad: normlab.as_tensor(bad)),
    ("F.relu", lambda bad: F.relu(bad)),
    ("F.softmax", lambda bad: F.softmax(bad, dim=0)),
    ("F.mse_loss", lambda bad: F.mse_loss(bad, normlab.ones(2))),
    ("F.linear", lambda bad: F.linear(bad, normlab.ones(2, 2))),
    ("F.batch_norm", lambda bad: F.batch_norm(bad, None, None, training=True)),  # converts first: "an array"
    ("F.max_pool1d", lambda bad: F.max_pool1d(bad, 2)),
    ("operator +", lambda bad: normlab.ones(2) + bad),
    ("reflected +", lambda bad: bad + normlab.ones(2)),
    ("operator *", lambda bad: normlab.ones(2) * bad),
    ("operator @", lambda bad: normlab.ones(2) @ bad),
    ("Tensor.add", lambda bad: normlab.ones(2).add(bad)),
    ("Tensor.eq", lambda bad: normlab.ones(2).eq(bad)),
    ("Tensor.maximum", lambda bad: normlab.ones(2).maximum(bad)),
    ("normlab.exp", lambda bad: normlab.exp(bad)),
    ("normlab.sum", lambda bad: normlab.sum(bad)),
    ("normlab.where", lambda bad: normlab.where(normlab.ones(2) > 0, normlab.ones(2), bad)),
    ("normlab.cat", lambda bad: normlab.cat([normlab.ones(2), bad])),
    ("Linear", lambda bad: nn.Linear(2, 2)(bad)),
    ("BatchNorm1d", lambda bad: nn.BatchNorm1d(2)(bad)),  # converts first: "an array"
    ("ReLU", lambda bad: nn.ReLU()(bad)),
]
BAD_VALUES = [("abc", r"str 'abc'"), (["a", "b"], "list of str"), (None, "None"),
              (np.array([object(), object()]), "an array of dtype object"), ({"a": 1}, "dict")]


@pytest.mark.parametrize("name, call", BAD_INPUTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_INPUTS)])
@pytest.mark.parametrize("bad, described", BAD_VALUES, ids=["str", "list-of-str", "None", "object-array", "dict"])
def test_non_numeric_input_raises_a_type_error_naming_the_function(name, call, bad, described):
    with pytest.raises(TypeError) as info:
        call(bad)
    message = str(info.value)
    if name == "reflected +":  # an array on the left: NumPy's operator runs and hands numpy.add to normlab
        name = "numpy.add" if isinstance(bad, np.ndarray) else "operator +"
    assert message.startswith(name + ":"), message
    if name in ("F.batch_norm", "BatchNorm1d"):  # normalization converts its input to an array first
        described = "an array of strings" if isinstance(bad, (str, list)) else "an array of dtype object"
    assert "expected" in message and described in message, message
    assert "ufunc" not in message and "dtype('<U" not in message, message


def test_a_failed_call_changes_no_state():
    bn = nn.BatchNorm1d(2)
    with pytest.raises(TypeError, match="BatchNorm1d: expected"):
        bn("abc")
    assert int(bn.num_batches_tracked) == 0


def test_ragged_lists_and_comparisons_with_non_numbers():
    with pytest.raises(ValueError, match=r"normlab.tensor: expected numbers in a rectangular nested sequence"):
        normlab.tensor([[1.0, 2.0], [3.0]])
    t = normlab.ones(2)
    assert (t == "abc") is False and (t != None) is True  # noqa: E711  (Python's answer, as torch)
    with pytest.raises(TypeError, match="'<' not supported"):
        t < "abc"
    assert normlab.tensor(np.array([1, 2], dtype=np.uint8)).dtype == np.uint8  # numeric kinds stay accepted
    assert normlab.ones(2) + np.float64(1.5) is not None and (normlab.ones(2) + [1, 2]).tolist() == [2.0, 3.0]


# ------------------------------------------------------------------ a torch script, imports switched
TRAINING_SCRIPT = '''
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.backends.cudnn.benchmark = True

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.fc1 = nn.Linear(4 * 3 * 3, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)

def train(model, device, loader, optimizer, log):
    model.train()
    for batch_idx, (data, target) in enumerate(loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        log.append(loss.item())

def test(model, device, loader):
    model.eval()
    test_loss, correct = 0, 0
    with torch.no_grad():
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    return test_loss / len(loader.dataset), correct

model = Net().to(device).double()
model.load_state_dict(initial)
dataset = TensorDataset(torch.tensor(images), torch.tensor(labels))
train_loader = DataLoader(dataset, batch_size=16, shuffle=False)
optimizer = optim.Adam(model.parameters(), lr=1e-2)
log = []
for epoch in range(2):
    train(model, device, train_loader, optimizer, log)
result = test(model, device, DataLoader(dataset, batch_size=32))
torch.save({"model": model.state_dict(), "epoch": 2}, path)
'''


def _run_script(lib: str, images, labels, initial, path):
    if lib == "torch":
        import torch.nn.functional as lib_F
        import torch.optim as lib_optim
        from torch.utils.data import DataLoader, TensorDataset
        lib_torch, lib_nn, initial = torch, torch.nn, {k: torch.tensor(v) for k, v in initial.items()}
    else:
        import normlab.optim as lib_optim
        from normlab.utils.data import DataLoader, TensorDataset
        lib_torch, lib_nn, lib_F = normlab, nn, F
    namespace = dict(torch=lib_torch, nn=lib_nn, F=lib_F, optim=lib_optim, DataLoader=DataLoader,
                     TensorDataset=TensorDataset, images=images, labels=labels, initial=initial, path=path)
    exec(TRAINING_SCRIPT, namespace)
    return namespace["log"], namespace["result"]


def test_a_torch_style_training_script_runs_with_only_the_imports_switched(tmp_path, rng):
    """device selection, cudnn flag, .to(device), DataLoader of Tensors, argmax/eq/view_as/item, no_grad,
    clip_grad_norm_, a nested checkpoint: the same losses as torch in float64."""
    images, labels = rng.standard_normal((64, 1, 8, 8)), rng.integers(0, 10, 64)
    reference = torch.nn.ModuleDict({"conv1": torch.nn.Conv2d(1, 4, 3), "fc1": torch.nn.Linear(36, 16),
                                     "fc2": torch.nn.Linear(16, 10)})
    initial = {k: v.double().numpy() for k, v in reference.state_dict().items()}
    theirs = _run_script("torch", images, labels, initial, str(tmp_path / "model.pt"))
    try:
        ours = _run_script("normlab", images, labels, initial, tmp_path / "model.safetensors")
    finally:
        normlab.backends.cudnn.benchmark = False
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-9, atol=1e-12)
    assert ours[1][1] == theirs[1][1]
    np.testing.assert_allclose(ours[1][0], theirs[1][0], rtol=1e-9)
    assert normlab.load(tmp_path / "model.safetensors")["epoch"] == 2
