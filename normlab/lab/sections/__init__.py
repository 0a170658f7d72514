"""Extra sections of the lab report, after the experiments: one module each, found by a package scan.

A module here defines ``@section(title, order)`` functions (see
``normlab.lab.report``); the reproduction notes sit last (order 1000).
"""
