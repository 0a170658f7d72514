"""``normlab.device`` and the arguments of ``.to(...)``: normlab computes on the CPU only.

torch code names devices everywhere (``x.to(device)``, ``torch.zeros(3,
device=device)``, ``model.cuda()``); normlab accepts the CPU in every form
torch does and refuses any other device with a message that says why,
instead of an unrelated error later.

>>> import normlab
>>> normlab.device("cpu"), normlab.device("cpu") == "cpu"
(device(type='cpu'), True)
"""
from __future__ import annotations

import builtins

import numpy as np

__all__ = ["device"]

_NO_ACCELERATOR = ("normlab runs on the CPU only (NumPy and Numba); {what}. "
                   "Use device 'cpu' (normlab.cuda.is_available() is False).")


def cpu_only(what: str) -> RuntimeError:
    """The error for any request of a GPU or other accelerator."""
    return RuntimeError(_NO_ACCELERATOR.format(what=what))


class device:
    """A device, as ``torch.device``: only ``"cpu"`` (optionally ``"cpu:0"`` or ``index=0``) exists.

    >>> import normlab
    >>> normlab.device("cpu", 0)
    device(type='cpu', index=0)
    """

    __slots__ = ("type", "index")

    def __init__(self, type="cpu", index: int | None = None) -> None:  # noqa: A002 - torch's argument name
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if isinstance(type, (int, np.integer)) and not isinstance(type, bool):
            raise cpu_only(f"got device {type} (an integer device means the GPU of that index in torch)")
        if not isinstance(type, str):
            raise TypeError(f"normlab.device: expected a string such as 'cpu', got {builtins.type(type).__name__}")
        name, _, number = type.partition(":")
        if name != "cpu":
            raise cpu_only(f"got device {type!r}")
        if number:
            if index is not None:
                raise ValueError(f"normlab.device: the index is given twice ({type!r} and index={index})")
            if not number.isdigit():
                raise ValueError(f"normlab.device: invalid device string {type!r}")
            index = int(number)
        if index is not None and index != 0:
            raise ValueError(f"normlab.device: the CPU has index 0 only, got {index}")
        object.__setattr__(self, "type", "cpu")
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError("normlab.device is immutable")

    def __repr__(self) -> str:
        return "device(type='cpu')" if self.index is None else f"device(type='cpu', index={self.index})"

    def __str__(self) -> str:
        return "cpu" if self.index is None else f"cpu:{self.index}"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except (RuntimeError, ValueError):
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self):
        return device, (self.type, self.index)


CPU = device("cpu")


def check_device(value, where: str) -> None:
    """Accept ``None``, ``"cpu"`` or a cpu ``device`` for a ``device=`` argument; refuse anything else."""
    if value is None or isinstance(value, device):
        return
    if isinstance(value, str) or isinstance(value, (int, np.integer)):
        try:
            device(value)
        except RuntimeError:
            raise cpu_only(f"{where} got device={value!r}") from None
        return
    raise TypeError(f"{where}: expected device to be a string, a normlab.device or None, got {type(value).__name__}")


def parse_to(where: str, args: tuple, device_=None, dtype=None, other=None) -> np.dtype | None:
    """The dtype asked for by ``.to(...)``'s arguments (None: keep it); a device other than the CPU raises.

    torch's forms: ``to(dtype)``, ``to(device, dtype=None)``, ``to(other_tensor)``,
    ``to(device=..., dtype=...)``.
    """
    if len(args) > 2:
        raise TypeError(f"{where}: expected at most a device and a dtype as positional arguments, got {len(args)}")
    for arg in args:
        if isinstance(arg, (str, device)) or (isinstance(arg, (int, np.integer)) and not isinstance(arg, bool)):
            if device_ is not None:
                raise TypeError(f"{where}: the device is given twice")
            device_ = arg
        elif hasattr(arg, "dtype") and hasattr(arg, "shape") and not isinstance(arg, type):
            other = arg  # a tensor: take its dtype (its device is the CPU)
        else:
            if dtype is not None:
                raise TypeError(f"{where}: the dtype is given twice")
            dtype = arg
    check_device(device_, where)
    if other is not None:
        if dtype is not None:
            raise TypeError(f"{where}: give either a tensor or a dtype, not both")
        dtype = other.dtype
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: expected a dtype (e.g. normlab.float32), a device or a tensor, got {dtype!r}") from None
