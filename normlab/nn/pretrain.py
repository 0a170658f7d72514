"""Greedy layer-wise pretraining: train a deep net's layers one at a time as autoencoders, then fine-tune.

Before ReLU, BN and residual connections, deep sigmoid nets were made
trainable this way (Hinton & Salakhutdinov 2006 with RBMs; Bengio, Lamblin,
Popovici & Larochelle 2007, "Greedy layer-wise training of deep networks",
with autoencoders): each layer learns to encode the representation below it
so that a decoder can reconstruct it, which gives every layer useful weights
before any label is seen; supervised training then only fine-tunes them.

``greedy_layerwise(stages, data)`` trains stage k (any module mapping
(N, d_k) to (N, d_{k+1}), e.g. ``Sequential(Linear, Sigmoid)``) as the
encoder of an autoencoder ``decoder(stage(x_k)) ~ x_k`` on the codes x_k of
the stages below it (computed once, without gradients), in order, in place.
The decoders are thrown away (they are in the returned reports); stack the
pretrained stages with a classifier and train as usual to fine-tune.

>>> import numpy as np, normlab, normlab.nn as nn
>>> from normlab.nn.pretrain import greedy_layerwise
>>> _ = normlab.manual_seed(0)
>>> x = np.random.default_rng(0).standard_normal((256, 10)).astype(np.float32)
>>> stages = [nn.Sequential(nn.Linear(10, 8), nn.Sigmoid()), nn.Sequential(nn.Linear(8, 8), nn.Sigmoid())]
>>> reports = greedy_layerwise(stages, x, steps=100, batch_size=32, lr=1e-2)
>>> [r.final_error < r.initial_error for r in reports]
[True, True]
>>> net = nn.Sequential(*stages, nn.Linear(8, 3))      # fine-tune this with any optimizer
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

import normlab.nn.functional as F
from normlab._checks import check_positive_int
from normlab.autograd.grad_mode import no_grad
from normlab.autograd.tensor import Tensor, get_default_dtype
from normlab.data.loader import DataLoader, TensorDataset
from normlab.nn.modules.linear import Linear
from normlab.nn.modules.module import Module
from normlab.random import default_generator

__all__ = ["LayerReport", "greedy_layerwise", "reconstruction_error"]

_NAME = "greedy_layerwise"
_ERROR_ROWS = 2048  # rows used to measure a reconstruction error (all of them when there are fewer)


@dataclass
class LayerReport:
    """What pretraining did to one stage.

    ``initial_error`` / ``final_error``: mean squared reconstruction error of
    the autoencoder (stage, then decoder) on the stage's input codes, before
    and after its training. ``losses``: the training loss of every step.
    ``decoder``: the trained decoder (not part of the net).
    """

    index: int
    in_features: int
    out_features: int
    initial_error: float
    final_error: float
    losses: list = field(default_factory=list, repr=False)
    decoder: Module | None = field(default=None, repr=False)


def _as_array(name: str, data) -> np.ndarray:
    array = data._data if isinstance(data, Tensor) else np.asarray(data)
    if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
        raise TypeError(f"{name}: expected numeric data, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name}: expected data of shape (N, features), got shape {tuple(array.shape)}")
    if array.dtype.kind != "f":
        array = array.astype(get_default_dtype())
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: data holds NaN or infinite values")
    return array


def _parameter_dtype(module: Module, default: np.dtype) -> np.dtype:
    """The dtype of the module's first floating parameter (its inputs must match it, as in torch), else ``default``."""
    for parameter in module.parameters():
        if parameter.dtype.kind == "f":
            return parameter.dtype
    return default


def _encode(stages: Sequence[Module], x: np.ndarray) -> np.ndarray:
    """The stages applied in order in eval mode, without gradients (modes restored afterwards).

    Data is cast to each stage's parameter dtype: float64 NumPy data feeds a
    float32 stack without the caller converting it.
    """
    modes = [stage.training for stage in stages]
    try:
        with no_grad():
            for stage in stages:
                stage.eval()
                x = np.array(stage(x.astype(_parameter_dtype(stage, x.dtype), copy=False))._data)
    finally:
        for stage, mode in zip(stages, modes):
            stage.train(mode)
    return x


def reconstruction_error(stage: Module, decoder: Module, x: np.ndarray) -> float:
    """Mean squared error of ``decoder(stage(x))`` against ``x``, in eval mode and without gradients."""
    reconstruction = _encode([stage, decoder], x)
    return float(np.mean((reconstruction.astype(np.float64) - np.asarray(x, dtype=np.float64)) ** 2))


def greedy_layerwise(stages: Sequence[Module], data, *, steps: int = 500, batch_size: int = 64, lr: float = 1e-3,
                     optimizer: Callable | None = None, decoder: Callable[[int, int], Module] | None = None,
                     corruption: float = 0.0, rng: np.random.Generator | None = None,
                     callback: Callable[[int, int, float], None] | None = None) -> list[LayerReport]:
    """Pretrain ``stages`` in order, each as the encoder of an autoencoder on the codes of the ones below.

    Args:
        stages: modules mapping (N, d_k) -> (N, d_{k+1}); trained in place.
        data: (N, d_0) array or Tensor, the unlabeled training inputs.
        steps: optimizer steps per stage (mini-batches drawn without
            replacement, reshuffled every epoch).
        batch_size: rows per step (at most N).
        lr: learning rate of the default optimizer, Adam.
        optimizer: ``optimizer(parameters) -> Optimizer`` to use instead of
            ``normlab.optim.Adam(parameters, lr=lr)``.
        decoder: ``decoder(d_{k+1}, d_k) -> Module``; default a linear
            decoder ``nn.Linear(d_{k+1}, d_k)`` (real-valued reconstructions).
        corruption: fraction of each input's entries set to zero before
            encoding (a denoising autoencoder, Vincent et al. 2008); 0 = plain.
        rng: NumPy generator for batch order and corruption; default
            normlab's generator (``normlab.manual_seed``).
        callback: ``callback(stage_index, step, loss)`` after every step.

    Returns one ``LayerReport`` per stage. The loss is the mean squared
    error between the reconstruction and the uncorrupted input. Everything
    is checked before any stage is trained: a stage whose output is not
    (N, features) raises ValueError naming it.
    """
    stages = list(stages)
    if not stages:
        raise ValueError(f"{_NAME}: expected at least one stage, got none")
    for index, stage in enumerate(stages):
        if not isinstance(stage, Module):
            raise TypeError(f"{_NAME}: expected stage {index} to be a Module, got {type(stage).__name__}")
    x = _as_array(_NAME, data)
    x = x.astype(_parameter_dtype(stages[0], x.dtype), copy=False)
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"{_NAME}: expected steps to be an integer >= 0, got {steps!r}")
    batch_size = check_positive_int(_NAME, "batch_size", batch_size)
    if batch_size > len(x):
        raise ValueError(f"{_NAME}: expected batch_size <= the {len(x)} rows of data, got {batch_size}")
    if isinstance(corruption, bool) or not isinstance(corruption, numbers.Real) or not 0.0 <= corruption < 1.0:
        raise ValueError(f"{_NAME}: expected corruption in [0, 1), got {corruption!r}")
    if optimizer is None:
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
            raise ValueError(f"{_NAME}: expected lr > 0, got {lr!r}")
        from normlab.optim import Adam  # optim sits above nn; imported here, when pretraining runs

        def optimizer(parameters):
            return Adam(parameters, lr=lr)

    make_decoder = decoder or Linear
    rng = default_generator() if rng is None else rng
    widths = _check_shapes(stages, x)

    reports = []
    codes = x
    for index, stage in enumerate(stages):
        d_in, d_out = widths[index], widths[index + 1]
        decoder_module = make_decoder(d_out, d_in)
        sample = codes[:_ERROR_ROWS]
        initial = reconstruction_error(stage, decoder_module, sample)
        parameters = list(stage.parameters()) + list(decoder_module.parameters())
        opt = optimizer(parameters)
        losses = []
        stage.train()
        decoder_module.train()
        for step, rows in zip(range(steps), _batches(codes, batch_size, rng)):
            target = codes[rows]
            source = target if corruption == 0 else target * (rng.random(target.shape) >= corruption)
            loss = F.mse_loss(decoder_module(stage(source.astype(target.dtype, copy=False))), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
            if callback is not None:
                callback(index, step, losses[-1])
        reports.append(LayerReport(index, d_in, d_out, initial, reconstruction_error(stage, decoder_module, sample),
                                   losses, decoder_module))
        codes = _encode([stage], codes)
    return reports


def _check_shapes(stages: list[Module], x: np.ndarray) -> list[int]:
    """The feature count after every stage, from a forward of two rows in eval mode (changes no state)."""
    widths = [x.shape[1]]
    probe = x[:2]
    for index, stage in enumerate(stages):
        probe = _encode([stage], probe)
        if probe.ndim != 2:
            raise ValueError(f"{_NAME}: expected stage {index} to output (N, features), got shape "
                             f"{tuple(probe.shape)} for an input of {widths[-1]} features")
        widths.append(probe.shape[1])
    return widths


def _batches(codes: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Endless mini-batches of row indices: a fresh permutation per epoch, incomplete batches dropped."""
    loader = DataLoader(TensorDataset(codes), batch_size=batch_size, shuffle=True, drop_last=True, generator=rng)
    while True:
        yield from loader.batch_indices()
