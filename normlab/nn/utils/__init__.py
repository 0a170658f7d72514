"""torch.nn.utils' helpers: gradient clipping, parameter <-> vector (``clip_grad``), padded and packed sequences
(``rnn``), weight and spectral normalization (``weight_norm``, ``spectral_norm``), BatchNorm folding (``fusion``)."""
from normlab.nn.utils.clip_grad import (  # noqa: F401
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
    parameters_to_vector,
    vector_to_parameters,
)
from normlab.nn.utils.fusion import (  # noqa: F401
    fuse_conv_bn_eval,
    fuse_conv_bn_weights,
    fuse_linear_bn_eval,
    fuse_linear_bn_weights,
)
from normlab.nn.utils.spectral_norm import remove_spectral_norm, spectral_norm  # noqa: F401
from normlab.nn.utils.weight_norm import remove_weight_norm, weight_norm  # noqa: F401
from normlab.nn.utils import fusion, rnn  # noqa: F401,E402
