"""Weight normalization (Salimans & Kingma 2016) as torch's ``nn.utils.weight_norm``: w = g * v / ||v||.

The direction ``v`` and the length ``g`` of each output unit's weight vector
become the parameters (``weight_v``, ``weight_g``, torch's names), and the
weight is recomputed from them before every forward. Unlike BatchNorm it
depends on no batch statistics, so it suits recurrent nets, online learning
and batches of one; it decouples the length of a weight vector from its
direction, which is what BatchNorm does implicitly for the layer before it.

The gradient needs no hand-written backward: w is a product, a sum and a
square root of Tensors, so autograd gives dg = sum(dw * v) / ||v|| and
dv = (g / ||v||) (dw - (w . dw / g^2) w) -- the paper's Eq. 3.

>>> import normlab, normlab.nn as nn
>>> layer = nn.utils.weight_norm(nn.Linear(4, 3))
>>> sorted(name for name, _ in layer.named_parameters())
['bias', 'weight_g', 'weight_v']
>>> layer.weight_g.shape, layer(normlab.randn(2, 4)).shape
((3, 1), (2, 3))
"""
from __future__ import annotations

import numbers

from normlab.autograd.grad_mode import no_grad

__all__ = ["weight_norm", "remove_weight_norm"]


def _axes(ndim: int, dim: int) -> tuple[int, ...]:
    """The axes the norm runs over: all (dim -1, torch's 'whole tensor') or all but ``dim``."""
    if dim == -1:
        return tuple(range(ndim))
    return tuple(axis for axis in range(ndim) if axis != dim)


def _norm(v, dim: int):
    """||v|| over every axis except ``dim``, kept as size-1 axes (a 0-d tensor for dim -1)."""
    squares = (v * v).sum(dim=_axes(v.ndim, dim), keepdim=dim != -1)
    return squares.sqrt()


def _hook_for(module, hook_type: type, name: str):
    """(key, hook) of the ``hook_type`` forward pre-hook that reparametrizes ``name``, or (None, None)."""
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, hook_type) and hook.name == name:
            return key, hook
    return None, None


def _parameter_to_reparametrize(caller: str, module, name: str, hook_type: type):
    """``module``'s parameter ``name``, after checking it exists and carries no ``hook_type`` yet."""
    from normlab.nn.modules.module import Module

    if not isinstance(module, Module):
        raise TypeError(f"{caller}: expected a Module, got {type(module).__name__}")
    if _hook_for(module, hook_type, name)[1] is not None:
        raise RuntimeError(f"{caller}: cannot register two {caller} hooks on the same parameter {name!r}")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(f"{caller}: {type(module).__name__} has no parameter {name!r} "
                         f"(its parameters: {sorted(module._parameters)})")
    return weight


def _restore(caller: str, module, name: str, hook_type: type, compute, drop: tuple[str, ...]):
    """Remove the hook and the ``drop`` parameters/buffers; ``name`` becomes one Parameter equal to ``compute(hook)``."""
    from normlab.nn.modules.module import Parameter

    key, hook = _hook_for(module, hook_type, name)
    if hook is None:
        raise ValueError(f"{caller}: {caller.removeprefix('remove_')} of {name!r} not found in {type(module).__name__}")
    with no_grad():
        weight = compute(hook)
    del module._forward_pre_hooks[key]
    for attribute in drop:
        delattr(module, attribute)
    module.__dict__.pop(name, None)
    module.register_parameter(name, Parameter(weight.detach().numpy().copy()))
    return module


class _WeightNorm:
    """The forward pre-hook that rebuilds ``module.<name>`` from ``<name>_g`` and ``<name>_v``."""

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim = name, dim

    def compute_weight(self, module):
        g, v = getattr(module, self.name + "_g"), getattr(module, self.name + "_v")
        return v * (g / _norm(v, self.dim))

    def __call__(self, module, inputs) -> None:
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module, name: str = "weight", dim: int | None = 0):
    """Reparameterize ``module.<name>`` as g * v / ||v||, the norm over every dimension but ``dim``.

    ``dim=0`` (default): one length per output unit (row of a Linear weight,
    output channel of a Conv); ``dim=None`` (or -1, as in torch): one length
    for the whole tensor. Returns the module, changed in place, as torch.
    """
    from normlab.nn.modules.module import Parameter

    weight = _parameter_to_reparametrize("weight_norm", module, name, _WeightNorm)
    if dim is None:
        dim = -1
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not -1 <= dim < weight.ndim:
        raise ValueError(f"weight_norm: expected dim in [-1, {weight.ndim - 1}] or None for a {weight.ndim}-d "
                         f"{name!r}, got {dim!r}")
    hook = _WeightNorm(name, int(dim))
    with no_grad():
        g = _norm(weight.detach(), hook.dim)
    del module._parameters[name]
    module.register_parameter(name + "_g", Parameter(g.detach().numpy().copy()))
    module.register_parameter(name + "_v", Parameter(weight.detach().numpy().copy()))
    setattr(module, name, hook.compute_weight(module))
    module.register_forward_pre_hook(hook)
    return module


def remove_weight_norm(module, name: str = "weight"):
    """Undo ``weight_norm``: ``<name>`` becomes one Parameter again, equal to g * v / ||v||."""
    return _restore("remove_weight_norm", module, name, _WeightNorm, lambda hook: hook.compute_weight(module),
                    (name + "_g", name + "_v"))
