"""normlab's global random generator: ``manual_seed`` makes init, dropout and shuffling repeatable."""
from __future__ import annotations

import numpy as np

_INITIAL_SEED = 0
_generator = np.random.default_rng(_INITIAL_SEED)
_seed = _INITIAL_SEED


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the global generator to ``seed`` and return it."""
    global _generator, _seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: expected an int seed, got {seed!r}")
    _seed = int(seed)
    _generator = np.random.default_rng(_seed)
    return _generator


def initial_seed() -> int:
    """The seed last passed to ``manual_seed`` (0 at start-up)."""
    return _seed


def default_generator() -> np.random.Generator:
    """The global ``np.random.Generator`` that normlab draws from."""
    return _generator
