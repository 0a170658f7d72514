"""Figure helpers shared by the experiments: one colour per model variant, curves with a band over seeds."""
from __future__ import annotations

import numpy as np

from normlab.diagnostics.plot import pyplot, save

__all__ = ["pyplot", "save", "COLOURS", "colour", "mean_band"]

#: One colour per variant name, so the same model looks the same in every figure.
COLOURS = {"none": "#7f7f7f", "batch": "#1f77b4", "noisy": "#9467bd", "group": "#2ca02c", "layer": "#ff7f0e",
           "instance": "#8c564b", "renorm": "#d62728", "logistic": "#7f7f7f", "mlp": "#ff7f0e", "cnn": "#1f77b4",
           "gru": "#2ca02c"}


def colour(name: str) -> str:
    return COLOURS.get(name, "#17becf")


def mean_band(axis, x, curves, label: str, colour_: str, **style) -> None:
    """Plot the mean of ``curves`` (seeds x points) over ``x`` with a band from the lowest to the highest seed."""
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim == 1:
        curves = curves[None, :]
    axis.plot(x, np.nanmean(curves, axis=0), color=colour_, label=label, **style)
    if len(curves) > 1:
        axis.fill_between(x, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), color=colour_, alpha=0.15, lw=0)
