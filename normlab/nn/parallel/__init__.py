"""Data parallelism (torch.nn.parallel's names): ``DistributedDataParallel`` across MPI processes."""
from normlab.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
