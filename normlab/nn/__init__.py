"""Layers with torch.nn's names, constructor signatures, parameter and buffer names.

``functional`` holds the stateless forms, ``init`` the initialisers,
``utils`` gradient clipping, ``parallel`` DataParallel and DistributedDataParallel,
``pretrain`` greedy layer-wise pretraining of deep nets.
"""
from normlab.nn import functional, init, pretrain, utils  # noqa: F401
from normlab.nn.modules.activation import *  # noqa: F401,F403
from normlab.nn.modules.container import *  # noqa: F401,F403
from normlab.nn.modules.conv import *  # noqa: F401,F403
from normlab.nn.modules.distance import *  # noqa: F401,F403
from normlab.nn.modules.dropout import *  # noqa: F401,F403
from normlab.nn.modules.embedding import *  # noqa: F401,F403
from normlab.nn.modules.linear import *  # noqa: F401,F403
from normlab.nn.modules.loss import *  # noqa: F401,F403
from normlab.nn.modules.module import Module, Parameter  # noqa: F401
from normlab.nn.modules.normalization import *  # noqa: F401,F403
from normlab.nn.modules.padding import *  # noqa: F401,F403
from normlab.nn.modules.pooling import *  # noqa: F401,F403
from normlab.nn.modules.rnn import *  # noqa: F401,F403
from normlab.nn.modules.sync_batchnorm import *  # noqa: F401,F403
from normlab.nn.modules.transformer import *  # noqa: F401,F403
from normlab.nn.modules.upsampling import *  # noqa: F401,F403
from normlab.nn import parallel  # noqa: F401,E402  (after the modules it wraps)
from normlab.nn.parallel import DataParallel  # noqa: F401,E402
