"""Train a small MLP on an embedded dataset: the engine behind ``normlab train``, reusable from Python.

``mlp`` builds the network (Linear -> norm -> activation, ``depth`` times,
then a Linear classifier), ``train(config)`` runs the whole job and returns
a result dict, ``evaluate`` measures loss and accuracy in eval mode.

>>> from normlab.train import TrainConfig, train
>>> result = train(TrainConfig(dataset="digits", norm="batch", epochs=1), progress=False, log=None)
>>> sorted(k for k in result if k.endswith("accuracy"))
['test_accuracy', 'train_accuracy']
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.data import DataLoader, DistributedSampler, TensorDataset, get_dataset, list_datasets

__all__ = ["ConfigError", "NORMS", "ACTIVATIONS", "OPTIMIZERS", "DATASETS", "TrainConfig", "mlp", "make_norm",
           "make_activation", "make_optimizer", "evaluate", "train"]


class ConfigError(ValueError):
    """A bad training option (the CLI reports it like an argparse error)."""


#: --norm choices and the layer each one puts after every hidden Linear.
NORMS = {
    "none": "no normalization",
    "batch": "BatchNorm1d (Ioffe & Szegedy, 2015)",
    "layer": "LayerNorm (Ba et al., 2016)",
    "group": "GroupNorm (Wu & He, 2018), gcd(width, 8) groups unless given",
    "renorm": "BatchRenorm1d (Ioffe, 2017), r_max=3, d_max=5",
    "sync-batch": "SyncBatchNorm: BatchNorm over the global batch of all processes (BatchNorm in one process)",
}
ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu", "elu", "gelu")
OPTIMIZERS = {"sgd": 0.05, "adam": 1e-3}  # name -> default learning rate
DATASETS = ("digits", "mnist1d")  # the CLI's --dataset choices; train() takes any registered name


def make_norm(norm: str, width: int, groups: int | None = None) -> nn.Module | None:
    """The normalization layer for ``norm`` over ``width`` features (None for ``"none"``)."""
    if norm == "none":
        return None
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    if norm == "group":
        # Several groups when the width allows it; gcd keeps the group count a divisor of width.
        return nn.GroupNorm(groups or math.gcd(width, 8), width)
    if norm == "renorm":
        return nn.BatchRenorm1d(width)
    if norm == "sync-batch":
        return nn.SyncBatchNorm(width)
    raise ValueError(f"mlp: expected norm to be one of {tuple(NORMS)}, got {norm!r}")


def make_activation(act: str) -> nn.Module:
    """A fresh activation module for ``act`` (torch's default arguments: LeakyReLU slope 0.01, ELU alpha 1)."""
    modules = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU,
               "elu": nn.ELU, "gelu": nn.GELU}
    if act not in modules:
        raise ValueError(f"mlp: expected act to be one of {ACTIVATIONS}, got {act!r}")
    return modules[act]()


def mlp(in_features: int, hidden: int, out_features: int, depth: int, norm: str = "none", act: str = "relu",
        *, groups: int | None = None) -> nn.Sequential:
    """A multilayer perceptron: ``depth`` blocks of Linear -> norm -> activation, then a Linear.

    The normalization sits between each hidden Linear and its activation, as
    in the batch-norm paper. Layers are flat in one ``Sequential``, so the
    state_dict keys ("0.weight", "1.running_mean", ...) are those of the same
    ``torch.nn.Sequential``. ``depth=0`` gives a linear classifier. Linear
    layers keep their bias (and torch's default init) for every ``norm``.

    >>> net = mlp(64, 32, 10, depth=2, norm="layer", act="tanh")
    >>> [type(m).__name__ for m in net]
    ['Linear', 'LayerNorm', 'Tanh', 'Linear', 'LayerNorm', 'Tanh', 'Linear']
    """
    for name, value, minimum in (("in_features", in_features, 1), ("hidden", hidden, 1),
                                 ("out_features", out_features, 1), ("depth", depth, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"mlp: expected {name} to be an integer >= {minimum}, got {value!r}")
    if norm not in NORMS:
        raise ValueError(f"mlp: expected norm to be one of {tuple(NORMS)}, got {norm!r}")
    make_activation(act)  # validates act before any layer is built
    if norm == "group" and groups is not None and (groups <= 0 or hidden % groups):
        raise ValueError(f"mlp: expected groups to divide the width {hidden}, got {groups!r}")
    layers = []
    features = in_features
    for _ in range(depth):
        layers.append(nn.Linear(features, hidden))
        norm_layer = make_norm(norm, hidden, groups)
        if norm_layer is not None:
            layers.append(norm_layer)
        layers.append(make_activation(act))
        features = hidden
    layers.append(nn.Linear(features, out_features))
    return nn.Sequential(*layers)


def make_optimizer(name: str, parameters, lr: float | None = None, momentum: float = 0.9,
                   weight_decay: float = 0.0):
    """SGD (with ``momentum``) or Adam; ``lr=None`` takes the default of ``OPTIMIZERS``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"train: expected optimizer to be one of {tuple(OPTIMIZERS)}, got {name!r}")
    lr = OPTIMIZERS[name] if lr is None else lr
    if name == "sgd":
        return normlab.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return normlab.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``train`` needs; the defaults are those of ``normlab train``.

    ``dataset`` is any name of ``normlab.data.list_datasets()`` whose loader
    needs no arguments (the CLI offers digits and mnist1d); samples are
    flattened to vectors.

    ``lr=None`` means the optimizer's default (SGD 0.05 with momentum 0.9,
    Adam 1e-3). ``save`` is a path for a safetensors checkpoint of
    ``model.state_dict()``, or None.

    ``distributed=True`` makes this process one rank of an MPI job (started
    by ``mpiexec``): the model is wrapped in DistributedDataParallel, each
    rank trains on its ``DistributedSampler`` share with ``batch_size``
    samples per step (the global batch is world size x batch_size), and only
    rank 0 logs and saves.
    """

    dataset: str = "digits"
    norm: str = "batch"
    act: str = "relu"
    depth: int = 2
    width: int = 128
    batch_size: int = 64
    epochs: int = 20
    lr: float | None = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    dtype: str = "float32"
    save: str | None = None
    distributed: bool = False

    def check(self) -> "TrainConfig":
        """Raise ConfigError (a ValueError) naming the first bad option; return self."""
        def choice(name, options):
            if getattr(self, name) not in options:
                raise ConfigError(f"train: expected {name} to be one of {tuple(options)}, got {getattr(self, name)!r}")

        choice("dataset", tuple(list_datasets()))
        choice("norm", NORMS)
        choice("act", ACTIVATIONS)
        choice("optimizer", OPTIMIZERS)
        choice("dtype", ("float32", "float64"))
        for name, minimum in (("depth", 0), ("width", 1), ("batch_size", 1), ("epochs", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ConfigError(f"train: expected {name} to be an integer >= {minimum}, got {value!r}")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"train: expected lr to be a positive number or None, got {self.lr!r}")
        if self.norm in ("batch", "renorm", "sync-batch") and self.batch_size < 2:
            raise ConfigError(f"train: norm={self.norm!r} needs batch statistics, so batch_size must be >= 2, "
                             f"got {self.batch_size}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ConfigError(f"train: expected seed to be an int, got {self.seed!r}")
        return self

    @property
    def learning_rate(self) -> float:
        return OPTIMIZERS[self.optimizer] if self.lr is None else float(self.lr)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on (x, y), in eval mode and without recording a graph.

    Eval mode makes BatchNorm/BatchRenorm use their running statistics; the
    model's previous mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    try:
        with normlab.no_grad():
            for start in range(0, len(x), batch_size):
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                logits = model(xb.reshape(len(xb), -1))
                total_loss += float(F.cross_entropy(logits, yb, reduction="sum").item())
                correct += int((logits._data.argmax(axis=1) == yb).sum())
    finally:
        model.train(was_training)
    return total_loss / len(x), correct / len(x)


def _progress_bar(total: int, enabled: bool):
    """A tqdm bar on stderr, or None when disabled or tqdm is not installed (it is in the 'lab' extra)."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=sys.stderr, unit="step", desc="train", dynamic_ncols=True, leave=False)


def _run_epoch(model: nn.Module, loader: DataLoader, optimizer, bar, epoch: int,
               mean_over_processes: Callable[[float], float] = float) -> tuple[list[float], bool]:
    """One pass over ``loader`` in train mode: (the batch losses, whether the loss became non-finite).

    In a distributed run ``mean_over_processes`` averages each step's loss
    over the processes, so every process logs, and stops on, the same value.
    """
    model.train()
    losses = []
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        value = mean_over_processes(loss.item())
        if not math.isfinite(value):
            return losses, True  # no step on a non-finite loss: the weights stay as they were
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(value)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{value:.4f}", refresh=False)
    return losses, False


def _processes(distributed: bool) -> tuple[int, int, Callable[[float], float]]:
    """(rank, world size, mean of a number over the processes) of this run; joins the MPI job if distributed."""
    if not distributed:
        return 0, 1, float
    import normlab.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("mpi")

    def mean_over_processes(value: float) -> float:
        buffer = np.array([value], dtype=np.float64)
        dist.all_reduce(buffer, dist.ReduceOp.AVG)
        return float(buffer[0])

    return dist.get_rank(), dist.get_world_size(), mean_over_processes


def train(config: TrainConfig | dict | None = None, *, progress: bool = True,
          log: Callable[[str], None] | None = print, **overrides) -> dict:
    """Train ``mlp`` on ``config.dataset`` with ``config.optimizer``; return what happened.

    ``config`` is a ``TrainConfig``, a dict of its fields, or None for the
    defaults; keyword ``overrides`` replace single fields. ``normlab.manual_seed
    (config.seed)`` is called first, so the same config gives the same run.
    ``progress`` shows a tqdm bar on stderr; ``log`` receives the text lines
    (per-epoch loss, final accuracies); None silences them.

    Returns a dict: ``model`` (the trained Sequential), ``config`` (the fields
    as a dict), ``train_accuracy``, ``test_accuracy``, ``train_loss``,
    ``test_loss`` (eval mode, whole splits), ``history`` (per epoch: mean
    training loss over its batches, test accuracy, seconds), ``step_losses``
    (the training loss of every step), ``seconds``,
    ``steps``, ``parameters`` and ``diverged`` (True when the loss became
    non-finite; training stops there). Everything but ``model`` is JSON-friendly.
    """
    if config is None:
        config = TrainConfig()
    elif isinstance(config, dict):
        unknown = set(config) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise ConfigError(f"train: unknown config field(s) {sorted(unknown)}")
        config = TrainConfig(**config)
    elif not isinstance(config, TrainConfig):
        raise TypeError(f"train: expected a TrainConfig, a dict or None, got {type(config).__name__}")
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise ConfigError(f"train: unknown config field(s) {sorted(unknown)}")
        config = replace(config, **overrides)
    config.check()
    if config.save is not None and not Path(config.save).parent.is_dir():
        # Checked before training, so a typo in the path does not cost the run.
        raise ConfigError(f"train: cannot save to {config.save}: no such directory {Path(config.save).parent}")
    rank, world, mean_over_processes = _processes(config.distributed)
    if rank != 0:
        log = None  # only rank 0 prints
    if config.distributed:
        progress = False  # a bar redrawn through mpiexec's pipes comes out as a line per update
    emit = log or (lambda line: None)

    data = get_dataset(config.dataset)
    dtype = np.dtype(config.dtype)
    share = math.ceil(len(data.x_train) / world)
    if config.batch_size > share:
        raise ConfigError(f"train: batch_size {config.batch_size} is larger than the {share} training samples "
                         f"of {config.dataset}" + (f" that each of {world} processes gets" if world > 1 else ""))
    x_train = data.x_train.reshape(len(data.x_train), -1).astype(dtype)
    x_test = data.x_test.reshape(len(data.x_test), -1).astype(dtype)

    normlab.manual_seed(config.seed)  # init and shuffling both draw from the global generator
    model = mlp(data.n_features, config.width, data.n_classes, config.depth, config.norm, config.act)
    model.to(dtype)
    # DDP copies rank 0's initial weights to every rank and averages the gradients.
    trained = nn.parallel.DistributedDataParallel(model) if config.distributed else model
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr, config.momentum,
                               config.weight_decay)
    train_set = TensorDataset(x_train, data.y_train)
    sampler = DistributedSampler(train_set, seed=config.seed) if config.distributed else None
    # drop_last: a last batch of one sample would break batch statistics, and equal batches
    # keep every step's noise level the same.
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=sampler is None, drop_last=True,
                        sampler=sampler)
    n_parameters = sum(p._data.size for p in model.parameters())
    widths = [data.n_features] + [config.width] * config.depth + [data.n_classes]
    emit(f"normlab train: {config.dataset} ({len(x_train)} train / {len(x_test)} test), "
         f"mlp {'-'.join(map(str, widths))} ({n_parameters} parameters), norm={config.norm}, act={config.act}, "
         f"{config.optimizer} lr={config.learning_rate:g}"
         + (f" momentum={config.momentum:g}" if config.optimizer == "sgd" else "")
         + f", batch {config.batch_size}" + (f" per process x {world} processes" if config.distributed else "")
         + f", {config.epochs} epochs, seed {config.seed}")

    history = []
    step_losses: list[float] = []
    steps = 0
    diverged = False
    start = time.perf_counter()
    bar = _progress_bar(config.epochs * len(loader), progress)
    write = emit if bar is None or log is None else (lambda line: bar.write(line, file=sys.stdout))
    # A diverging run overflows on its way to a non-finite loss; that is reported once, as a line, not warned.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            for epoch in range(1, config.epochs + 1):
                epoch_start = time.perf_counter()
                if sampler is not None:
                    sampler.set_epoch(epoch)
                losses, diverged = _run_epoch(trained, loader, optimizer, bar, epoch, mean_over_processes)
                step_losses += losses
                steps += len(losses)
                mean_loss = float(np.mean(losses)) if losses else float("nan")
                _, test_accuracy = evaluate(model, x_test, data.y_test)
                history.append({"epoch": epoch, "loss": mean_loss, "test_accuracy": test_accuracy,
                                "seconds": time.perf_counter() - epoch_start})
                write(f"epoch {epoch:>{len(str(config.epochs))}}/{config.epochs}  loss {mean_loss:.4f}  "
                      f"test accuracy {test_accuracy:.3f}")
                if diverged:
                    write(f"loss became non-finite at step {steps + 1}; stopping (try a smaller --lr)")
                    break
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - start
        train_loss, train_accuracy = evaluate(model, x_train, data.y_train)
        test_loss, test_accuracy = evaluate(model, x_test, data.y_test)

    if config.save is not None and rank == 0:
        normlab.save(model.state_dict(), config.save)
        emit(f"saved checkpoint of model.state_dict() to {config.save}")
    emit(f"trained {steps} steps in {seconds:.1f} s")
    emit(f"train accuracy {train_accuracy:.3f}  test accuracy {test_accuracy:.3f}")
    return {
        "model": model,
        "config": asdict(config),
        "dataset": data.name,
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "train_loss": train_loss,
        "test_loss": test_loss,
        "history": history,
        "step_losses": step_losses,
        "seconds": seconds,
        "steps": steps,
        "parameters": int(n_parameters),
        "diverged": diverged,
    }
