"""torch.nn.utils' helpers: gradient clipping, parameter <-> vector (``clip_grad``)."""
from normlab.nn.utils.clip_grad import (  # noqa: F401
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
    parameters_to_vector,
    vector_to_parameters,
)
