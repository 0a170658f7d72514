"""Deep fully connected nets for the gradient experiments: builders, initialisations, a gradient probe, a run.

``deep_mlp(act, depth)`` builds a stack of ``depth`` hidden layers (plain,
with BatchNorm, or with identity shortcuts) initialised with a named scheme;
``gradient_profile`` measures |dL/dz| at every hidden layer's output with a
``GradientMonitor`` on one fixed batch; ``train_run`` trains with SGD and
records the test-accuracy curve, the loss on a fixed training batch, and the
gradient norms of the first and last hidden layers over training.

Initialisation schemes (weights; biases are zero):

- ``xavier``: Glorot & Bengio (2010), ``Var(w) = gain^2 * 2 / (fan_in + fan_out)``,
  gain 1 (what He et al. 2015 call "Xavier");
- ``he``: He et al. (2015), ``Var(w) = 2 / ((1 + a^2) fan_in)`` (a: the leaky slope);
- ``lecun``: ``Var(w) = 1 / fan_in``; right for maxout with two pieces: the
  larger of two independent zero-mean values of variance s^2 has second
  moment s^2 (max^2 + min^2 = a^2 + b^2 and the two are exchangeable), and
  backward passes through exactly one piece, so both passes keep their scale;
- ``zeros``: every weight 0, the classifier's too;
- ``recommended``: the scheme each activation is usually given: Xavier with
  torch's gain (sigmoid 1, tanh 5/3), He for ReLU, LeakyReLU and ELU (Clevert
  et al. 2016 use He's), LeCun for maxout.

The classifier (the last Linear) gets Xavier with gain 1 in every scheme
but ``zeros``, so the others differ only in the hidden layers.
"""
from __future__ import annotations

import numpy as np

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.diagnostics import GradientMonitor
from normlab.lab.training import StepProgress, fit

__all__ = ["ACTIVATIONS", "ACTIVATION_LABELS", "deep_mlp", "initialise", "weight_layers", "gradient_profile",
           "log_ratio", "train_run"]

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout")
ACTIVATION_LABELS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "ReLU", "leaky_relu": "LeakyReLU",
                     "elu": "ELU", "maxout": "maxout"}
LEAKY_SLOPE = 0.01
MAXOUT_PIECES = 2
PROBE = 512  # training samples of the fixed batch that gradient profiles and training losses are measured on


def _activation(act: str) -> nn.Module:
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU,
            "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE)}[act]()


_RECOMMENDED = {"sigmoid": ("xavier", 1.0), "tanh": ("xavier", 5.0 / 3), "relu": ("he", 0.0),
                "leaky_relu": ("he", LEAKY_SLOPE), "elu": ("he", 0.0), "maxout": ("lecun", 0.0)}


def _initialise_weight(weight, scheme: str, parameter: float) -> None:
    if scheme == "xavier":
        nn.init.xavier_normal_(weight, gain=parameter or 1.0)
    elif scheme == "he":
        nn.init.kaiming_normal_(weight, a=parameter, nonlinearity="leaky_relu")
    elif scheme == "lecun":
        nn.init.kaiming_normal_(weight, nonlinearity="linear")
    elif scheme == "zeros":
        nn.init.zeros_(weight)
    else:
        raise ValueError(f"initialise: unknown scheme {scheme!r}; expected xavier, he, lecun, zeros or recommended")


def initialise(model: nn.Module, scheme: str, act: str) -> nn.Module:
    """Re-initialise every hidden Linear/Maxout weight of ``model`` with ``scheme``; zero all their biases.

    ``xavier`` uses gain 1 and ``he`` the leaky slope for LeakyReLU (0
    otherwise) unless ``scheme`` is ``recommended``, which picks both per ``act``.
    """
    if scheme == "recommended":
        scheme, parameter = _RECOMMENDED[act]
    else:
        parameter = LEAKY_SLOPE if (scheme == "he" and act == "leaky_relu") else 0.0
    modules = dict(model.named_modules())
    *hidden, classifier = [modules[name] for name in weight_layers(model)]
    with normlab.no_grad():
        for layer in hidden:
            _initialise_weight(layer.weight, scheme, parameter)
        if scheme == "zeros":
            nn.init.zeros_(classifier.weight)
        else:
            nn.init.xavier_normal_(classifier.weight)
        for layer in hidden + [classifier]:
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return model


def deep_mlp(act: str, depth: int, *, width: int = 64, in_features: int = 40, classes: int = 10,
             norm: bool = False, residual: bool = False, init: str = "recommended") -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units, then a Linear classifier.

    Plain: (Linear -> act) x depth; ``norm``: (Linear -> BatchNorm1d -> act);
    maxout layers are ``Maxout(width, pieces=2)`` with no separate activation.
    ``residual``: Linear(in, width), then depth - 1 pre-activation blocks
    ``x + Linear(act(x))`` with identity shortcuts (He et al. 2016's form, one
    Linear per block, so the net still has ``depth`` hidden Linear layers), then act.
    """
    if residual and (norm or act == "maxout"):
        raise ValueError("deep_mlp: residual nets here are plain (no BN, no maxout)")
    layers: list = []
    if residual:
        layers.append(nn.Linear(in_features, width))
        for _ in range(depth - 1):
            layers.append(nn.Residual(nn.Sequential(_activation(act), nn.Linear(width, width))))
        layers.append(_activation(act))
    else:
        features = in_features
        for _ in range(depth):
            if act == "maxout":
                layers.append(nn.Maxout(features, width, MAXOUT_PIECES))
            else:
                layers.append(nn.Linear(features, width))
                if norm:
                    layers.append(nn.BatchNorm1d(width))
                layers.append(_activation(act))
            features = width
    layers.append(nn.Linear(width, classes))
    return initialise(nn.Sequential(*layers), init, act)


def weight_layers(model: nn.Module) -> list[str]:
    """Names of the Linear and Maxout modules of ``model`` in forward order (the last is the classifier)."""
    return [name for name, module in model.named_modules() if isinstance(module, (nn.Linear, nn.Maxout))]


def gradient_profile(model: nn.Module, x: np.ndarray, y: np.ndarray) -> dict:
    """|dL/dz| at the output of every hidden Linear/Maxout layer for one forward/backward on (x, y), in training mode.

    Measured with a ``GradientMonitor`` watching those layers; the model's
    gradients are cleared and its buffers (BatchNorm's running statistics)
    restored afterwards. Returns ``{"grad_norm": [...] (first
    hidden layer first), "loss": mean cross-entropy}``.
    """
    names = weight_layers(model)[:-1]
    buffers = {name: np.array(buffer._data) for name, buffer in model.named_buffers()}
    model.train()
    with GradientMonitor(model, layers=names) as monitor:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        record = monitor.step()
    model.zero_grad()
    with normlab.no_grad():  # a probe, not a training step: running statistics stay as they were
        for name, buffer in model.named_buffers():
            buffer._data[...] = buffers[name]
    norms = [record["layers"][name].get("grad_norm", 0.0) for name in names]
    return {"grad_norm": [float(n) for n in norms], "loss": float(loss.item())}


def log_ratio(norms) -> float:
    """log10 of the first hidden layer's gradient norm over the last's (-inf when only the first is 0, NaN for 0/0)."""
    first, last = float(norms[0]), float(norms[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.log10(np.float64(first) / np.float64(last)))


def train_run(model: nn.Module, data, *, steps: int, lr: float, momentum: float, batch_size: int, seed: int,
              evaluations: int, tracker: StepProgress | None = None, train_rows: np.ndarray | None = None,
              on_step=None) -> dict:
    """SGD on MNIST-1D-like ``data``; the gradient profile and the loss on a fixed training batch before and after.

    Returns ``{"profile_init", "profile_end"}`` (``gradient_profile`` on the
    first ``PROBE`` training rows), ``"loss_init"``/``"loss_end"`` (the loss
    on those rows), the curve of ``fit`` (``steps``, ``test_accuracy``,
    ``final_test_accuracy``, ``diverged``) and ``"monitor"``: the steps and
    the first and last hidden layers' gradient norms recorded by a
    ``GradientMonitor`` about ``evaluations`` times during training.
    """
    x_train, y_train = data.x_train, data.y_train
    if train_rows is not None:
        x_train, y_train = x_train[train_rows], y_train[train_rows]
    probe_x, probe_y = x_train[:PROBE], y_train[:PROBE]
    before = gradient_profile(model, probe_x, probe_y)
    names = weight_layers(model)[:-1]
    every = max(steps // evaluations, 1)
    optimizer = normlab.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    monitor = GradientMonitor(model, layers=[names[0], names[-1]], every=every)

    def step_done(step: int) -> None:
        monitor.step()
        if on_step is not None:
            on_step(step)

    try:
        run = fit(model, optimizer, x_train, y_train, steps=steps, batch_size=batch_size,
                  rng=np.random.default_rng(seed), x_test=data.x_test, y_test=data.y_test, eval_every=every,
                  tracker=tracker, on_step=step_done)
    finally:
        monitor.detach()
    after = gradient_profile(model, probe_x, probe_y)
    return {"profile_init": before["grad_norm"], "profile_end": after["grad_norm"], "loss_init": before["loss"],
            "loss_end": after["loss"], "steps": run["steps"], "test_accuracy": run["test_accuracy"],
            "final_test_accuracy": run["final_test_accuracy"], "diverged": run["diverged"],
            "monitor": {"steps": monitor.steps.tolist(), "first": monitor.series(names[0], "grad_norm").tolist(),
                        "last": monitor.series(names[-1], "grad_norm").tolist()}}
