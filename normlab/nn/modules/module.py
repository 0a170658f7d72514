"""``Module`` and ``Parameter``: the containers of state.

A Module owns three kinds of named state, kept apart as in torch:
parameters (trainable Tensors), buffers (running statistics and counters,
never trained) and sub-modules. ``state_dict`` flattens all of them into
torch's dotted key names, so a checkpoint moves between normlab and torch.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict, namedtuple
from typing import Iterator

import numpy as np

from normlab._checks import NUMERIC_KINDS, describe
from normlab._device import cpu_only, parse_to
from normlab.autograd.function import Function
from normlab.autograd.grad_mode import is_grad_enabled
from normlab.autograd.tensor import Tensor, get_default_dtype


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (``requires_grad=True`` by default)."""

    def __init__(self, data=None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty(0, dtype=get_default_dtype())
        super().__init__(data._data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class _RemovableHandle:
    """What ``register_*_hook`` returns: ``remove()`` unregisters the hook (also usable as a context manager)."""

    def __init__(self, hooks: dict, key: int, flags: tuple = ()) -> None:
        self._hooks, self._key, self._flags = hooks, key, flags

    def remove(self) -> None:
        self._hooks.pop(self._key, None)
        for flag in self._flags:
            flag.discard(self._key)

    def __enter__(self) -> "_RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _as_state_array(value, key: str) -> np.ndarray:
    """A state_dict value as an array: NumPy arrays, normlab Tensors, numbers, and any array-like
    (a torch tensor too, through ``detach().numpy()`` or ``__array__``, without importing torch)."""
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, (np.ndarray, int, float, np.generic)) or hasattr(value, "__array__") or hasattr(value, "numpy"):
        try:
            if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, without importing torch
                value = value.detach().cpu().numpy() if hasattr(value, "cpu") else value.detach().numpy()
            array = np.asarray(value)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"load_state_dict: could not read key '{key}' ({describe(value)}) as a NumPy array: "
                            f"{error} (convert it to float32 or float64 first)") from None
        if array.dtype.kind in NUMERIC_KINDS:
            return array
    raise TypeError(f"load_state_dict: expected an array (NumPy array, normlab or torch tensor, number) for key "
                    f"'{key}', got {describe(value)}")


class _BackwardHook(Function):
    """Identity on a module's input (or output) tensors whose backward runs the module's backward hooks.

    torch's mechanism: one identity node on the outputs sees the gradients of
    the outputs (``grad_output``, passed to the backward pre-hooks), one on the
    inputs sees the gradients of the inputs (``grad_input``, passed with
    ``grad_output`` to the full backward hooks, which may replace them).
    The arrays are copied, so the module's inputs and outputs stay ordinary
    tensors (not views) that in-place layers may change.
    """

    def forward(self, *arrays, call, side):
        self.call, self.side = call, side
        return tuple(np.array(a, copy=True) for a in arrays)

    def backward(self, *grads):
        return self.call.outputs_backward(grads) if self.side == "outputs" else self.call.inputs_backward(grads)


def _as_grads(values, count: int, what: str) -> tuple:
    """A hook's replacement gradients as arrays (or None), checked for length."""
    values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    if len(values) != count:
        raise RuntimeError(f"Backward {what} returned an invalid number of gradients, got {len(values)}, "
                           f"but expected {count}")
    return values


class _BackwardHookCall:
    """The backward hooks of one call of a module: links the output side to the input side."""

    def __init__(self, module, hooks: list, pre_hooks: list) -> None:
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.grad_outputs = None
        self.input_positions = self.output_positions = None  # the positions that went through the identity
        self.input_tensors: dict = {}  # position -> (shape, dtype) of every tensor input
        self.n_inputs = self.n_outputs = 0

    @staticmethod
    def _wrap(values, side: str, call) -> tuple[tuple, list | None]:
        """Pass the tensors that require grad through the identity node (none: no node, positions None)."""
        positions = [i for i, v in enumerate(values) if isinstance(v, Tensor) and v.requires_grad]
        if not (is_grad_enabled() and positions):
            return values, None
        wrapped = list(values)
        for i, t in zip(positions, _BackwardHook.apply(*(values[i] for i in positions), call=call, side=side)):
            wrapped[i] = t
        return tuple(wrapped), positions

    def setup_inputs(self, args: tuple) -> tuple:
        self.n_inputs = len(args)
        self.input_tensors = {i: (a.shape, a.dtype) for i, a in enumerate(args) if isinstance(a, Tensor)}
        args, self.input_positions = self._wrap(args, "inputs", self)
        return args

    def setup_outputs(self, result):
        single = not isinstance(result, tuple)
        if single and not isinstance(result, Tensor):
            warnings.warn("For backward hooks to be called, module output should be a Tensor or a tuple of "
                          f"Tensors but received {type(result)}", stacklevel=3)
            return result
        values = (result,) if single else result
        self.n_outputs = len(values)
        values, self.output_positions = self._wrap(values, "outputs", self)
        if single:
            return values[0]
        return type(result)(*values) if hasattr(result, "_fields") else values  # a named tuple keeps its type

    @staticmethod
    def _packed(positions, grads, size) -> list:
        packed = [None] * size
        for i, g in zip(positions, grads):
            packed[i] = None if g is None else Tensor(g)
        return packed

    def outputs_backward(self, grads: tuple) -> tuple:
        self.grad_outputs = tuple(self._packed(self.output_positions, grads, self.n_outputs))
        for hook in self.pre_hooks:
            replaced = hook(self.module, self.grad_outputs)
            if replaced is not None:
                self.grad_outputs = _as_grads(replaced, self.n_outputs, "pre hook")
        grad_outputs = self.grad_outputs
        if self.input_positions is None:
            # No input requires grad: torch calls the full hooks here, with grad_input all None.
            if self.hooks:
                warnings.warn("Full backward hook is firing when gradients are computed with respect to module "
                              "outputs since no inputs require gradients.", stacklevel=2)
            for hook in self.hooks:
                result = hook(self.module, (None,) * self.n_inputs, grad_outputs)
                if result is not None and not all(r is None for r in _as_grads(result, self.n_inputs, "hook")):
                    raise RuntimeError("Backward hook for Modules where no input requires gradient should "
                                       "always return None or None for all gradients.")
            self.grad_outputs = None
        return tuple(_array_or_none(grad_outputs[i]) for i in self.output_positions)

    def inputs_backward(self, grads: tuple) -> tuple:
        if self.grad_outputs is None:  # the gradient reached the inputs without passing the outputs
            return grads
        packed = self._packed(self.input_positions, grads, self.n_inputs)
        for i, (shape, dtype) in self.input_tensors.items():
            if packed[i] is None:  # as torch: a tensor input that got no gradient, or needs none, is given zeros
                packed[i] = Tensor(np.zeros(shape, dtype))
        grad_inputs = tuple(packed)
        for hook in self.hooks:
            replaced = hook(self.module, grad_inputs, self.grad_outputs)
            if replaced is not None:
                grad_inputs = _as_grads(replaced, self.n_inputs, "hook")
        self.grad_outputs = None
        return tuple(_array_or_none(grad_inputs[i]) for i in self.input_positions)


def _array_or_none(value):
    if value is None:
        return None
    return value._data if isinstance(value, Tensor) else np.asarray(value)


class Module:
    """Base class of every layer (same interface as ``torch.nn.Module``)."""

    _hook_counter = 0

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_pre_hooks", OrderedDict())
        # ids of the forward (pre-)hooks registered with_kwargs=True / always_call=True
        object.__setattr__(self, "_forward_hooks_with_kwargs", set())
        object.__setattr__(self, "_forward_pre_hooks_with_kwargs", set())
        object.__setattr__(self, "_forward_hooks_always_called", set())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        """Run forward between the hooks, in torch's order: forward pre-hooks, forward, forward hooks."""
        if not (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks or self._backward_pre_hooks):
            return self.forward(*args, **kwargs)
        for key, hook in list(self._forward_pre_hooks.items()):
            if key in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                                           f"but got {result!r}.")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        backward = None
        if self._backward_hooks or self._backward_pre_hooks:
            backward = _BackwardHookCall(self, list(self._backward_hooks.values()),
                                         list(self._backward_pre_hooks.values()))
            args = backward.setup_inputs(args)
        try:
            output = self.forward(*args, **kwargs)
        except Exception:
            self._run_always_called_hooks(args, kwargs)
            raise
        for key, hook in list(self._forward_hooks.items()):
            result = hook(self, args, kwargs, output) if key in self._forward_hooks_with_kwargs else hook(self, args, output)
            if result is not None:
                output = result
        if backward is not None:
            output = backward.setup_outputs(output)
        return output

    def _run_always_called_hooks(self, args, kwargs) -> None:
        """After a failed forward, the forward hooks registered with ``always_call=True`` (output None)."""
        for key, hook in list(self._forward_hooks.items()):
            if key not in self._forward_hooks_always_called:
                continue
            try:
                hook(self, args, kwargs, None) if key in self._forward_hooks_with_kwargs else hook(self, args, None)
            except Exception as error:  # the forward's error is the one to raise
                warnings.warn(f"forward hook with always_call=True raised an exception that was silenced as another "
                              f"error was raised in forward: {error}", stacklevel=3)

    # --------------------------------------------------------- registration
    def __setattr__(self, name: str, value) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._discard(name)
            params[name] = value
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign a sub-module before Module.__init__() call")
            self._discard(name)
            self._modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter '{name}' (Parameter or None expected)")
            params[name] = None
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module '{name}' (Module or None expected)")
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            self._buffers[name] = None if value is None else (value if isinstance(value, Tensor) else Tensor(value))
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            store = self.__dict__.get(registry)
            if store is not None and name in store:
                return store[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def _discard(self, name: str) -> None:
        self.__dict__.pop(name, None)
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if "." in name or not name:
            raise KeyError(f"register_parameter: invalid name {name!r}")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: expected a Parameter or None for '{name}', got {type(param).__name__}")
        self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register non-trainable state (e.g. ``running_mean``); persistent buffers go into ``state_dict``."""
        if "." in name or not name:
            raise KeyError(f"register_buffer: invalid name {name!r}")
        self._discard(name)
        self._buffers[name] = None if tensor is None else (tensor if isinstance(tensor, Tensor) else Tensor(tensor))
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: expected a Module for '{name}', got {type(module).__name__}")
        if "." in name or not name:
            raise KeyError(f"add_module: invalid name {name!r}")
        self._discard(name)
        self._modules[name] = module

    register_module = add_module

    @staticmethod
    def _add_hook(hooks: OrderedDict, hook, prepend: bool, flags: tuple = ()) -> _RemovableHandle:
        Module._hook_counter += 1
        key = Module._hook_counter
        hooks[key] = hook
        if prepend:
            hooks.move_to_end(key, last=False)
        for flag in flags:
            flag.add(key)
        return _RemovableHandle(hooks, key, flags)

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> _RemovableHandle:
        """``hook(module, args, output)`` (or ``hook(module, args, kwargs, output)`` with ``with_kwargs``) runs after
        forward; a returned value replaces the output. ``always_call``: also after a forward that raised (output None)."""
        flags = tuple(flag for flag, on in ((self._forward_hooks_with_kwargs, with_kwargs),
                                            (self._forward_hooks_always_called, always_call)) if on)
        return self._add_hook(self._forward_hooks, hook, prepend, flags)

    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False) -> _RemovableHandle:
        """``hook(module, args)`` runs before forward; a returned value replaces the args. With ``with_kwargs``:
        ``hook(module, args, kwargs)`` returning None or ``(args, kwargs)``."""
        flags = (self._forward_pre_hooks_with_kwargs,) if with_kwargs else ()
        return self._add_hook(self._forward_pre_hooks, hook, prepend, flags)

    def register_full_backward_hook(self, hook, prepend: bool = False) -> _RemovableHandle:
        """``hook(module, grad_input, grad_output)`` runs once the gradients of the module's inputs are known.

        ``grad_input`` and ``grad_output`` are tuples with one entry per positional
        input / output (a Tensor, or None for a non-tensor or one that needs no
        gradient). A returned tuple replaces ``grad_input``. As in torch: when no
        input requires grad, the hook runs with the output gradients and
        ``grad_input`` all None (with a warning).

        >>> import normlab, normlab.nn as nn
        >>> layer = nn.Linear(3, 2)
        >>> _ = layer.register_full_backward_hook(lambda m, gi, go: print([g.shape for g in gi], [g.shape for g in go]))
        >>> layer(normlab.randn(4, 3, requires_grad=True)).sum().backward()
        [(4, 3)] [(4, 2)]
        """
        return self._add_hook(self._backward_hooks, hook, prepend)

    def register_full_backward_pre_hook(self, hook, prepend: bool = False) -> _RemovableHandle:
        """``hook(module, grad_output)`` runs when the gradients of the module's outputs are known; a returned
        tuple replaces ``grad_output`` (for what flows on into the module and its full backward hooks)."""
        return self._add_hook(self._backward_pre_hooks, hook, prepend)

    # ------------------------------------------------------------ traversal
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def get_submodule(self, target: str) -> "Module":
        """The sub-module at the dotted path ``target`` (``""`` is this module)."""
        module = self
        for name in target.split(".") if target else []:
            child = module._modules.get(name)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no attribute `{name}` (looking up {target!r})")
            module = child
        return module

    def get_parameter(self, target: str) -> "Parameter":
        prefix, _, name = target.rpartition(".")
        owner = self.get_submodule(prefix)
        if name not in owner._parameters:
            raise AttributeError(f"{type(owner).__name__} has no parameter `{name}` (looking up {target!r})")
        return owner._parameters[name]

    def get_buffer(self, target: str) -> Tensor:
        prefix, _, name = target.rpartition(".")
        owner = self.get_submodule(prefix)
        if name not in owner._buffers:
            raise AttributeError(f"{type(owner).__name__} has no buffer `{name}` (looking up {target!r})")
        return owner._buffers[name]

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool = True):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn) -> "Module":
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> "Module":
        if not isinstance(mode, bool):
            raise ValueError(f"train: expected a bool mode, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad._data[...] = 0
                p.grad._bump_version()

    def to(self, *args, device=None, dtype=None, non_blocking: bool = False) -> "Module":
        """Convert floating-point parameters and buffers to a dtype, in place (as torch); the device stays the CPU.

        torch's forms: ``to(dtype)``, ``to(device)``, ``to(device, dtype)``,
        ``to(tensor)``, keywords ``device=``, ``dtype=``, ``non_blocking=``.
        Parameters keep their identity (an optimizer built before keeps working).
        """
        name = f"{type(self).__name__}.to"
        target = parse_to(name, args, device, dtype)
        if target is None:
            return self
        if target not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"{name}: expected float32 or float64 (normlab computes in these), got {target}")
        for module in self.modules():
            for store in (module._parameters, module._buffers):
                for t in store.values():
                    if t is not None and t.dtype.kind == "f" and t.dtype != target:
                        t._data = t._data.astype(target)
                        t._bump_version()
                        if t.grad is not None:
                            t.grad = t.grad._data.astype(target)
        return self

    def type(self, dst_type) -> "Module":
        """``to(dst_type)`` for the floating-point state (torch's ``type`` also casts integer buffers; normlab
        keeps counters such as ``num_batches_tracked`` as int64)."""
        return self.to(dst_type)

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    def half(self) -> "Module":
        raise TypeError(f"{type(self).__name__}.half: normlab's layers compute in float32 or float64; "
                        "half precision is not supported (use .float())")

    bfloat16 = half

    def cpu(self) -> "Module":
        return self

    def cuda(self, device=None) -> "Module":
        raise cpu_only(f"{type(self).__name__}.cuda() has no GPU to move to")

    # ------------------------------------------------------------ state_dict
    def _state_items(self, keep_vars: bool = False):
        """(key, Tensor) for every parameter and persistent buffer, in torch's order."""
        for module_prefix, module in self.named_modules(remove_duplicate=False):
            base = f"{module_prefix}." if module_prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    yield base + name, p
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent_buffers:
                    yield base + name, b

    def state_dict(self, *, prefix: str = "") -> "OrderedDict[str, np.ndarray]":
        """Every parameter and persistent buffer under torch's key names, as NumPy copies."""
        return OrderedDict((prefix + key, t._data.copy()) for key, t in self._state_items())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values into parameters and buffers; every key and shape is checked before anything changes."""
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
        if strict and missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        updates = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = _as_state_array(state_dict[key], key)
            if value.shape != target.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {value.shape} from checkpoint, "
                    f"the shape in current model is {target.shape}."
                )
                continue
            if target.dtype.kind in "iub" and value.dtype.kind == "f":
                errors.append(f"dtype mismatch for {key}: expected an integer value, got {value.dtype}.")
                continue
            updates.append((target, value))
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors)
            )
        for target, value in updates:
            target._data[...] = value.astype(target.dtype, copy=False)
            target._bump_version()
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
