"""RNN, LSTM, GRU and their cells against torch (the oracle): outputs, final states and every gradient.

float64: tolerance table of tests/oracle.py. float32: against torch's float64
result on the same (float32-representable) parameters and inputs, with
``assert_float32_close`` (see ``_assert_float32`` for the scale).
Random upstream gradients reach the output and every final state.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils import rnn as torch_rnn

import normlab
import normlab.nn as nn
from normlab.nn.utils import rnn as nl_rnn
from tests.oracle import assert_close, assert_float32_close

MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]


def make_pair(mode, input_size, hidden_size, dtype=np.float64, **options):
    """(normlab module, torch float64 module) with the same parameters (torch's init, copied over)."""
    kwargs = dict(options)
    if mode.startswith("RNN"):
        kwargs["nonlinearity"] = "tanh" if mode == "RNN_TANH" else "relu"
        ours_cls, torch_cls = nn.RNN, torch.nn.RNN
    else:
        ours_cls, torch_cls = getattr(nn, mode), getattr(torch.nn, mode)
    ref = torch_cls(input_size, hidden_size, **kwargs).double()
    with torch.no_grad():   # float32-representable parameters: the float32 run sees exactly these values
        for p in ref.parameters():
            p.copy_(p.float().double())
    ours = ours_cls(input_size, hidden_size, dtype=dtype, **kwargs)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return ours, ref


def _assert_float32(actual, reference, what, ulps=64):
    """float32 vs the float64 reference: roundings scale with the array's magnitude (max |reference|).

    A recurrence re-rounds its state at every step and every gradient is a
    sum over steps and batch, so the error of an entry is not bounded by its
    own size: the scale is the largest magnitude in the array, and 64
    roundings cover a few accumulated sums over up to a few dozen steps.
    """
    reference = np.asarray(reference, dtype=np.float64)
    scale = np.abs(reference).max() if reference.size else 0.0
    assert_float32_close(actual, reference, scale=scale, what=what, ulps=ulps)


def _run_pair(ours, ref, mode, x, hx, lengths, packed, batch_first, rng, dtype):
    """Forward and backward through both with the same random upstream gradients; return both sides."""
    lstm = mode == "LSTM"
    x_ours = normlab.tensor(x.astype(dtype), requires_grad=True)
    x_ref = torch.tensor(x, requires_grad=True)
    hx_ours = hx_ref = None
    if hx is not None:
        hx_ours = [normlab.tensor(h.astype(dtype), requires_grad=True) for h in hx]
        hx_ref = [torch.tensor(h, requires_grad=True) for h in hx]
    ours_hx_arg = (tuple(hx_ours) if lstm else hx_ours[0]) if hx is not None else None
    ref_hx_arg = (tuple(hx_ref) if lstm else hx_ref[0]) if hx is not None else None

    if packed:
        out_ours, final_ours = ours(nl_rnn.pack_padded_sequence(x_ours, lengths, batch_first, enforce_sorted=False),
                                    ours_hx_arg)
        out_ours = nl_rnn.pad_packed_sequence(out_ours, batch_first, total_length=x.shape[1 if batch_first else 0])[0]
    else:
        out_ours, final_ours = ours(x_ours, ours_hx_arg, lengths=lengths)
    if lengths is not None:
        steps = x.shape[1 if batch_first else 0]
        packed_ref = torch_rnn.pack_padded_sequence(x_ref, torch.tensor(lengths), batch_first, enforce_sorted=False)
        out_ref, final_ref = ref(packed_ref, ref_hx_arg)
        out_ref = torch_rnn.pad_packed_sequence(out_ref, batch_first, total_length=steps)[0]
    else:
        out_ref, final_ref = ref(x_ref, ref_hx_arg)
    finals_ours = list(final_ours) if lstm else [final_ours]
    finals_ref = list(final_ref) if lstm else [final_ref]

    upstream = [rng.standard_normal(out_ref.shape)] + [rng.standard_normal(f.shape) for f in finals_ref]
    loss_ref = sum((o * torch.tensor(g)).sum() for o, g in zip([out_ref] + finals_ref, upstream))
    loss_ref.backward()
    loss_ours = sum((o * normlab.tensor(g.astype(dtype))).sum() for o, g in zip([out_ours] + finals_ours, upstream))
    loss_ours.backward()

    ours_values = {"output": out_ours, "input grad": x_ours.grad}
    ref_values = {"output": out_ref, "input grad": x_ref.grad}
    for i, (a, b) in enumerate(zip(finals_ours, finals_ref)):
        ours_values[f"final state {i}"], ref_values[f"final state {i}"] = a, b
    if hx is not None:
        for i, (a, b) in enumerate(zip(hx_ours, hx_ref)):
            ours_values[f"hx grad {i}"], ref_values[f"hx grad {i}"] = a.grad, b.grad
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        ours_values[name + " grad"], ref_values[name + " grad"] = p.grad, ref_params[name].grad
    assert set(ours_values) == set(ref_values)
    return ours_values, ref_values


@st.composite
def configurations(draw, max_layers=3):
    mode = draw(st.sampled_from(MODES))
    steps, batch = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    variable = draw(st.sampled_from(["dense", "lengths", "packed"]))
    lengths = None
    if variable != "dense":
        lengths = draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
    return dict(
        mode=mode, input_size=draw(st.integers(1, 5)), hidden_size=draw(st.integers(1, 5)),
        num_layers=draw(st.integers(1, max_layers)), bidirectional=draw(st.booleans()),
        batch_first=draw(st.booleans()), bias=draw(st.booleans()), steps=steps, batch=batch,
        with_hx=draw(st.booleans()), lengths=lengths, packed=variable == "packed",
        seed=draw(st.integers(0, 2 ** 16)))


def _check(config, dtype):
    rng = np.random.default_rng(config["seed"])
    mode = config["mode"]
    ours, ref = make_pair(mode, config["input_size"], config["hidden_size"], dtype=dtype,
                          num_layers=config["num_layers"], bidirectional=config["bidirectional"],
                          batch_first=config["batch_first"], bias=config["bias"])
    steps, batch = config["steps"], config["batch"]
    shape = (batch, steps) if config["batch_first"] else (steps, batch)
    x = rng.standard_normal(shape + (config["input_size"],)).astype(np.float32).astype(np.float64)
    hx = None
    if config["with_hx"]:
        directions = 2 if config["bidirectional"] else 1
        state_shape = (config["num_layers"] * directions, batch, config["hidden_size"])
        hx = [rng.standard_normal(state_shape).astype(np.float32).astype(np.float64)
              for _ in range(2 if mode == "LSTM" else 1)]
    ours_values, ref_values = _run_pair(ours, ref, mode, x, hx, config["lengths"], config["packed"],
                                        config["batch_first"], rng, dtype)
    for what, value in ref_values.items():
        if dtype == np.float64:
            assert_close(ours_values[what], value, np.float64, what=what)
        else:
            _assert_float32(ours_values[what], value.detach().numpy(), what)


@given(configurations())
def test_layers_match_torch_float64(config):
    _check(config, np.float64)


@settings(max_examples=15)
@given(configurations(max_layers=2))
def test_layers_float32_against_torch_float64(config):
    _check(config, np.float32)


@pytest.mark.parametrize("mode", MODES)
def test_longer_sequence_float32(mode, rng):
    """50 steps, the benchmark's regime in small: float32 rounding stays within the stated bound."""
    _check(dict(mode=mode, input_size=8, hidden_size=16, num_layers=2, bidirectional=True, batch_first=False,
                bias=True, steps=50, batch=4, with_hx=True, lengths=[50, 31, 7, 50], packed=False, seed=3),
           np.float32)


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_input_matches_torch(mode, rng):
    ours, ref = make_pair(mode, 3, 4, num_layers=2, bidirectional=True)
    x = rng.standard_normal((5, 3))
    hx = [rng.standard_normal((4, 4)) for _ in range(2 if mode == "LSTM" else 1)]
    ours_values, ref_values = _run_pair(ours, ref, mode, x, hx, None, False, False, rng, np.float64)
    for what, value in ref_values.items():
        assert_close(ours_values[what], value, np.float64, what=what)
    assert ours_values["output"].shape == (5, 8)


def test_dropout_between_layers_matches_torch_at_p_one(rng):
    """dropout=1 zeroes the second layer's input in training (deterministic, so torch can check it)."""
    ours, ref = make_pair("LSTM", 3, 4, num_layers=2, dropout=1.0)
    x = rng.standard_normal((5, 2, 3))
    ours_values, ref_values = _run_pair(ours, ref, "LSTM", x, None, None, False, False, rng, np.float64)
    for what, value in ref_values.items():
        assert_close(ours_values[what], value, np.float64, what=what)
    assert np.all(np.asarray(ours_values["weight_ih_l1 grad"]) == 0)   # its input was all zeros


def test_dropout_only_in_training_and_only_between_layers(rng):
    normlab.manual_seed(0)
    lstm = nn.GRU(3, 6, num_layers=2, dropout=0.5, dtype=np.float64)
    x = rng.standard_normal((7, 4, 3))
    train_out = lstm(x)[0].detach().numpy()
    lstm.eval()
    eval_out = lstm(x)[0].detach().numpy()
    assert not np.allclose(train_out, eval_out)
    single = nn.GRU(3, 6, dropout=0.5, dtype=np.float64)
    assert np.array_equal(single(x)[0].detach().numpy(), single.eval()(x)[0].detach().numpy())   # no layer above: no dropout


@pytest.mark.parametrize("cell", ["RNNCell-tanh", "RNNCell-relu", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_hx", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_torch(cell, batched, with_hx, bias, rng):
    name, _, nonlinearity = cell.partition("-")
    kwargs = dict(bias=bias) | (dict(nonlinearity=nonlinearity) if nonlinearity else {})
    ref = getattr(torch.nn, name)(4, 5, **kwargs).double()
    ours = getattr(nn, name)(4, 5, dtype=np.float64, **kwargs)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    lstm = name == "LSTMCell"
    lead = (3,) if batched else ()
    x = rng.standard_normal(lead + (4,))
    hx = [rng.standard_normal(lead + (5,)) for _ in range(2 if lstm else 1)] if with_hx else None
    x_ours, x_ref = normlab.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    hx_ours = [normlab.tensor(h, requires_grad=True) for h in hx] if with_hx else None
    hx_ref = [torch.tensor(h, requires_grad=True) for h in hx] if with_hx else None
    arg = (lambda states: None if states is None else (tuple(states) if lstm else states[0]))
    out_ours, out_ref = ours(x_ours, arg(hx_ours)), ref(x_ref, arg(hx_ref))
    out_ours = list(out_ours) if lstm else [out_ours]
    out_ref = list(out_ref) if lstm else [out_ref]
    upstream = [rng.standard_normal(o.shape) for o in out_ref]
    sum((o * torch.tensor(g)).sum() for o, g in zip(out_ref, upstream)).backward()
    sum((o * normlab.tensor(g)).sum() for o, g in zip(out_ours, upstream)).backward()
    for i, (a, b) in enumerate(zip(out_ours, out_ref)):
        assert_close(a, b, what=f"output {i}")
    assert_close(x_ours.grad, x_ref.grad, what="input grad")
    if with_hx:
        for i, (a, b) in enumerate(zip(hx_ours, hx_ref)):
            assert_close(a.grad, b.grad, what=f"hx grad {i}")
    ref_params = dict(ref.named_parameters())
    for pname, p in ours.named_parameters():
        assert_close(p.grad, ref_params[pname].grad, what=pname + " grad")


@pytest.mark.parametrize("mode", MODES)
def test_parameter_names_shapes_and_init(mode):
    kwargs = dict(num_layers=2, bidirectional=True)
    ours, _ = make_pair(mode, 3, 4, **kwargs)
    ref = (torch.nn.RNN if mode.startswith("RNN") else getattr(torch.nn, mode))(3, 4, **kwargs)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    normlab.manual_seed(1)
    fresh = (nn.RNN if mode.startswith("RNN") else getattr(nn, mode))(3, 16, **kwargs)
    values = np.concatenate([p.detach().numpy().ravel() for p in fresh.parameters()])
    assert np.abs(values).max() <= 0.25 and np.abs(values).max() > 0.24   # U(-1/sqrt(16), 1/sqrt(16))
    assert abs(values.mean()) < 0.01
    normlab.manual_seed(1)
    again = (nn.RNN if mode.startswith("RNN") else getattr(nn, mode))(3, 16, **kwargs)
    assert np.array_equal(values, np.concatenate([p.detach().numpy().ravel() for p in again.parameters()]))


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_round_trip_through_safetensors(mode, tmp_path, rng):
    """normlab -> file -> torch, and torch -> file -> normlab: the same outputs."""
    from safetensors.torch import load_file, save_file

    ours, _ = make_pair(mode, 3, 5, num_layers=2, bidirectional=True)
    normlab.manual_seed(7)
    ours.reset_parameters()     # parameters torch never saw
    path = tmp_path / "ours.safetensors"
    normlab.save(ours.state_dict(), str(path))
    ref = (torch.nn.RNN(3, 5, num_layers=2, bidirectional=True, nonlinearity="tanh" if mode == "RNN_TANH" else "relu")
           if mode.startswith("RNN") else getattr(torch.nn, mode)(3, 5, num_layers=2, bidirectional=True)).double()
    ref.load_state_dict(load_file(str(path)))
    x = rng.standard_normal((4, 2, 3))
    assert_close(ours(x)[0], ref(torch.tensor(x))[0], what="output after normlab -> torch")

    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-0.5, 0.5)
    path = tmp_path / "torch.safetensors"
    save_file(ref.state_dict(), str(path))
    ours.load_state_dict(normlab.load(str(path)))
    assert_close(ours(x)[0], ref(torch.tensor(x))[0], what="output after torch -> normlab")


def test_empty_batch_gives_empty_outputs():
    lstm = nn.LSTM(3, 4, bidirectional=True, dtype=np.float64)
    x = normlab.tensor(np.zeros((5, 0, 3)), requires_grad=True)
    output, (h_n, c_n) = lstm(x)
    assert output.shape == (5, 0, 8) and h_n.shape == (2, 0, 4) and c_n.shape == (2, 0, 4)
    output.sum().backward()
    assert x.grad.shape == (5, 0, 3)
    output, (h_n, c_n) = lstm(x, lengths=[])
    assert output.shape == (5, 0, 8) and h_n.shape == (2, 0, 4)


def test_lengths_outputs_past_the_end_are_zero_and_pass_no_gradient(rng):
    gru = nn.GRU(3, 4, bidirectional=True, batch_first=True, dtype=np.float64)
    x = normlab.tensor(rng.standard_normal((3, 6, 3)), requires_grad=True)
    output, h_n = gru(x, lengths=[6, 2, 4])
    assert np.all(output.detach().numpy()[1, 2:] == 0) and np.all(output.detach().numpy()[2, 4:] == 0)
    (output * normlab.tensor(rng.standard_normal(output.shape))).sum().backward()
    grad = x.grad if isinstance(x.grad, np.ndarray) else np.asarray(x.grad)
    assert np.all(grad[1, 2:] == 0) and np.all(grad[2, 4:] == 0)
    assert np.all(grad[1, :2] != 0)
    # a padded batch with lengths equals running each sequence alone
    for b, length in enumerate([6, 2, 4]):
        alone, h_alone = gru(x.detach().numpy()[b:b + 1, :length])
        assert_close(output.detach().numpy()[b:b + 1, :length], alone, what=f"sequence {b}")
        assert_close(h_n.detach().numpy()[:, b:b + 1], h_alone, what=f"h_n of sequence {b}")


class TestFunctionContract:
    """The engine's rules: outputs are fresh, inputs and upstream gradients are never written."""

    def test_writing_into_outputs_does_not_change_backward(self, rng):
        lstm = nn.LSTM(3, 4, dtype=np.float64)
        x = rng.standard_normal((5, 2, 3))
        upstream = rng.standard_normal((5, 2, 4))
        grads = []
        for scribble in (False, True):
            xt = normlab.tensor(x, requires_grad=True)
            output, (h_n, c_n) = lstm(xt)
            if scribble:
                output.detach().numpy()[...] = 7.0
                h_n.detach().numpy()[...] = 7.0
                c_n.detach().numpy()[...] = 7.0
            (output * normlab.tensor(upstream)).sum().backward()
            grads.append(np.array(xt.grad))
        assert np.array_equal(grads[0], grads[1])

    @pytest.mark.parametrize("mode", MODES)
    def test_inputs_and_upstream_gradient_untouched(self, mode, rng):
        from normlab.ops.recurrent import recurrent_backward, recurrent_forward

        cell = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}[mode]
        gates = {"lstm": 4, "gru": 3}.get(cell, 1)
        x = rng.standard_normal((12, 3))
        h0, c0 = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
        w_ih, w_hh = rng.standard_normal((gates * 5, 3)), rng.standard_normal((gates * 5, 5))
        b_ih, b_hh = rng.standard_normal(gates * 5), rng.standard_normal(gates * 5)
        inputs = [x, h0, c0, w_ih, w_hh, b_ih, b_hh]
        for a in inputs:
            a.flags.writeable = False     # any write raises
        (y, h_n, c_n), saved = recurrent_forward(*inputs, cell=cell, batch_sizes=[4, 4, 3, 1], reverse=True)
        dy, dh_n = rng.standard_normal(y.shape), rng.standard_normal(h_n.shape)
        dc_n = rng.standard_normal(h_n.shape) if cell == "lstm" else None
        for a in (dy, dh_n, dc_n):
            if a is not None:
                a.flags.writeable = False
        grads = recurrent_backward(dy, dh_n, dc_n, saved)
        returned = [y, h_n] + ([c_n] if c_n is not None else []) + [g for g in grads if g is not None]
        kept = [v for v in (getattr(saved, name) for name in saved.__slots__) if isinstance(v, np.ndarray)]
        for r in returned:
            assert not any(np.shares_memory(r, k) for k in kept)

    @pytest.mark.parametrize("name", ["weight_hh_l0", "bias_ih_l0", "ln_weight_hh_l0", "ln_bias_c_l0"])
    def test_in_place_change_of_a_kept_parameter_is_refused_at_backward(self, name, rng):
        """The layer keeps the weights and the norm's gains by reference: changing one before backward raises."""
        lstm = nn.LSTM(3, 4, norm="layer", dtype=np.float64)
        output = lstm(rng.standard_normal((5, 2, 3)))[0]
        with normlab.no_grad():
            getattr(lstm, name).mul_(2.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            output.sum().backward()

    def test_mutating_the_input_before_backward(self, rng):
        """The layer keeps a time-major input by reference: an in-place change is refused at backward.
        batch_first and lengths copy it (transpose, packing): the gradient is then that of the forward."""
        lstm = nn.LSTM(3, 4, dtype=np.float64)
        values = rng.standard_normal((5, 2, 3))
        x = normlab.tensor(values.copy())
        output = lstm(x)[0]
        x.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            output.sum().backward()
        weight_grads = []
        for mutate in (False, True):
            x = normlab.tensor(values.copy())
            output = lstm(x, lengths=[5, 3])[0]
            if mutate:
                x.add_(1.0)
            lstm.zero_grad()
            output.sum().backward()
            weight_grads.append(np.array(lstm.weight_ih_l0.grad))
        assert np.array_equal(weight_grads[0], weight_grads[1])

    def test_read_only_input(self, rng):
        x = rng.standard_normal((5, 2, 3))
        x.flags.writeable = False
        ours, ref = make_pair("GRU", 3, 4)
        assert_close(ours(x, lengths=[5, 2])[0], torch_rnn.pad_packed_sequence(
            ref(torch_rnn.pack_padded_sequence(torch.tensor(x.copy()), torch.tensor([5, 2])))[0])[0], what="output")
        assert_close(ours(x)[0], ref(torch.tensor(x.copy()))[0], what="output")

    def test_strided_input_and_state(self, rng):
        """A non-contiguous input (a slice of a larger array) and non-contiguous states give torch's result."""
        ours, ref = make_pair("LSTM", 3, 4, batch_first=True)
        big = rng.standard_normal((4, 10, 6))
        x = big[:, ::2, ::2]
        h0 = rng.standard_normal((1, 4, 8))[..., ::2]
        c0 = rng.standard_normal((1, 8, 4))[:, ::2]
        out_ours, (h_ours, c_ours) = ours(x, (h0, c0))
        out_ref, (h_ref, c_ref) = ref(torch.tensor(np.ascontiguousarray(x)),
                                      (torch.tensor(np.ascontiguousarray(h0)), torch.tensor(np.ascontiguousarray(c0))))
        assert_close(out_ours, out_ref, what="output")
        assert_close(h_ours, h_ref, what="h_n")
        assert_close(c_ours, c_ref, what="c_n")


def test_sigmoid_and_tanh_kernels_are_accurate():
    """The vectorised exp behind the cells: sigmoid and tanh within 3 ulps of the exact value, relative
    (tanh near 0 included: a tiny hidden state keeps its digits); saturation and NaN as libm."""
    from normlab.ops.recurrent import sigmoid_tanh

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        tiny = np.finfo(dtype).tiny
        x = np.concatenate([rng.standard_normal(20000) * 5, rng.uniform(-120, 120, 2000),
                            10.0 ** rng.uniform(-30, 0, 2000) * rng.choice([-1, 1], 2000),
                            [0.0, -0.0, 1e-30, -1e-30, 0.17328, 0.34657, 0.34658, 87.0, -87.0, 88.7, -103.0,
                             709.0, -745.0, 1e4, -1e4]])
        x = x.astype(dtype)
        sig, tanh = np.empty_like(x), np.empty_like(x)
        sigmoid_tanh(x, sig, tanh)
        exact = x.astype(np.longdouble)
        sig_ref = (1 / (1 + np.exp(-exact))).astype(np.float64)
        tanh_ref = np.tanh(exact).astype(np.float64)
        eps = np.finfo(dtype).eps
        # relative where the exact value is a normal number; sigmoid(x < -87) saturates near tiny
        normal = np.abs(sig_ref) > 1e3 * tiny
        assert np.max(np.abs(sig - sig_ref)[normal] / np.abs(sig_ref)[normal]) <= 3 * eps
        assert np.all(np.abs(sig - sig_ref)[~normal] <= 1e3 * tiny)
        nonzero = tanh_ref != 0
        assert np.max(np.abs(tanh - tanh_ref)[nonzero] / np.abs(tanh_ref)[nonzero]) <= 3 * eps
        assert np.all(tanh[~nonzero] == 0)
        special = np.array([np.nan, np.inf, -np.inf], dtype=dtype)
        sigmoid_tanh(special, sig[:3], tanh[:3])
        assert np.isnan(sig[0]) and np.isnan(tanh[0])
        assert sig[1] == 1 and abs(sig[2]) <= 1e3 * tiny and tanh[1] == 1 and tanh[2] == -1
