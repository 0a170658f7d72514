"""Speed of normlab's layers against PyTorch CPU and the memory-bandwidth floor: ``normlab bench``.

    normlab bench [--threads N] [--ops NAME,...] [--json PATH] [--quick] [--repeat R] [--clock wall|cpu] [--cold]

Modules:

- ``timing``: timers, interleaved medians, the copy bandwidth (the floor),
  one subprocess per thread count -- shared with the scripts in ``benchmarks/``;
- ``cases``: the layers and shapes timed (every layout of the kernels);
- ``cnn``: one training step of a small CNN and its peak memory;
- ``compile_latency``: Numba compilations per kernel, ``normlab train`` cold vs warm;
- ``runner``: runs them and formats the tables (``run``, ``format_report``).

The package imports none of them (``python -m normlab.bench.cnn`` and
``python -m normlab.bench.compile_latency`` run as child processes).

>>> from normlab.bench.runner import run, format_report
>>> document = run(ops=["BatchNorm1d"], quick=True)     # doctest: +SKIP
>>> print(format_report(document))                      # doctest: +SKIP
"""
