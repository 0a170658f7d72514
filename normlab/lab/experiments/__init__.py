"""The lab's experiments: one module per claim, each registering one ``Experiment`` (see ``normlab.lab``).

Modules here are imported by ``normlab.lab.list_experiments()`` (a package scan);
a module whose name starts with '_' is skipped.
"""
