"""Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict and Residual."""
from __future__ import annotations

import numbers
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from normlab.autograd.tensor import Tensor, as_tensor
from normlab.nn.modules.module import Module, Parameter

__all__ = ["Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Residual"]


class Sequential(Module):
    """Applies its modules in order. Same as ``torch.nn.Sequential`` (positional or an OrderedDict).

    >>> import normlab, normlab.nn as nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> net(normlab.randn(3, 4)).shape
    (3, 2)
    """

    def __init__(self, *args) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(args):
                self.add_module(str(index), module)

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(modules[index]))
        if not -len(modules) <= index < len(modules):
            raise IndexError(f"Sequential: index {index} is out of range for {len(modules)} modules")
        return modules[index][1]

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered."""

    def __init__(self, modules=None) -> None:
        super().__init__()
        for module in modules or ():
            self.append(module)

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> "ModuleList":
        for module in modules:
            self.append(module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[index]


class ModuleDict(Module):
    """A dict of modules whose parameters are registered."""

    def __init__(self, modules=None) -> None:
        super().__init__()
        for name, module in dict(modules or {}).items():
            self.add_module(name, module)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()


def _as_parameter(owner: str, value) -> Parameter:
    """A Parameter as is; a Tensor or array becomes one (sharing memory, as torch's ``Parameter(t)``)."""
    if isinstance(value, Parameter):
        return value
    if isinstance(value, (Tensor, np.ndarray)):
        return Parameter(value)
    raise TypeError(f"{owner}: expected a Parameter, Tensor or array, got {type(value).__name__}")


def _parameters_repr(items) -> str:
    return "\n".join(f"({key}): Parameter containing: [{p.dtype} of size {tuple(p.shape)}]" for key, p in items)


class ParameterList(Module):
    """A list of Parameters registered as ``"0"``, ``"1"``, ... (so an optimizer and ``state_dict`` see them).

    Tensors and arrays appended are wrapped in a Parameter, as in torch.

    >>> import normlab, normlab.nn as nn
    >>> weights = nn.ParameterList([normlab.ones(2, 2) for _ in range(3)])
    >>> len(weights), list(weights.state_dict())
    (3, ['0', '1', '2'])
    """

    def __init__(self, values=None) -> None:
        super().__init__()
        if values is not None:
            self.extend(values)

    def _index(self, index) -> int:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"ParameterList: indices must be integers or slices, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"ParameterList: index {index} is out of range for {len(self)} parameters")
        return int(index) % len(self)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ParameterList(list(self)[index])
        return self._parameters[str(self._index(index))]

    def __setitem__(self, index, value) -> None:
        self.register_parameter(str(self._index(index)), _as_parameter("ParameterList", value))

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __iadd__(self, values) -> "ParameterList":
        return self.extend(values)

    def append(self, value) -> "ParameterList":
        self.register_parameter(str(len(self)), _as_parameter("ParameterList", value))
        return self

    def extend(self, values) -> "ParameterList":
        if isinstance(values, (Tensor, np.ndarray)) or not hasattr(values, "__iter__"):
            raise TypeError(f"ParameterList.extend: expected an iterable of parameters, got {type(values).__name__}")
        for value in values:
            self.append(value)
        return self

    def extra_repr(self) -> str:
        return _parameters_repr(self._parameters.items())


class ParameterDict(Module):
    """An ordered dict of Parameters registered under their keys (strings without dots).

    >>> import normlab, normlab.nn as nn
    >>> scales = nn.ParameterDict({"gamma": normlab.ones(3), "beta": normlab.zeros(3)})
    >>> list(scales.keys()), "gamma" in scales   # a plain dict's keys in sorted order, as torch
    (['beta', 'gamma'], True)
    """

    def __init__(self, parameters=None) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str) -> Parameter:
        if key not in self._parameters:
            raise KeyError(key)
        return self._parameters[key]

    def __setitem__(self, key: str, value) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ParameterDict: keys must be strings, got {type(key).__name__}")
        self.register_parameter(key, _as_parameter("ParameterDict", value))

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __reversed__(self):
        return reversed(list(self._parameters))

    def __contains__(self, key) -> bool:
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def values(self):
        return self._parameters.values()

    def items(self):
        return self._parameters.items()

    def get(self, key: str, default=None):
        return self._parameters.get(key, default)

    def pop(self, key: str) -> Parameter:
        value = self[key]
        del self[key]
        return value

    def popitem(self):
        key = next(reversed(self))
        return key, self.pop(key)

    def setdefault(self, key: str, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def clear(self) -> None:
        self._parameters.clear()

    def copy(self) -> "ParameterDict":
        return ParameterDict(OrderedDict(self.items()))

    def update(self, parameters) -> None:
        """Add or replace entries from a mapping or an iterable of (key, value) pairs (all checked first).

        As torch: a plain dict's entries go in sorted by key; an OrderedDict, a
        ParameterDict or a sequence of pairs keeps its order.
        """
        if isinstance(parameters, (OrderedDict, ParameterDict)):
            items = list(parameters.items())
        elif isinstance(parameters, Mapping):
            items = sorted(parameters.items(), key=lambda item: str(item[0]))
        else:
            items = list(parameters)
        for entry in items:
            if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
                raise TypeError(f"ParameterDict.update: expected (key, parameter) pairs, got {entry!r}")
            if not isinstance(entry[0], str) or "." in entry[0] or not entry[0]:
                raise KeyError(f"ParameterDict.update: invalid key {entry[0]!r} (non-empty strings without dots)")
        converted = [(key, _as_parameter("ParameterDict", value)) for key, value in items]
        for key, value in converted:
            self.register_parameter(key, value)

    def extra_repr(self) -> str:
        return _parameters_repr(self._parameters.items())


class Residual(Module):
    """y = block(x) + shortcut(x), the identity shortcut by default (He et al., 2016).

    The shortcut gives the gradient a path with derivative exactly I, so it
    reaches early layers however deep the stack of blocks. Pass a ``shortcut``
    (e.g. a Linear or 1x1 Conv) when ``block`` changes the shape. No torch
    equivalent.

    >>> import normlab, normlab.nn as nn
    >>> block = nn.Residual(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)))
    >>> block(normlab.randn(2, 8)).shape
    (2, 8)
    """

    def __init__(self, block: Module, shortcut: Module | None = None) -> None:
        super().__init__()
        if not isinstance(block, Module):
            raise TypeError(f"Residual: expected block to be a Module, got {type(block).__name__}")
        if shortcut is not None and not isinstance(shortcut, Module):
            raise TypeError(f"Residual: expected shortcut to be a Module or None, got {type(shortcut).__name__}")
        self.block = block
        self.shortcut = shortcut

    def forward(self, input):
        x = as_tensor(input)
        out = self.block(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if out.shape != skip.shape:
            raise ValueError(
                f"Residual: block output shape {out.shape} does not match shortcut output shape {skip.shape}; "
                "pass a shortcut module that maps the input to the block's output shape"
            )
        return out + skip
