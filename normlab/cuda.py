"""``normlab.cuda``: what torch.cuda answers on a machine without a GPU (normlab computes on the CPU).

The usual device selection runs unchanged and picks the CPU::

    device = normlab.device("cuda" if normlab.cuda.is_available() else "cpu")

>>> import normlab
>>> normlab.cuda.is_available(), normlab.cuda.device_count()
(False, 0)
"""
from __future__ import annotations

from normlab._device import cpu_only

__all__ = ["is_available", "device_count", "is_initialized", "manual_seed", "manual_seed_all", "empty_cache",
           "current_device", "synchronize"]


def is_available() -> bool:
    """False: normlab has no GPU backend."""
    return False


def device_count() -> int:
    return 0


def is_initialized() -> bool:
    return False


def manual_seed(seed: int) -> None:
    """Accepted and ignored, as torch does without a GPU (seed the CPU with ``normlab.manual_seed``)."""


def manual_seed_all(seed: int) -> None:
    """Accepted and ignored, as torch does without a GPU."""


def empty_cache() -> None:
    """Nothing to free: accepted and ignored, as torch does without a GPU."""


def current_device() -> int:
    raise cpu_only("normlab.cuda.current_device() has no GPU to name")


def synchronize(device=None) -> None:
    raise cpu_only("normlab.cuda.synchronize() has no GPU to wait for")
