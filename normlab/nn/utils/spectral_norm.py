"""Spectral normalization (Miyato et al. 2018) as torch's ``nn.utils.spectral_norm``: W / sigma(W).

sigma(W) is W's largest singular value, estimated by power iteration with
vectors u and v kept between steps (buffers ``weight_u``, ``weight_v``; one
iteration per training forward is enough because W changes slowly). Dividing
by it makes the layer 1-Lipschitz, which steadies GAN discriminators and,
like the other normalizations here, keeps the scale of a layer's output from
drifting with its weights.

Gradient: u and v are constants of the power iteration (computed without a
graph), so sigma = u^T W v and d sigma / d W = u v^T; autograd builds the
rest of dW = (dW' - (sum(dW' * W') ) u v^T) / sigma, W' = W / sigma, from
Tensor operations -- no hand-written backward.

>>> import normlab, normlab.nn as nn
>>> layer = nn.utils.spectral_norm(nn.Linear(6, 4))
>>> sorted(layer.state_dict())
['bias', 'weight_orig', 'weight_u', 'weight_v']
>>> _ = [layer(normlab.randn(3, 6)) for _ in range(30)]   # power iterations while training
>>> s = float(np.linalg.svd(layer.weight.detach().numpy(), compute_uv=False)[0])
>>> round(s, 3)
1.0
"""
from __future__ import annotations

import numbers

import numpy as np

from normlab.autograd.grad_mode import no_grad
from normlab.nn.utils.weight_norm import _parameter_to_reparametrize, _restore

__all__ = ["spectral_norm", "remove_spectral_norm"]


def _unit(vector: np.ndarray, eps: float) -> np.ndarray:
    """vector / max(||vector||, eps), torch's F.normalize."""
    return vector / max(float(np.linalg.norm(vector)), eps)


class _SpectralNorm:
    """The forward pre-hook: one power iteration step in training, then ``module.<name> = W / sigma``."""

    def __init__(self, name: str, n_power_iterations: int, dim: int, eps: float) -> None:
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def as_matrix(self, weight):
        """W with ``dim`` first, flattened to (W.shape[dim], rest) (a Tensor or an array)."""
        if self.dim != 0:
            order = (self.dim, *[d for d in range(weight.ndim) if d != self.dim])
            weight = weight.permute(*order) if hasattr(weight, "permute") else weight.transpose(order)
        return weight.reshape(weight.shape[0], -1)

    def compute_weight(self, module, do_power_iteration: bool):
        weight = getattr(module, self.name + "_orig")
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        matrix = self.as_matrix(weight)
        if do_power_iteration and self.n_power_iterations > 0:
            m = self.as_matrix(weight._data)
            u_new, v_new = u._data, v._data
            for _ in range(self.n_power_iterations):
                v_new = _unit(m.T @ u_new, self.eps)
                u_new = _unit(m @ v_new, self.eps)
            with no_grad():  # the buffers change in place, as torch's (a module's state)
                u.copy_(u_new)
                v.copy_(v_new)
        # sigma = u^T W v with u, v constants (fresh copies: a later iteration must not change this graph)
        sigma = (u.detach().clone() * (matrix @ v.detach().clone())).sum()
        return weight / sigma

    def __call__(self, module, inputs) -> None:
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))


def spectral_norm(module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None):
    """Divide ``module.<name>`` by its spectral norm before every forward (one power iteration per training step).

    ``dim``: the output dimension (default 0; 1 for ConvTranspose layers, as
    torch). Parameter ``<name>_orig``; buffers ``<name>_u``, ``<name>_v``.
    Returns the module, changed in place.
    """
    from normlab.nn.modules.module import Parameter
    from normlab.random import default_generator

    weight = _parameter_to_reparametrize("spectral_norm", module, name, _SpectralNorm)
    if isinstance(n_power_iterations, bool) or not isinstance(n_power_iterations, numbers.Integral) \
            or n_power_iterations < 0:
        raise ValueError(f"spectral_norm: expected n_power_iterations >= 0, got {n_power_iterations!r}")
    if dim is None:
        dim = 1 if type(module).__name__.startswith("ConvTranspose") else 0
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not -weight.ndim <= dim < weight.ndim:
        raise ValueError(f"spectral_norm: expected dim in [{-weight.ndim}, {weight.ndim - 1}] for a "
                         f"{weight.ndim}-d {name!r}, got {dim!r}")
    hook = _SpectralNorm(name, int(n_power_iterations), int(dim) % weight.ndim, float(eps))
    matrix = hook.as_matrix(weight._data)
    rng = default_generator()
    u = _unit(rng.standard_normal(matrix.shape[0]).astype(weight.dtype), hook.eps)
    v = _unit(rng.standard_normal(matrix.shape[1]).astype(weight.dtype), hook.eps)
    del module._parameters[name]
    module.register_parameter(name + "_orig", weight if isinstance(weight, Parameter) else Parameter(weight))
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    setattr(module, name, weight.detach())
    module.register_forward_pre_hook(hook)
    return module


def remove_spectral_norm(module, name: str = "weight"):
    """Undo ``spectral_norm``: ``<name>`` becomes one Parameter again, W / sigma with the current u, v."""
    return _restore("remove_spectral_norm", module, name, _SpectralNorm,
                    lambda hook: hook.compute_weight(module, do_power_iteration=False),
                    (name + "_orig", name + "_u", name + "_v"))
