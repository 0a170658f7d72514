"""Gradient clipping and parameter <-> vector helpers, with torch.nn.utils' names and semantics.

Clipping is the classic remedy for *exploding* gradients, the mirror image of
the vanishing gradients that normalization fights (Pascanu et al., 2013,
"On the difficulty of training recurrent neural networks", arXiv:1211.5063):
rescale every gradient by one common factor when their joint norm exceeds
``max_norm``, so the update keeps its direction but not its size.

>>> import normlab, normlab.nn as nn
>>> model = nn.Linear(4, 2)
>>> model(normlab.randn(8, 4)).sum().backward()
>>> total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.1)
>>> float(total) > 0
True
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from normlab.autograd.tensor import Tensor, get_default_dtype

__all__ = [
    "clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_",
    "parameters_to_vector", "vector_to_parameters",
]


def _tensors(name: str, parameters) -> list[Tensor]:
    """A single Tensor or an iterable of Tensors as a list (generators are consumed once)."""
    if isinstance(parameters, Tensor):
        return [parameters]
    if isinstance(parameters, np.ndarray):
        raise TypeError(f"{name}: expected a Tensor or an iterable of Tensors, got an ndarray")
    parameters = list(parameters)
    for p in parameters:
        if not isinstance(p, Tensor):
            raise TypeError(f"{name}: expected a Tensor or an iterable of Tensors, got an element of type {type(p).__name__}")
    return parameters


def _norm_type(name: str, norm_type) -> float:
    """torch accepts a number or the string 'inf'."""
    if isinstance(norm_type, bool):
        raise TypeError(f"{name}: expected norm_type to be a number or 'inf', got {norm_type!r}")
    try:
        value = float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected norm_type to be a number or 'inf', got {norm_type!r}") from None
    if math.isnan(value):
        raise ValueError(f"{name}: expected norm_type to be a number or 'inf', got nan")
    return value


def _nonnegative(name: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) and not (
            isinstance(value, (np.ndarray, Tensor)) and np.size(value) == 1):
        raise TypeError(f"{name}: expected {arg} to be a real number, got {value!r}")
    value = float(np.asarray(value._data if isinstance(value, Tensor) else value).reshape(()))
    # torch does not check: a negative max_norm would flip every gradient, a negative clip_value zero them.
    if not value >= 0:
        raise ValueError(f"{name}: expected {arg} >= 0, got {value!r}")
    return value


def _vector_norm(values: np.ndarray, norm_type: float) -> float:
    """||values||_p as a Python float (accumulated in float64), torch.linalg.vector_norm's conventions."""
    a = np.abs(values.astype(np.float64, copy=False).ravel())
    if norm_type == math.inf:
        return float(a.max()) if a.size else 0.0
    if norm_type == -math.inf:
        return float(a.min()) if a.size else math.inf
    if norm_type == 0:
        return float(np.count_nonzero(a))  # the "0-norm" counts the nonzero entries
    if norm_type == 1:
        return float(a.sum())
    if norm_type == 2:
        return float(np.sqrt(np.dot(a, a)))
    with np.errstate(divide="ignore", over="ignore"):
        return float(np.sum(a ** norm_type) ** (1.0 / norm_type))


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """The norm of the concatenation of ``tensors`` (Tensors' data or arrays), as a 0-d Tensor.

    Computed like torch: the norm of the vector of per-tensor norms. Its dtype is
    the tensors' (float64 when they mix dtypes), the default dtype when there are none.
    """
    name = "get_total_norm"
    norm_type = _norm_type(name, norm_type)
    arrays = [t._data if isinstance(t, Tensor) else np.asarray(t)
              for t in ([tensors] if isinstance(tensors, (Tensor, np.ndarray)) else list(tensors))]
    if not arrays:
        return Tensor(np.asarray(0.0, dtype=get_default_dtype()))
    dtype = np.result_type(*arrays)
    if dtype.kind != "f":
        raise TypeError(f"{name}: expected floating-point gradients, got dtype {dtype}")
    per_tensor = np.array([_vector_norm(a, norm_type) for a in arrays])
    # Each per-tensor norm is rounded to the gradients' dtype before the total, as torch's are.
    total = dtype.type(_vector_norm(per_tensor.astype(dtype), norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            f"clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            f"`error_if_nonfinite=False`"
        )
    return Tensor(np.asarray(total, dtype=dtype))


def clip_grads_with_norm_(parameters, max_norm: float, total_norm, foreach=None) -> None:
    """Scale every gradient by min(max_norm / (total_norm + 1e-6), 1), in place."""
    name = "clip_grads_with_norm_"
    max_norm = _nonnegative(name, "max_norm", max_norm)
    grads = [p.grad for p in _tensors(name, parameters) if p.grad is not None]
    if not grads:
        return
    total = np.asarray(total_norm._data if isinstance(total_norm, Tensor) else total_norm)
    dtype = total.dtype if total.dtype.kind == "f" else np.dtype(np.float64)
    total = dtype.type(total.reshape(()))
    # torch's formula, in the norm's dtype; np.minimum keeps a NaN coefficient NaN (as torch.clamp).
    clip_coef = dtype.type(max_norm) / (total + dtype.type(1e-6))
    clip_coef_clamped = np.minimum(clip_coef, dtype.type(1.0))
    # An infinite total gives a coefficient of 0 and inf * 0 = NaN, exactly as in torch: no warning.
    with np.errstate(invalid="ignore"):
        for g in grads:
            g._data *= g.dtype.type(clip_coef_clamped)
            g._bump_version()


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Rescale the gradients so that their joint ``norm_type``-norm is at most ``max_norm``; returns the norm before.

    Same as ``torch.nn.utils.clip_grad_norm_``: total = ||(||g_1||, ..., ||g_k||)||_p,
    every g_i *= min(max_norm / (total + 1e-6), 1). ``norm_type`` may be ``inf``
    (largest |g|). Parameters whose grad is None are ignored. With
    ``error_if_nonfinite=True`` a NaN or infinite total raises RuntimeError and no
    gradient changes. ``foreach`` is accepted for torch compatibility and ignored.

    Returns the total norm as a 0-d Tensor (the gradients' dtype).

    >>> import numpy as np, normlab, normlab.nn as nn
    >>> w = normlab.tensor(np.zeros(2), requires_grad=True)
    >>> w.grad = np.array([3.0, 4.0])
    >>> nn.utils.clip_grad_norm_(w, max_norm=1.0).item()
    5.0
    >>> w.grad
    tensor([0.6000, 0.8000], dtype=float64)
    """
    name = "clip_grad_norm_"
    params = _tensors(name, parameters)
    max_norm = _nonnegative(name, "max_norm", max_norm)
    norm_type = _norm_type(name, norm_type)
    if not isinstance(error_if_nonfinite, (bool, np.bool_)):
        raise TypeError(f"{name}: expected error_if_nonfinite to be a bool, got {error_if_nonfinite!r}")
    grads = [p.grad for p in params if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, bool(error_if_nonfinite))
    clip_grads_with_norm_(params, max_norm, total_norm)
    return total_norm


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient into [-clip_value, clip_value] in place (``torch.nn.utils.clip_grad_value_``).

    >>> import numpy as np, normlab, normlab.nn as nn
    >>> w = normlab.tensor(np.zeros(3), requires_grad=True)
    >>> w.grad = np.array([-2.0, 0.5, 3.0])
    >>> nn.utils.clip_grad_value_(w, 1.0); w.grad
    tensor([-1.0000,  0.5000,  1.0000], dtype=float64)
    """
    name = "clip_grad_value_"
    params = _tensors(name, parameters)
    clip_value = _nonnegative(name, "clip_value", clip_value)
    for p in params:
        if p.grad is not None:
            g = p.grad
            np.clip(g._data, g.dtype.type(-clip_value), g.dtype.type(clip_value), out=g._data)
            g._bump_version()


def parameters_to_vector(parameters) -> Tensor:
    """All parameters flattened and concatenated into one 1-D Tensor (a copy)."""
    params = _tensors("parameters_to_vector", parameters)
    if not params:
        return Tensor(np.zeros(0, dtype=get_default_dtype()))
    return Tensor(np.concatenate([p._data.ravel() for p in params]))


def vector_to_parameters(vec, parameters) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in place (the inverse of the above)."""
    name = "vector_to_parameters"
    vector = vec._data if isinstance(vec, Tensor) else vec
    if not isinstance(vector, np.ndarray):
        raise TypeError(f"{name}: expected vec to be a Tensor or ndarray, got {type(vec).__name__}")
    if vector.ndim != 1:
        raise ValueError(f"{name}: expected a 1D vec, got shape {vector.shape}")
    params = _tensors(name, parameters)
    total = sum(p._data.size for p in params)
    if vector.size != total:
        raise ValueError(f"{name}: expected vec of size {total} (the parameters' total), got {vector.size}")
    offset = 0
    for p in params:
        n = p._data.size
        p._data[...] = vector[offset:offset + n].reshape(p.shape)
        p._bump_version()
        offset += n
