"""norm="layer" and norm="batch" recurrent layers and cells.

torch has no such layers, so the oracle is an independent reference written
here with torch's autograd: a plain per-step loop over the padded batch with
masks (a sequence past its end keeps its state and outputs 0), F.layer_norm
for LN, and batch statistics over the valid rows of each step for BN. Plus
float64 numerical gradients of every parameter and input, the per-sample
property of LN, and BN's running statistics per step (eval beyond max_steps).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import normlab
import normlab.nn as nn
from tests.oracle import assert_close, assert_float32_close, numerical_gradient

CELLS = {"RNN_TANH": ("RNN", dict(nonlinearity="tanh")), "RNN_RELU": ("RNN", dict(nonlinearity="relu")),
         "LSTM": ("LSTM", {}), "GRU": ("GRU", {})}
EPS, MOMENTUM = 1e-5, 0.1


def make(mode, input_size, hidden_size, norm, max_steps=None, dtype=np.float64, **options):
    name, extra = CELLS[mode]
    module = getattr(nn, name)(input_size, hidden_size, norm=norm, max_steps=max_steps, dtype=dtype,
                               **extra, **options)
    rng = np.random.default_rng(input_size * 100 + hidden_size)
    for p in module.parameters():   # gains and shifts away from their 1 / 0.1 / 0 initial values
        p.detach().numpy()[...] = rng.uniform(-0.8, 0.8, p.shape) + (0.5 if p.ndim == 1 else 0.0)
    return module


# ----------------------------------------------------------------------------
# The reference
# ----------------------------------------------------------------------------

def _normalize(z, gain, shift, norm, valid, t, side, training, running, max_steps):
    if norm == "layer":
        return TF.layer_norm(z, z.shape[-1:], gain, shift, EPS)
    slot = min(t, max_steps - 1)
    mean_run, var_run = running[side]
    if training:
        z_valid = z[valid]
        mean, var = z_valid.mean(0), z_valid.var(0, unbiased=False)
        if t < max_steps:
            n = z_valid.shape[0]
            mean_run[slot] = (1 - MOMENTUM) * mean_run[slot] + MOMENTUM * mean.detach().numpy()
            var_run[slot] = (1 - MOMENTUM) * var_run[slot] + MOMENTUM * var.detach().numpy() * n / (n - 1)
    else:
        mean, var = torch.tensor(mean_run[slot]), torch.tensor(var_run[slot])
    out = (z - mean) / torch.sqrt(var + EPS) * gain
    return out if shift is None else out + shift


def reference_direction(mode, x, lengths, h0, c0, p, norm, reverse, training, running, max_steps):
    """One layer, one direction over a padded (T, B, I) batch; returns (output (T, B, H), h_n, c_n)."""
    steps = x.shape[0]
    lengths = torch.as_tensor(lengths if lengths is not None else [steps] * x.shape[1])
    h, c = h0, c0
    outputs = [None] * steps
    hidden = h0.shape[1]
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        valid = lengths > t
        z_x, z_h = x[t] @ p["weight_ih"].T, h @ p["weight_hh"].T
        if norm is None:
            a_x = z_x if p.get("bias_ih") is None else z_x + p["bias_ih"]
            a_h = z_h if p.get("bias_hh") is None else z_h + p["bias_hh"]
        else:
            a_x = _normalize(z_x, p["gain_ih"], p.get("bias_ih"), norm, valid, t, "ih", training, running, max_steps)
            a_h = _normalize(z_h, p["gain_hh"], p.get("bias_hh"), norm, valid, t, "hh", training, running, max_steps)
        if mode == "LSTM":
            i, f, g, o = (a_x + a_h).split(hidden, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            new_c = f * c + i * g
            u = new_c if norm is None else _normalize(new_c, p["gain_c"], p.get("bias_c"), norm, valid, t, "c",
                                                      training, running, max_steps)
            new_h = o * torch.tanh(u)
            c = torch.where(valid[:, None], new_c, c)
        elif mode == "GRU":
            x_r, x_z, x_n = a_x.split(hidden, dim=1)
            h_r, h_z, h_n = a_h.split(hidden, dim=1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
            new_h = (1 - z) * n + z * h
        else:
            a = a_x + a_h
            new_h = torch.tanh(a) if mode == "RNN_TANH" else torch.relu(a)
        h = torch.where(valid[:, None], new_h, h)
        outputs[t] = torch.where(valid[:, None], new_h, torch.zeros_like(new_h))
    return torch.stack(outputs), h, c


def reference(module, mode, x, lengths, hx, training, running):
    """The whole module (layers, directions) by the reference; parameters are read from ``module``."""
    directions = 2 if module.bidirectional else 1
    prefix = {"layer": "ln_", "batch": "bn_"}.get(module.norm, "")
    params = {name: torch.tensor(p.detach().numpy().astype(np.float64), requires_grad=True)
              for name, p in module.named_parameters()}
    layer_input = x
    finals = [[], []]
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            p = {key: params.get(name + suffix) for key, name in
                 [("weight_ih", "weight_ih"), ("weight_hh", "weight_hh"), ("bias_ih", "bias_ih"),
                  ("bias_hh", "bias_hh"), ("gain_ih", prefix + "weight_ih"), ("gain_hh", prefix + "weight_hh"),
                  ("gain_c", prefix + "weight_c"), ("bias_c", prefix + "bias_c")]}
            index = layer * directions + direction
            h0 = hx[0][index]
            c0 = hx[1][index] if mode == "LSTM" else None
            side_running = running.get(suffix) if running is not None else None
            output, h_n, c_n = reference_direction(mode, layer_input, lengths, h0, c0, p, module.norm, direction == 1,
                                                   training, side_running, module.max_steps)
            outputs.append(output)
            finals[0].append(h_n)
            finals[1].append(c_n)
        layer_input = torch.cat(outputs, 2)
    return layer_input, [torch.stack(finals[0])] + ([torch.stack(finals[1])] if mode == "LSTM" else []), params


def running_copy(module):
    """The module's running statistics as {suffix: {side: (mean, var)}} NumPy copies (for the reference)."""
    out = {}
    for name, buffer in module.named_buffers():
        stat, side_suffix = name[len("bn_running_"):].split("_", 1)
        side, suffix = side_suffix.split("_", 1)
        entry = out.setdefault("_" + suffix, {}).setdefault(side, [None, None])
        entry[0 if stat == "mean" else 1] = buffer.detach().numpy().astype(np.float64).copy()
    return out


def compare(module, mode, x, lengths, hx, rng, dtype=np.float64, check_running=True):
    """Run ``module`` and the reference with the same upstream gradients; compare everything."""
    running = running_copy(module) if module.norm == "batch" else None
    x_ref = torch.tensor(x, requires_grad=True)
    hx_ref = [torch.tensor(h, requires_grad=True) for h in hx]
    out_ref, finals_ref, params_ref = reference(module, mode, x_ref, lengths, hx_ref, module.training, running)
    x_ours = normlab.tensor(x.astype(dtype), requires_grad=True)
    hx_ours = [normlab.tensor(h.astype(dtype), requires_grad=True) for h in hx]
    out_ours, final = module(x_ours, tuple(hx_ours) if mode == "LSTM" else hx_ours[0], lengths=lengths)
    finals_ours = list(final) if mode == "LSTM" else [final]
    upstream = [rng.standard_normal(out_ref.shape)] + [rng.standard_normal(f.shape) for f in finals_ref]
    sum((o * torch.tensor(g)).sum() for o, g in zip([out_ref] + finals_ref, upstream)).backward()
    sum((o * normlab.tensor(g.astype(dtype))).sum() for o, g in zip([out_ours] + finals_ours, upstream)).backward()
    pairs = [("output", out_ours, out_ref), ("input grad", x_ours.grad, x_ref.grad)]
    pairs += [(f"final {i}", a, b) for i, (a, b) in enumerate(zip(finals_ours, finals_ref))]
    pairs += [(f"hx grad {i}", a.grad, b.grad) for i, (a, b) in enumerate(zip(hx_ours, hx_ref))]
    pairs += [(name + " grad", p.grad, params_ref[name].grad) for name, p in module.named_parameters()]
    for what, ours, ref in pairs:
        if dtype == np.float64:
            assert_close(ours, ref, np.float64, what=what)
        else:
            ref = ref.detach().numpy()
            assert_float32_close(ours, ref, scale=np.abs(ref).max(), ulps=64, what=what)
    if running is not None and check_running:
        for name, buffer in module.named_buffers():
            stat, side_suffix = name[len("bn_running_"):].split("_", 1)
            side, suffix = side_suffix.split("_", 1)
            expected = running["_" + suffix][side][0 if stat == "mean" else 1]
            if dtype == np.float64:
                assert_close(buffer, expected, np.float64, what=name)
            else:
                assert_float32_close(buffer, expected, scale=np.abs(expected).max(), ulps=64, what=name)


def _inputs(rng, mode, module, steps, batch, batch_first=False):
    directions = 2 if module.bidirectional else 1
    x = rng.standard_normal((steps, batch, module.input_size))
    hx = [rng.standard_normal((module.num_layers * directions, batch, module.hidden_size)) * 0.5
          for _ in range(2 if mode == "LSTM" else 1)]
    return x, hx


# ----------------------------------------------------------------------------
# Against the reference
# ----------------------------------------------------------------------------

@st.composite
def norm_configurations(draw):
    norm = draw(st.sampled_from(["layer", "batch"]))
    steps = draw(st.integers(1, 5))
    batch = draw(st.integers(2, 4))
    lengths = None
    if draw(st.booleans()):
        lengths = draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
        if norm == "batch":   # every step needs two valid sequences in training: the two longest reach the end
            lengths[0] = lengths[-1] = steps
    return dict(mode=draw(st.sampled_from(list(CELLS))), norm=norm, steps=steps, batch=batch, lengths=lengths,
                input_size=draw(st.integers(1, 4)), hidden_size=draw(st.integers(1, 4)),
                num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()), bias=draw(st.booleans()),
                max_steps=draw(st.integers(1, 6)), training=draw(st.booleans()), seed=draw(st.integers(0, 999)))


@settings(max_examples=40)
@given(norm_configurations())
def test_norm_layers_match_reference_float64(config):
    rng = np.random.default_rng(config["seed"])
    mode = config["mode"]
    module = make(mode, config["input_size"], config["hidden_size"], config["norm"],
                  max_steps=config["max_steps"] if config["norm"] == "batch" else None,
                  num_layers=config["num_layers"], bidirectional=config["bidirectional"], bias=config["bias"])
    if config["norm"] == "batch":
        for buffer in module.buffers():   # running statistics away from 0 / 1
            buffer.detach().numpy()[...] = rng.uniform(0.5, 1.5, buffer.shape)
    module.train(config["training"])
    x, hx = _inputs(rng, mode, module, config["steps"], config["batch"])
    compare(module, mode, x, config["lengths"], hx, rng)


@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("mode", list(CELLS))
def test_norm_layers_float32_against_reference_float64(mode, norm, rng):
    module = make(mode, 5, 6, norm, max_steps=8, dtype=np.float32, bidirectional=True)
    x, hx = _inputs(rng, mode, module, 12, 4)
    x, hx = x.astype(np.float32).astype(np.float64), [h.astype(np.float32).astype(np.float64) for h in hx]
    compare(module, mode, x, [12, 9, 12, 3] if norm == "layer" else None, hx, rng, dtype=np.float32)


@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("mode", list(CELLS))
def test_norm_numerical_gradients(mode, norm, rng):
    """Central differences (float64) for every parameter, the input and the initial states."""
    module = make(mode, 2, 3, norm, max_steps=2)   # the reverse direction is checked against the reference
    lengths = [3, 2, 3]
    x, hx = _inputs(rng, mode, module, 3, 3)
    upstream_y = rng.standard_normal((3, 3, 3))
    upstream_h = [rng.standard_normal(h.shape) for h in hx]
    state = module.state_dict()

    def loss(x_value, hx_values):
        output, final = module(x_value, tuple(hx_values) if mode == "LSTM" else hx_values[0], lengths=lengths)
        finals = list(final) if mode == "LSTM" else [final]
        total = (output.detach().numpy() * upstream_y).sum()
        return total + sum((f.detach().numpy() * u).sum() for f, u in zip(finals, upstream_h))

    x_t = normlab.tensor(x, requires_grad=True)
    hx_t = [normlab.tensor(h, requires_grad=True) for h in hx]
    output, final = module(x_t, tuple(hx_t) if mode == "LSTM" else hx_t[0], lengths=lengths)
    finals = list(final) if mode == "LSTM" else [final]
    total = (output * normlab.tensor(upstream_y)).sum()
    for f, u in zip(finals, upstream_h):
        total = total + (f * normlab.tensor(u)).sum()
    total.backward()
    for name, p in module.named_parameters():
        numeric = numerical_gradient(lambda: loss(x, hx), p.detach().numpy())
        np.testing.assert_allclose(np.asarray(p.grad), numeric, rtol=1e-6, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(np.asarray(x_t.grad), numerical_gradient(lambda: loss(x, hx), x),
                               rtol=1e-6, atol=1e-7, err_msg="input")
    for i, h in enumerate(hx):
        np.testing.assert_allclose(np.asarray(hx_t[i].grad), numerical_gradient(lambda: loss(x, hx), h),
                                   rtol=1e-6, atol=1e-7, err_msg=f"hx {i}")
    module.load_state_dict(state)


@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_norm_cells_numerical_gradients(name, norm, rng):
    """A cell with a norm (norm="batch" at step 3, past max_steps=2): every parameter, the input and the state."""
    cell = getattr(nn, name)(2, 3, norm=norm, max_steps=2 if norm == "batch" else None, dtype=np.float64)
    for p in cell.parameters():
        p.detach().numpy()[...] = rng.uniform(-0.8, 0.8, p.shape) + (0.5 if p.ndim == 1 else 0.0)
    lstm = name == "LSTMCell"
    x = rng.standard_normal((4, 2))
    states = [rng.standard_normal((4, 3)) for _ in range(2 if lstm else 1)]
    upstream = [rng.standard_normal((4, 3)) for _ in states]

    def outputs(x_value, state_values):
        result = cell(x_value, tuple(state_values) if lstm else state_values[0], step=3)
        return list(result) if lstm else [result]

    def loss():
        return sum((o.detach().numpy() * u).sum() for o, u in zip(outputs(x, states), upstream))

    x_t = normlab.tensor(x, requires_grad=True)
    states_t = [normlab.tensor(s, requires_grad=True) for s in states]
    total = None
    for o, u in zip(outputs(x_t, states_t), upstream):
        term = (o * normlab.tensor(u)).sum()
        total = term if total is None else total + term
    total.backward()
    checks = [(name_p, p.grad, p.detach().numpy()) for name_p, p in cell.named_parameters()]
    checks += [("input", x_t.grad, x)] + [(f"state {i}", t.grad, s) for i, (t, s) in enumerate(zip(states_t, states))]
    for what, analytic, value in checks:
        np.testing.assert_allclose(np.asarray(analytic), numerical_gradient(loss, value), rtol=1e-6, atol=1e-7,
                                   err_msg=what)


# ----------------------------------------------------------------------------
# Layer norm: per sample
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", list(CELLS))
def test_layer_norm_is_per_sample(mode, rng):
    """A batch of one gives what that sample gives inside a larger batch (lengths and training included)."""
    module = make(mode, 3, 5, "layer", num_layers=2, bidirectional=True)
    x = rng.standard_normal((6, 4, 3))
    lengths = [6, 2, 5, 1]
    output, final = module(x, lengths=lengths)
    finals = list(final) if mode == "LSTM" else [final]
    for b, length in enumerate(lengths):
        alone, alone_final = module(x[:length, b:b + 1])
        alone_finals = list(alone_final) if mode == "LSTM" else [alone_final]
        np.testing.assert_allclose(output.detach().numpy()[:length, b:b + 1], alone.detach().numpy(), rtol=1e-12, atol=1e-14)
        for f, a in zip(finals, alone_finals):
            np.testing.assert_allclose(f.detach().numpy()[:, b:b + 1], a.detach().numpy(), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------
# Batch norm: statistics per time step
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", list(CELLS))
def test_batch_norm_eval_beyond_max_steps_uses_the_last_steps_statistics(mode, rng):
    """Train on 4 steps, evaluate 9: steps 4..8 use the running statistics of step 3 (checked by the reference)."""
    module = make(mode, 3, 4, "batch", max_steps=4, bidirectional=True)
    for _ in range(3):
        module(rng.standard_normal((4, 5, 3)) * 2 + 1)
    stats = running_copy(module)
    assert not np.allclose(stats["_l0"]["hh"][0], 0)     # training moved them
    for suffix in stats:
        for side, (mean, _) in stats[suffix].items():
            assert not np.allclose(mean[0], mean[-1]), "each step has its own statistics"
    module.eval()
    x, hx = _inputs(rng, mode, module, 9, 3)
    compare(module, mode, x, [9, 4, 7], hx, rng)
    after = running_copy(module)
    for suffix in stats:
        for side in stats[suffix]:
            assert np.array_equal(stats[suffix][side][0], after[suffix][side][0])   # eval moves nothing


def test_batch_norm_running_statistics_per_step_exclude_padding(rng):
    """Running statistics of each step come from that step's valid sequences only: padded values do not matter."""
    module = make("LSTM", 3, 4, "batch", max_steps=3)
    x = rng.standard_normal((5, 4, 3))
    lengths = [5, 3, 5, 2]
    other = x.copy()
    other[3:, 1] = 1e3
    other[2:, 3] = -1e3
    state = module.state_dict()
    first = module(x, lengths=lengths)[0].detach().numpy()
    first_stats = {k: v.detach().numpy().copy() for k, v in module.named_buffers()}
    module.load_state_dict(state)
    second = module(other, lengths=lengths)[0].detach().numpy()
    assert np.array_equal(first, second)
    for name, buffer in module.named_buffers():
        assert np.array_equal(first_stats[name], buffer.detach().numpy()), name
        assert buffer.shape[0] == 3


def test_batch_norm_training_beyond_max_steps_moves_only_the_first_steps(rng):
    module = make("GRU", 2, 3, "batch", max_steps=2)
    before = {k: v.detach().numpy().copy() for k, v in module.named_buffers()}
    module(rng.standard_normal((6, 3, 2)))
    for name, buffer in module.named_buffers():
        assert not np.array_equal(before[name], buffer.detach().numpy()), name
    # steps 2..5 have no slot: the reference (which updates only t < max_steps) agrees, checked in compare()
    module2 = make("GRU", 2, 3, "batch", max_steps=2)
    x, hx = _inputs(rng, "GRU", module2, 6, 3)
    compare(module2, "GRU", x, None, hx, rng)


def test_norm_parameters_and_initial_values():
    normlab.manual_seed(0)
    lstm = nn.LSTM(3, 4, norm="batch", max_steps=7, bidirectional=True)
    names = [name for name, _ in lstm.named_parameters()]
    assert names[:8] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                         "bn_weight_ih_l0", "bn_weight_hh_l0", "bn_weight_c_l0", "bn_bias_c_l0"]
    assert "weight_ih_l0_reverse" in names and "bn_bias_c_l0_reverse" in names
    assert np.all(lstm.bn_weight_ih_l0.detach().numpy() == np.float32(0.1))
    assert np.all(lstm.bn_weight_c_l0.detach().numpy() == np.float32(0.1))
    assert np.all(lstm.bn_bias_c_l0.detach().numpy() == 0)
    assert lstm.bn_running_mean_ih_l0.shape == (7, 16) and lstm.bn_running_var_c_l0_reverse.shape == (7, 4)
    assert np.all(lstm.bn_running_var_hh_l0.detach().numpy() == 1) and np.all(lstm.bn_running_mean_hh_l0.detach().numpy() == 0)
    gru = nn.GRU(3, 4, norm="layer", bias=False)
    assert [name for name, _ in gru.named_parameters()] == ["weight_ih_l0", "weight_hh_l0", "ln_weight_ih_l0",
                                                           "ln_weight_hh_l0"]
    assert np.all(gru.ln_weight_hh_l0.detach().numpy() == 1)
    assert list(gru.buffers()) == []


# ----------------------------------------------------------------------------
# Cells with a norm equal the layers, step by step
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM", "GRU"])
def test_norm_cells_step_by_step_equal_the_layer(mode, norm, rng):
    layer = make(mode, 3, 4, norm, max_steps=3)
    name = {"RNN_TANH": "RNNCell", "LSTM": "LSTMCell", "GRU": "GRUCell"}[mode]
    cell = getattr(nn, name)(3, 4, norm=norm, max_steps=3 if norm == "batch" else None, dtype=np.float64)
    cell.load_state_dict({k[:-3] if k.endswith("_l0") else k.replace("_l0", ""): v
                          for k, v in layer.state_dict().items()})
    x = rng.standard_normal((5, 4, 3))
    output, final = layer(x)
    state = None
    for t in range(5):
        state = cell(x[t], state, step=t)
        h = state[0] if mode == "LSTM" else state
        assert_close(h, output.detach().numpy()[t], np.float64, what=f"step {t}")
    if mode == "LSTM":
        assert_close(state[1], final[1].detach().numpy()[0], np.float64, what="c")
    for name_buffer, buffer in cell.named_buffers():
        assert_close(buffer, getattr(layer, name_buffer + "_l0"), np.float64, what=name_buffer)
