"""Where Numba keeps normlab's compiled kernels, so that ``import normlab`` never fails over a cache.

Kernels are compiled on first use and cached next to their sources
(``cache=True``). In a read-only install (a system package, a service account
with no writable HOME) Numba finds no place for that cache and refuses to
define the kernel ("cannot cache function ...: no locator available"), which
made ``import normlab`` fail. Before anything imports Numba, this module
checks whether the source tree takes a cache the way Numba will try it, and
if not, points ``NUMBA_CACHE_DIR`` at the first writable place among
``$NORMLAB_CACHE_DIR/numba``, ``$XDG_CACHE_HOME/normlab/numba``,
``~/.cache/normlab/numba`` and the temporary directory. A value the user set
wins.

``announce_compilation`` makes the first compilation of a process visible: a
new user's first step waits a second or two for Numba (nothing cached yet),
and a line on stderr says why; with a warm cache nothing is printed.
"""
from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

_KERNEL_DIRS = ("ops", "bench")  # the sub-packages whose modules define cached kernels


def _writable(directory: Path) -> bool:
    """True when ``directory`` can be created and a file written in it (Numba's own test)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
        return True
    except OSError:
        return False


def _candidates() -> list[Path]:
    places = []
    if os.environ.get("NORMLAB_CACHE_DIR"):
        places.append(Path(os.environ["NORMLAB_CACHE_DIR"]) / "numba")
    if os.environ.get("XDG_CACHE_HOME"):
        places.append(Path(os.environ["XDG_CACHE_HOME"]) / "normlab" / "numba")
    home = os.path.expanduser("~")
    if home and home != "~":
        places.append(Path(home) / ".cache" / "normlab" / "numba")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    places.append(Path(tempfile.gettempdir()) / f"normlab-numba-cache-{uid}")
    return places


def configure() -> str | None:
    """Set ``NUMBA_CACHE_DIR`` when normlab's source tree cannot hold the cache; return the directory chosen."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    package = Path(__file__).resolve().parent
    if all(_writable(package / sub / "__pycache__") for sub in _KERNEL_DIRS):
        return None
    for place in _candidates():
        if _writable(place):
            os.environ["NUMBA_CACHE_DIR"] = str(place)
            numba = sys.modules.get("numba")
            if numba is not None:  # imported before normlab: its config has already read the environment
                numba.config.CACHE_DIR = str(place)
            return str(place)
    warnings.warn("normlab: no writable directory for Numba's kernel cache; set NUMBA_CACHE_DIR", stacklevel=3)
    return None


#: The line printed on stderr the first time a process compiles one of normlab's kernels.
COMPILING_MESSAGE = "normlab: compiling kernels for first use (cached afterwards)..."


def announce_compilation() -> None:
    """Print ``COMPILING_MESSAGE`` on stderr when this process first compiles a normlab kernel.

    Numba reports a "numba:compile" event only when a kernel is not found in
    its cache, so a warm cache prints nothing. Kernels of other packages
    (a user's own ``@njit``) are not announced.
    """
    from numba.core import event

    class _FirstCompilation(event.Listener):
        announced = False

        def on_start(self, compilation) -> None:
            if self.announced:
                return
            module = getattr(compilation.data["dispatcher"].py_func, "__module__", "") or ""
            if module.startswith("normlab."):
                type(self).announced = True
                tqdm = sys.modules.get("tqdm")
                if tqdm is not None:  # above a progress bar on stderr (normlab train's), not inside it
                    tqdm.tqdm.write(COMPILING_MESSAGE, file=sys.stderr)
                else:
                    print(COMPILING_MESSAGE, file=sys.stderr, flush=True)

        def on_end(self, compilation) -> None:
            pass

    event.register("numba:compile", _FirstCompilation())
