"""L-BFGS (Liu & Nocedal, 1989) with an optional strong-Wolfe line search, as ``torch.optim.LBFGS``."""
from __future__ import annotations

import numbers
from collections import namedtuple

import numpy as np

from normlab._checks import check_positive_int
from normlab.autograd.grad_mode import enable_grad
from normlab.optim.optimizer import Optimizer, check_real

__all__ = ["LBFGS"]

#: One trial of the line search: step length t, loss f, flat gradient g and directional derivative g.d.
_Trial = namedtuple("_Trial", ["t", "f", "g", "gtd"])


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimizer of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2, clipped to ``bounds``.

    Nocedal & Wright (2006), eq. 3.59. With no real minimizer (d2^2 < 0) the
    middle of the bounds is returned.
    """
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if not d2_square >= 0:
        return (low + high) / 2.0
    d2 = np.sqrt(d2_square)
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, low), high)


def _strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step length t along ``d`` meeting the strong Wolfe conditions (Nocedal & Wright, Algorithms 3.5 and 3.6).

    ``evaluate(t) -> (loss, flat gradient)`` at the parameters moved by ``t d``.
    Sufficient decrease: f(t) <= f + c1 t g.d; curvature: |g(t).d| <= -c2 g.d.
    First t grows (cubic extrapolation) until a bracket holds an acceptable
    point, then the bracket shrinks by safeguarded cubic interpolation.
    Returns ``(loss, gradient, t, evaluations)``, the order torch uses.
    """
    d_norm = np.abs(d).max()
    start = _Trial(0, f, g.copy(), gtd)
    f_new, g_new = evaluate(t)
    evaluations = 1
    trial = _Trial(t, f_new, g_new, g_new.dot(d))
    previous = start
    done = False
    iteration = 0
    bracket = None
    while iteration < max_ls:
        if trial.f > f + c1 * trial.t * gtd or (iteration > 1 and trial.f >= previous.f):
            bracket = [previous, trial]  # sufficient decrease failed: the minimum lies between
            break
        if abs(trial.gtd) <= -c2 * gtd:
            bracket, done = [trial], True  # both conditions hold
            break
        if trial.gtd >= 0:
            bracket = [previous, trial]  # the slope turned: the minimum lies between
            break
        # Extrapolate: between 1.01 and 10 times the current step.
        t = _cubic_minimum(previous.t, previous.f, previous.gtd, trial.t, trial.f, trial.gtd,
                           bounds=(trial.t + 0.01 * (trial.t - previous.t), trial.t * 10))
        previous = trial
        f_new, g_new = evaluate(t)
        evaluations += 1
        trial = _Trial(t, f_new, g_new, g_new.dot(d))
        iteration += 1
    if iteration == max_ls:
        bracket = [_Trial(0, f, g, None), _Trial(trial.t, trial.f, trial.g, None)]

    # Zoom: shrink the bracket; `low` is its end with the lower loss.
    insufficient_progress = False
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    while not done and iteration < max_ls:
        if abs(bracket[1].t - bracket[0].t) * d_norm < tolerance_change:
            break
        t = _cubic_minimum(bracket[0].t, bracket[0].f, bracket[0].gtd, bracket[1].t, bracket[1].f, bracket[1].gtd)
        # Safeguard: a point too close to an end of the bracket twice in a row is moved 10% inside it.
        t_min, t_max = min(bracket[0].t, bracket[1].t), max(bracket[0].t, bracket[1].t)
        margin = 0.1 * (t_max - t_min)
        if min(t_max - t, t - t_min) < margin:
            if insufficient_progress or t >= t_max or t <= t_min:
                t = t_max - margin if abs(t - t_max) < abs(t - t_min) else t_min + margin
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = evaluate(t)
        evaluations += 1
        trial = _Trial(t, f_new, g_new, g_new.dot(d))
        iteration += 1
        if trial.f > f + c1 * t * gtd or trial.f >= bracket[low].f:
            bracket[high] = trial
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            if abs(trial.gtd) <= -c2 * gtd:
                done = True
            elif trial.gtd * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]  # keep the minimum between low and the new point
            bracket[low] = trial
    best = bracket[low]
    return best.f, best.g, best.t, evaluations


class LBFGS(Optimizer):
    """L-BFGS, iteration for iteration equal to ``torch.optim.LBFGS`` (Liu & Nocedal, 1989).

    A quasi-Newton method: the last ``history_size`` pairs (s = step, y =
    change of gradient) define an approximation of the inverse Hessian, applied
    to the gradient by the two-loop recursion (Nocedal & Wright, Algorithm 7.4).
    One ``step(closure)`` runs up to ``max_iter`` iterations and ``max_eval``
    evaluations of ``closure`` (which recomputes the loss and its gradients);
    ``line_search_fn="strong_wolfe"`` picks each step length by a line search,
    otherwise the step is ``lr`` (the first, ``lr * min(1, 1 / |g|_1)``).

    One parameter group only, as in torch. Its state (kept under the first
    parameter, torch's layout): ``func_evals``, ``n_iter``, ``d``, ``t``,
    ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``,
    ``prev_loss``, ``al``.

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Linear(3, 1, dtype="float64")
    >>> x, y = normlab.randn(16, 3, dtype="float64"), normlab.randn(16, 1, dtype="float64")
    >>> opt = normlab.optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe")
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = (model(x) - y).pow(2).mean()
    ...     loss.backward()
    ...     return loss
    >>> loss = opt.step(closure)
    """

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        if max_eval is None:
            max_eval = check_positive_int("LBFGS", "max_iter", max_iter) * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        self._params = self.param_groups[0]["params"]
        dtypes = {p.dtype for p in self._params}
        if len(dtypes) > 1:
            raise TypeError(f"LBFGS: expected all parameters to have one dtype, got {sorted(map(str, dtypes))}")

    def add_param_group(self, param_group: dict) -> None:
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    def _check_options(self, options: dict, group_index) -> None:
        check_real("LBFGS", "lr", options["lr"], group_index, minimum=0)
        check_positive_int("LBFGS", "max_iter", options["max_iter"])
        check_positive_int("LBFGS", "max_eval", options["max_eval"])
        check_positive_int("LBFGS", "history_size", options["history_size"])
        check_real("LBFGS", "tolerance_grad", options["tolerance_grad"], group_index)
        check_real("LBFGS", "tolerance_change", options["tolerance_change"], group_index)
        if options["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: expected line_search_fn to be None or 'strong_wolfe', "
                             f"got {options['line_search_fn']!r}")

    def _load_state_value(self, p, key, value, index):
        """A copy of one saved value: lists (the history) element by element, arrays copied, numbers kept."""
        if value is None or (isinstance(value, numbers.Number) and not isinstance(value, np.ndarray)):
            return value
        if isinstance(value, (list, tuple)):
            return [self._load_state_value(p, key, item, index) for item in value]
        array = super()._load_state_value(p, key, value, index)
        return array if array.ndim else array.dtype.type(array)  # 0-d values as NumPy scalars

    # ----------------------------------------------------- flat views of the parameters
    def _flat_grad(self) -> np.ndarray:
        return np.concatenate([np.zeros(p._data.size, dtype=p.dtype) if p.grad is None
                               else np.asarray(p.grad).reshape(-1) for p in self._params])

    def _move(self, step_size, direction: np.ndarray) -> None:
        """p <- p + step_size * direction (the flat direction cut into the parameters' shapes)."""
        offset = 0
        for p in self._params:
            p._data += step_size * direction[offset:offset + p._data.size].reshape(p.shape)
            p._bump_version()
            offset += p._data.size

    def _evaluate_along(self, closure, start: list, t, d):
        """Loss and flat gradient at ``start + t d``; the parameters are put back at ``start``."""
        self._move(t, d)
        with enable_grad():
            loss = float(closure())
        flat_grad = self._flat_grad()
        for p, value in zip(self._params, start):
            p._data[...] = value
            p._bump_version()
        return loss, flat_grad

    # -------------------------------------------------------------------- step
    def step(self, closure=None):
        """Run up to ``max_iter`` L-BFGS iterations; ``closure`` recomputes the loss and gradients (required)."""
        if closure is None:
            raise TypeError("LBFGS: step() needs a closure that clears the gradients, recomputes the loss, "
                            "calls backward() and returns the loss")
        group = self.param_groups[0]
        self._check_options(group, 0)
        lr, max_iter, max_eval = float(group["lr"]), group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size, line_search = group["history_size"], group["line_search_fn"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        with enable_grad():
            original_loss = closure()
        loss = float(original_loss)
        evaluations = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if np.abs(flat_grad).max() <= tolerance_grad:
            return original_loss  # already optimal

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")
        iteration = 0
        while iteration < max_iter:
            iteration += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:  # keep a pair only with positive curvature: the inverse Hessian stays positive definite
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)  # the initial inverse Hessian gamma I (N&W eq. 7.20)
                # Two-loop recursion: d = -H g.
                al = state.setdefault("al", [None] * history_size)
                q = -flat_grad
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q += (-al[i]) * old_dirs[i]
                d = r = q * H_diag
                for i in range(len(old_dirs)):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r += (al[i] - be_i) * old_stps[i]
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break  # not a descent direction any more

            if line_search is not None:
                start = [p._data.copy() for p in self._params]
                loss, flat_grad, t, used = _strong_wolfe(
                    lambda step: self._evaluate_along(closure, start, step, d), t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - evaluations)
                self._move(t, d)
                optimal = np.abs(flat_grad).max() <= tolerance_grad
            else:
                self._move(t, d)
                used = 0
                if iteration != max_iter:  # the last iteration's loss is not needed
                    with enable_grad():
                        loss = float(closure())
                    flat_grad = self._flat_grad()
                    optimal = np.abs(flat_grad).max() <= tolerance_grad
                    used = 1
            evaluations += used
            state["func_evals"] += used
            if (iteration == max_iter or evaluations >= max_eval or optimal
                    or np.abs(d * t).max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change):
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return original_loss
