"""Stateless layers with torch.nn.functional's names, argument names and defaults.

Inputs may be Tensors or plain NumPy arrays; outputs are Tensors.
``batch_norm`` and ``instance_norm`` update ``running_mean``/``running_var``
in place, as torch does.

>>> import numpy as np, normlab.nn.functional as F
>>> F.relu(np.array([-1.0, 2.0])).numpy()
array([0., 2.])
"""
from normlab.nn.functional.activation import *  # noqa: F401,F403
from normlab.nn.functional.attention import *  # noqa: F401,F403
from normlab.nn.functional.convolution import *  # noqa: F401,F403
from normlab.nn.functional.distance import *  # noqa: F401,F403
from normlab.nn.functional.lookup import *  # noqa: F401,F403
from normlab.nn.functional.common import *  # noqa: F401,F403
from normlab.nn.functional.loss import *  # noqa: F401,F403
from normlab.nn.functional.normalization import *  # noqa: F401,F403
from normlab.nn.functional.padding import *  # noqa: F401,F403
from normlab.nn.functional.pooling import *  # noqa: F401,F403
from normlab.nn.functional.upsampling import *  # noqa: F401,F403
from normlab.nn.functional import activation as _a, attention as _t, common as _l, convolution as _c
from normlab.nn.functional import distance as _v, lookup as _e, loss as _s
from normlab.nn.functional import normalization as _n, padding as _d, pooling as _p, upsampling as _u

__all__ = [*_a.__all__, *_t.__all__, *_c.__all__, *_v.__all__, *_e.__all__, *_l.__all__, *_s.__all__, *_n.__all__,
           *_d.__all__, *_p.__all__, *_u.__all__]
