"""Pooling speed: normlab vs PyTorch CPU at the same thread count, and vs the memory-bandwidth floor.

``normlab bench`` restricted to the pooling layers (Max/Avg/MinPool2d with
kernel 2 and (3, 2, 1) on (32, 64, 56, 56) and (128, 256, 7, 7), Max/AvgPool1d
on (64, 128, 1000)); the bytes each must move are in
``normlab/bench/cases.py``, the timing in ``normlab/bench/runner.py``.
Options are ``normlab bench``'s (a later ``--ops`` narrows the layers):

    python benchmarks/bench_pooling.py [--threads N] [--repeat 15] [--quick] [--clock wall|cpu]
                                       [--ops MaxPool2d] [--json PATH]
"""
import sys

from normlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--ops", "pool", *sys.argv[1:]]))
