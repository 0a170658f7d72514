"""Figures for the diagnostics (and the lab): matplotlib without a display, one style.

``pyplot()`` returns ``matplotlib.pyplot`` set to the non-interactive Agg
backend (files only, no window, works on a server), ``save(figure, path)``
writes a PNG and closes the figure. matplotlib is in normlab's 'lab' extra.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["pyplot", "save", "plot_monitor"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, with a small clean style; ImportError says how to install it."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("figures need matplotlib, part of normlab's 'lab' extra: pip install 'normlab[lab]' "
                          f"({error})") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 9, "axes.titlesize": 10,
                         "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                         "axes.spines.right": False, "legend.fontsize": 8, "legend.frameon": False})
    return plt


def save(figure, path) -> Path:
    """Write ``figure`` as a PNG at ``path`` (folders created) and close it; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", bbox_inches="tight")
    pyplot().close(figure)
    return path


def _legend(axis, count: int, what: str) -> None:
    """A legend for a few lines; for many, a note on the colour order instead (a legend would hide the plot)."""
    if count <= 10:
        axis.legend()
    else:
        axis.text(0.01, 0.01, f"dark: first {what}, light: last", transform=axis.transAxes, fontsize=8)


def _ridgeline(axis, histograms: list, names: list, xlabel: str) -> None:
    """One normalized histogram per layer, stacked bottom (first layer) to top (last)."""
    for row, (hist, name) in enumerate(zip(histograms, names)):
        counts, edges = hist if hist else ([], [])
        if not counts:
            continue
        counts = np.asarray(counts, dtype=np.float64)
        centres = 0.5 * (np.asarray(edges[:-1]) + np.asarray(edges[1:]))
        height = 0.9 * counts / counts.max() if counts.max() > 0 else counts
        axis.fill_between(centres, row, row + height, alpha=0.6, step="mid")
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel(xlabel)
    axis.grid(False)


def plot_monitor(monitor, path: Path) -> Path:
    """The ``GradientMonitor.plot`` figure: six panels of per-layer curves and last-step histograms."""
    plt = pyplot()
    figure, axes = plt.subplots(2, 3, figsize=(15, 8))
    steps = monitor.steps
    names = list(monitor.layers)
    labels = [f"{n} {type(m).__name__}" for n, m in monitor.layers.items()]
    colours = plt.cm.viridis(np.linspace(0, 0.95, max(len(names), 1)))

    def curves(axis, key, title, log=False, names_=names, labels_=labels):
        drawn = False
        for name, label, colour in zip(names_, labels_, colours):
            values = monitor.series(name, key)
            if np.isfinite(values).any():
                axis.plot(steps, values, color=colour, label=label, lw=1)
                drawn = True
        if log and drawn:
            axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xlabel("step")
        return drawn

    if curves(axes[0, 0], "grad_norm", "output-gradient norm |dL/dy| per layer", log=True):
        _legend(axes[0, 0], len(names), "layer")
    parameter_names = list(monitor.parameters)
    colours_p = plt.cm.plasma(np.linspace(0, 0.9, max(len(parameter_names), 1)))
    for name, colour in zip(parameter_names, colours_p):
        values = monitor.series(name, "update_ratio")
        if np.isfinite(values).any() and (values[np.isfinite(values)] > 0).any():
            axes[0, 1].plot(steps, values, color=colour, lw=1, label=name)
    axes[0, 1].axhline(1e-3, color="grey", ls="--", lw=1)
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_title("update-to-data ratio |dw| / |w| per parameter (dashed: 1e-3)")
    axes[0, 1].set_xlabel("step")
    _legend(axes[0, 1], len(parameter_names), "parameter")
    drawn = curves(axes[0, 2], "saturated", "saturated (Sigmoid/Tanh) and dead (ReLU) fraction")
    drawn = curves(axes[0, 2], "dead", axes[0, 2].get_title()) or drawn
    if drawn:
        _legend(axes[0, 2], len(names), "layer")
        axes[0, 2].set_ylim(-0.02, 1.02)
    else:
        axes[0, 2].text(0.5, 0.5, "no Sigmoid, Tanh or ReLU layer watched", ha="center", va="center",
                        transform=axes[0, 2].transAxes)
    curves(axes[1, 0], "std", "activation std per layer")
    last = monitor.history[-1]["layers"] if monitor.history else {}
    _ridgeline(axes[1, 1], [last.get(n, {}).get("hist") for n in names], labels,
               "activation value (last recorded step)")
    _ridgeline(axes[1, 2], [last.get(n, {}).get("grad_hist") for n in names], labels,
               "log10 |dL/dy| (last recorded step)")
    figure.suptitle(f"GradientMonitor: {len(monitor.history)} recorded steps"
                    + ("" if not monitor.history else f", steps {steps[0]}..{steps[-1]}"))
    figure.tight_layout()
    return save(figure, path)

