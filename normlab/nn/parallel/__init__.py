"""``normlab.nn.parallel``: torch.nn.parallel's names on one CPU.

``DataParallel`` behaves as torch's does on a machine without GPUs: it calls
the wrapped module (kept as ``.module``, so state_dict keys gain the
``module.`` prefix). Training across processes is
``DistributedDataParallel``'s job (planned here, with ``normlab.distributed``).
"""
from normlab.nn.parallel.data_parallel import DataParallel

__all__ = ["DataParallel"]
