"""Recurrent layers: RNN, LSTM, GRU and their cells, with torch's signatures, names and results.

Thin holders of parameters around ``normlab.ops.recurrent``: one autograd
Function per layer and direction runs the whole sequence (forward) and BPTT
(backward). Beyond torch:

* ``module(x, hx=None, lengths=None)``: ``lengths`` (one int per sequence, in
  batch order) makes a padded batch behave as the PackedSequence of those
  lengths: outputs past a sequence's end are 0 and pass no gradient, ``h_n`` /
  ``c_n`` hold each sequence's state at its last valid step. A
  ``PackedSequence`` is accepted as in torch.
* ``norm="layer"``: layer normalization inside the cell (Ba, Kiros & Hinton
  2016); ``norm="batch", max_steps=T``: recurrent batch normalization with
  statistics per time step (Cooijmans et al. 2016). See ``RNNBase``.
* errors are ValueError/TypeError naming the layer, the expected and the
  given, raised before any state (running statistics) changes.

Not implemented: LSTM's ``proj_size`` (must be 0).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from normlab._checks import check_float, check_positive_int, check_probability
from normlab.autograd.function import Function
from normlab.autograd.tensor import Tensor, as_tensor, cat, get_default_dtype, stack
from normlab.nn import init
from normlab.nn.functional.common import dropout as dropout_fn
from normlab.nn.modules.module import Module, Parameter
from normlab.nn.utils.rnn import PackedSequence, check_lengths, pack_padded_sequence, pad_packed_sequence
from normlab.ops import recurrent as ops

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_NORM_PREFIX = {"layer": "ln_", "batch": "bn_"}
_NORM_GAIN_INIT = {"layer": 1.0, "batch": 0.1}   # Cooijmans et al.: gamma = 0.1 keeps gradients flowing


class _Recurrent(Function):
    """One layer, one direction, the whole sequence: ``ops.recurrent_forward`` / ``recurrent_backward``."""

    def forward(self, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, gain_ih, gain_hh, gain_c, bias_c,
                **config):
        (y, h_n, c_n), self.saved = ops.recurrent_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh,
                                                          gain_ih, gain_hh, gain_c, bias_c, **config)
        return (y, h_n) if c_n is None else (y, h_n, c_n)

    def backward(self, dy, dh_n, dc_n=None):
        return ops.recurrent_backward(dy, dh_n, dc_n, self.saved, self.needs_input_grad)


def _check_norm(name: str, norm, max_steps) -> int | None:
    if norm not in ops.NORMS:
        raise ValueError(f"{name}: expected norm None, 'layer' or 'batch', got {norm!r}")
    if norm == "batch":
        if max_steps is None:
            raise ValueError(f"{name}: norm='batch' needs max_steps (the number of time steps with their own "
                             f"statistics), got max_steps=None")
        return check_positive_int(name, "max_steps", max_steps)
    return None if max_steps is None else check_positive_int(name, "max_steps", max_steps)


class _RecurrentParameters:
    """Registration, initialisation and lookup of one cell's parameters (shared by layers and cells).

    torch's names ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` (+ a
    suffix such as ``_l0_reverse``); with a norm: ``{ln,bn}_weight_ih``,
    ``{ln,bn}_weight_hh`` (gains of the two summed inputs), for the LSTM
    ``{ln,bn}_weight_c`` and ``{ln,bn}_bias_c`` (the cell-state norm); with
    norm="batch" the buffers ``bn_running_{mean,var}_{ih,hh,c}`` of shape
    (max_steps, features).
    """

    @staticmethod
    def register(module: Module, suffix: str, input_size: int, hidden_size: int, gates: int, bias: bool,
                 norm, max_steps, dtype, lstm: bool) -> None:
        def parameter(*shape):
            return Parameter(np.empty(shape, dtype=dtype))

        module.register_parameter("weight_ih" + suffix, parameter(gates * hidden_size, input_size))
        module.register_parameter("weight_hh" + suffix, parameter(gates * hidden_size, hidden_size))
        if bias:
            module.register_parameter("bias_ih" + suffix, parameter(gates * hidden_size))
            module.register_parameter("bias_hh" + suffix, parameter(gates * hidden_size))
        if norm is None:
            return
        prefix = _NORM_PREFIX[norm]
        sides = [("ih", gates * hidden_size), ("hh", gates * hidden_size)] + ([("c", hidden_size)] if lstm else [])
        for side, features in sides:
            module.register_parameter(f"{prefix}weight_{side}{suffix}", parameter(features))
        if lstm and bias:
            module.register_parameter(f"{prefix}bias_c{suffix}", parameter(hidden_size))
        if norm == "batch":
            for side, features in sides:
                module.register_buffer(f"bn_running_mean_{side}{suffix}", Tensor(np.zeros((max_steps, features), dtype)))
                module.register_buffer(f"bn_running_var_{side}{suffix}", Tensor(np.ones((max_steps, features), dtype)))

    @staticmethod
    def reset(module: Module, suffix: str, hidden_size: int, norm) -> None:
        """torch's U(-1/sqrt(H), 1/sqrt(H)) on torch's parameters; norm gains 1 (layer) or 0.1 (batch), shifts 0."""
        bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            p = getattr(module, name + suffix, None)
            if p is not None:
                init.uniform_(p, -bound, bound)
        if norm is None:
            return
        prefix = _NORM_PREFIX[norm]
        for side in ("ih", "hh", "c"):
            gain = getattr(module, f"{prefix}weight_{side}{suffix}", None)
            if gain is not None:
                init.constant_(gain, _NORM_GAIN_INIT[norm])
        shift = getattr(module, f"{prefix}bias_c{suffix}", None)
        if shift is not None:
            init.zeros_(shift)
        if norm == "batch":
            for side in ("ih", "hh", "c"):
                mean = module._buffers.get(f"bn_running_mean_{side}{suffix}")
                if mean is not None:
                    mean._data[...] = 0
                    module._buffers[f"bn_running_var_{side}{suffix}"]._data[...] = 1

    @staticmethod
    def lookup(module: Module, suffix: str, norm):
        """(the 8 parameter inputs of ``_Recurrent`` after x, h0, c0 -- None where absent, running stats or None)."""
        names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
        if norm is not None:
            prefix = _NORM_PREFIX[norm]
            names += [prefix + "weight_ih", prefix + "weight_hh", prefix + "weight_c", prefix + "bias_c"]
        params = [module._parameters.get(name + suffix) for name in names]
        params += [None] * (8 - len(params))
        running = None
        if norm == "batch":
            running = {side: (module._buffers[f"bn_running_mean_{side}{suffix}"]._data,
                              module._buffers[f"bn_running_var_{side}{suffix}"]._data)
                       for side in ("ih", "hh", "c") if f"bn_running_mean_{side}{suffix}" in module._buffers}
        return params, running


def _check_dtype(name: str, what: str, array: np.ndarray, expected: np.dtype) -> None:
    check_float(name, array, what)
    if array.dtype != expected:
        raise TypeError(f"{name}: expected {what} of dtype {expected} (the parameters' dtype), got {array.dtype}; "
                        f"convert the {what} with .to({expected}) or the module with .to({array.dtype})")


def _check_state(name: str, what: str, state, shape: tuple, dtype) -> Tensor:
    state = as_tensor(state)
    if state.shape != shape:
        raise ValueError(f"{name}: expected {what} of shape {shape}, got {state.shape}")
    _check_dtype(name, what, state._data, dtype)
    return state


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU: stacked layers, directions, packing, norms.

    Shapes (torch's): input (T, B, input_size) ((B, T, input_size) with
    ``batch_first``; (T, input_size) unbatched) or a PackedSequence; hx (and
    c for the LSTM) (num_layers * D, B, hidden_size), D = 2 if bidirectional;
    output (T, B, D * hidden_size) (or a PackedSequence), h_n like hx.

    ``norm="layer"`` (Ba, Kiros & Hinton 2016): in every cell, the two summed
    inputs x W_ih^T and h W_hh^T are layer-normalized separately over their
    G*H features (all gates together, as the paper's LN(W_h h) -- one mean and
    variance per summed-input vector), each with its own gain
    (``ln_weight_ih_l0``, ``ln_weight_hh_l0``, init 1); torch's ``bias_ih``
    and ``bias_hh`` are the shifts after normalization. The LSTM's cell state
    is normalized before its tanh, h = o * tanh(LN(c) * ln_weight_c + ln_bias_c),
    while the recurrence keeps the raw c. The paper defines no LN-GRU; normlab
    gives it the same two normalizations (over 3H features), and its n gate
    uses the normalized hidden part, n = tanh(x_n + r * (LN(h W_hh^T)_n * gain
    + b_hn)): torch's GRU keeps b_hn inside r * (...), and normalizing the
    whole summed input, not each gate, is the paper's rule for the LSTM. The
    vanilla RNN: the paper normalizes the *sum* W_hh h + W_ih x; normlab
    normalizes the two terms separately, like the other cells (one rule for
    all three, and the input side is then one normalization over all steps
    at once). No batch coupling: a batch of one gives the same result as
    inside a batch.

    ``norm="batch", max_steps=T`` (Cooijmans et al. 2016): the same places,
    batch normalization of each feature over the sequences of one time step,
    with separate batch statistics and separate running statistics
    (``bn_running_mean_ih_l0`` etc., (max_steps, features)) for each time
    step t < max_steps. Steps t >= max_steps use the statistics of step
    max_steps - 1 in eval; in training they normalize with their own batch
    statistics and move no running statistics. Gains init 0.1, as the paper
    recommends; the papers' beta_x, beta_h are torch's bias_ih, bias_hh;
    the cell-state norm has its own shift ``bn_bias_c`` (the paper's
    beta_c). Statistics come from the valid sequences of a step only (padded
    positions are excluded); a step needs at least 2 valid sequences in
    training. Time steps are positions in the input in both directions (the
    reverse direction's first step is position T-1). Running statistics
    follow torch's rule with ``momentum`` (0.1) and the unbiased variance;
    ``eps`` is 1e-5 (both are attributes).

    ``bias=False`` removes every additive bias, the cell-state shift included.
    """

    momentum = 0.1
    eps = 1e-5

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, *, norm=None, max_steps=None) -> None:
        super().__init__()
        name = type(self).__name__
        if mode not in ("RNN_TANH", "RNN_RELU", "LSTM", "GRU"):
            raise ValueError(f"{name}: unknown mode {mode!r}")
        self.mode = mode
        self.input_size = check_positive_int(name, "input_size", input_size)
        self.hidden_size = check_positive_int(name, "hidden_size", hidden_size)
        self.num_layers = check_positive_int(name, "num_layers", num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = check_probability(name, "dropout", dropout)
        self.bidirectional = bool(bidirectional)
        if proj_size != 0:
            raise ValueError(f"{name}: proj_size is not supported by normlab (expected 0), got {proj_size!r}")
        self.proj_size = 0
        self.norm = norm
        self.max_steps = _check_norm(name, norm, max_steps)
        dtype = np.dtype(dtype or get_default_dtype())
        gates = ops.CELLS[self._cell]
        directions = 2 if bidirectional else 1
        self._suffixes = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                self._suffixes.append(suffix)
                _RecurrentParameters.register(self, suffix, layer_input, hidden_size, gates, bias, norm,
                                              self.max_steps, dtype, mode == "LSTM")
        self.reset_parameters()

    @property
    def _cell(self) -> str:
        return self.mode.lower()

    def reset_parameters(self) -> None:
        for suffix in self._suffixes:
            _RecurrentParameters.reset(self, suffix, self.hidden_size, self.norm)

    def flatten_parameters(self) -> None:
        """A no-op, for torch code (torch's compacts weights for cuDNN)."""

    @property
    def all_weights(self) -> list:
        """The parameters of each layer and direction, in torch's order."""
        return [[p for name, p in self._parameters.items() if name.endswith(suffix) and
                 name[: -len(suffix)] in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                for suffix in self._suffixes]

    # ------------------------------------------------------------------ input
    def _prepare(self, input, hx, lengths):
        """Validate everything; return the packed rows and how to undo the packing. Changes no state."""
        name = type(self).__name__
        dtype = self.weight_ih_l0.dtype
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError(f"{name}: lengths must be None for a PackedSequence input (it carries its own)")
            data, batch_sizes = as_tensor(input.data), np.asarray(input.batch_sizes, dtype=np.int64)
            if data.ndim != 2 or data.shape[1] != self.input_size:
                raise ValueError(f"{name}: expected PackedSequence data of shape (N, {self.input_size}), "
                                 f"got {data.shape}")
            if (batch_sizes.ndim != 1 or batch_sizes.size == 0 or batch_sizes.min() < 1
                    or np.any(np.diff(batch_sizes) > 0) or batch_sizes.sum() != data.shape[0]):
                raise ValueError(f"{name}: expected non-increasing positive batch_sizes adding up to "
                                 f"{data.shape[0]}, got {batch_sizes.tolist()}")
            _check_dtype(name, "input", data._data, dtype)
            layout = dict(packed=True, unbatched=False, steps=len(batch_sizes), batch=int(batch_sizes[0]),
                          sorted_indices=input.sorted_indices, unsorted_indices=input.unsorted_indices,
                          lengths=None)
        else:
            x = as_tensor(input)
            if x.ndim not in (2, 3):
                raise ValueError(f"{name}: expected 3D input (batched, {'(B, T, I)' if self.batch_first else '(T, B, I)'}"
                                 f") or 2D input (unbatched, (T, I)), got {x.ndim}D input of shape {x.shape}")
            if x.shape[-1] != self.input_size:
                raise ValueError(f"{name}: expected input with last dimension {self.input_size} (input_size), "
                                 f"got shape {x.shape}")
            _check_dtype(name, "input", x._data, dtype)
            unbatched = x.ndim == 2
            if unbatched:
                x = x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
            steps, batch = x.shape[0], x.shape[1]
            if steps == 0:
                raise ValueError(f"{name}: expected a sequence length larger than 0, got input of shape {x.shape}")
            layout = dict(packed=False, unbatched=unbatched, steps=steps, batch=batch, sorted_indices=None,
                          unsorted_indices=None, lengths=None)
            if lengths is not None:
                layout["lengths"] = check_lengths(name, lengths, batch, steps)
            data = x
        states = self._check_hx(hx, layout["batch"], layout["unbatched"], dtype)
        if layout["lengths"] is not None and layout["batch"] == 0:
            layout["lengths"] = None   # an empty batch has nothing to pack: the plain path gives empty outputs
        if layout["lengths"] is not None:
            packed = pack_padded_sequence(data, layout["lengths"], enforce_sorted=False)
            data, batch_sizes = packed.data, packed.batch_sizes
            layout["sorted_indices"], layout["unsorted_indices"] = packed.sorted_indices, packed.unsorted_indices
        elif not layout["packed"]:
            data = data.reshape(layout["steps"] * layout["batch"], self.input_size)
            batch_sizes = np.full(layout["steps"], layout["batch"], dtype=np.int64)
        if self.norm == "batch" and self.training and batch_sizes.min() < 2:
            raise ValueError(f"{name}: norm='batch' needs at least 2 valid sequences at every time step in training "
                             f"(batch statistics per step), got {batch_sizes.tolist()} sequences per step")
        return data, batch_sizes, states, layout

    def _check_hx(self, hx, batch: int, unbatched: bool, dtype):
        """hx as a list of (num_layers * D, B, H) Tensors (h, and c for the LSTM), or None."""
        if hx is None:
            return None
        name = type(self).__name__
        directions = 2 if self.bidirectional else 1
        shape = (self.num_layers * directions,) + (() if unbatched else (batch,)) + (self.hidden_size,)
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{name}: expected hx to be a tuple (h_0, c_0), got {type(hx).__name__}"
                                + (f" of length {len(hx)}" if isinstance(hx, (tuple, list)) else ""))
            states = [_check_state(name, "h_0", hx[0], shape, dtype), _check_state(name, "c_0", hx[1], shape, dtype)]
        else:
            if isinstance(hx, (tuple, list)):
                raise TypeError(f"{name}: expected hx to be one tensor of shape {shape}, got a {type(hx).__name__}")
            states = [_check_state(name, "hx", hx, shape, dtype)]
        return [s.unsqueeze(1) for s in states] if unbatched else states

    # ---------------------------------------------------------------- forward
    def forward(self, input, hx=None, lengths=None):
        """(output, h_n) -- (output, (h_n, c_n)) for the LSTM; see the class docstring for shapes."""
        data, batch_sizes, states, layout = self._prepare(input, hx, lengths)
        batch, hidden = layout["batch"], self.hidden_size
        directions = 2 if self.bidirectional else 1
        sorted_indices = layout["sorted_indices"]
        if states is not None and sorted_indices is not None:
            states = [s[:, sorted_indices] for s in states]
        zeros = np.zeros((batch, hidden), dtype=data.dtype)
        lstm = self.mode == "LSTM"
        finals = [[] for _ in range(2 if lstm else 1)]
        layer_input = data
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                suffix = self._suffixes[index]
                params, running = _RecurrentParameters.lookup(self, suffix, self.norm)
                h0 = zeros if states is None else states[0][index]
                c0 = (zeros if states is None else states[1][index]) if lstm else None
                result = _Recurrent.apply(layer_input, h0, c0, *params, cell=self._cell, batch_sizes=batch_sizes,
                                          reverse=direction == 1, norm=self.norm, training=self.training,
                                          running=running, momentum=self.momentum, eps=self.eps)
                outputs.append(result[0])
                for final, state in zip(finals, result[1:]):
                    final.append(state)
            layer_input = outputs[0] if directions == 1 else cat(outputs, 1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = dropout_fn(layer_input, self.dropout, True)
        finals = [stack(final, 0) for final in finals]
        if layout["unsorted_indices"] is not None:
            finals = [final[:, layout["unsorted_indices"]] for final in finals]
        output = self._output(layer_input, batch_sizes, layout)
        if layout["unbatched"]:
            finals = [final.squeeze(1) for final in finals]
        return output, (tuple(finals) if lstm else finals[0])

    def _output(self, rows, batch_sizes, layout):
        if layout["packed"]:
            return PackedSequence(rows, batch_sizes, layout["sorted_indices"], layout["unsorted_indices"])
        if layout["lengths"] is not None:
            packed = PackedSequence(rows, batch_sizes, layout["sorted_indices"], layout["unsorted_indices"])
            output, _ = pad_packed_sequence(packed, total_length=layout["steps"])
        else:
            output = rows.reshape(layout["steps"], layout["batch"], rows.shape[1])
        if layout["unbatched"]:
            return output.squeeze(1)
        return output.transpose(0, 1) if self.batch_first else output

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        if self.norm is not None:
            text += f", norm={self.norm!r}"
        if self.max_steps is not None:
            text += f", max_steps={self.max_steps}"
        return text


class RNN(RNNBase):
    """Elman RNN, h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu).  Same as ``torch.nn.RNN``.

    Plus ``lengths=``, ``norm=`` and ``max_steps=`` (see ``RNNBase``).

    >>> import normlab, normlab.nn as nn
    >>> rnn = nn.RNN(4, 8, num_layers=2)
    >>> output, h_n = rnn(normlab.randn(5, 3, 4))
    >>> output.shape, h_n.shape
    ((5, 3, 8), (2, 3, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, norm=None, max_steps=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype, norm=norm, max_steps=max_steps)


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997).  Same as ``torch.nn.LSTM`` (without proj_size).

    i, f, g, o = sigma, sigma, tanh, sigma of x W_ih^T + b_ih + h W_hh^T + b_hh;
    c_t = f c_{t-1} + i g; h_t = o tanh(c_t). Returns (output, (h_n, c_n)).
    Plus ``lengths=``, ``norm=`` and ``max_steps=`` (see ``RNNBase``).

    >>> import normlab, normlab.nn as nn
    >>> lstm = nn.LSTM(4, 8, batch_first=True, norm="layer")
    >>> output, (h_n, c_n) = lstm(normlab.randn(3, 5, 4), lengths=[5, 2, 4])
    >>> output.shape, h_n.shape, float(output[1, 2:].abs().sum())   # past its length: zeros
    ((3, 5, 8), (1, 3, 8), 0.0)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, *, norm=None, max_steps=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype, norm=norm, max_steps=max_steps)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014), torch's variant.  Same as ``torch.nn.GRU``.

    r, z = sigma(.); n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn));
    h_t = (1 - z) n + z h_{t-1}. Plus ``lengths=``, ``norm=``, ``max_steps=``.

    >>> import normlab, normlab.nn as nn
    >>> gru = nn.GRU(4, 8, bidirectional=True, norm="batch", max_steps=5)
    >>> output, h_n = gru(normlab.randn(5, 3, 4))
    >>> output.shape, h_n.shape
    ((5, 3, 16), (2, 3, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, *, norm=None, max_steps=None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype, norm=norm, max_steps=max_steps)


# ----------------------------------------------------------------------------
# Cells: one time step
# ----------------------------------------------------------------------------

class RNNCellBase(Module):
    """One time step of a recurrent layer: input (B, input_size) or (input_size,), hx like the output.

    Parameters as the layers' without suffix (``weight_ih``, ..., ``ln_weight_ih``,
    ``bn_running_mean_ih``); ``norm`` and ``max_steps`` as in ``RNNBase``. A
    cell with norm="batch" needs to know which time step it is computing:
    ``cell(x, hx, step=t)`` (statistics of step min(t, max_steps - 1)).
    """

    momentum = 0.1
    eps = 1e-5

    def __init__(self, cell: str, input_size: int, hidden_size: int, bias: bool, dtype, norm, max_steps) -> None:
        super().__init__()
        name = type(self).__name__
        self._cell = cell
        self.input_size = check_positive_int(name, "input_size", input_size)
        self.hidden_size = check_positive_int(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        self.norm = norm
        self.max_steps = _check_norm(name, norm, max_steps)
        dtype = np.dtype(dtype or get_default_dtype())
        _RecurrentParameters.register(self, "", input_size, hidden_size, ops.CELLS[cell], bias, norm,
                                      self.max_steps, dtype, cell == "lstm")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _RecurrentParameters.reset(self, "", self.hidden_size, self.norm)

    def forward(self, input, hx=None, *, step: int = 0):
        name = type(self).__name__
        dtype = self.weight_ih.dtype
        x = as_tensor(input)
        if x.ndim not in (1, 2):
            raise ValueError(f"{name}: expected 2D input (B, {self.input_size}) or 1D input ({self.input_size},), "
                             f"got {x.ndim}D input of shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input with last dimension {self.input_size} (input_size), "
                             f"got shape {x.shape}")
        _check_dtype(name, "input", x._data, dtype)
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"{name}: expected step to be a non-negative int, got {step!r}")
        unbatched = x.ndim == 1
        if unbatched:
            x = x.unsqueeze(0)
        batch = x.shape[0]
        shape = (batch, self.hidden_size) if not unbatched else (self.hidden_size,)
        lstm = self._cell == "lstm"
        if hx is None:
            states = [np.zeros((batch, self.hidden_size), dtype)] * (2 if lstm else 1)
        else:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{name}: expected hx to be a tuple (h, c), got {type(hx).__name__}")
                states = [_check_state(name, "h", hx[0], shape, dtype), _check_state(name, "c", hx[1], shape, dtype)]
            else:
                states = [_check_state(name, "hx", hx, shape, dtype)]
            if unbatched:
                states = [s.unsqueeze(0) for s in states]
        if self.norm == "batch" and self.training and batch < 2:
            raise ValueError(f"{name}: norm='batch' needs a batch of at least 2 in training, got {batch}")
        params, running = _RecurrentParameters.lookup(self, "", self.norm)
        result = _Recurrent.apply(x, states[0], states[1] if lstm else None, *params, cell=self._cell,
                                  batch_sizes=[batch], norm=self.norm, training=self.training, running=running,
                                  first_step=step, momentum=self.momentum, eps=self.eps)
        h, c = result[1], (result[2] if lstm else None)
        if unbatched:
            h, c = h.squeeze(0), (c.squeeze(0) if lstm else None)
        return (h, c) if lstm else h

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        if self.norm is not None:
            text += f", norm={self.norm!r}"
        if self.max_steps is not None:
            text += f", max_steps={self.max_steps}"
        return text


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu).  Same as ``torch.nn.RNNCell``.

    >>> import normlab, normlab.nn as nn
    >>> nn.RNNCell(4, 8)(normlab.randn(3, 4)).shape
    (3, 8)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None, *, norm=None, max_steps=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("rnn_" + nonlinearity, input_size, hidden_size, bias, dtype, norm, max_steps)


class LSTMCell(RNNCellBase):
    """One LSTM step, returns (h', c').  Same as ``torch.nn.LSTMCell``.

    >>> import normlab, normlab.nn as nn
    >>> h, c = nn.LSTMCell(4, 8, norm="layer")(normlab.randn(3, 4))
    >>> h.shape, c.shape
    ((3, 8), (3, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 norm=None, max_steps=None) -> None:
        super().__init__("lstm", input_size, hidden_size, bias, dtype, norm, max_steps)


class GRUCell(RNNCellBase):
    """One GRU step.  Same as ``torch.nn.GRUCell``.

    >>> import normlab, normlab.nn as nn
    >>> nn.GRUCell(4, 8)(normlab.randn(3, 4)).shape
    (3, 8)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 norm=None, max_steps=None) -> None:
        super().__init__("gru", input_size, hidden_size, bias, dtype, norm, max_steps)
