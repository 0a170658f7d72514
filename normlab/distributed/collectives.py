"""Collectives with torch.distributed's names: in place on Tensors and NumPy arrays.

Every process of the group must make the same calls in the same order, with
arrays of the same shape and dtype (as in torch). ``async_op=True`` starts a
nonblocking MPI collective and returns a ``Work``; the array holds the result
after ``work.wait()``.
"""
from __future__ import annotations

import enum

import numpy as np

from normlab.autograd.tensor import Tensor
from normlab.distributed.process_group import mpi, resolve

__all__ = ["ReduceOp", "Work", "all_reduce", "all_gather", "all_gather_into_tensor", "all_gather_object",
           "broadcast", "barrier"]


class ReduceOp(enum.Enum):
    """How ``all_reduce`` combines the processes' values (torch's names)."""

    SUM = "SUM"
    AVG = "AVG"
    PRODUCT = "PRODUCT"
    MIN = "MIN"
    MAX = "MAX"


def _mpi_op(op: ReduceOp):
    MPI = mpi()
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX}[op]


class Work:
    """A started collective: ``wait()`` blocks until its result is in place (torch's ``Work``)."""

    def __init__(self, request, finish=None) -> None:
        self._request = request
        self._finish = finish
        self._done = False

    def _complete(self) -> None:
        self._done = True
        if self._finish is not None:
            self._finish()

    def wait(self, timeout=None) -> bool:
        if not self._done:
            self._request.Wait()
            self._complete()
        return True

    def is_completed(self) -> bool:
        if not self._done and self._request.Test():
            self._complete()
        return self._done


class _Buffer:
    """The contiguous array a collective works on, and how its result gets back into the caller's object."""

    def __init__(self, name: str, target, writable: bool = True) -> None:
        if isinstance(target, Tensor):
            self.tensor, array = target, target._data
        elif isinstance(target, np.ndarray):
            self.tensor, array = None, target
        else:
            raise TypeError(f"{name}: expected a Tensor or a NumPy array, got {type(target).__name__}")
        if writable and not array.flags.writeable:
            raise ValueError(f"{name}: the array is read-only; a collective writes its result in place")
        self.target = array
        # MPI needs one contiguous block; a strided view works on a copy that is written back.
        self.array = array if array.flags.c_contiguous else np.ascontiguousarray(array)

    def write_back(self) -> None:
        if self.array is not self.target:
            self.target[...] = self.array
        if self.tensor is not None:
            self.tensor._bump_version()


def all_reduce(tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    """Replace ``tensor`` on every process by the reduction (``op``) of all processes' ``tensor``.

    ``ReduceOp.AVG`` divides the sum by the world size (floating point only).

    >>> import numpy as np, normlab.distributed as dist
    >>> x = np.array([dist.get_rank() + 1.0])                # doctest: +SKIP
    >>> dist.all_reduce(x); x                                 # doctest: +SKIP
    array([3.])
    """
    if not isinstance(op, ReduceOp):
        raise TypeError(f"all_reduce: expected op to be a ReduceOp, got {op!r}")
    buffer = _Buffer("all_reduce", tensor)
    if op is ReduceOp.AVG and buffer.array.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: ReduceOp.AVG needs a floating-point array, got {buffer.array.dtype}")
    group = resolve(group)
    MPI = mpi()

    def finish():
        if op is ReduceOp.AVG:
            buffer.array /= group.size()
        buffer.write_back()

    if async_op:
        return Work(group.comm.Iallreduce(MPI.IN_PLACE, buffer.array, op=_mpi_op(op)), finish)
    group.comm.Allreduce(MPI.IN_PLACE, buffer.array, op=_mpi_op(op))
    finish()
    return None


def broadcast(tensor, src: int, group=None, async_op: bool = False):
    """Copy rank ``src``'s ``tensor`` into ``tensor`` on every process."""
    buffer = _Buffer("broadcast", tensor)
    group = resolve(group)
    if not 0 <= src < group.size():
        raise ValueError(f"broadcast: expected src in [0, {group.size()}), got {src}")
    if async_op:
        return Work(group.comm.Ibcast(buffer.array, root=src), buffer.write_back)
    group.comm.Bcast(buffer.array, root=src)
    buffer.write_back()
    return None


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """Concatenate every process's ``input_tensor`` along the first axis into ``output_tensor`` (rank order)."""
    source = _Buffer("all_gather_into_tensor", input_tensor, writable=False)
    output = _Buffer("all_gather_into_tensor", output_tensor)
    group = resolve(group)
    expected = (source.array.shape[0] * group.size(),) + source.array.shape[1:] if source.array.ndim else \
        (group.size(),)
    if output.array.shape != expected or output.array.dtype != source.array.dtype:
        raise ValueError(f"all_gather_into_tensor: expected an output of shape {expected} and dtype "
                         f"{source.array.dtype}, got shape {output.array.shape} and dtype {output.array.dtype}")
    if async_op:
        return Work(group.comm.Iallgather(source.array, output.array), output.write_back)
    group.comm.Allgather(source.array, output.array)
    output.write_back()
    return None


def all_gather(tensor_list: list, tensor, group=None, async_op: bool = False):
    """Fill ``tensor_list[r]`` with rank r's ``tensor``, on every process."""
    group = resolve(group)
    source = _Buffer("all_gather", tensor, writable=False)
    if not isinstance(tensor_list, list) or len(tensor_list) != group.size():
        raise ValueError(f"all_gather: expected tensor_list to be a list of {group.size()} tensors (one per "
                         f"rank), got {type(tensor_list).__name__} of length {len(tensor_list)}")
    outputs = [_Buffer("all_gather", t) for t in tensor_list]
    for output in outputs:
        if output.array.shape != source.array.shape or output.array.dtype != source.array.dtype:
            raise ValueError(f"all_gather: expected every tensor of tensor_list to have shape "
                             f"{source.array.shape} and dtype {source.array.dtype}, got shape "
                             f"{output.array.shape} and dtype {output.array.dtype}")
    gathered = np.empty((group.size(),) + source.array.shape, dtype=source.array.dtype)

    def finish():
        for output, row in zip(outputs, gathered):
            output.array[...] = row
            output.write_back()

    if async_op:
        return Work(group.comm.Iallgather(source.array, gathered), finish)
    group.comm.Allgather(source.array, gathered)
    finish()
    return None


def all_gather_object(object_list: list, obj, group=None) -> None:
    """Fill ``object_list[r]`` with rank r's picklable ``obj``, on every process."""
    group = resolve(group)
    if not isinstance(object_list, list) or len(object_list) != group.size():
        raise ValueError(f"all_gather_object: expected object_list to be a list of {group.size()} entries, "
                         f"got {type(object_list).__name__} of length {len(object_list)}")
    object_list[:] = group.comm.allgather(obj)


def barrier(group=None, async_op: bool = False):
    """Wait until every process of ``group`` has reached this call."""
    group = resolve(group)
    if async_op:
        return Work(group.comm.Ibarrier())
    group.comm.Barrier()
    return None
