"""``GradientMonitor``: per-layer gradient norms, activation statistics and update ratios of any model.

The monitor attaches a forward hook to each watched layer and a gradient
hook (``Tensor.register_hook``) to each layer's output and to each
parameter. Call ``monitor.step()`` once per training step, after
``optimizer.step()``: it closes the step and turns what the hooks saw into
one record per layer and per parameter. Detached (``.detach()``, or the end
of a ``with`` block) it leaves no hook behind, so it costs nothing.

What one step records, per layer (its output y and the gradient g = dL/dy):

- ``mean``, ``std`` and the percentiles ``p1 p15 p50 p85 p99`` of y;
- ``saturated`` (Sigmoid/Tanh layers): the fraction of values within
  ``saturation`` of the asymptotes (sigmoid y < s or y > 1 - s; tanh
  |y| > 1 - s), where the derivative has nearly vanished (< 0.01 at s = 0.01);
- ``dead`` (ReLU layers): the fraction of units (index along axis 1:
  features or channels) that output 0 for every sample (and position) of
  the step;
- ``grad_norm``: the L2 norm of g over the whole batch;
- ``hist`` and ``grad_hist``: histograms of y and of log10 |g| as
  (counts, bin edges);

and per parameter w: ``grad_norm`` (|dL/dw|), ``norm`` (|w| before the
step) and ``update_ratio`` = |w_after - w_before| / |w_before|, the
update-to-data ratio practitioners keep near 1e-3 (Karpathy's rule of
thumb). The ratio compares the weights seen at the step's first forward
with those at ``step()``, so it includes the learning rate, momentum and
weight decay, whatever the optimizer is.

A layer that runs several times in a step (shared weights, a recurrent
cell) contributes all its calls: statistics are over their union.
Forwards under ``normlab.no_grad()`` (evaluation) are not recorded.

>>> import numpy as np, normlab, normlab.nn as nn, normlab.nn.functional as F
>>> from normlab.diagnostics import GradientMonitor
>>> _ = normlab.manual_seed(0)
>>> net = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 3))
>>> opt = normlab.optim.SGD(net.parameters(), lr=0.1)
>>> x, y = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32), np.arange(16) % 3
>>> with GradientMonitor(net) as monitor:
...     for _ in range(3):
...         loss = F.cross_entropy(net(x), y)
...         opt.zero_grad(); loss.backward(); opt.step()
...         _ = monitor.step()
>>> len(monitor.history), sorted(monitor.history[-1]["layers"])
(3, ['0', '1', '2'])
>>> print(monitor.summary().splitlines()[0])
GradientMonitor: 3 layers, 3 steps recorded (every 1), statistics over the last 3
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from normlab.autograd.grad_mode import is_grad_enabled
from normlab.autograd.tensor import Tensor

__all__ = ["GradientMonitor"]

_SKIPPED = ("Identity", "Flatten", "Unflatten", "Dropout")  # reshape or pass through: nothing to learn there
_SATURATING = ("Sigmoid", "Tanh")
_RECTIFIED = ("ReLU",)


def _first_tensor(output):
    """The Tensor a layer returned (the first one, for layers that return a tuple such as an LSTM)."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _histogram(values: np.ndarray, bins: int) -> tuple[list, list]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [], []
    counts, edges = np.histogram(finite, bins=bins)
    return counts.tolist(), edges.tolist()


class GradientMonitor:
    """Watch gradient flow through ``model``: per layer and per step, see the module docstring.

    Args:
        model: any ``normlab.nn.Module``.
        layers: names (as in ``model.named_modules()``) of the layers to
            watch; default every leaf module except Identity, Flatten,
            Unflatten and Dropout (the model itself when it has no children).
        every: record one step in ``every`` (the hooks stay attached; the
            other steps only count).
        bins: histogram bins.
        percentiles: which percentiles of each layer's output to keep.
        saturation: distance from a Sigmoid/Tanh asymptote counted as saturated.
        vanishing, exploding: ``summary()`` flags a layer whose output-gradient
            norm is below ``vanishing`` times the largest layer's, or above
            ``exploding`` (or not finite).
        dead, saturated: ``summary()`` flags a ReLU layer with more than
            ``dead`` of its units dead, a Sigmoid/Tanh layer with more than
            ``saturated`` of its values saturated.
        update_ratio: (low, high); ``summary()`` flags parameters whose
            update-to-data ratio lies outside.

    The monitor attaches on construction; ``detach()`` (alias ``remove()``)
    takes every hook away, ``attach()`` puts them back, and ``with
    GradientMonitor(model) as m:`` detaches at the end of the block.
    ``history`` is the list of step records; ``series(layer, key)`` one
    quantity over the recorded steps; ``summary()`` a text report;
    ``plot(path)`` a PNG.
    """

    def __init__(self, model, layers=None, *, every: int = 1, bins: int = 30,
                 percentiles=(1, 15, 50, 85, 99), saturation: float = 0.01, vanishing: float = 1e-3,
                 exploding: float = 1e3, dead: float = 0.5, saturated: float = 0.5,
                 update_ratio=(1e-5, 1e-1)) -> None:
        from normlab.nn import Module

        if not isinstance(model, Module):
            raise TypeError(f"GradientMonitor: expected a normlab.nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"GradientMonitor: expected every to be an integer >= 1, got {every!r}")
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"GradientMonitor: expected bins to be an integer >= 1, got {bins!r}")
        percentiles = tuple(percentiles)
        if not all(isinstance(q, (int, float)) and 0 <= q <= 100 for q in percentiles):
            raise ValueError(f"GradientMonitor: expected percentiles in [0, 100], got {percentiles!r}")
        if not 0 < saturation < 0.5:
            raise ValueError(f"GradientMonitor: expected saturation in (0, 0.5), got {saturation!r}")
        low, high = update_ratio
        if not 0 <= low < high:
            raise ValueError(f"GradientMonitor: expected update_ratio (low, high) with 0 <= low < high, "
                             f"got {update_ratio!r}")
        modules = dict(model.named_modules())
        if layers is None:
            layers = [name for name, module in modules.items()
                      if not any(True for _ in module.children()) and type(module).__name__ not in _SKIPPED]
        else:
            layers = list(layers)
            unknown = [name for name in layers if name not in modules]
            if unknown:
                raise ValueError(f"GradientMonitor: model has no layer(s) {unknown}; its layers are "
                                 f"{[name for name in modules if name]}")
        self.model = model
        self.layers = {name: modules[name] for name in layers}
        self.parameters = {name: p for name, p in model.named_parameters() if p.requires_grad}
        self.every = every
        self.bins = bins
        self.percentiles = percentiles
        self.saturation = float(saturation)
        self.thresholds = {"vanishing": vanishing, "exploding": exploding, "dead": dead, "saturated": saturated,
                           "update_ratio": (low, high)}
        self.history: list[dict] = []
        self.steps_seen = 0  # step() calls so far, recorded or not
        self._handles: list = []
        self._reset_step()
        self.attach()

    # ------------------------------------------------------------ attaching
    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> "GradientMonitor":
        """Register the hooks (no-op when already attached)."""
        if self.attached:
            return self
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        for name, parameter in self.parameters.items():
            self._handles.append(parameter.register_hook(self._parameter_hook(name)))
        return self

    def detach(self) -> "GradientMonitor":
        """Remove every hook: the model runs exactly as without a monitor. The history stays."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._reset_step()
        return self

    remove = detach

    def __enter__(self) -> "GradientMonitor":
        return self.attach()

    def __exit__(self, *exc_info) -> None:
        self.detach()

    # ------------------------------------------------------------------ hooks
    @property
    def recording(self) -> bool:
        """Whether the current step is one that ``every`` records."""
        return self.attached and self.steps_seen % self.every == 0

    def _reset_step(self) -> None:
        self._activations: dict[str, list] = {}
        self._active_units: dict[str, np.ndarray] = {}
        self._gradients: dict[str, list] = {}
        self._parameter_grad_sq: dict[str, float] = {}
        self._weights_before: dict[str, np.ndarray] | None = None

    def _forward_hook(self, name: str):
        def hook(module, inputs, output):
            if not self.recording or not is_grad_enabled():
                return None
            if self._weights_before is None:
                # The first forward of a step sees the weights the optimizer will update.
                self._weights_before = {n: p._data.copy() for n, p in self.parameters.items()}
            tensor = _first_tensor(output)
            if tensor is None:
                return None
            y = tensor._data
            # A copy: a later in-place op (ReLU(inplace=True)) must not change what we measure.
            self._activations.setdefault(name, []).append(np.array(y, dtype=np.float64).ravel())
            if type(module).__name__ in _RECTIFIED and y.ndim >= 2:
                axes = tuple(a for a in range(y.ndim) if a != 1)
                active = (y > 0).any(axis=axes)
                previous = self._active_units.get(name)
                self._active_units[name] = active if previous is None else previous | active
            if tensor.requires_grad:
                tensor.register_hook(self._output_gradient_hook(name))
            return None

        return hook

    def _output_gradient_hook(self, name: str):
        def hook(grad):
            if self.attached:
                # np.asarray: gradient hooks receive arrays today and Tensors once .grad becomes one.
                self._gradients.setdefault(name, []).append(np.array(np.asarray(grad), dtype=np.float64).ravel())
            return None

        return hook

    def _parameter_hook(self, name: str):
        def hook(grad):
            if self.recording:
                g = np.asarray(grad, dtype=np.float64)
                self._parameter_grad_sq[name] = self._parameter_grad_sq.get(name, 0.0) + float(np.sum(g * g))
            return None

        return hook

    # ------------------------------------------------------------------ steps
    def step(self) -> dict | None:
        """Close the current training step (call after ``optimizer.step()``); return its record, if recorded."""
        record = None
        if self.recording and (self._activations or self._gradients or self._parameter_grad_sq):
            record = {"step": self.steps_seen,
                      "layers": {name: self._layer_record(name) for name in self.layers
                                 if name in self._activations or name in self._gradients},
                      "parameters": {name: self._parameter_record(name) for name in self.parameters}}
            self.history.append(record)
        self.steps_seen += 1
        self._reset_step()
        return record

    def _layer_record(self, name: str) -> dict:
        kind = type(self.layers[name]).__name__
        record: dict = {"type": kind}
        if name in self._activations:
            y = np.concatenate(self._activations[name])
            finite = y[np.isfinite(y)]
            record["mean"] = float(finite.mean()) if finite.size else math.nan
            record["std"] = float(finite.std()) if finite.size else math.nan
            values = np.percentile(finite, self.percentiles) if finite.size else [math.nan] * len(self.percentiles)
            record.update({f"p{q:g}": float(v) for q, v in zip(self.percentiles, values)})
            record["hist"] = _histogram(y, self.bins)
            if kind == "Sigmoid":
                record["saturated"] = float(np.mean((y < self.saturation) | (y > 1 - self.saturation)))
            elif kind == "Tanh":
                record["saturated"] = float(np.mean(np.abs(y) > 1 - self.saturation))
            if name in self._active_units:
                record["dead"] = float(1.0 - self._active_units[name].mean())
        if name in self._gradients:
            g = np.concatenate(self._gradients[name])
            record["grad_norm"] = float(np.sqrt(np.sum(g * g)))
            with np.errstate(divide="ignore"):
                record["grad_hist"] = _histogram(np.log10(np.abs(g)), self.bins)
        return record

    def _parameter_record(self, name: str) -> dict:
        parameter = self.parameters[name]
        grad_sq = self._parameter_grad_sq.get(name)
        record = {"grad_norm": math.sqrt(grad_sq) if grad_sq is not None else math.nan,
                  "norm": math.nan, "update_ratio": math.nan}
        if self._weights_before is not None:
            before = self._weights_before[name].astype(np.float64)
            norm = float(np.linalg.norm(before))
            record["norm"] = norm
            change = float(np.linalg.norm(parameter._data.astype(np.float64) - before))
            record["update_ratio"] = change / norm if norm > 0 else (math.inf if change > 0 else 0.0)
        return record

    # ---------------------------------------------------------------- reading
    @property
    def steps(self) -> np.ndarray:
        """The step index (count of ``step()`` calls before it) of every recorded step."""
        return np.array([record["step"] for record in self.history], dtype=np.int64)

    def series(self, name: str, key: str) -> np.ndarray:
        """``key`` of layer (or parameter) ``name`` over the recorded steps; NaN where it was not measured.

        >>> # monitor.series("0", "grad_norm"), monitor.series("0.weight", "update_ratio")
        """
        if name not in self.layers and name not in self.parameters:
            raise ValueError(f"GradientMonitor.series: no layer or parameter named {name!r}")
        group = "layers" if name in self.layers else "parameters"
        values = [record[group].get(name, {}).get(key, math.nan) for record in self.history]
        return np.array([v if isinstance(v, (int, float)) else math.nan for v in values], dtype=np.float64)

    def _recent(self, window: int | None) -> list[dict]:
        window = len(self.history) if window is None else max(1, int(window))
        return self.history[-window:]

    def flags(self, window: int | None = 10) -> list[tuple[str, str, str]]:
        """(name, kind, message) for every problem seen, averaged over the last ``window`` recorded steps.

        kind is one of ``vanishing``, ``exploding``, ``dead``, ``saturated``,
        ``update_small``, ``update_large``.
        """
        recent = self._recent(window)
        if not recent:
            return []
        found = []

        def average(group, name, key):
            values = [r[group][name][key] for r in recent if name in r[group] and key in r[group][name]]
            return float(np.mean(values)) if values else None

        grad_norms = {name: average("layers", name, "grad_norm") for name in self.layers}
        grad_norms = {name: value for name, value in grad_norms.items() if value is not None}
        finite = [v for v in grad_norms.values() if math.isfinite(v)]
        largest = max(finite) if finite else None
        threshold = self.thresholds
        for name, norm in grad_norms.items():
            label = f"layer '{name}' ({type(self.layers[name]).__name__})"
            if not math.isfinite(norm) or norm > threshold["exploding"]:
                found.append((name, "exploding", f"{label}: exploding gradient, output-gradient norm {norm:.3g} "
                                                  f"(above {threshold['exploding']:g} or not finite)"))
            elif largest and norm < threshold["vanishing"] * largest:
                found.append((name, "vanishing", f"{label}: vanishing gradient, output-gradient norm {norm:.3g} "
                                                  f"is {norm / largest:.1e} of the largest layer's ({largest:.3g})"))
        for name, module in self.layers.items():
            label = f"layer '{name}' ({type(module).__name__})"
            dead = average("layers", name, "dead")
            if dead is not None and dead > threshold["dead"]:
                found.append((name, "dead", f"{label}: dead, {dead:.0%} of its units output 0 for every sample"))
            saturated = average("layers", name, "saturated")
            if saturated is not None and saturated > threshold["saturated"]:
                found.append((name, "saturated", f"{label}: saturated, {saturated:.0%} of its outputs lie within "
                                                  f"{self.saturation:g} of an asymptote (derivative nearly 0)"))
        low, high = threshold["update_ratio"]
        for name in self.parameters:
            ratio = average("parameters", name, "update_ratio")
            if ratio is None or math.isnan(ratio):
                continue
            if ratio < low:
                found.append((name, "update_small", f"parameter '{name}': update/weight ratio {ratio:.2g} is below "
                                                    f"{low:g}: it barely learns (learning rate too low, or no "
                                                    "gradient)"))
            elif ratio > high:
                found.append((name, "update_large", f"parameter '{name}': update/weight ratio {ratio:.2g} is above "
                                                    f"{high:g}: the learning rate is likely too high"))
        return found

    def summary(self, window: int | None = 10) -> str:
        """A text report: a table per layer and the flags, in words, over the last ``window`` recorded steps."""
        recent = self._recent(window)
        lines = [f"GradientMonitor: {len(self.layers)} layers, {len(self.history)} steps recorded "
                 f"(every {self.every}), statistics over the last {len(recent)}"]
        if not recent:
            return lines[0] + "\nnothing recorded yet: call monitor.step() after each optimizer.step()"

        def cell(name, key, spec):
            values = [r["layers"][name][key] for r in recent if name in r["layers"] and key in r["layers"][name]]
            width = int(spec.split(".")[0])
            return format(float(np.mean(values)), spec) if values else "-".rjust(width)

        width = max(len(f"{n} ({type(m).__name__})") for n, m in self.layers.items())
        lines.append(f"{'layer':<{width}}  {'grad norm':>9}  {'mean':>8}  {'std':>8}  {'saturated':>9}  {'dead':>6}")
        for name, module in self.layers.items():
            lines.append(f"{name + ' (' + type(module).__name__ + ')':<{width}}  {cell(name, 'grad_norm', '9.2e')}  "
                         f"{cell(name, 'mean', '8.3f')}  {cell(name, 'std', '8.3f')}  "
                         f"{cell(name, 'saturated', '9.1%')}  {cell(name, 'dead', '6.1%')}")
        found = self.flags(window)
        lines.append("flags:" if found else "no vanishing, exploding, dead or saturated layer; update ratios in range")
        lines += [f"- {message}" for _, _, message in found]
        return "\n".join(lines)

    def plot(self, path) -> Path:
        """Draw the per-layer curves and the last step's histograms into a PNG at ``path``; return the path."""
        from normlab.diagnostics.plot import plot_monitor

        return plot_monitor(self, Path(path))
