"""Activation modules (thin wrappers over ``nn.functional``)."""
from __future__ import annotations

import numpy as np

from normlab._checks import check_positive_int
from normlab.autograd.tensor import get_default_dtype
from normlab.nn import functional as F
from normlab.nn.modules.module import Module, Parameter

__all__ = ["Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "SELU", "SiLU", "Softplus", "GELU",
           "Softmax", "LogSoftmax", "Mish", "Hardswish", "Hardsigmoid", "Softsign", "Tanhshrink", "PReLU",
           "Hardtanh", "ReLU6", "LogSigmoid", "Threshold", "GLU"]


class Sigmoid(Module):
    """1 / (1 + e^-x); its derivative is at most 1/4, the textbook cause of vanishing gradients."""

    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    """tanh(x); derivative at most 1 (at 0), saturating on both sides."""

    def forward(self, input):
        return F.tanh(input)


class _InplaceActivation(Module):
    """An activation with torch's ``inplace`` option: ``forward`` calls ``F.<_function>(input, inplace=...)``."""

    _function = ""
    #: torch's repr shows ``inplace=True`` for most of these; Hardswish and Hardsigmoid never show it.
    _shows_inplace = True

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return getattr(F, self._function)(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace and self._shows_inplace else ""


class ReLU(_InplaceActivation):
    """max(x, 0) (Nair & Hinton, 2010): derivative exactly 1 where active, so it does not shrink gradients."""

    _function = "relu"


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x (Maas et al., 2013): no unit is ever fully dead."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """x if x > 0 else alpha (e^x - 1) (Clevert et al., 2015)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return F.elu(input, self.alpha, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class SELU(_InplaceActivation):
    """scale * ELU(x, alpha) with the self-normalizing constants (Klambauer et al., 2017)."""

    _function = "selu"


class SiLU(_InplaceActivation):
    """x * sigmoid(x) (a.k.a. swish)."""

    _function = "silu"


class Softplus(Module):
    """log(1 + e^(beta x)) / beta, the identity above ``threshold``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class GELU(Module):
    """x * Phi(x) (Hendrycks & Gimpel, 2016); ``approximate='tanh'`` for the tanh form."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: expected approximate to be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    def __init__(self, dim=None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    def __init__(self, dim=None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Mish(_InplaceActivation):
    """x tanh(softplus(x)) (Misra, 2019, arXiv:1908.08681): smooth, non-monotonic, unbounded above.

    >>> import normlab, normlab.nn as nn
    >>> nn.Mish()(normlab.tensor([0.0, 1.0])).numpy().round(4)
    array([0.    , 0.8651], dtype=float32)
    """

    _function = "mish"


class Hardswish(_InplaceActivation):
    """x relu6(x + 3) / 6 (Howard et al., 2019, MobileNetV3): a cheap piecewise swish.

    >>> import normlab, normlab.nn as nn
    >>> nn.Hardswish()(normlab.tensor([-4.0, 1.0, 4.0])).numpy().round(4)
    array([-0.    ,  0.6667,  4.    ], dtype=float32)
    """

    _function = "hardswish"
    _shows_inplace = False


class Hardsigmoid(_InplaceActivation):
    """relu6(x + 3) / 6: 0 below -3, 1 above 3, linear in between (slope 1/6)."""

    _function = "hardsigmoid"
    _shows_inplace = False


class Softsign(Module):
    """x / (1 + |x|): like tanh, but its tails approach +-1 polynomially, so gradients vanish more slowly."""

    def forward(self, input):
        return F.softsign(input)


class Tanhshrink(Module):
    """x - tanh(x)."""

    def forward(self, input):
        return F.tanhshrink(input)


class PReLU(Module):
    """x if x > 0 else a x, with a learned slope a (He et al., 2015, "Delving Deep into Rectifiers").

    ``num_parameters`` 1 (one slope shared by every channel) or the number of
    channels (dim 1 of the input); each slope starts at ``init``. Parameter:
    ``weight`` of shape (num_parameters,), as in torch.

    >>> import normlab, normlab.nn as nn
    >>> act = nn.PReLU(3)
    >>> act(normlab.randn(2, 3, 5)).shape
    (2, 3, 5)
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None) -> None:
        super().__init__()
        self.num_parameters = check_positive_int("PReLU", "num_parameters", num_parameters)
        self.init = init
        self.weight = Parameter(np.full(self.num_parameters, init, dtype=np.dtype(dtype or get_default_dtype())))

    def reset_parameters(self) -> None:
        self.weight._data[...] = self.init
        self.weight._bump_version()

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class Hardtanh(Module):
    """min(max(x, min_val), max_val): a piecewise-linear tanh whose gradient is exactly 0 outside the bounds.

    Same as ``torch.nn.Hardtanh``.

    >>> import normlab, normlab.nn as nn
    >>> nn.Hardtanh()(normlab.tensor([-2.0, 0.5, 3.0])).numpy()
    array([-1. ,  0.5,  1. ], dtype=float32)
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if not max_val > min_val:   # torch's module asks for a strict order (its functional allows equality)
            raise ValueError(f"{type(self).__name__}: expected max_val > min_val, got min_val={min_val!r} "
                             f"and max_val={max_val!r}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace, _layer=type(self).__name__)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    """min(max(x, 0), 6), i.e. ``Hardtanh(0, 6)``.  Same as ``torch.nn.ReLU6``.

    >>> import normlab, normlab.nn as nn
    >>> nn.ReLU6()(normlab.tensor([-1.0, 3.0, 8.0])).numpy()
    array([0., 3., 6.], dtype=float32)
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LogSigmoid(Module):
    """log sigmoid(x) = -softplus(-x).  Same as ``torch.nn.LogSigmoid``.

    >>> import normlab, normlab.nn as nn
    >>> nn.LogSigmoid()(normlab.tensor([0.0])).numpy().round(4)
    array([-0.6931], dtype=float32)
    """

    def forward(self, input):
        return F.logsigmoid(input)


class Threshold(Module):
    """x where x > threshold, else ``value``.  Same as ``torch.nn.Threshold``.

    >>> import normlab, normlab.nn as nn
    >>> nn.Threshold(0.1, 20.0)(normlab.tensor([0.0, 0.5])).numpy()
    array([20. ,  0.5], dtype=float32)
    """

    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, input):
        return F.threshold(input, self.threshold, self.value, self.inplace, _layer="Threshold")

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, value={self.value}" + (", inplace=True" if self.inplace else "")


class GLU(Module):
    """Gated linear unit: the first half of ``dim`` times the sigmoid of the second (Dauphin et al., 2017).

    Same as ``torch.nn.GLU``. Shapes: (*, 2M, *) -> (*, M, *) along ``dim``.

    >>> import normlab, normlab.nn as nn
    >>> nn.GLU()(normlab.randn(4, 6)).shape
    (4, 3)
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.glu(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
