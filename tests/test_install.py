"""normlab installed where nothing can be written still imports and runs (issue: read-only installs)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import normlab

PACKAGE = Path(normlab.__file__).resolve().parent

SCRIPT = """
import os
import numpy as np
import normlab, normlab.nn.functional as F
assert normlab.__file__.startswith({site!r}), normlab.__file__
y = F.gelu(np.linspace(-3, 3, 7))          # compiles (and caches) a Numba kernel
print(os.environ.get("NUMBA_CACHE_DIR"))
"""


def _read_only_copy(tmp_path: Path) -> Path:
    """A copy of the package whose every cache place is blocked, as in a read-only install.

    The test may run as root, for whom permission bits do not stop writes; so
    a plain file stands where each ``__pycache__`` directory would go, which
    stops Numba's in-tree cache (and Python's) for any user.
    """
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "normlab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for directory in [site / "normlab", *(p for p in (site / "normlab").rglob("*") if p.is_dir())]:
        (directory / "__pycache__").write_text("")
    for path in site.rglob("*"):
        path.chmod(0o555 if path.is_dir() else 0o444)
    return site


def test_import_and_a_kernel_work_from_a_read_only_tree_without_a_home(tmp_path):
    site = _read_only_copy(tmp_path)
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "NORMLAB_CACHE_DIR", "PYTHONPATH")}
    (tmp_path / "not-a-directory").write_text("")
    # A HOME that cannot exist, even for root: its parent is a file.
    env.update(HOME=str(tmp_path / "not-a-directory" / "home"), PYTHONPATH=str(site), TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    try:
        result = subprocess.run([sys.executable, "-c", SCRIPT.format(site=str(site))], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
    finally:
        for path in site.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert result.returncode == 0, result.stderr[-2000:]
    cache = result.stdout.strip().splitlines()[-1]
    assert cache.startswith(str(tmp_path / "tmp")), f"the kernel cache went to {cache}"
    assert any(Path(cache).rglob("*.nbi")), "the kernel was not cached in the fallback directory"
