"""``normlab train`` (normlab.train) and the ``normlab`` command line (normlab.cli)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import normlab
from normlab.cli import main
from normlab.data import load_digits
from normlab.train import ACTIVATIONS, NORMS, ConfigError, TrainConfig, evaluate, mlp, train

ACCURACY_LINE = re.compile(r"^train accuracy (\d\.\d{3})  test accuracy (\d\.\d{3})$")
TINY = dict(dataset="digits", depth=1, width=32, batch_size=32, epochs=2)


def _torch_mlp(torch, in_features, width, out_features, depth, norm):
    layers = []
    features = in_features
    for _ in range(depth):
        layers.append(torch.nn.Linear(features, width))
        layers += {"none": [], "batch": [torch.nn.BatchNorm1d(width)], "layer": [torch.nn.LayerNorm(width)],
                   "group": [torch.nn.GroupNorm(8, width)]}[norm]
        layers.append(torch.nn.ReLU())
        features = width
    layers.append(torch.nn.Linear(features, out_features))
    return torch.nn.Sequential(*layers).double()


# ----------------------------------------------------------------------------
# The model builder
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("norm", ["none", "batch", "layer", "group"])
def test_mlp_state_dict_matches_the_same_torch_sequential(norm):
    torch = pytest.importorskip("torch")
    net = mlp(64, 16, 10, depth=3, norm=norm, act="relu")
    reference = _torch_mlp(torch, 64, 16, 10, 3, norm)
    ours = net.state_dict()
    theirs = reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == tuple(theirs[k].shape) for k in ours)
    # Same weights in both: same eval-mode outputs.
    reference.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float64 if v.dtype.kind == "f" else v.dtype))
                               for k, v in ours.items()})
    net.double().eval()
    reference.eval()
    x = np.random.default_rng(0).standard_normal((5, 64))
    with normlab.no_grad():
        got = net(x).data
    np.testing.assert_allclose(got, reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-9, atol=1e-12)


def test_mlp_layers_and_checks():
    kinds = lambda net: [type(m).__name__ for m in net]
    assert kinds(mlp(4, 8, 3, depth=2, norm="renorm", act="gelu")) == [
        "Linear", "BatchRenorm1d", "GELU", "Linear", "BatchRenorm1d", "GELU", "Linear"]
    assert kinds(mlp(4, 8, 3, depth=0)) == ["Linear"]
    assert mlp(4, 12, 3, depth=1, norm="group")[1].num_groups == 4  # gcd(12, 8)
    assert mlp(4, 12, 3, depth=1, norm="group", groups=3)[1].num_groups == 3
    with pytest.raises(ValueError, match="mlp: expected norm to be one of"):
        mlp(4, 8, 3, depth=1, norm="weight")
    with pytest.raises(ValueError, match="mlp: expected act to be one of"):
        mlp(4, 8, 3, depth=1, act="swish")
    with pytest.raises(ValueError, match="mlp: expected depth"):
        mlp(4, 8, 3, depth=-1)
    with pytest.raises(ValueError, match="groups to divide the width 12"):
        mlp(4, 12, 3, depth=1, norm="group", groups=5)


# ----------------------------------------------------------------------------
# train()
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("norm", list(NORMS))
def test_train_beats_chance_with_every_norm(norm):
    result = train(TINY, norm=norm, progress=False, log=None)
    # Ten balanced classes: chance is 0.1; two epochs of a 64-32-10 net reach far above it.
    assert result["test_accuracy"] > 0.6 and result["train_accuracy"] > 0.6
    assert not result["diverged"]
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert result["history"][1]["loss"] < result["history"][0]["loss"]
    assert result["steps"] == len(result["step_losses"]) == 2 * (1438 // 32)  # drop_last
    assert np.mean(result["step_losses"][:44]) == pytest.approx(result["history"][0]["loss"])
    assert result["config"]["norm"] == norm
    model = result["model"]
    assert result["parameters"] == sum(p.numel() for p in model.parameters())
    # The reported accuracy is the eval-mode accuracy of the returned model.
    data = load_digits()
    with normlab.no_grad():
        logits = model.eval()(data.x_test).data
    assert np.mean(logits.argmax(1) == data.y_test) == result["test_accuracy"]


def test_train_is_repeatable_and_seed_dependent():
    first = train(TINY, norm="batch", progress=False, log=None)
    second = train(TINY, norm="batch", progress=False, log=None)
    third = train(TINY, norm="batch", seed=1, progress=False, log=None)
    for key, value in first["model"].state_dict().items():
        np.testing.assert_array_equal(value, second["model"].state_dict()[key])
    summary = lambda result: [(h["loss"], h["test_accuracy"]) for h in result["history"]]
    assert summary(first) == summary(second)
    assert summary(first) != summary(third)
    assert not np.array_equal(first["model"].state_dict()["0.weight"], third["model"].state_dict()["0.weight"])


def test_evaluate_uses_running_statistics_and_records_nothing():
    net = mlp(64, 16, 10, depth=1, norm="batch")
    data = load_digits()
    net.train()
    net(data.x_train[:64])  # one training forward moves the running statistics away from (0, 1)
    before = {k: v.copy() for k, v in net.state_dict().items()}
    loss, accuracy = evaluate(net, data.x_test, data.y_test, batch_size=50)
    assert net.training  # mode restored
    for key, value in net.state_dict().items():  # eval mode: no running-stat update, no counter step
        np.testing.assert_array_equal(value, before[key])
    net.eval()
    with normlab.no_grad():
        logits = net(data.x_test)
    logits = np.asarray(logits)
    assert accuracy == np.mean(logits.argmax(1) == data.y_test)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert loss == pytest.approx(-log_probs[np.arange(len(data.y_test)), data.y_test].mean(), rel=1e-5)
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_train_runs_with_every_activation(act):
    result = train(TINY, act=act, progress=False, log=None)
    # Two epochs: even sigmoid (the slowest starter) is well above chance (0.1) by then.
    assert np.isfinite(result["train_loss"]) and result["test_accuracy"] > 0.4
    assert result["history"][1]["loss"] < result["history"][0]["loss"]


def test_train_adam_float64_and_mnist1d():
    result = train(dict(TINY, dataset="mnist1d", optimizer="adam", dtype="float64", norm="layer"),
                   progress=False, log=None)
    assert result["model"].state_dict()["0.weight"].dtype == np.float64
    assert result["dataset"] == "mnist1d" and result["test_accuracy"] > 0.15


def test_train_takes_any_registered_dataset():
    result = train(dict(TINY, dataset="spirals", width=64, depth=2, epochs=8, lr=0.05), progress=False, log=None)
    assert result["dataset"] == "spirals" and result["test_accuracy"] > 0.8  # chance: 1/3
    with pytest.raises(ConfigError, match="dataset to be one of"):
        train(dict(TINY, dataset="imagenet"), progress=False, log=None)


def test_train_stops_when_the_loss_diverges():
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow on the way there is expected and reported as a line, not warned
        result = train(TINY, norm="none", lr=1e15, progress=False, log=lines.append)
    assert result["diverged"]
    assert result["steps"] < 2 * (1438 // 32)
    assert any("non-finite" in line for line in lines)


def test_train_log_lines():
    lines = []
    train(TrainConfig(**TINY), progress=False, log=lines.append)
    assert lines[0].startswith("normlab train: digits (1438 train / 359 test), mlp 64-32-10")
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == ["1/2", "2/2"]
    assert ACCURACY_LINE.match(lines[-1])


@pytest.mark.parametrize("bad, message", [
    ({"norm": "weight"}, "norm to be one of"),
    ({"epochs": 0}, "epochs to be an integer >= 1"),
    ({"lr": -1.0}, "lr to be a positive number"),
    ({"norm": "batch", "batch_size": 1}, "batch_size must be >= 2"),
    ({"batch_size": 5000}, "larger than the 1438 training samples"),
    ({"colour": "red"}, "unknown config field"),
    ({"save": "/no/such/folder/model.safetensors"}, "no such directory /no/such/folder"),
])
def test_train_rejects_bad_configs(bad, message):
    with pytest.raises(ConfigError, match=message):
        train(dict(TINY, **bad), progress=False, log=None)
    with pytest.raises(TypeError, match="TrainConfig"):
        train(42)


# ----------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------

def test_help_lists_train(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert re.search(r"^\s+train\s", capsys.readouterr().out, re.MULTILINE)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--dataset", "--norm", "--act", "--depth", "--width", "--batch-size", "--epochs", "--lr",
                   "--optimizer", "--seed", "--save", "--quiet", "--nproc", "--distributed"):
        assert option in text
    assert "{none,batch,layer,group,renorm,sync-batch}" in text and "{relu,tanh,sigmoid,leaky_relu,elu,gelu}" in text


@pytest.mark.parametrize("argv, message", [
    (["bogus"], "invalid choice: 'bogus'"),
    ([], "required: COMMAND"),
    (["train", "--norm", "weight"], "invalid choice: 'weight'"),
    (["train", "--depth", "x"], "invalid int value"),
    (["train", "--width", "0"], "expected width to be an integer >= 1"),
])
def test_bad_arguments_exit_like_argparse(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: normlab") and message in err


def test_main_train_prints_epochs_accuracy_and_a_progress_bar(capsys):
    assert main(["train", "--depth", "1", "--width", "32", "--epochs", "2", "--norm", "layer"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert sum(line.startswith("epoch") for line in lines) == 2
    match = ACCURACY_LINE.match(lines[-1])
    assert match and float(match.group(2)) > 0.6
    assert "step" in captured.err  # tqdm's bar goes to stderr, not into the printed results

    assert main(["train", "--depth", "1", "--width", "32", "--epochs", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert ACCURACY_LINE.match(captured.out.strip()) and captured.out.count("\n") == 1
    assert captured.err == ""


def _console_script() -> str:
    beside_python = Path(sys.executable).parent / "normlab"
    found = str(beside_python) if beside_python.exists() else shutil.which("normlab")
    if found is None:
        pytest.skip("the normlab console script is not installed (pip install -e .)")
    return found


def test_console_script_saves_a_checkpoint_that_loads_into_normlab_and_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    path = tmp_path / "model.safetensors"
    completed = subprocess.run(
        [_console_script(), "train", "--norm", "batch", "--depth", "2", "--width", "24", "--epochs", "2",
         "--seed", "3", "--save", str(path), "--quiet"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert completed.returncode == 0, completed.stderr
    match = ACCURACY_LINE.match(completed.stdout.strip())
    assert match, completed.stdout
    assert path.is_file()

    state = normlab.load(path)
    fresh = mlp(64, 24, 10, depth=2, norm="batch", act="relu")
    fresh.load_state_dict(state)
    assert int(np.asarray(state["1.num_batches_tracked"])) == 2 * (1438 // 64)
    data = load_digits()
    _, test_accuracy = evaluate(fresh, data.x_test, data.y_test)
    assert f"{test_accuracy:.3f}" == match.group(2)  # the saved model is the evaluated one, running stats included

    reference = _torch_mlp(torch, 64, 24, 10, 2, "batch").float()
    reference.load_state_dict(load_file(str(path)))
    reference.eval()
    with normlab.no_grad():
        ours = fresh.eval()(data.x_test).data
    np.testing.assert_allclose(reference(torch.from_numpy(np.array(data.x_test))).detach().numpy(), ours,
                               rtol=2e-5, atol=2e-5)
