"""``normlab.backends.mps``: Apple's GPU backend is not available (normlab computes on the CPU)."""


def is_available() -> bool:
    return False


def is_built() -> bool:
    return False
