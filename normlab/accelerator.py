"""``normlab.accelerator``: torch.accelerator's answers on a machine without one (normlab runs on the CPU).

>>> import normlab
>>> normlab.accelerator.is_available(), normlab.accelerator.current_accelerator()
(False, None)
"""
from __future__ import annotations

__all__ = ["is_available", "current_accelerator", "device_count"]


def is_available() -> bool:
    return False


def current_accelerator(check_available: bool = False):
    """None: there is no accelerator."""
    return None


def device_count() -> int:
    return 0
