"""``normlab.nn.parallel``: torch.nn.parallel's names.

``DataParallel`` behaves as torch's does on a machine without GPUs: it calls
the wrapped module (kept as ``.module``, so state_dict keys gain the
``module.`` prefix). ``DistributedDataParallel`` trains across MPI processes.
"""
from normlab.nn.parallel.data_parallel import DataParallel
from normlab.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel"]
