"""Normalization speed: normlab vs PyTorch CPU at the same thread count, and vs the memory-bandwidth floor.

``normlab bench`` restricted to the normalization layers (BatchNorm1d/2d,
GroupNorm, InstanceNorm2d, LayerNorm, RMSNorm at shapes covering every
layout); the shapes and the bytes each layer must move are in
``normlab/bench/cases.py``, the timing in ``normlab/bench/runner.py``.
Options are ``normlab bench``'s (a later ``--ops`` narrows the layers):

    python benchmarks/bench_normalization.py [--threads N] [--repeat 15] [--quick] [--clock wall|cpu]
                                             [--ops BatchNorm1d,LayerNorm] [--json PATH]
"""
import sys

from normlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--ops", "norm", *sys.argv[1:]]))
