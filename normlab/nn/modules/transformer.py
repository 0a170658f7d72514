"""MultiheadAttention and the Transformer (Vaswani et al., 2017), with torch's modules, names and state dicts.

LayerNorm's main home: every sublayer is wrapped in a residual connection
and a LayerNorm, after the residual sum (``norm_first=False``, post-LN, the
2017 paper) or before the sublayer (``norm_first=True``, pre-LN: the
residual path stays an identity from the loss to the input, so deep stacks
train without warm-up; Xiong et al., 2020, "On Layer Normalization in the
Transformer Architecture").

Parameter and buffer names follow torch (``self_attn.in_proj_weight``,
``self_attn.out_proj.weight``, ``linear1.weight``, ``norm1.weight``,
``layers.0...``), so a torch state dict loads here and ours loads there.
"""
from __future__ import annotations

import copy
import numbers
import warnings

import numpy as np

from normlab._checks import check_positive_int, check_probability
from normlab.autograd.grad_mode import is_grad_enabled
from normlab.autograd.tensor import Tensor, as_tensor, get_default_dtype
from normlab.nn import functional as F
from normlab.nn import init
from normlab.nn.functional.attention import canonical_mask, causal_mask, multi_head_attention_forward
from normlab.nn.modules.activation import GELU, ReLU
from normlab.nn.modules.container import ModuleList
from normlab.nn.modules.dropout import Dropout
from normlab.nn.modules.linear import Linear
from normlab.nn.modules.module import Module, Parameter
from normlab.nn.modules.normalization import LayerNorm

__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerDecoder", "Transformer"]


class NonDynamicallyQuantizableLinear(Linear):
    """MultiheadAttention's output projection: a Linear under torch's class name (so reprs match)."""


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al., 2017), same as ``torch.nn.MultiheadAttention``.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)`` returns
    ``(output, weights)``. Shapes, sequence-first by default: query (L, N, E),
    key (S, N, kdim), value (S, N, vdim) -> output (L, N, E), weights (N, L, S)
    (or (N, num_heads, L, S) without averaging); ``batch_first=True`` puts N
    first; a single sequence (L, E) works too. Masks: ``key_padding_mask``
    (N, S) and ``attn_mask`` (L, S) or (N * num_heads, L, S), bool (True =
    blocked) or float (added to the scores).

    Parameters: ``in_proj_weight`` (3E, E) (or ``q_proj_weight``,
    ``k_proj_weight``, ``v_proj_weight`` when kdim or vdim differ from E),
    ``in_proj_bias`` (3E), ``out_proj.weight``/``out_proj.bias``, and with
    ``add_bias_kv`` ``bias_k``/``bias_v`` (1, 1, E).

    >>> import normlab, normlab.nn as nn
    >>> mha = nn.MultiheadAttention(8, num_heads=2, batch_first=True)
    >>> x = normlab.randn(3, 5, 8)
    >>> out, weights = mha(x, x, x)
    >>> out.shape, weights.shape
    ((3, 5, 8), (3, 5, 5))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        name = "MultiheadAttention"
        self.embed_dim = check_positive_int(name, "embed_dim", embed_dim)
        self.num_heads = check_positive_int(name, "num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        self.kdim = embed_dim if kdim is None else check_positive_int(name, "kdim", kdim)
        self.vdim = embed_dim if vdim is None else check_positive_int(name, "vdim", vdim)
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout = check_probability(name, "dropout", dropout)
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        dtype = np.dtype(dtype or get_default_dtype())

        def parameter(*shape):
            return Parameter(np.empty(shape, dtype=dtype))

        if self._qkv_same_embed_dim:
            self.in_proj_weight = parameter(3 * embed_dim, embed_dim)
            for unused in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(unused, None)
        else:
            self.q_proj_weight = parameter(embed_dim, embed_dim)
            self.k_proj_weight = parameter(embed_dim, self.kdim)
            self.v_proj_weight = parameter(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        self.register_parameter("in_proj_bias", parameter(3 * embed_dim) if bias else None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = parameter(1, 1, embed_dim)
            self.bias_v = parameter(1, 1, embed_dim)
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """torch's initialisation: Xavier-uniform projections, zero biases, Xavier-normal bias_k/bias_v."""
        for weight in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if weight is not None:
                init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        for bias in (self.bias_k, self.bias_v):
            if bias is not None:
                init.xavier_normal_(bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                average_attn_weights: bool = True, is_causal: bool = False):
        query, key, value = as_tensor(query), as_tensor(key), as_tensor(value)
        if self.batch_first and query.ndim == 3:
            # Keep self-attention recognisable (query is key is value): it projects with one matrix product.
            same_kv = key is value
            same_qk = query is key
            query = query.transpose(0, 1)
            key = query if same_qk else key.transpose(0, 1)
            value = key if same_kv else value.transpose(0, 1)
        separate = not self._qkv_same_embed_dim
        output, weights = multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=separate, q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        if self.batch_first and query.ndim == 3:
            output = output.transpose(0, 1)
        return output, weights


def _activation_function(owner: str, activation):
    """'relu' / 'gelu' -> the functional form; a callable (function or Module) is kept."""
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise ValueError(f"{owner}: activation should be relu/gelu, not {activation}")
    if not callable(activation):
        raise TypeError(f"{owner}: expected activation to be 'relu', 'gelu' or a callable, got "
                        f"{type(activation).__name__}")
    return activation


def _is_relu_or_gelu(activation) -> bool:
    return activation is F.relu or activation is F.gelu or isinstance(activation, (ReLU, GELU))


def _check_layer_arguments(owner: str, d_model, nhead, dim_feedforward, dropout) -> None:
    check_positive_int(owner, "d_model", d_model)
    check_positive_int(owner, "nhead", nhead)
    check_positive_int(owner, "dim_feedforward", dim_feedforward)
    check_probability(owner, "dropout", dropout)


class _TransformerLayer(Module):
    """What the encoder and decoder layers share: the feed-forward network, the norms and the dropouts.

    Registered in torch's order (so state dicts list the same keys): the
    attention modules (by the subclass), linear1, dropout, linear2, then
    norm1..norm<n>, then dropout1..dropout<n>, n = the number of sublayers.
    """

    def _add_feed_forward_and_norms(self, sublayers: int, d_model: int, dim_feedforward: int, dropout: float,
                                    activation, layer_norm_eps: float, norm_first: bool, bias: bool, dtype) -> None:
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        for i in range(1, sublayers + 1):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        for i in range(1, sublayers + 1):
            setattr(self, f"dropout{i}", Dropout(dropout))
        self.activation = activation
        self._last_dropout = f"dropout{sublayers}"

    def _ff_block(self, x):
        """FF(x) = dropout(linear2(dropout(activation(linear1(x))))), the last dropout the layer's last."""
        return getattr(self, self._last_dropout)(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoderLayer(_TransformerLayer):
    """Self-attention and a feed-forward network, each in a residual connection with LayerNorm.

    Same as ``torch.nn.TransformerEncoderLayer``::

        post-LN (norm_first=False):  x = norm1(x + SA(x));         x = norm2(x + FF(x))
        pre-LN  (norm_first=True):   x = x + SA(norm1(x));         x = x + FF(norm2(x))

    with FF(x) = linear2(dropout(activation(linear1(x)))); ``activation`` is
    'relu', 'gelu' or any callable. Input (S, N, E), or (N, S, E) with
    ``batch_first``, or one sequence (S, E).

    >>> import normlab, normlab.nn as nn
    >>> layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, batch_first=True, norm_first=True)
    >>> layer(normlab.randn(2, 7, 16)).shape
    (2, 7, 16)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        _check_layer_arguments("TransformerEncoderLayer", d_model, nhead, dim_feedforward, dropout)
        activation = _activation_function("TransformerEncoderLayer", activation)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self._add_feed_forward_and_norms(2, d_model, dim_feedforward, dropout, activation, layer_norm_eps,
                                         norm_first, bias, dtype)
        self.activation_relu_or_gelu = _is_relu_or_gelu(activation)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = as_tensor(src)
        src_key_padding_mask = canonical_mask(src_key_padding_mask, "src_key_padding_mask", x.dtype, src_mask,
                                              "src_mask")
        src_mask = canonical_mask(src_mask, "src_mask", x.dtype)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)



class TransformerDecoderLayer(_TransformerLayer):
    """Self-attention, attention over the encoder's output (``memory``) and a feed-forward network.

    Same as ``torch.nn.TransformerDecoderLayer``; each of the three sublayers
    sits in a residual connection with its LayerNorm (norm1, norm2, norm3),
    after (post-LN) or before (pre-LN, ``norm_first``) the sublayer.

    >>> import normlab, normlab.nn as nn
    >>> layer = nn.TransformerDecoderLayer(d_model=16, nhead=4, dim_feedforward=32)
    >>> mask = nn.Transformer.generate_square_subsequent_mask(6)
    >>> layer(normlab.randn(6, 2, 16), normlab.randn(9, 2, 16), tgt_mask=mask).shape
    (6, 2, 16)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        _check_layer_arguments("TransformerDecoderLayer", d_model, nhead, dim_feedforward, dropout)
        activation = _activation_function("TransformerDecoderLayer", activation)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first, bias=bias,
                                            dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first,
                                                 bias=bias, dtype=dtype)
        self._add_feed_forward_and_norms(3, d_model, dim_feedforward, dropout, activation, layer_norm_eps,
                                         norm_first, bias, dtype)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False):
        x = as_tensor(tgt)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                           need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, memory, memory, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                is_causal=is_causal, need_weights=False)[0]
        return self.dropout2(x)


def _clones(owner: str, layer: Module, num_layers) -> ModuleList:
    """``num_layers`` independent deep copies of ``layer`` (each with its own parameters), as torch."""
    if not isinstance(layer, Module):
        raise TypeError(f"{owner}: expected a layer Module, got {type(layer).__name__}")
    check_positive_int(owner, "num_layers", num_layers)
    return ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])


def _sequence_length(x: Tensor, batch_first: bool) -> int:
    return x.shape[0] if x.ndim == 2 else x.shape[1 if batch_first else 0]


def _detect_is_causal_mask(mask, is_causal, size: int) -> bool:
    """torch's rule: an explicit ``is_causal`` wins; if None, a mask equal to the causal mask counts as causal."""
    if is_causal is not None or mask is None:
        return bool(is_causal)
    expected = causal_mask(size, dtype=mask.dtype)
    return mask.shape == expected.shape and bool(np.array_equal(np.asarray(mask), expected))


def _why_not_nested(layer) -> str:
    """Why torch's TransformerEncoder would not use nested tensors with this layer ('' when it would)."""
    if not isinstance(layer, TransformerEncoderLayer):
        return "encoder_layer was not TransformerEncoderLayer"
    if layer.norm_first:
        return "encoder_layer.norm_first was True"
    if not layer.self_attn.batch_first:
        return ("encoder_layer.self_attn.batch_first was not True(use batch_first for better inference "
                "performance)")
    if not layer.self_attn._qkv_same_embed_dim:
        return "encoder_layer.self_attn._qkv_same_embed_dim was not True"
    if layer.self_attn.in_proj_bias is None:
        return "encoder_layer.self_attn was passed bias=False"
    if not layer.activation_relu_or_gelu:
        return "encoder_layer.activation_relu_or_gelu was not True"
    if layer.norm1.eps != layer.norm2.eps:
        return "encoder_layer.norm1.eps was not equal to encoder_layer.norm2.eps"
    if layer.self_attn.num_heads % 2 == 1:
        return "encoder_layer.self_attn.num_heads is odd"
    return ""


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer``, then ``norm`` if given (needed with pre-LN layers).

    Same as ``torch.nn.TransformerEncoder``. ``enable_nested_tensor`` is
    accepted with torch's meaning for the result: where torch would run its
    nested-tensor path (eval, no gradient needed, a left-aligned
    ``src_key_padding_mask``, batch-first post-LN layers, ...) the outputs at
    padded positions are 0 before the final norm, exactly as torch returns them.

    >>> import normlab, normlab.nn as nn
    >>> layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    >>> encoder = nn.TransformerEncoder(layer, num_layers=2)
    >>> encoder(normlab.randn(2, 7, 16)).shape
    (2, 7, 16)
    """

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        self.layers = _clones("TransformerEncoder", encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.use_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check
        why_not = _why_not_nested(encoder_layer)
        if enable_nested_tensor and why_not:
            warnings.warn(f"enable_nested_tensor is True, but self.use_nested_tensor is False because {why_not}",
                          UserWarning, stacklevel=2)
            self.use_nested_tensor = False

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = as_tensor(src)
        src_key_padding_mask = canonical_mask(src_key_padding_mask, "src_key_padding_mask", x.dtype, mask, "mask")
        mask = canonical_mask(mask, "mask", x.dtype)
        first = self.layers[0]
        padded = self._nested_padding(x, mask, src_key_padding_mask)
        batch_first = first.self_attn.batch_first if isinstance(first, TransformerEncoderLayer) else False
        is_causal = _detect_is_causal_mask(mask, is_causal, _sequence_length(x, batch_first))
        output = x
        for layer in self.layers:
            output = layer(output, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        if padded is not None:
            # torch's nested-tensor path computes only the real tokens and pads the result with zeros.
            output = output.masked_fill(padded[..., None], 0.0)
        return output if self.norm is None else self.norm(output)

    def _nested_padding(self, x: Tensor, mask, key_padding_mask):
        """The (N, S) padding positions where torch's nested-tensor path would zero the output, else None."""
        first = self.layers[0]
        if (not self.use_nested_tensor or first.training or x.ndim != 3 or key_padding_mask is None
                or mask is not None):
            return None
        padding = np.asarray(key_padding_mask) != 0  # the canonical mask: -inf where padded
        if self.mask_check:
            lengths = (~padding).sum(axis=1)
            if not np.array_equal(~padding, np.arange(padding.shape[1]) < lengths[:, None]):
                return None  # not left-aligned: torch falls back to the dense path
        tensors = [x, first.self_attn.in_proj_weight, first.self_attn.in_proj_bias, first.self_attn.out_proj.weight,
                   first.self_attn.out_proj.bias, first.norm1.weight, first.norm1.bias, first.norm2.weight,
                   first.norm2.bias, first.linear1.weight, first.linear1.bias, first.linear2.weight,
                   first.linear2.bias]
        if is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
            return None
        return padding


class TransformerDecoder(Module):
    """A stack of ``num_layers`` copies of ``decoder_layer``, then ``norm`` if given. Same as torch's.

    >>> import normlab, normlab.nn as nn
    >>> decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(16, 4, 32), num_layers=2)
    >>> decoder(normlab.randn(5, 2, 16), normlab.randn(7, 2, 16)).shape
    (5, 2, 16)
    """

    def __init__(self, decoder_layer: Module, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        self.layers = _clones("TransformerDecoder", decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal: bool = False):
        output = as_tensor(tgt)
        first = self.layers[0]
        batch_first = first.self_attn.batch_first if isinstance(first, TransformerDecoderLayer) else False
        tgt_is_causal = _detect_is_causal_mask(
            None if tgt_mask is None else canonical_mask(tgt_mask, "tgt_mask", output.dtype), tgt_is_causal,
            _sequence_length(output, batch_first))
        for layer in self.layers:
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return output if self.norm is None else self.norm(output)


class Transformer(Module):
    """The encoder-decoder Transformer (Vaswani et al., 2017), same as ``torch.nn.Transformer``.

    ``num_encoder_layers`` encoder layers and ``num_decoder_layers`` decoder
    layers, each stack followed by a LayerNorm; every weight matrix starts
    Xavier-uniform (torch's ``_reset_parameters``). ``forward(src, tgt, ...)``
    takes the masks of the encoder (src_*), the decoder's self-attention
    (tgt_*) and its attention over the encoder output (memory_*).

    >>> import normlab, normlab.nn as nn
    >>> model = nn.Transformer(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
    ...                        dim_feedforward=32, batch_first=True)
    >>> tgt_mask = nn.Transformer.generate_square_subsequent_mask(5)
    >>> model(normlab.randn(2, 9, 16), normlab.randn(2, 5, 16), tgt_mask=tgt_mask).shape
    (2, 5, 16)
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        layer_options = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                         norm_first, bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(*layer_options, dtype=dtype),
                                              num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(*layer_options, dtype=dtype),
                                              num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal: bool = False):
        src, tgt = as_tensor(src), as_tensor(tgt)
        batch_dim = 0 if self.batch_first else 1
        if src.ndim == 3 and (tgt.ndim != 3 or src.shape[batch_dim] != tgt.shape[batch_dim]):
            raise ValueError(f"Transformer: the batch sizes of src {src.shape} and tgt {tgt.shape} must be equal "
                             f"(dim {batch_dim}{', batch_first' if self.batch_first else ''})")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"Transformer: expected src and tgt with {self.d_model} features (d_model), got "
                             f"{src.shape} and {tgt.shape}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> Tensor:
        """A float (sz, sz) mask: 0 on and below the diagonal, -inf above: position i attends to 0..i only.

        >>> import normlab.nn as nn
        >>> nn.Transformer.generate_square_subsequent_mask(3).numpy()
        array([[  0., -inf, -inf],
               [  0.,   0., -inf],
               [  0.,   0.,   0.]], dtype=float32)
        """
        if isinstance(sz, bool) or not isinstance(sz, numbers.Integral) or sz < 0:
            raise ValueError(f"generate_square_subsequent_mask: expected a non-negative integer size, got {sz!r}")
        return Tensor(causal_mask(int(sz), dtype=np.dtype(dtype or get_default_dtype())))

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

