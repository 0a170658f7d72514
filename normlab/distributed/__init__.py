"""Data-parallel training across processes and machines on MPI, with torch.distributed's names.

``pip install 'normlab[dist]'`` installs mpi4py and the ``mpich`` wheel (which
brings ``mpiexec``); ``mpiexec -n 2 python train.py`` then starts two
processes, and a hostfile spreads them over machines
(``mpiexec -f hosts -n 8 python train.py``). Inside the script::

    import normlab.distributed as dist
    from normlab.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("mpi")
    model = DDP(nn.SyncBatchNorm.convert_sync_batchnorm(model))
    sampler = DistributedSampler(dataset)         # normlab.data: this rank's share

Collectives work in place on Tensors and NumPy arrays: ``all_reduce`` (SUM,
AVG, PRODUCT, MIN, MAX), ``all_gather``, ``all_gather_into_tensor``,
``all_gather_object``, ``broadcast``, ``barrier``; ``async_op=True`` returns a
``Work`` to ``wait()`` on. Without mpi4py, ``init_process_group`` raises an
ImportError that names the extra; ``is_available()`` tells beforehand.

>>> import normlab.distributed as dist
>>> dist.is_initialized()
False
"""
from normlab.distributed.collectives import (
    ReduceOp,
    Work,
    all_gather,
    all_gather_into_tensor,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
)
from normlab.distributed.process_group import (
    ProcessGroup,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
    new_group,
)

__all__ = [
    "ReduceOp", "Work", "ProcessGroup", "is_available", "init_process_group", "is_initialized",
    "destroy_process_group", "get_rank", "get_world_size", "get_backend", "new_group", "all_reduce",
    "all_gather", "all_gather_into_tensor", "all_gather_object", "broadcast", "barrier",
]
