"""MultiheadAttention, scaled_dot_product_attention and the Transformer modules against torch.

The modules are built in both libraries, torch's state dict is loaded into
normlab's (the names must match), and outputs, input gradients and every
parameter gradient are compared in float64 with random upstream gradients:
in training with dropout 0, in eval, and in eval under no_grad (where torch
takes its fast paths: the native attention kernel and, for an encoder with a
padding mask, nested tensors whose padded outputs are 0). float32 runs are
checked against torch's float64 result.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from tests.oracle import assert_close, assert_float32_close, numerical_gradient

E, HEADS, FF = 8, 2, 16

# Both libraries warn about these; the tests mean to exercise exactly those inputs.
pytestmark = [pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask"),
              pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage"),
              pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")]


def load_torch_state(ours, theirs):
    """Load torch's state dict into the normlab module; the key lists must be identical."""
    state = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict(state)


def compare_backward(ours, theirs, inputs, torch_inputs, out, tout, rng, dtype=np.float64):
    g = rng.standard_normal(out.shape)
    out.backward(g.astype(dtype))
    tout.backward(torch.tensor(g))
    grads = dict(ours.named_parameters())
    for i, (x, xt) in enumerate(zip(inputs, torch_inputs)):
        assert_close(x.grad, xt.grad, np.float64, f"input {i} grad")
    for name, p in theirs.named_parameters():
        assert_close(grads[name].grad, p.grad, np.float64, f"{name} grad")


# --------------------------------------------------------------- MultiheadAttention
MHA_OPTIONS = [dict(), dict(batch_first=True), dict(kdim=5, vdim=3), dict(add_bias_kv=True), dict(add_zero_attn=True),
               dict(bias=False), dict(add_bias_kv=True, add_zero_attn=True, batch_first=True, kdim=6)]
MASKS = ["none", "key_padding", "bool_attn", "float_attn", "both", "float_key_padding", "attn_3d"]


def _masks(kind, rng, length, source, batch):
    padding = rng.random((batch, source)) < 0.3
    padding[:, 0] = False  # every query keeps a key: no all-masked row
    blocked = rng.random((length, source)) < 0.3
    blocked[:, 0] = False
    return {
        "none": {},
        "key_padding": {"key_padding_mask": padding},
        "bool_attn": {"attn_mask": blocked},
        "float_attn": {"attn_mask": rng.standard_normal((length, source))},
        "both": {"key_padding_mask": padding, "attn_mask": blocked},
        "float_key_padding": {"key_padding_mask": np.where(padding, -np.inf, 0.0),
                              "attn_mask": rng.standard_normal((length, source))},
        "attn_3d": {"attn_mask": rng.standard_normal((batch * HEADS, length, source))},
    }[kind]


@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("options", MHA_OPTIONS, ids=str)
def test_multihead_attention_matches_torch(rng, options, masks, need_weights, average):
    theirs = torch.nn.MultiheadAttention(E, HEADS, **options).double()
    ours = nn.MultiheadAttention(E, HEADS, dtype=np.float64, **options)
    load_torch_state(ours, theirs)
    assert repr(ours) == repr(theirs)
    length, source, batch = 4, 6, 3
    batch_first = options.get("batch_first", False)

    def shape(n, d):
        return (batch, n, d) if batch_first else (n, batch, d)

    arrays = [rng.standard_normal(shape(length, E)), rng.standard_normal(shape(source, options.get("kdim", E))),
              rng.standard_normal(shape(source, options.get("vdim", E)))]
    mask = _masks(masks, rng, length, source, batch)
    inputs = [normlab.tensor(a, requires_grad=True) for a in arrays]
    torch_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mixed bool/float masks: deprecated in both
        out, weights = ours(*inputs, need_weights=need_weights, average_attn_weights=average, **mask)
        tout, tweights = theirs(*torch_inputs, need_weights=need_weights, average_attn_weights=average,
                                **{k: torch.tensor(v) for k, v in mask.items()})
    assert_close(out, tout, np.float64, "output")
    if need_weights:
        assert_close(weights, tweights, np.float64, "weights")
    else:
        assert weights is None and tweights is None
    compare_backward(ours, theirs, inputs, torch_inputs, out, tout, rng)


def test_self_attention_in_eval_and_no_grad_matches_torchs_fast_path(rng):
    """batch_first, even heads, eval, no_grad: torch runs its native kernel; same numbers."""
    theirs = torch.nn.MultiheadAttention(E, HEADS, batch_first=True).double().eval()
    ours = nn.MultiheadAttention(E, HEADS, batch_first=True, dtype=np.float64).eval()
    load_torch_state(ours, theirs)
    x = rng.standard_normal((3, 5, E))
    padding = np.zeros((3, 5), bool)
    padding[1, 3:] = True
    with torch.no_grad():
        tout, tweights = theirs(*(torch.tensor(x),) * 3, key_padding_mask=torch.tensor(padding))
    with normlab.no_grad():
        xo = normlab.tensor(x)
        out, weights = ours(xo, xo, xo, key_padding_mask=padding)
    assert_close(out, tout, np.float64, "output")
    assert_close(weights, tweights, np.float64, "weights")


def test_unbatched_input_and_is_causal_match_torch(rng):
    theirs = torch.nn.MultiheadAttention(E, HEADS).double()
    ours = nn.MultiheadAttention(E, HEADS, dtype=np.float64)
    load_torch_state(ours, theirs)
    x = rng.standard_normal((5, E))
    causal = nn.Transformer.generate_square_subsequent_mask(5, dtype=np.float64)
    for need_weights in (True, False):
        xo, xt = normlab.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        out, _ = ours(xo, xo, xo, attn_mask=causal, is_causal=True, need_weights=need_weights)
        tout, _ = theirs(xt, xt, xt, attn_mask=torch.tensor(np.asarray(causal)), is_causal=True,
                         need_weights=need_weights)
        assert out.shape == (5, E)
        assert_close(out, tout, np.float64, "output")
        compare_backward(ours, theirs, [xo], [xt], out, tout, rng)
        theirs.zero_grad()
        ours.zero_grad()


def test_float32_within_rounding_of_torchs_float64(rng):
    theirs = torch.nn.MultiheadAttention(E, HEADS, batch_first=True).double()
    ours = nn.MultiheadAttention(E, HEADS, batch_first=True, dtype=np.float32)
    load_torch_state(ours, theirs)
    theirs.load_state_dict({k: torch.tensor(v.astype(np.float64)) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((3, 6, E)).astype(np.float32)
    xo, xt = normlab.tensor(x, requires_grad=True), torch.tensor(x.astype(np.float64), requires_grad=True)
    out, weights = ours(xo, xo, xo)
    tout, tweights = theirs(xt, xt, xt)
    assert out.dtype == np.float32 and weights.dtype == np.float32
    # three matrix products deep over E = 8 features: a few dozen roundings of the O(sqrt(E)) terms
    assert_float32_close(out, tout.detach().numpy(), scale=np.sqrt(E), ulps=64, what="output")
    assert_float32_close(weights, tweights.detach().numpy(), scale=1.0, ulps=64, what="weights")
    g = rng.standard_normal(out.shape)
    out.backward(g.astype(np.float32))
    tout.backward(torch.tensor(g))
    assert_float32_close(xo.grad, xt.grad.numpy(), scale=E * np.abs(xt.grad.numpy()).max(), ulps=64, what="dx")


def test_attention_numerical_gradient(rng):
    ours = nn.MultiheadAttention(4, 2, dtype=np.float64, add_bias_kv=True)
    q, k = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4))
    mask = rng.standard_normal((3, 5))
    g = rng.standard_normal((3, 2, 4))
    qo, ko = normlab.tensor(q, requires_grad=True), normlab.tensor(k, requires_grad=True)
    ours(qo, ko, ko, attn_mask=mask)[0].backward(g)

    def loss():
        return float((np.asarray(ours(normlab.tensor(q), normlab.tensor(k), normlab.tensor(k), attn_mask=mask)[0]
                                 .detach()) * g).sum())

    np.testing.assert_allclose(np.asarray(qo.grad), numerical_gradient(loss, q), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.asarray(ko.grad), numerical_gradient(loss, k), rtol=1e-6, atol=1e-8)


def test_empty_batch_and_writing_into_the_outputs(rng):
    theirs = torch.nn.MultiheadAttention(E, HEADS).double()
    ours = nn.MultiheadAttention(E, HEADS, dtype=np.float64)
    load_torch_state(ours, theirs)
    empty = normlab.tensor(np.zeros((5, 0, E)), requires_grad=True)
    out, weights = ours(empty, empty, empty)
    tout, tweights = theirs(*(torch.zeros(5, 0, E, dtype=torch.float64),) * 3)
    assert out.shape == tuple(tout.shape) and weights.shape == tuple(tweights.shape)
    out.sum().backward()
    assert empty.grad.shape == (5, 0, E)
    # the user scribbles on both returned arrays before backward: the gradients must not change
    x = rng.standard_normal((4, 2, E))
    xo, xt = normlab.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, weights = ours(xo, xo, xo)
    tout, _ = theirs(xt, xt, xt)
    np.asarray(out.detach())[...] = 7.0
    np.asarray(weights.detach())[...] = 7.0
    compare_backward(ours, theirs, [xo], [xt], out, tout, rng)


def test_attention_dropout_only_in_training():
    normlab.manual_seed(0)
    mha = nn.MultiheadAttention(E, HEADS, dropout=0.5, dtype=np.float64)
    x = normlab.randn(4, 2, E, dtype=np.float64)
    first, second = mha(x, x, x)[1], mha(x, x, x)[1]
    assert not np.allclose(np.asarray(first.detach()), np.asarray(second.detach()))
    mha.eval()
    np.testing.assert_array_equal(np.asarray(mha(x, x, x)[1].detach()), np.asarray(mha(x, x, x)[1].detach()))


@pytest.mark.parametrize("call,error,message", [
    (lambda: nn.MultiheadAttention(8, 3), ValueError, r"embed_dim \(8\) must be divisible by num_heads \(3\)"),
    (lambda: nn.MultiheadAttention(0, 1), ValueError, "expected embed_dim to be a positive integer"),
    (lambda: nn.MultiheadAttention(8, 2, dropout=2.0), ValueError, "expected dropout to be a probability"),
    (lambda: nn.MultiheadAttention(8, 2)(normlab.randn(3, 2, 8), normlab.randn(4, 2, 8), normlab.randn(4, 2, 8),
                                         attn_mask=np.zeros((3, 3), bool)), ValueError,
     r"the shape of the 2D attn_mask is \(3, 3\), but should be \(3, 4\)"),
    (lambda: nn.MultiheadAttention(8, 2)(normlab.randn(3, 2, 8), normlab.randn(4, 2, 8), normlab.randn(4, 2, 8),
                                         key_padding_mask=np.zeros((2, 3), bool)), ValueError,
     r"expected key_padding_mask of shape \(2, 4\)"),
    (lambda: nn.MultiheadAttention(8, 2)(normlab.randn(3, 2, 8), normlab.randn(3, 2, 8), normlab.randn(3, 2, 8),
                                         is_causal=True), RuntimeError, "Need attn_mask if specifying the is_causal"),
    (lambda: nn.MultiheadAttention(8, 2)(normlab.randn(3, 2, 6), normlab.randn(3, 2, 6), normlab.randn(3, 2, 6)),
     ValueError, "expected embedding dimension 8, got 6"),
    (lambda: nn.MultiheadAttention(8, 2)(normlab.randn(3, 2, 8), normlab.randn(3, 8), normlab.randn(3, 8)),
     ValueError, "for batched \\(3D\\) query, expected key and value to be 3D"),
    (lambda: nn.MultiheadAttention(8, 2)(normlab.randn(3, 2, 8), normlab.randn(3, 2, 8), normlab.randn(3, 2, 8),
                                         attn_mask=np.zeros((3, 3), np.int64)), TypeError,
     "only bool and floating types of attn_mask are supported"),
])
def test_multihead_attention_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --------------------------------------------------------- scaled_dot_product_attention
@pytest.mark.parametrize("kind", ["plain", "bool_mask", "float_mask", "causal", "scale", "gqa", "causal_rect"])
def test_scaled_dot_product_attention_matches_torch(rng, kind):
    q = rng.standard_normal((2, 4, 5, 6))
    k, v = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((2, 4, 7, 3))
    options, torch_options = {}, {}
    if kind == "bool_mask":
        mask = rng.random((5, 7)) < 0.7
        mask[:, 0] = True
        options, torch_options = {"attn_mask": mask}, {"attn_mask": torch.tensor(mask)}
    elif kind == "float_mask":
        mask = rng.standard_normal((2, 1, 5, 7))
        options, torch_options = {"attn_mask": mask}, {"attn_mask": torch.tensor(mask)}
    elif kind in ("causal", "causal_rect"):
        options = torch_options = {"is_causal": True}
        if kind == "causal":
            k, v = k[:, :, :5], v[:, :, :5]
    elif kind == "scale":
        options = torch_options = {"scale": 0.3}
    elif kind == "gqa":
        k, v = k[:, :2], v[:, :2]
        options = torch_options = {"enable_gqa": True}
    arrays = [q, k, v]
    ours = [normlab.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = F.scaled_dot_product_attention(*ours, **options)
    tout = TF.scaled_dot_product_attention(*theirs, **torch_options)
    assert_close(out, tout, np.float64, "output")
    g = rng.standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_close(a.grad, b.grad, np.float64, f"grad {i}")


def test_scaled_dot_product_attention_bad_input():
    q = normlab.randn(2, 3, 4)
    with pytest.raises(ValueError, match="give attn_mask or is_causal=True, not both"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(ValueError, match="expected query"):
        F.scaled_dot_product_attention(q, normlab.randn(2, 3, 5), q)


# ------------------------------------------------------------------ Transformer
TRANSFORMER_OPTIONS = [dict(), dict(batch_first=True), dict(norm_first=True), dict(norm_first=True, batch_first=True),
                       dict(activation="gelu"), dict(activation="silu_function"), dict(activation="gelu_module"),
                       dict(bias=False, batch_first=True), dict(layer_norm_eps=1e-3)]


def _activation(options, lib):
    """Options for one library: the named activations become that library's function or module.

    With a GELU *module*, torch's reference gets the gelu function: torch's
    TransformerDecoder deep-copies its layer, and the copy's ``__setstate__``
    puts ``F.relu`` in front of the module (see the test below).
    """
    options = dict(options)
    kind = options.get("activation")
    if kind == "silu_function":
        options["activation"] = F.silu if lib == "normlab" else TF.silu
    elif kind == "gelu_module":
        options["activation"] = nn.GELU() if lib == "normlab" else TF.gelu
    return options


def _sequences(rng, batch_first, batch=3, source=7, target=5):
    def shape(n):
        return (batch, n, E) if batch_first else (n, batch, E)

    padding = np.zeros((batch, source), bool)
    padding[1, 5:] = True
    padding[2, 3:] = True
    target_padding = np.zeros((batch, target), bool)
    target_padding[0, 4:] = True
    return rng.standard_normal(shape(source)), rng.standard_normal(shape(target)), padding, target_padding


MASK_SETS = {
    "none": lambda p, tp, tm: {},
    "causal": lambda p, tp, tm: {"tgt_mask": tm},
    "causal_hint": lambda p, tp, tm: {"tgt_mask": tm, "tgt_is_causal": True},
    "padding": lambda p, tp, tm: {"src_key_padding_mask": p, "memory_key_padding_mask": p,
                                  "tgt_key_padding_mask": tp, "tgt_mask": tm},
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("masks", list(MASK_SETS))
@pytest.mark.parametrize("options", TRANSFORMER_OPTIONS, ids=str)
def test_transformer_matches_torch(rng, options, masks, mode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # enable_nested_tensor's warning, in both
        theirs = torch.nn.Transformer(E, HEADS, 2, 2, FF, dropout=0.0, **_activation(options, "torch")).double()
        ours = nn.Transformer(E, HEADS, 2, 2, FF, dropout=0.0, dtype=np.float64, **_activation(options, "normlab"))
    load_torch_state(ours, theirs)
    ours.train(mode == "train")
    theirs.train(mode == "train")
    src, tgt, padding, target_padding = _sequences(rng, options.get("batch_first", False))
    causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1 if options.get("batch_first") else 0],
                                                           dtype=np.float64)
    mask = MASK_SETS[masks](padding, target_padding, np.asarray(causal))
    inputs = [normlab.tensor(src, requires_grad=True), normlab.tensor(tgt, requires_grad=True)]
    torch_inputs = [torch.tensor(src, requires_grad=True), torch.tensor(tgt, requires_grad=True)]
    out = ours(*inputs, **mask)
    tout = theirs(*torch_inputs, **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in mask.items()})
    assert_close(out, tout, np.float64, "output")
    compare_backward(ours, theirs, inputs, torch_inputs, out, tout, rng)


@pytest.mark.parametrize("options", [dict(batch_first=True), dict(batch_first=True, activation="gelu"), dict(),
                                     dict(batch_first=True, norm_first=True)], ids=str)
@pytest.mark.parametrize("masks", ["none", "padding", "causal"])
def test_inference_matches_torchs_fast_and_nested_paths(rng, options, masks):
    """eval + no_grad: torch's fused layers and, with a padding mask, nested tensors (padded outputs 0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.nn.Transformer(E, HEADS, 2, 2, FF, **options).double().eval()
        ours = nn.Transformer(E, HEADS, 2, 2, FF, dtype=np.float64, **options).eval()
    load_torch_state(ours, theirs)
    src, tgt, padding, target_padding = _sequences(rng, options.get("batch_first", False))
    causal = np.asarray(nn.Transformer.generate_square_subsequent_mask(5, dtype=np.float64))
    mask = MASK_SETS[masks](padding, target_padding, causal)
    with torch.no_grad():
        tout = theirs(torch.tensor(src), torch.tensor(tgt), **{k: torch.tensor(v) for k, v in mask.items()})
        tmemory = theirs.encoder(torch.tensor(src), src_key_padding_mask=torch.tensor(padding))
    with normlab.no_grad():
        out = ours(src, tgt, **mask)
        memory = ours.encoder(src, src_key_padding_mask=padding)
    assert_close(out, tout, np.float64, "output")
    assert_close(memory, tmemory, np.float64, "encoder output (nested-tensor path where torch takes it)")


@pytest.mark.parametrize("layer_kind", ["encoder", "decoder"])
@pytest.mark.parametrize("options", [dict(), dict(norm_first=True, batch_first=True),
                                     dict(activation="gelu", bias=False)], ids=str)
def test_single_layers_and_stacks_match_torch(rng, layer_kind, options):
    torch_layer_cls = torch.nn.TransformerEncoderLayer if layer_kind == "encoder" else torch.nn.TransformerDecoderLayer
    layer_cls = nn.TransformerEncoderLayer if layer_kind == "encoder" else nn.TransformerDecoderLayer
    theirs_layer = torch_layer_cls(E, HEADS, FF, dropout=0.0, **options).double()
    ours_layer = layer_cls(E, HEADS, FF, dropout=0.0, dtype=np.float64, **options)
    load_torch_state(ours_layer, theirs_layer)
    assert repr(ours_layer) == repr(theirs_layer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if layer_kind == "encoder":
            theirs_stack = torch.nn.TransformerEncoder(theirs_layer, 3, norm=torch.nn.LayerNorm(E).double())
            ours_stack = nn.TransformerEncoder(ours_layer, 3, norm=nn.LayerNorm(E, dtype=np.float64))
        else:
            theirs_stack = torch.nn.TransformerDecoder(theirs_layer, 3, norm=torch.nn.LayerNorm(E).double())
            ours_stack = nn.TransformerDecoder(ours_layer, 3, norm=nn.LayerNorm(E, dtype=np.float64))
    # deep copies: each layer of the stack has its own parameters
    assert ours_stack.layers[0].linear1.weight is not ours_stack.layers[1].linear1.weight
    load_torch_state(ours_stack, theirs_stack)
    src, tgt, padding, _ = _sequences(rng, options.get("batch_first", False))
    for ours, theirs in ((ours_layer, theirs_layer), (ours_stack, theirs_stack)):
        arrays = [src] if layer_kind == "encoder" else [tgt, src]
        inputs = [normlab.tensor(a, requires_grad=True) for a in arrays]
        torch_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
        if layer_kind == "encoder":
            key = "src_key_padding_mask" if ours is ours_layer else "src_key_padding_mask"
            out, tout = ours(*inputs, **{key: padding}), theirs(*torch_inputs, **{key: torch.tensor(padding)})
        else:
            out = ours(*inputs, memory_key_padding_mask=padding)
            tout = theirs(*torch_inputs, memory_key_padding_mask=torch.tensor(padding))
        assert_close(out, tout, np.float64, f"{type(ours).__name__} output")
        compare_backward(ours, theirs, inputs, torch_inputs, out, tout, rng)


def test_state_dict_moves_both_ways_and_training_steps_agree(rng):
    """ours -> torch: the same output; then 3 SGD steps on the same loss in both: equal losses (dropout 0)."""
    ours = nn.Transformer(E, HEADS, 1, 1, FF, dropout=0.0, batch_first=True, dtype=np.float64)
    theirs = torch.nn.Transformer(E, HEADS, 1, 1, FF, dropout=0.0, batch_first=True).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    src, tgt, _, _ = _sequences(rng, True)
    target = rng.standard_normal(tgt.shape)
    opt, topt = normlab.optim.SGD(ours.parameters(), lr=0.05), torch.optim.SGD(theirs.parameters(), lr=0.05)
    mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], dtype=np.float64)
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        loss = F.mse_loss(ours(src, tgt, tgt_mask=mask), target)
        tloss = TF.mse_loss(theirs(torch.tensor(src), torch.tensor(tgt), tgt_mask=torch.tensor(np.asarray(mask))),
                            torch.tensor(target))
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-11)


def test_a_module_activation_survives_the_decoder_stack_where_torch_falls_back_to_relu(rng):
    """A torch quirk normlab does not copy: in torch, TransformerDecoder's deep copies of a layer built with
    ``activation=nn.GELU()`` run relu (the copy's ``__setstate__`` default); normlab's copies keep GELU."""
    ours = nn.TransformerDecoder(nn.TransformerDecoderLayer(E, HEADS, FF, 0.0, nn.GELU(), dtype=np.float64), 1)
    torch_quirk = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(E, HEADS, FF, 0.0, torch.nn.GELU()),
                                              1).double()
    torch_gelu = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(E, HEADS, FF, 0.0, TF.gelu), 1).double()
    assert torch_quirk.layers[0].activation is TF.relu
    torch_gelu.load_state_dict(torch_quirk.state_dict())
    load_torch_state(ours, torch_gelu)
    tgt, memory = rng.standard_normal((4, 2, E)), rng.standard_normal((6, 2, E))
    assert_close(ours(tgt, memory), torch_gelu(torch.tensor(tgt), torch.tensor(memory)), np.float64, "output")


def test_generate_square_subsequent_mask_and_causal_detection_match_torch():
    for size in (0, 1, 4):
        np.testing.assert_array_equal(np.asarray(nn.Transformer.generate_square_subsequent_mask(size)),
                                      torch.nn.Transformer.generate_square_subsequent_mask(size).numpy())
    assert nn.Transformer.generate_square_subsequent_mask(3).dtype == np.float32
    with pytest.raises(ValueError, match="expected a non-negative integer size"):
        nn.Transformer.generate_square_subsequent_mask(-1)


def test_enable_nested_tensor_warns_like_torch():
    with pytest.warns(UserWarning, match="enable_nested_tensor is True, but self.use_nested_tensor is False because "
                                         "encoder_layer.self_attn.batch_first was not True"):
        nn.TransformerEncoder(nn.TransformerEncoderLayer(E, HEADS, FF), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.TransformerEncoder(nn.TransformerEncoderLayer(E, HEADS, FF, batch_first=True), 2)
        nn.TransformerEncoder(nn.TransformerEncoderLayer(E, HEADS, FF), 2, enable_nested_tensor=False)


@pytest.mark.parametrize("call,error,message", [
    (lambda: nn.TransformerEncoderLayer(8, 2, activation="tanh"), ValueError, "activation should be relu/gelu"),
    (lambda: nn.TransformerEncoderLayer(8, 2, activation=3), TypeError, "expected activation to be 'relu', 'gelu'"),
    (lambda: nn.TransformerDecoderLayer(8, 2, dim_feedforward=0), ValueError, "dim_feedforward to be a positive"),
    (lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, batch_first=True), 0), ValueError,
     "TransformerEncoder: expected num_layers to be a positive integer"),
    (lambda: nn.Transformer(8, 2, 1, 1, 16)(normlab.randn(5, 2, 8), normlab.randn(4, 3, 8)), ValueError,
     "the batch sizes of src"),
    (lambda: nn.Transformer(8, 2, 1, 1, 16)(normlab.randn(5, 2, 6), normlab.randn(4, 2, 6)), ValueError,
     r"expected src and tgt with 8 features \(d_model\)"),
])
def test_transformer_bad_input(call, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=message):
            call()


@settings(max_examples=15)
@given(length=st.integers(1, 5), source=st.integers(1, 6), batch=st.integers(1, 3), heads=st.sampled_from([1, 2, 4]),
       batch_first=st.booleans(), add_bias_kv=st.booleans(), add_zero_attn=st.booleans(), bias=st.booleans(),
       need_weights=st.booleans(), padded=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_attention_shape_and_option_sweep(length, source, batch, heads, batch_first, add_bias_kv, add_zero_attn, bias,
                                          need_weights, padded, seed):
    rng = np.random.default_rng(seed)
    options = dict(batch_first=batch_first, add_bias_kv=add_bias_kv, add_zero_attn=add_zero_attn, bias=bias)
    theirs = torch.nn.MultiheadAttention(E, heads, **options).double()
    ours = nn.MultiheadAttention(E, heads, dtype=np.float64, **options)
    load_torch_state(ours, theirs)

    def shape(n):
        return (batch, n, E) if batch_first else (n, batch, E)

    arrays = [rng.standard_normal(shape(length)), rng.standard_normal(shape(source)), rng.standard_normal(shape(source))]
    mask = {}
    if padded:
        padding = rng.random((batch, source)) < 0.4
        padding[:, 0] = False
        mask = {"key_padding_mask": padding}
    inputs = [normlab.tensor(a, requires_grad=True) for a in arrays]
    torch_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, weights = ours(*inputs, need_weights=need_weights, **mask)
    tout, tweights = theirs(*torch_inputs, need_weights=need_weights, **{k: torch.tensor(v) for k, v in mask.items()})
    assert_close(out, tout, np.float64, "output")
    if need_weights:
        assert_close(weights, tweights, np.float64, "weights")
    compare_backward(ours, theirs, inputs, torch_inputs, out, tout, rng)
