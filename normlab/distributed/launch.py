"""Start a job under ``mpiexec``: what ``normlab train --nproc N`` does for you.

The ``mpich`` wheel (in ``normlab[dist]``) installs ``mpiexec`` next to the
Python interpreter, so that one comes first; any ``mpiexec`` on PATH is the
fallback (it must belong to the MPI library mpi4py was loaded with).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["find_mpiexec", "mpiexec_command", "run_with_mpiexec"]

#: Thread-count variables read by Numba, OpenMP and the BLAS libraries.
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def find_mpiexec() -> str | None:
    """The path of ``mpiexec`` beside this Python (the mpich wheel's), else on PATH, else None."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("mpiexec")


def mpiexec_command(nproc: int, program: list[str]) -> list[str]:
    """``mpiexec -n nproc program...``; ImportError naming the extra when there is no mpiexec."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"mpiexec_command: expected nproc to be a positive integer, got {nproc!r}")
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise ImportError("mpiexec was not found beside this Python or on PATH: pip install 'normlab[dist]' "
                          "(installs mpi4py and the mpich wheel, which brings mpiexec)")
    return [mpiexec, "-n", str(nproc), *program]


def run_with_mpiexec(nproc: int, program: list[str]) -> int:
    """Run ``program`` in ``nproc`` local processes and return the job's exit status.

    Unless the caller set them, the thread-count variables give each process
    an equal share of this machine's cores, so N processes do not fight over
    them with N full thread pools.
    """
    command = mpiexec_command(nproc, program)
    env = dict(os.environ)
    share = str(max(1, (os.cpu_count() or 1) // nproc))
    for name in THREAD_VARIABLES:
        env.setdefault(name, share)
    return subprocess.run(command, env=env).returncode
