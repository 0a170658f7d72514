"""Every docstring example in normlab runs and prints what it says (a README-level promise)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import normlab

MODULES = sorted(info.name for info in pkgutil.walk_packages(normlab.__path__, "normlab.")
                 if not info.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_of(name):
    module = importlib.import_module(name)
    normlab.manual_seed(0)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring example(s) failed"


def test_the_walk_finds_the_package():
    assert "normlab.autograd.tensor" in MODULES and "normlab.ops.normalization" in MODULES
