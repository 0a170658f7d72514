import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Numba compiles on first call; that must not count against hypothesis' per-example deadline.
settings.register_profile(
    "normlab",
    deadline=None,
    max_examples=int(os.environ.get("NORMLAB_HYPOTHESIS_EXAMPLES", "30")),
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile("normlab")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed_normlab():
    import normlab

    normlab.manual_seed(0)
    yield
