"""``DistributedDataParallel``: one model replica per process, gradients averaged while backward runs.

torch's design (Li et al., "PyTorch Distributed", VLDB 2020), on MPI:

* construction checks that every process built the same model (names,
  shapes, dtypes) and copies rank 0's parameters and buffers to the others;
* parameters that require grad are packed, in reverse registration order
  (about the order backward produces their gradients), into buckets of at
  most ``bucket_cap_mb``;
* each parameter's post-accumulate-grad hook copies its finished gradient
  into its bucket; a full bucket starts a nonblocking allreduce at once, so
  communication overlaps the rest of backward; buckets start in index order
  on every process, as MPI requires;
* the last hook of the backward waits for every bucket and writes the
  average back into ``.grad``, so ``loss.backward()`` returns with averaged
  gradients and the optimizer (or clipping) reads them as usual.

Inside ``no_sync()`` the forward arms no reduction: gradients accumulate
locally, and the first synchronised backward after it averages the sum.
"""
from __future__ import annotations

import contextlib

import numpy as np

from normlab import distributed as dist
from normlab.autograd.grad_mode import is_grad_enabled, no_grad
from normlab.autograd.tensor import Tensor
from normlab.distributed.process_group import ProcessGroup, resolve
from normlab.nn.modules.module import Module

__all__ = ["DistributedDataParallel"]


class _Bucket:
    """Parameters whose gradients travel in one allreduce, and the flat buffer they travel in."""

    def __init__(self, params: list, dtype: np.dtype) -> None:
        self.params = params
        self.buffer = np.zeros(sum(p._data.size for p in params), dtype=dtype)
        self.slots = {}
        offset = 0
        for p in params:
            self.slots[id(p)] = self.buffer[offset:offset + p._data.size]
            offset += p._data.size
        self.ready: set[int] = set()
        self.work = None

    @property
    def full(self) -> bool:
        return len(self.ready) == len(self.params)


def _buckets(params: list, cap_bytes: int) -> list[_Bucket]:
    """Consecutive parameters of one dtype, each bucket at most ``cap_bytes`` (or one parameter)."""
    buckets, current, size = [], [], 0
    for p in params:
        if current and (p.dtype != current[0].dtype or size + p._data.nbytes > cap_bytes):
            buckets.append(_Bucket(current, current[0].dtype))
            current, size = [], 0
        current.append(p)
        size += p._data.nbytes
    if current:
        buckets.append(_Bucket(current, current[0].dtype))
    return buckets


def _layout(module: Module) -> list[tuple]:
    """What every process must agree on: (kind, name, shape, dtype) of each parameter and buffer."""
    return ([("parameter", name, tuple(p.shape), str(p.dtype)) for name, p in module.named_parameters()]
            + [("buffer", name, tuple(b.shape), str(b.dtype)) for name, b in module.named_buffers()])


def _check_same_model(layouts: list[list[tuple]]) -> None:
    """ValueError naming the first difference between rank 0's model and another rank's."""
    reference = layouts[0]
    for rank, layout in enumerate(layouts[1:], start=1):
        if layout == reference:
            continue
        for ours, theirs in zip(reference, layout):
            if ours != theirs:
                raise ValueError(
                    f"DistributedDataParallel: every process must build the same model, but rank 0 has "
                    f"{ours[0]} '{ours[1]}' of shape {ours[2]} ({ours[3]}) where rank {rank} has {theirs[0]} "
                    f"'{theirs[1]}' of shape {theirs[2]} ({theirs[3]})")
        raise ValueError(f"DistributedDataParallel: every process must build the same model, but rank 0 has "
                         f"{len(reference)} parameters and buffers and rank {rank} has {len(layout)}")


class DistributedDataParallel(Module):
    """Data parallelism across processes: the same model everywhere, gradients averaged in backward.

    Same as ``torch.nn.parallel.DistributedDataParallel`` on CPU processes:
    call ``normlab.distributed.init_process_group()`` first, give each
    process its own share of the data (``normlab.data.DistributedSampler``),
    and train the wrapped model as usual; after ``loss.backward()`` every
    ``.grad`` holds the average over processes, so one optimizer step is one
    step on the global batch (with a mean loss). ``broadcast_buffers`` copies
    rank 0's buffers (running statistics) to every process at each training
    forward; with ``SyncBatchNorm`` they agree anyway.

    Every parameter that requires grad must receive a gradient in every
    synchronised backward (torch's ``find_unused_parameters`` is not
    offered: freeze unused parameters with ``requires_grad_(False)``).
    As in torch, one forward through DDP arms one reduction: a backward
    without a DDP forward before it (through ``ddp.module``, or a second
    backward through the same graph) leaves its gradients local; sum several
    losses into one before calling backward.
    ``module`` is the wrapped model; ``state_dict`` keys start with
    ``module.``, as in torch.

    >>> import normlab.nn as nn, normlab.distributed as dist
    >>> dist.init_process_group("mpi")                                   # doctest: +SKIP
    >>> ddp = nn.parallel.DistributedDataParallel(nn.Linear(4, 2))       # doctest: +SKIP
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None, bucket_cap_mb: float | None = None) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got {type(module).__name__}")
        if device_ids is not None or output_device is not None or dim != 0:
            raise ValueError("DistributedDataParallel: normlab runs each process on the CPU; device_ids, "
                             "output_device and dim take no other value than their defaults")
        cap_mb = 25.0 if bucket_cap_mb is None else bucket_cap_mb  # torch's default
        if isinstance(cap_mb, bool) or not isinstance(cap_mb, (int, float)) or not cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: expected bucket_cap_mb > 0, got {bucket_cap_mb!r}")
        parent = resolve(process_group)
        layouts = [None] * parent.size()
        dist.all_gather_object(layouts, _layout(module), group=parent)
        _check_same_model(layouts)  # the same verdict on every process: all raise, none hangs

        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.require_backward_grad_sync = True
        # Gradient buckets get a communicator of their own, so their nonblocking allreduces
        # never interleave with other collectives (SyncBatchNorm's) on the user's group.
        self.process_group = ProcessGroup(parent.comm.Dup())
        self._broadcast(list(module.parameters()) + list(module.buffers()))
        trained = [p for p in module.parameters() if p.requires_grad]
        self._buckets = _buckets(trained[::-1], int(cap_mb * 2 ** 20))
        self._bucket_of = {id(p): bucket for bucket in self._buckets for p in bucket.params}
        self._names = {id(p): name for name, p in module.named_parameters()}
        self._next_bucket = 0   # buckets start in index order on every process
        self._armed = False     # set by a synchronised forward, cleared when its reduction ends
        for p in trained:
            p.register_post_accumulate_grad_hook(self._gradient_ready)

    # ------------------------------------------------------------------ forward
    def forward(self, *inputs, **kwargs):
        self._check_previous_reduction()
        self._armed = is_grad_enabled() and self.require_backward_grad_sync and bool(self._buckets)
        if self._armed and self.broadcast_buffers:
            self._broadcast(list(self.module.buffers()))
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Forwards inside skip the gradient reduction: gradients accumulate locally until a synchronised step.

        >>> with ddp.no_sync():                               # doctest: +SKIP
        ...     loss_fn(ddp(x1)).backward()                   # local accumulation
        >>> loss_fn(ddp(x2)).backward()                       # doctest: +SKIP
        """
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # --------------------------------------------------------------- reduction
    def _gradient_ready(self, param: Tensor) -> None:
        """Post-accumulate-grad hook: file the parameter's gradient; start every bucket that is now full."""
        if not self._armed:
            return  # a forward under no_sync (or no DDP forward at all): the gradient stays local
        bucket = self._bucket_of[id(param)]
        if id(param) in bucket.ready:
            raise RuntimeError(f"DistributedDataParallel: parameter '{self._names[id(param)]}' got a gradient "
                               "twice from one forward; a second backward through the same graph is not "
                               "supported (run the forward again)")
        if param.dtype != bucket.buffer.dtype:
            raise RuntimeError(f"DistributedDataParallel: parameter '{self._names[id(param)]}' is now "
                               f"{param.dtype}, its bucket {bucket.buffer.dtype}; change the model's dtype "
                               "before wrapping it, as in torch")
        bucket.slots[id(param)][...] = np.asarray(param.grad).reshape(-1)
        bucket.ready.add(id(param))
        while self._next_bucket < len(self._buckets) and self._buckets[self._next_bucket].full:
            ready = self._buckets[self._next_bucket]
            ready.work = dist.all_reduce(ready.buffer, dist.ReduceOp.AVG, group=self.process_group, async_op=True)
            self._next_bucket += 1
        for started in self._buckets[:self._next_bucket]:
            started.work.is_completed()  # lets MPI progress the started allreduces
        if self._next_bucket == len(self._buckets):
            self._finish_reduction()

    def _finish_reduction(self) -> None:
        """Wait for every bucket and write the averaged gradients into ``.grad``."""
        with no_grad():
            for bucket in self._buckets:
                bucket.work.wait()
                for p in bucket.params:
                    average = bucket.slots[id(p)].reshape(p.shape)
                    grad = p.grad
                    if grad._data.flags.writeable and grad.dtype == average.dtype:
                        grad._data[...] = average
                        grad._bump_version()
                    else:
                        p.grad = Tensor(average.astype(p.dtype))
        self._reset_round()

    def _reset_round(self) -> None:
        """No parameter ready, no bucket started, nothing armed: the state between two steps."""
        for bucket in self._buckets:
            bucket.ready.clear()
            bucket.work = None
        self._next_bucket = 0
        self._armed = False

    def _check_previous_reduction(self) -> None:
        """torch's check: a reduction that started must have finished before the next forward."""
        ready = set().union(*(bucket.ready for bucket in self._buckets))
        if ready:
            missing = [name for key, name in self._names.items() if key in self._bucket_of and key not in ready]
            # Every process started the same buckets (same model, same graph): finish them and
            # start the next round clean, so that the job can go on once the cause is fixed.
            for bucket in self._buckets[:self._next_bucket]:
                bucket.work.wait()
            self._reset_round()
            raise RuntimeError(
                "DistributedDataParallel: the previous backward did not finish reducing gradients: parameters "
                f"{missing} received no gradient. Every parameter that requires grad must take part in the loss "
                "of every synchronised step; freeze the others with requires_grad_(False)")

    def _broadcast(self, tensors: list) -> None:
        """Copy rank 0's values of ``tensors`` to every process: one broadcast per dtype."""
        by_dtype: dict = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            flat = np.concatenate([t._data.reshape(-1) for t in group])
            dist.broadcast(flat, 0, group=self.process_group)
            if self.process_group.rank() == 0:
                continue
            offset = 0
            with no_grad():
                for t in group:
                    t._data[...] = flat[offset:offset + t._data.size].reshape(t.shape)
                    t._bump_version()
                    offset += t._data.size
