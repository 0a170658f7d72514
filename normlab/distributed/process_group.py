"""The process group: which processes take part, who this one is, and what happens when one fails.

normlab's only backend is MPI through mpi4py (``pip install 'normlab[dist]'``
brings mpi4py and the ``mpich`` wheel, whose ``mpiexec`` starts the
processes). MPI itself learns the world from ``mpiexec``; there is no
address, port or store to configure, and the same script runs on two local
processes or on many machines listed in a hostfile.

A failing rank must not leave the others waiting forever in a collective:
``init_process_group`` (with more than one process) installs an exception
hook that prints the failing rank's traceback and calls
``MPI.COMM_WORLD.Abort``, which ends every process of the job.
"""
from __future__ import annotations

import importlib.util
import sys
import traceback

__all__ = ["ProcessGroup", "is_available", "init_process_group", "is_initialized", "destroy_process_group",
           "get_rank", "get_world_size", "get_backend", "new_group"]

_INSTALL_HINT = ("normlab.distributed needs mpi4py and an MPI library: pip install 'normlab[dist]' "
                 "(installs mpi4py and the mpich wheel, which brings mpiexec)")


def mpi():
    """The ``mpi4py.MPI`` module (importing it initializes MPI), or an ImportError naming the extra."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return MPI


def is_available() -> bool:
    """True when mpi4py (the MPI backend) is installed; asking does not start MPI, importing it would."""
    return importlib.util.find_spec("mpi4py") is not None


class ProcessGroup:
    """A set of processes that run collectives together: an MPI communicator, with this process's rank in it."""

    def __init__(self, comm) -> None:
        self.comm = comm
        self._rank = comm.Get_rank()
        self._size = comm.Get_size()

    def rank(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"ProcessGroup(rank={self._rank}, size={self._size}, backend='mpi')"


class _State:
    default: ProcessGroup | None = None
    previous_excepthook = None


_state = _State()


def _abort_on_exception(exc_type, exc, tb) -> None:
    """sys.excepthook of a distributed job: print this rank's traceback, then end every rank."""
    group = _state.default
    rank, size = (group.rank(), group.size()) if group is not None else ("?", "?")
    sys.stderr.write(f"normlab.distributed: rank {rank} of {size} raised an exception; aborting all ranks\n")
    sys.stderr.write("".join(traceback.format_exception(exc_type, exc, tb)))
    sys.stderr.flush()
    sys.stdout.flush()
    mpi().COMM_WORLD.Abort(1)


def init_process_group(backend: str | None = "mpi", init_method=None, timeout=None, world_size: int = -1,
                       rank: int = -1) -> None:
    """Join the job started by ``mpiexec`` (torch.distributed's name; the only backend is ``"mpi"``).

    ``world_size`` and ``rank`` come from ``mpiexec``; if given, they are
    checked against it. Run without ``mpiexec``, the world is this one process.

    >>> import normlab.distributed as dist
    >>> dist.init_process_group("mpi")                     # doctest: +SKIP
    >>> dist.get_rank(), dist.get_world_size()              # doctest: +SKIP
    (0, 2)
    """
    if backend not in (None, "mpi"):
        raise ValueError(f"init_process_group: normlab supports only the 'mpi' backend, got {backend!r}")
    if init_method is not None:
        raise ValueError("init_process_group: the MPI backend takes no init_method (mpiexec tells each process "
                         f"its peers), got {init_method!r}")
    if timeout is not None:
        raise ValueError("init_process_group: the MPI backend has no timeout; a rank that raises aborts the "
                         "whole job instead")
    if _state.default is not None:
        raise ValueError("init_process_group: trying to initialize the default process group twice")
    MPI = mpi()
    group = ProcessGroup(MPI.COMM_WORLD.Dup())  # a private communicator: user traffic on COMM_WORLD cannot mix in
    for name, given, actual in (("world_size", world_size, group.size()), ("rank", rank, group.rank())):
        if given != -1 and given != actual:
            group.comm.Free()
            raise ValueError(f"init_process_group: {name}={given} was given, but mpiexec started this process "
                             f"with {name} {actual}")
    _state.default = group
    if group.size() > 1:
        _state.previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_exception


def is_initialized() -> bool:
    return _state.default is not None


def default_group() -> ProcessGroup:
    """The group made by ``init_process_group`` (ValueError, as torch, when there is none)."""
    if _state.default is None:
        raise ValueError("Default process group has not been initialized, please make sure to call "
                         "init_process_group (normlab.distributed).")
    return _state.default


def resolve(group) -> ProcessGroup:
    """``group`` (a ProcessGroup made by ``new_group``), or the default group for None."""
    if group is None:
        return default_group()
    if not isinstance(group, ProcessGroup):
        raise TypeError(f"expected group to be None or a ProcessGroup from new_group, got {type(group).__name__}")
    return group


def destroy_process_group(group=None) -> None:
    """Leave the default group (or free ``group``); restores the exception hook. MPI stays initialized."""
    if group is not None and group is not _state.default:
        resolve(group).comm.Free()
        return
    default = default_group()
    if sys.excepthook is _abort_on_exception:
        sys.excepthook = _state.previous_excepthook or sys.__excepthook__
    default.comm.Free()
    _state.default = None


def get_rank(group=None) -> int:
    """This process's rank in ``group`` (default: the whole job), from 0."""
    return resolve(group).rank()


def get_world_size(group=None) -> int:
    """The number of processes in ``group`` (default: the whole job)."""
    return resolve(group).size()


def get_backend(group=None) -> str:
    resolve(group)
    return "mpi"


def new_group(ranks=None):
    """A new group of the processes ``ranks`` (default: all), with its own communicator.

    Every process of the default group must call it (as in torch); a process
    outside ``ranks`` gets None.
    """
    parent = default_group()
    if ranks is None:
        return ProcessGroup(parent.comm.Dup())
    ranks = sorted({int(r) for r in ranks})
    if not ranks or ranks[0] < 0 or ranks[-1] >= parent.size():
        raise ValueError(f"new_group: expected ranks in [0, {parent.size()}), got {ranks}")
    comm = parent.comm.Create(parent.comm.Get_group().Incl(ranks))
    return None if comm == mpi().COMM_NULL else ProcessGroup(comm)
