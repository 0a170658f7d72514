"""``DataParallel``: torch's single-process data parallelism, which on a CPU-only machine runs the module as is.

torch splits a batch across GPUs and gathers the outputs; without GPUs its
``DataParallel`` ignores ``device_ids``, keeps an empty list, and its forward
simply calls the module. normlab has no GPUs, so this is exactly what it
does: scripts that wrap their model in ``nn.DataParallel`` run unchanged and
their checkpoints keep torch's ``module.``-prefixed keys.

>>> import normlab, normlab.nn as nn
>>> model = nn.DataParallel(nn.Linear(3, 2))
>>> list(model.state_dict())
['module.weight', 'module.bias']
>>> model(normlab.randn(4, 3)).shape
(4, 2)
"""
from __future__ import annotations

from normlab.nn.modules.module import Module

__all__ = ["DataParallel"]


class DataParallel(Module):
    """Wraps ``module``; calling it calls ``module`` (no GPUs to spread the batch over, as torch without CUDA).

    Args:
        module: the module to wrap (``self.module``).
        device_ids, output_device: accepted and ignored, as torch does when no GPU is available.
        dim: the batch dimension (nothing is split).
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: expected a normlab Module to wrap, got {type(module).__name__}")
        self.module = module
        self.device_ids: list = []
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)
