"""``normlab.backends``: torch.backends' switches, accepted and inert (normlab computes on the CPU).

>>> import normlab
>>> normlab.backends.cudnn.deterministic = True   # as in torch reproducibility recipes; nothing else changes
>>> normlab.backends.cudnn.deterministic = False  # (back to the default)
>>> normlab.backends.mps.is_available()
False
"""
from normlab.backends import cudnn, mps  # noqa: F401

_deterministic = False


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Accepted and recorded for torch code; normlab's kernels are deterministic for a given thread count anyway."""
    global _deterministic
    _deterministic = bool(mode)


def are_deterministic_algorithms_enabled() -> bool:
    return _deterministic
