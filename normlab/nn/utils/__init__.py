"""torch.nn.utils' helpers: gradient clipping, parameter <-> vector (``clip_grad``), padded and packed sequences (``rnn``)."""
from normlab.nn.utils.clip_grad import (  # noqa: F401
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
    parameters_to_vector,
    vector_to_parameters,
)
from normlab.nn.utils import rnn  # noqa: F401,E402
