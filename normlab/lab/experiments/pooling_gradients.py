"""pooling-gradients: where max, average and min pooling send each output's gradient.

Backward of a pooling layer is a routing: dL/dx_i = sum_o dL/dy_o * dy_o/dx_i.
For max (min) pooling dy_o/dx_i is 1 at the window's maximum (minimum; the
first one on a tie, PyTorch's rule) and 0 elsewhere, so each output's gradient
goes whole to one input; for average pooling it is 1/k^2 over the k x k
window. Two consequences: where windows overlap, an input collects the
gradients of every window it wins (max/min) or belongs to (average); and
without padding every output passes on exactly the gradient it received,
so the sum of dL/dx equals the sum of dL/dy. With non-overlapping 2x2
windows and an upstream gradient of multiples of 1/4 every sum is exact in
float64, so the check is equality, not closeness. Average pooling with zero
padding counted in the divisor (``count_include_pad=True``) sends part of
the gradient into the padding: the sum is not conserved.

The pictures come from ``normlab.ops.pooling.routing`` (the routing built
from the window geometry and the recorded winners); every routing is checked
against the autograd backward and against an independent NumPy argmax.
"""
from __future__ import annotations

import numpy as np

import normlab
import normlab.nn.functional as F
from normlab.data import load_digits
from normlab.lab.experiment import Check, Experiment, register
from normlab.lab.figures import pyplot, save
from normlab.ops.pooling import routing

KINDS = ("max", "avg", "min")
LABELS = {"max": "max pooling", "avg": "average pooling", "min": "min pooling"}
FUNCTIONS = {"max": F.max_pool2d, "avg": F.avg_pool2d, "min": F.min_pool2d}
CONFIGS = {"2x2, stride 2": {"kernel_size": 2, "stride": 2}, "3x3, stride 1": {"kernel_size": 3, "stride": 1}}
PADDED = {"kernel_size": 3, "stride": 2, "padding": 1}  # for the leak of count_include_pad


def digit_image(seed: int) -> np.ndarray:
    """An 8x8 handwritten digit (scikit-learn's digits, pixels 0..16 as float64): image number ``seed``."""
    data = load_digits()
    return np.asarray(data.x_train[seed % len(data.x_train)], dtype=np.float64).reshape(8, 8) * 16.0


def dyadic_upstream(shape, rng: np.random.Generator) -> np.ndarray:
    """A random upstream gradient of integers in [-8, 8] (nonzero): every 1/4 of it is exact in float64."""
    values = rng.integers(1, 9, size=shape) * rng.choice([-1, 1], size=shape)
    return values.astype(np.float64)


def autograd_input_gradient(kind: str, image: np.ndarray, dy: np.ndarray, **config) -> np.ndarray:
    """dL/dx from normlab's autograd backward of the pooling op on (1, 1, H, W)."""
    x = normlab.tensor(image[None, None], requires_grad=True)
    FUNCTIONS[kind](x, **config).backward(dy[None, None])
    return np.asarray(x.grad)[0, 0]


def window_winners(image: np.ndarray, kind: str, k: int) -> np.ndarray:
    """For non-overlapping k x k windows: the flat index of each window's first max (min), by plain NumPy."""
    h, w = image.shape[0] // k, image.shape[1] // k
    winners = np.empty((h, w), dtype=np.int64)
    for i in range(h):
        for j in range(w):
            window = image[i * k:(i + 1) * k, j * k:(j + 1) * k]
            local = np.argmax(window) if kind == "max" else np.argmin(window)
            winners[i, j] = (i * k + local // k) * image.shape[1] + j * k + local % k
    return winners


@register
class PoolingGradients(Experiment):
    id = "pooling-gradients"
    order = 90
    title = "How pooling layers backpropagate"
    claim = ("Max (min) pooling passes each output's gradient whole to the window's maximum (minimum) and nothing to "
             "the other inputs; average pooling spreads it evenly over the window; where windows overlap an input "
             "accumulates the gradients of every window that routes to it; without padding the sum of the "
             "gradient is conserved.")
    anchor = ("The backward rule of max pooling (Scherer, Mueller & Behnke 2010; PyTorch's max_pool2d backward: "
              "the first maximum of a tied window takes the gradient) and of average pooling (LeCun et al. 1998's "
              "subsampling layers).")
    method = (
        "An 8x8 handwritten digit (scikit-learn's digits, pixels 0..16; a different image per seed) pooled by "
        "`max_pool2d`, `avg_pool2d` and normlab's `min_pool2d` with non-overlapping 2x2 windows (stride 2) and "
        "overlapping 3x3 windows (stride 1). The routing weights d y_o / d x_i come from "
        "`normlab.ops.pooling.routing`; the figures show, for an upstream gradient of ones, how much gradient "
        "each pixel receives. Checks: every max/min output routes weight 1 to exactly one pixel, the one NumPy's "
        "argmax/argmin (first on ties) picks in its window; every average output routes 1/4 to each of its 4 "
        "pixels; the routing applied to a random upstream gradient equals normlab's autograd backward (exactly, "
        "except for the rounded ninths of 3x3 average pooling); "
        "with overlapping windows some pixel collects several outputs' gradients; and with non-overlapping "
        "windows and an upstream gradient of integers in [-8, 8] the input gradient's sum equals the upstream "
        "sum exactly (every partial sum is a multiple of 1/4, exact in float64). Reported, not judged: the sum "
        "gap of overlapping windows and of 3x3/stride-2 average pooling with one pixel of zero padding counted "
        "in the divisor.")
    checks = (
        Check("extremum-routes-to-one-winner",
              "every max (min) pooling output sends its whole gradient to exactly one input, the first maximum "
              "(minimum) of its window found by NumPy",
              lambda e: e["max_routing_errors"] == 0 and e["min_routing_errors"] == 0),
        Check("average-spreads-evenly",
              "every average pooling output sends 1/4 of its gradient to each of the 4 inputs of its 2x2 window",
              lambda e: e["avg_routing_error"] == 0),
        Check("routing-is-the-backward",
              "the routing applied to a random upstream gradient equals the autograd backward exactly for max and "
              "min pooling and for 2x2 average pooling, and to 1e-12 (relative) for 3x3 average pooling, whose "
              "shares of 1/9 are rounded",
              lambda e: e["routing_vs_backward"] == 0 and e["routing_vs_backward_ninths"] <= 1e-12),
        Check("overlap-accumulates",
              "with overlapping 3x3 windows (stride 1) some input collects the gradient of more than one output "
              "for every kind",
              lambda e: min(e["max_routes_overlap"], e["min_routes_overlap"], e["avg_routes_overlap"]) > 1),
        Check("sum-conserved",
              "with non-overlapping windows, sum(dL/dx) equals sum(dL/dy) exactly for max, average and min pooling",
              lambda e: e["sum_gap_max"] == 0 and e["sum_gap_avg"] == 0 and e["sum_gap_min"] == 0),
    )
    quick = {"image_size": 8}
    full = {"image_size": 8}
    quick_seeds = 1
    seconds = {"quick": 0.5, "full": 0.5}

    def run_task(self, task, size, progress):
        seed = task["seed"]
        rng = np.random.default_rng(seed)
        image = digit_image(seed)
        effect, maps = {}, {}
        exact_gap, rounded_gap = 0.0, 0.0
        for kind in KINDS:
            for label, config in CONFIGS.items():
                r = routing(kind, image, **config)
                dy = dyadic_upstream(r.output.shape, rng)
                routed, backward = r.input_gradient(dy), autograd_input_gradient(kind, image, dy, **config)
                gap = float(np.max(np.abs(routed - backward)))
                if kind == "avg" and config["kernel_size"] == 3:
                    # shares of 1/9 are rounded, and the routing sums them in another order than the kernel
                    rounded_gap = max(rounded_gap, gap / float(np.max(np.abs(backward))))
                else:
                    exact_gap = max(exact_gap, gap)
                maps[f"{kind}|{label}"] = r.input_gradient(np.ones(r.output.shape)).tolist()
            flat = routing(kind, image, 2, 2).weights.reshape(-1, image.size)   # (outputs, inputs)
            if kind == "avg":
                windows = np.array([[(i // 2) * 4 + (j // 2) for j in range(8)] for i in range(8)]).ravel()
                expected = (windows[None, :] == np.arange(16)[:, None]) * 0.25
                effect["avg_routing_error"] = float(np.max(np.abs(flat - expected)))
            else:
                winners = window_winners(image, kind, 2).ravel()
                one_hot = np.zeros_like(flat)
                one_hot[np.arange(len(winners)), winners] = 1.0
                effect[f"{kind}_routing_errors"] = int(np.sum(np.any(flat != one_hot, axis=1)))
            overlap = routing(kind, image, 3, 1).weights.reshape(-1, image.size)
            effect[f"{kind}_routes_overlap"] = int(np.max(np.count_nonzero(overlap, axis=0)))
            dy = dyadic_upstream((4, 4), rng)
            effect[f"sum_gap_{kind}"] = float(np.sum(autograd_input_gradient(kind, image, dy, kernel_size=2))
                                              - np.sum(dy))
            dy_overlap = rng.standard_normal((6, 6))
            effect[f"sum_gap_overlap_{kind}"] = float(np.sum(autograd_input_gradient(
                kind, image, dy_overlap, kernel_size=3, stride=1)) - np.sum(dy_overlap))
        padded = routing("avg", image, **PADDED)
        dy = np.ones(padded.output.shape)   # all positive: the gap is what leaks into the padding
        effect["sum_gap_avg_padded"] = float(np.sum(padded.input_gradient(dy)) - np.sum(dy))
        effect["routing_vs_backward"] = exact_gap
        effect["routing_vs_backward_ninths"] = rounded_gap
        progress(1.0)
        return {"effect": effect, "image": image.tolist(), "maps": maps}

    def measurement(self, e):
        return (f"max/min outputs routed to a wrong or second pixel: {e['max_routing_errors']:.0f}/"
                f"{e['min_routing_errors']:.0f}; routing vs backward {e['routing_vs_backward']:.1g}; overlapping "
                f"3x3 windows: a pixel collects up to {e['max_routes_overlap']:.0f} (max), "
                f"{e['avg_routes_overlap']:.0f} (average) outputs; gradient sum gap (non-overlapping) "
                f"{e['sum_gap_max']:.1g}/{e['sum_gap_avg']:.1g}/{e['sum_gap_min']:.1g} (max/avg/min)")

    def discussion(self, e, size):
        return (
            f"With non-overlapping 2x2 windows each max or min output's gradient lands on one pixel (outputs "
            f"routed elsewhere: {e['max_routing_errors']:.0f} for max, {e['min_routing_errors']:.0f} for min) and "
            f"each average output's spreads as 1/4 per pixel (largest deviation {e['avg_routing_error']:.1g}); the "
            f"routing equals the autograd backward (largest difference {e['routing_vs_backward']:.1g}; "
            f"{e['routing_vs_backward_ninths']:.1g} relative for the rounded ninths of 3x3 average pooling). The "
            f"gradient's sum is "
            f"conserved exactly (gaps {e['sum_gap_max']:.1g}, {e['sum_gap_avg']:.1g}, {e['sum_gap_min']:.1g}).\n\n"
            f"With 3x3 windows at stride 1 a pixel that is the maximum of several windows collects all their "
            f"gradients (up to {e['max_routes_overlap']:.0f} here, {e['min_routes_overlap']:.0f} for the minimum), "
            f"while most pixels get nothing; average pooling gives every pixel up to "
            f"{e['avg_routes_overlap']:.0f} shares of 1/9. The sum is still conserved without padding (gap "
            f"{e['sum_gap_overlap_max']:.1g} for max, {e['sum_gap_overlap_avg']:.1g} for average after rounding "
            f"the ninths), but average pooling with one pixel of zero padding counted in the divisor loses "
            f"{-e['sum_gap_avg_padded']:.3g} of the upstream gradient's sum into the padding.")

    def figures(self, tasks, results, effect, size, folder):
        plt = pyplot()
        first = results[0]
        image = np.array(first["image"])
        figure, axes = plt.subplots(len(KINDS), 1 + len(CONFIGS), figsize=(3.2 * (1 + len(CONFIGS)), 3.0 * len(KINDS)))
        for row, kind in enumerate(KINDS):
            axes[row, 0].imshow(image, cmap="gray_r")
            axes[row, 0].set_title("input (8x8 digit)" if row == 0 else "")
            axes[row, 0].set_ylabel(LABELS[kind], fontsize=11)
            for column, label in enumerate(CONFIGS, start=1):
                heat = np.array(first["maps"][f"{kind}|{label}"])
                axis = axes[row, column]
                shown = axis.imshow(heat, cmap="magma", vmin=0)
                for (i, j), value in np.ndenumerate(heat):
                    if value:
                        axis.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=6,
                                  color="white" if value < heat.max() / 2 else "black")
                axis.set_title(f"gradient received, {label}")
                figure.colorbar(shown, ax=axis, fraction=0.046)
        for axis in axes.ravel():
            axis.set_xticks([])
            axis.set_yticks([])
        save(figure, folder / "routing.png")
        return [("routing.png",
                 "Where each pooled output's gradient goes, for an upstream gradient of ones on the first seed's "
                 "digit: every pixel shows the total gradient it receives. Non-overlapping 2x2 windows (middle): "
                 "max and min pooling give 1 to one pixel per window, average pooling 1/4 to all four. Overlapping "
                 "3x3 windows at stride 1 (right): a pixel that wins several windows collects all their gradients; "
                 "average pooling gives every pixel one share of 1/9 per window that contains it.")]
