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


def seed() -> int:
    """Seed the global generator from the operating system's entropy and return the seed (as torch.seed)."""
    new = int(np.random.SeedSequence().entropy % (1 << 63))
    manual_seed(new)
    return new


class Generator(np.random.Generator):
    """A random generator with torch.Generator's methods; it is a ``numpy.random.Generator`` too.

    Pass it as ``generator=`` to random factories, ``DataLoader`` or
    ``random_split``, as torch code does::

        generator = normlab.Generator().manual_seed(42)

    >>> g = Generator().manual_seed(42)
    >>> bool((g.random(3) == Generator().manual_seed(42).random(3)).all())
    True
    """

    def __init__(self, device="cpu") -> None:
        from normlab._device import check_device

        check_device(device, "normlab.Generator")
        self._initial_seed = int(np.random.SeedSequence().entropy % (1 << 63))
        super().__init__(np.random.PCG64(self._initial_seed))

    def manual_seed(self, seed: int) -> "Generator":
        """Restart the stream from ``seed``; returns the generator (so it chains, as torch's)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"Generator.manual_seed: expected an int seed, got {seed!r}")
        self._initial_seed = int(seed)
        self.bit_generator.state = np.random.PCG64(self._initial_seed).state
        return self

    def initial_seed(self) -> int:
        return self._initial_seed

    def seed(self) -> int:
        return self.manual_seed(int(np.random.SeedSequence().entropy % (1 << 63))).initial_seed()

    @property
    def device(self):
        from normlab._device import CPU
        return CPU
