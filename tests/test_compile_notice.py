"""A process that compiles normlab's kernels says so once on stderr; a warm cache prints nothing."""
from __future__ import annotations

import os
import subprocess
import sys

from normlab._numba_cache import COMPILING_MESSAGE

SCRIPT = """
import numpy as np
import numba
import normlab, normlab.nn as nn
x = normlab.tensor(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), requires_grad=True)
nn.BatchNorm1d(4)(x).sum().backward()               # two kernels: forward, then gradients
nn.LayerNorm(4)(x).sum().backward()                 # two more
numba.njit(lambda v: v + 1)(1)                      # a user's own kernel: never announced
print("done")
"""


def _run(cache_dir) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)


def test_a_cold_cache_prints_the_message_once_and_a_warm_one_nothing(tmp_path):
    cold = _run(tmp_path)
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout.strip() == "done"
    assert cold.stderr.count(COMPILING_MESSAGE) == 1, cold.stderr
    warm = _run(tmp_path)
    assert warm.returncode == 0, warm.stderr
    assert COMPILING_MESSAGE not in warm.stderr, warm.stderr
