"""Recurrent layers -- Elman RNN, LSTM, GRU -- and backpropagation through time, by hand.

One layer in one direction is one call: ``recurrent_forward`` runs every time
step, ``recurrent_backward`` runs BPTT over all of them. Both work on the
*packed* layout torch's ``PackedSequence`` uses: the rows of all sequences,
time-major, each time step holding only the sequences still running, longest
first::

    x (N, I), batch_sizes (T,) non-increasing, N = sum(batch_sizes)
    step t owns rows offsets[t] : offsets[t] + batch_sizes[t]

A plain (T, B, I) batch is the special case batch_sizes = [B] * T (a reshape,
no copy). Because a step's rows are a prefix of the batch, a sequence that has
ended simply stops being updated: its state stays at its last valid step,
which is what ``h_n`` reports; outputs past a sequence's end do not exist.
The reverse direction walks t = T-1 .. 0 and its batch grows: a sequence
joins at its own last step, from ``h0``.

What makes it fast (and is the point of the exercise):

* the input-to-hidden products of all time steps are ONE matrix multiply,
  ``x @ W_ih^T`` (N, G); only ``h_{t-1} @ W_hh^T`` is per step;
* the weight gradients are ONE multiply each at the end: the pre-activation
  gradients of every step are kept (N, G) next to the inputs ``x`` (N, I) and
  the previous states ``h_{t-1}`` (N, H), so
  ``dW_ih = G_x^T x`` and ``dW_hh = G_h^T H_prev`` -- the sum over time steps
  happens inside the GEMM;
* the element-wise work of a step is one or two Numba kernels, and sigmoid /
  tanh use a vectorisable ``exp`` (below): with libm's scalar ``exp`` they
  would cost about as much as the step's matrix multiply.

Cells (torch's gate order and equations; ``a = x W_ih^T + b_ih + h W_hh^T + b_hh``)::

    RNN   h = tanh(a)  or relu(a)
    LSTM  i, f, g, o = sigma(a_i), sigma(a_f), tanh(a_g), sigma(a_o)
          c = f * c_prev + i * g            h = o * tanh(c)
    GRU   r, z = sigma(a_r), sigma(a_z)
          n = tanh(x W_in^T + b_in + r * (h_prev W_hn^T + b_hn))
          h = (1 - z) * n + z * h_prev

Normalization inside the cell (``norm="layer"`` / ``"batch"``): the two
summed inputs are normalized separately before they are added, and the LSTM's
cell state before its tanh (the recurrence keeps the raw c)::

    a = N_x(x W_ih^T) * gain_ih + bias_ih  +  N_h(h W_hh^T) * gain_hh + bias_hh
    h = o * tanh(N_c(c) * gain_c + bias_c)                      (LSTM)

``N`` is layer normalization over each row's G (or H) features (Ba, Kiros &
Hinton 2016), or batch normalization of each feature over the sequences of
one time step, with statistics per time step (Cooijmans et al. 2016).
torch's ``bias_ih``/``bias_hh`` are the shifts after normalization (the
papers' beta_x + b and beta_h), so a plain torch checkpoint's keys keep their
meaning. GRU: n's hidden part is the normalized ``h W_hn^T`` shifted by b_hn.

Functions: ``recurrent_forward(...) -> ((y, h_n, c_n), saved)`` and
``recurrent_backward(dy, dh_n, dc_n, saved, needs) -> 11 gradients``.
The per-step cell pairs are the ``*_step_forward`` / ``*_step_backward``
kernels, each with its derivation.

>>> import numpy as np
>>> from normlab.ops.recurrent import recurrent_forward, recurrent_backward
>>> rng = np.random.default_rng(0)
>>> T, B, I, H = 5, 3, 4, 6
>>> x, h0, c0 = rng.standard_normal((T * B, I)), np.zeros((B, H)), np.zeros((B, H))
>>> w_ih, w_hh = rng.standard_normal((4 * H, I)) * 0.3, rng.standard_normal((4 * H, H)) * 0.3
>>> (y, h_n, c_n), saved = recurrent_forward(x, h0, c0, w_ih, w_hh, cell="lstm", batch_sizes=[B] * T)
>>> y.shape, h_n.shape, bool(np.allclose(y[-B:], h_n))
((15, 6), (3, 6), True)
>>> grads = recurrent_backward(rng.standard_normal(y.shape), None, None, saved)
>>> [None if g is None else g.shape for g in grads[:5]]
[(15, 4), (3, 6), (3, 6), (24, 4), (24, 6)]
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from normlab.ops._threading import matmul, parallel_kernel

# The cell kernels use no 'reassoc': exp's range reduction (x - k*ln2_hi -
# k*ln2_lo) and its rounding must be evaluated as written. The normalization
# and column-sum kernels call no exp and need 'reassoc' to vectorise their
# float64 reductions (several partial sums instead of one serial chain).
# 'contract' allows fused multiply-adds. No 'nnan'/'ninf': NaN propagates.
_FASTMATH = {"contract"}
_FASTMATH_SUMS = {"reassoc", "contract"}

CELLS = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}   # gate blocks of H per cell
NORMS = (None, "layer", "batch")


# ----------------------------------------------------------------------------
# sigmoid and tanh that vectorise
# ----------------------------------------------------------------------------
# LLVM cannot vectorise a loop that calls libm's exp, and a step of an LSTM
# evaluates 5 B*H of them (64 x 256: ~0.3 ms at 4 ns each, as long as the
# step's matrix multiply). So exp is written out: e^x = 2^k * e^r with
# k = round(x / ln 2), r = x - k ln 2 (|r| <= ln2 / 2, ln 2 split in a part
# exact in k * ln2_hi and a correction), e^r by its Taylor polynomial (degree
# 7 for float32, 13 for float64: truncation below half an ulp), and 2^k put
# straight into the exponent bits. x is clamped so that 2^k stays a normal
# number (e^x saturates there instead of reaching 0 or inf, which moves
# sigmoid/tanh by less than one ulp); NaN passes the clamps unchanged.
# tanh(x) = m / (m + 2) with m = e^{2|x|} - 1 (sign restored) keeps its
# relative accuracy near 0 because m comes from the same polynomial without
# its constant term there (expm1), not from e^{2|x|} - 1.
# Measured: sigmoid and tanh within 2 ulps, 10x faster than libm's scalar calls.

@intrinsic
def _float_from_bits(typingctx, bits):
    """Reinterpret an int32 (int64) as the float32 (float64) with the same bits."""
    if bits == types.int32:
        result = types.float32
    elif bits == types.int64:
        result = types.float64
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))

    return result(bits), codegen


def _elementwise_math(float_type, int_type, mantissa_bits, exponent_bias, low, high, degree):
    """sigmoid and tanh for one float type, constants typed so that nothing is promoted."""
    f = float_type
    one, two, half = f(1.0), f(2.0), f(0.5)
    low, high, half_ln2 = f(low), f(high), f(0.5 * math.log(2.0))
    log2_e, ln2_hi, ln2_lo = f(1.4426950408889634), f(0.693359375), f(-2.121944400546905827679e-4)
    # e^r - 1 = r * (1 + r/2! + r^2/3! + ...): Horner coefficients, highest first
    coefficients = tuple(f(1.0 / math.factorial(n)) for n in range(degree, 0, -1))
    bias, shift = int_type(exponent_bias), int_type(mantissa_bits)

    @njit(fastmath=_FASTMATH)
    def expm1_reduced(r):
        """e^r - 1 for |r| <= ln2 / 2, without cancellation."""
        p = coefficients[0]
        for c in coefficients[1:]:
            p = p * r + c
        return p * r

    @njit(fastmath=_FASTMATH)
    def exp(x):
        clamped = low if x < low else x                  # comparisons with NaN are False: NaN stays NaN
        clamped = high if clamped > high else clamped
        k = np.floor(clamped * log2_e + half)
        r = (clamped - k * ln2_hi) - k * ln2_lo
        return (expm1_reduced(r) + one) * _float_from_bits(int_type((int_type(k) + bias) << shift))

    def sigmoid(x):
        return one / (one + exp(-x))

    def tanh(x):
        doubled = two * abs(x)
        m = expm1_reduced(doubled) if doubled <= half_ln2 else exp(doubled) - one
        t = m / (m + two)
        return t if x >= 0 else -t                      # NaN: -NaN is NaN

    return sigmoid, tanh


_MATH = {types.float32: _elementwise_math(np.float32, np.int32, 23, 127, -87.0, 88.0, 7),
         types.float64: _elementwise_math(np.float64, np.int64, 52, 1023, -708.0, 709.0, 13)}


def _sigmoid(x):
    """1 / (1 + e^-x) of one float inside a kernel (float32 or float64)."""
    return 1.0 / (1.0 + math.exp(-x))


def _tanh(x):
    """tanh(x) of one float inside a kernel (float32 or float64)."""
    return math.tanh(x)


@overload(_sigmoid)
def _sigmoid_overload(x):
    return _MATH[x][0] if x in _MATH else None


@overload(_tanh)
def _tanh_overload(x):
    return _MATH[x][1] if x in _MATH else None


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def sigmoid_tanh(x, sigmoid_out, tanh_out):
    """sigmoid(x) and tanh(x) of a 1-D array with the kernels' own math (for tests)."""
    for k in range(x.shape[0]):
        sigmoid_out[k] = _sigmoid(x[k])
        tanh_out[k] = _tanh(x[k])


# ----------------------------------------------------------------------------
# Cells: one time step
# ----------------------------------------------------------------------------
# Arguments are the step's rows: preact_x (rows, G) = normalized x W_ih^T + b_ih
# (overwritten in place by the activated gates, which backward needs),
# preact_h (rows, G) = h_prev W_hh^T (normalized and shifted, or raw),
# bias (G,) = b_hh when preact_h is raw, zeros otherwise. Each kernel hands
# every row to a row function as 1-D views, one per gate block: LLVM
# vectorises those loops, while 2-D indexing with several gate offsets into
# the same array (possible aliasing) kept it scalar and 10x slower.
# The kernels are serial: a step's element-wise work is O(B G) next to its
# matrix multiply's O(B G H) (which BLAS runs on all threads), too little to
# pay for waking threads 2 x T times per layer, or for a parallel compile.

@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _rnn_row(a_x, a_h, bias, relu, h_saved, h_state, y):
    zero = y.dtype.type(0.0)
    for j in range(y.shape[0]):
        a = a_x[j] + a_h[j] + bias[j]
        if relu:
            h = zero if a <= zero else a      # NaN stays NaN, as torch's relu
        else:
            h = _tanh(a)
        h_saved[j] = h
        h_state[j] = h
        y[j] = h


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def rnn_step_forward(preact_x, preact_h, bias, relu, h_saved, h_state, y):
    """h = tanh(a) or relu(a), a = preact_x + preact_h + bias; h into the state, the output and h_saved."""
    for r in range(y.shape[0]):
        _rnn_row(preact_x[r], preact_h[r], bias, relu, h_saved[r], h_state[r], y[r])


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _rnn_backward_row(dy, dh, h_saved, relu, g_preact):
    one, zero = h_saved.dtype.type(1.0), h_saved.dtype.type(0.0)
    for j in range(h_saved.shape[0]):
        dh_t = dy[j] + dh[j]
        h = h_saved[j]
        if relu:
            g_preact[j] = dh_t if h > zero else zero
        else:
            g_preact[j] = dh_t * (one - h * h)


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def rnn_step_backward(dy, dh, h_saved, relu, g_preact):
    """Gradient of the pre-activation from dh_t = dy_t + (gradient from step t+1).

    h = tanh(a):  da = dh_t * (1 - h^2)         h = relu(a):  da = dh_t * [h > 0]
    (torch's relu passes no gradient at a = 0.)
    """
    for r in range(h_saved.shape[0]):
        _rnn_backward_row(dy[r], dh[r], h_saved[r], relu, g_preact[r])


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _lstm_cell_row(a_x, a_h, bias, c_prev, c, hidden):
    """One row of the gates (written over a_x) and of c = f * c_prev + i * g."""
    x_i, x_f, x_g, x_o = a_x[:hidden], a_x[hidden:2 * hidden], a_x[2 * hidden:3 * hidden], a_x[3 * hidden:]
    h_i, h_f, h_g, h_o = a_h[:hidden], a_h[hidden:2 * hidden], a_h[2 * hidden:3 * hidden], a_h[3 * hidden:]
    b_i, b_f, b_g, b_o = bias[:hidden], bias[hidden:2 * hidden], bias[2 * hidden:3 * hidden], bias[3 * hidden:]
    for j in range(hidden):
        i = _sigmoid(x_i[j] + h_i[j] + b_i[j])
        f = _sigmoid(x_f[j] + h_f[j] + b_f[j])
        g = _tanh(x_g[j] + h_g[j] + b_g[j])
        o = _sigmoid(x_o[j] + h_o[j] + b_o[j])
        x_i[j], x_f[j], x_g[j], x_o[j] = i, f, g, o
        c[j] = f * c_prev[j] + i * g


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _lstm_output_row(o, u, tanh_u, h_state, y):
    """One row of h = o * tanh(u); tanh(u) kept for backward."""
    for j in range(u.shape[0]):
        t = _tanh(u[j])
        h = o[j] * t
        tanh_u[j] = t
        h_state[j] = h
        y[j] = h


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def lstm_step_forward(preact_x, preact_h, bias, c_prev, c, with_output, tanh_u, h_state, y):
    """Gates i, f, g, o of a = preact_x + preact_h + bias (over preact_x), c = f * c_prev + i * g.

    ``with_output``: also h = o * tanh(c) in the same pass (no cell-state
    norm); otherwise ``lstm_output_forward`` follows, on the normalized c.
    """
    hidden = c.shape[1]
    for r in range(c.shape[0]):
        _lstm_cell_row(preact_x[r], preact_h[r], bias, c_prev[r], c[r], hidden)
        if with_output:
            _lstm_output_row(preact_x[r, 3 * hidden:], c[r], tanh_u[r], h_state[r], y[r])


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def lstm_output_forward(gates, u, tanh_u, h_state, y):
    """h = o * tanh(u), u the normalized cell state."""
    hidden = u.shape[1]
    for r in range(u.shape[0]):
        _lstm_output_row(gates[r, 3 * hidden:], u[r], tanh_u[r], h_state[r], y[r])


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _lstm_output_backward_row(dy, dh, o, tanh_u, g_o, du):
    one = o.dtype.type(1.0)
    for j in range(du.shape[0]):
        dh_t = dy[j] + dh[j]
        t = tanh_u[j]
        g_o[j] = dh_t * t * o[j] * (one - o[j])
        du[j] = dh_t * o[j] * (one - t * t)


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _lstm_cell_backward_row(dc_from_h, dc, gates, c_prev, g_preact, hidden):
    one = gates.dtype.type(1.0)
    i, f, g = gates[:hidden], gates[hidden:2 * hidden], gates[2 * hidden:3 * hidden]
    g_i, g_f, g_g = g_preact[:hidden], g_preact[hidden:2 * hidden], g_preact[2 * hidden:3 * hidden]
    for j in range(hidden):
        dc_t = dc[j] + dc_from_h[j]
        g_i[j] = dc_t * g[j] * i[j] * (one - i[j])
        g_f[j] = dc_t * c_prev[j] * f[j] * (one - f[j])
        g_g[j] = dc_t * i[j] * (one - g[j] * g[j])
        dc[j] = dc_t * f[j]


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def lstm_output_backward(dy, dh, gates, tanh_u, g_preact, du):
    """From dh_t = dy_t + (gradient from step t+1) through h = o * tanh(u):

        do = dh_t * tanh(u)        da_o = do * o (1 - o)
        du = dh_t * o * (1 - tanh(u)^2)
    """
    hidden = du.shape[1]
    for r in range(du.shape[0]):
        _lstm_output_backward_row(dy[r], dh[r], gates[r, 3 * hidden:], tanh_u[r], g_preact[r, 3 * hidden:], du[r])


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def lstm_step_backward(dy, dh, gates, tanh_u, c_prev, with_output, dc_from_h, dc, g_preact, du):
    """Through c = f * c_prev + i * g, with dc_t = dc (from step t+1, in place) + dc_from_h:

        di = dc_t * g   df = dc_t * c_prev   dg = dc_t * i   dc_prev = dc_t * f
        da_i = di * i (1 - i)   da_f = df * f (1 - f)   da_g = dg * (1 - g^2)
    (sigma' = sigma (1 - sigma), tanh' = 1 - tanh^2: from the saved activations.)
    ``with_output`` (no cell-state norm): first ``lstm_output_backward``'s
    step in the same pass, and dc_from_h = du; otherwise dc_from_h is du
    pulled back through the cell-state norm.
    """
    hidden = c_prev.shape[1]
    for r in range(c_prev.shape[0]):
        if with_output:
            _lstm_output_backward_row(dy[r], dh[r], gates[r, 3 * hidden:], tanh_u[r], g_preact[r, 3 * hidden:],
                                      du[r])
            _lstm_cell_backward_row(du[r], dc[r], gates[r], c_prev[r], g_preact[r], hidden)
        else:
            _lstm_cell_backward_row(dc_from_h[r], dc[r], gates[r], c_prev[r], g_preact[r], hidden)


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _gru_row(a_x, a_h, bias, h_prev, hidden_n, h_state, y, hidden):
    one = y.dtype.type(1.0)
    x_r, x_z, x_n = a_x[:hidden], a_x[hidden:2 * hidden], a_x[2 * hidden:]
    h_r, h_z, h_n = a_h[:hidden], a_h[hidden:2 * hidden], a_h[2 * hidden:]
    b_r, b_z, b_n = bias[:hidden], bias[hidden:2 * hidden], bias[2 * hidden:]
    for j in range(hidden):
        reset = _sigmoid(x_r[j] + h_r[j] + b_r[j])
        update = _sigmoid(x_z[j] + h_z[j] + b_z[j])
        hn = h_n[j] + b_n[j]
        n = _tanh(x_n[j] + reset * hn)
        h = (one - update) * n + update * h_prev[j]
        x_r[j], x_z[j], x_n[j] = reset, update, n
        hidden_n[j] = hn
        h_state[j] = h
        y[j] = h


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def gru_step_forward(preact_x, preact_h, bias, h_prev, hidden_n, h_state, y):
    """r, z = sigma(.), n = tanh(x_n + r * (h_n + b_hn)), h = (1 - z) * n + z * h_prev.

    torch's GRU: r multiplies the hidden part of n *after* its bias, so the
    hidden pre-activation is not summed into a; ``hidden_n`` keeps
    h_n + b_hn for backward, the gates r, z, n overwrite preact_x.
    """
    hidden = h_prev.shape[1]
    for r in range(h_prev.shape[0]):
        _gru_row(preact_x[r], preact_h[r], bias, h_prev[r], hidden_n[r], h_state[r], y[r], hidden)


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _gru_backward_row(dy, dh, gates, hidden_n, h_prev, g_x, g_h, hidden):
    one = gates.dtype.type(1.0)
    reset, update, n = gates[:hidden], gates[hidden:2 * hidden], gates[2 * hidden:]
    gx_r, gx_z, gx_n = g_x[:hidden], g_x[hidden:2 * hidden], g_x[2 * hidden:]
    gh_r, gh_z, gh_n = g_h[:hidden], g_h[hidden:2 * hidden], g_h[2 * hidden:]
    for j in range(hidden):
        dh_t = dy[j] + dh[j]
        da_n = dh_t * (one - update[j]) * (one - n[j] * n[j])
        da_r = da_n * hidden_n[j] * reset[j] * (one - reset[j])
        da_z = dh_t * (h_prev[j] - n[j]) * update[j] * (one - update[j])
        gx_r[j], gx_z[j], gx_n[j] = da_r, da_z, da_n
        gh_r[j], gh_z[j], gh_n[j] = da_r, da_z, da_n * reset[j]
        dh[j] = dh_t * update[j]


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def gru_step_backward(dy, dh, gates, hidden_n, h_prev, g_preact_x, g_preact_h):
    """From dh_t = dy_t + dh (dh is overwritten by the direct part of dh_prev):

        h = (1 - z) n + z h_prev  =>  dn = dh_t (1 - z)   dz = dh_t (h_prev - n)   dh_prev += dh_t z
        n = tanh(x_n + r hn)      =>  da_n = dn (1 - n^2)  (gradient of x_n)
                                      d(hn) = da_n r        dr = da_n hn
        da_r = dr r (1 - r)       da_z = dz z (1 - z)
    The input side gets [da_r, da_z, da_n], the hidden side [da_r, da_z, da_n r]
    (its bias b_hn included); the caller adds (hidden side) @ W_hh to dh_prev.
    """
    hidden = h_prev.shape[1]
    for r in range(h_prev.shape[0]):
        _gru_backward_row(dy[r], dh[r], gates[r], hidden_n[r], h_prev[r], g_preact_x[r], g_preact_h[r], hidden)


# ----------------------------------------------------------------------------
# Normalization of a block of rows: layer norm per row, batch norm per step
# ----------------------------------------------------------------------------

@njit(cache=True, fastmath=_FASTMATH_SUMS, error_model="numpy")
def _layer_norm_row(z, gain, shift, eps, z_hat, out):
    """Two-pass float64 statistics of one row; returns its rstd. ``out`` may be ``z``."""
    features = z.shape[0]
    total = 0.0
    for j in range(features):
        total += z[j]
    mean = total / features
    squares = 0.0
    for j in range(features):
        deviation = z[j] - mean
        squares += deviation * deviation
    rstd = 1.0 / np.sqrt(squares / features + eps)
    mean_z, rstd_z = z.dtype.type(mean), z.dtype.type(rstd)
    for j in range(features):
        x_hat = (z[j] - mean_z) * rstd_z
        z_hat[j] = x_hat
        out[j] = x_hat * gain[j] + shift[j]
    return rstd


@parallel_kernel(fastmath=_FASTMATH_SUMS, error_model="numpy")
def layer_norm_rows_forward(z, gain, shift, eps, z_hat, rstd, out):
    """Each row over its F features: z_hat = (z - mean) * rstd, out = z_hat * gain + shift.

    Statistics two-pass in float64; ``out`` may be ``z`` itself.
    """
    for r in prange(z.shape[0]):
        rstd[r] = _layer_norm_row(z[r], gain, shift, eps, z_hat[r], out[r])


@njit(cache=True, fastmath=_FASTMATH_SUMS, error_model="numpy")
def _layer_norm_backward_row(g_out, gain, z_hat, rstd, dz):
    features = z_hat.shape[0]
    sum_g = 0.0
    sum_g_z_hat = 0.0
    for j in range(features):
        g = g_out[j] * gain[j]
        sum_g += g
        sum_g_z_hat += g * z_hat[j]
    dtype = z_hat.dtype.type
    mean_g, mean_g_z_hat, rstd_z = dtype(sum_g / features), dtype(sum_g_z_hat / features), dtype(rstd)
    for j in range(features):
        dz[j] = rstd_z * (g_out[j] * gain[j] - mean_g - z_hat[j] * mean_g_z_hat)


@parallel_kernel(fastmath=_FASTMATH_SUMS, error_model="numpy")
def layer_norm_rows_backward(g_out, gain, z_hat, rstd, dz):
    """Gradient of z through out = z_hat * gain + shift, z_hat the row's normalization.

    With g = g_out * gain (the gradient reaching z_hat), over each row's F features:
        dz = rstd * (g - mean(g) - z_hat * mean(g * z_hat))
    z moves z_hat directly (rstd), through the row mean (-mean(g)) and through
    the row variance (-z_hat mean(g z_hat)). gain/shift gradients are summed
    over all rows afterwards (``column_sums``).
    """
    for r in prange(z_hat.shape[0]):
        _layer_norm_backward_row(g_out[r], gain, z_hat[r], rstd[r], dz[r])


_CHUNK = 256   # features per parallel task of the per-step batch norm


@parallel_kernel(fastmath=_FASTMATH_SUMS, error_model="numpy")
def batch_norm_steps_forward(z, starts, stops, batch_stats, mean, var, rstd, gain, shift, eps, z_hat, out):
    """Each feature over the rows starts[s]:stops[s] of each step s (its valid sequences only).

    ``batch_stats``: mean/var (steps, F) are computed (two-pass, float64) and
    rstd = 1/sqrt(var + eps); otherwise mean and rstd are given (running
    statistics). z_hat = (z - mean) * rstd, out = z_hat * gain + shift; ``out``
    may be ``z``.
    """
    features = z.shape[1]
    chunks = (features + _CHUNK - 1) // _CHUNK
    for task in prange(starts.shape[0] * chunks):
        s = task // chunks
        first = (task - s * chunks) * _CHUNK
        last = min(first + _CHUNK, features)
        step_mean, step_var, step_rstd = mean[s, first:last], var[s, first:last], rstd[s, first:last]
        if batch_stats:
            inv_n = 1.0 / (stops[s] - starts[s])
            step_mean[:] = 0.0
            for r in range(starts[s], stops[s]):
                row = z[r, first:last]
                for j in range(last - first):
                    step_mean[j] += row[j]
            step_mean *= inv_n
            step_var[:] = 0.0
            for r in range(starts[s], stops[s]):
                row = z[r, first:last]
                for j in range(last - first):
                    deviation = row[j] - step_mean[j]
                    step_var[j] += deviation * deviation
            step_var *= inv_n
            for j in range(last - first):
                step_rstd[j] = 1.0 / np.sqrt(step_var[j] + eps)
        mean_z, rstd_z = step_mean.astype(z.dtype), step_rstd.astype(z.dtype)
        step_gain, step_shift = gain[first:last], shift[first:last]
        for r in range(starts[s], stops[s]):
            row, row_hat, row_out = z[r, first:last], z_hat[r, first:last], out[r, first:last]
            for j in range(last - first):
                x_hat = (row[j] - mean_z[j]) * rstd_z[j]
                row_hat[j] = x_hat
                row_out[j] = x_hat * step_gain[j] + step_shift[j]


@parallel_kernel(fastmath=_FASTMATH_SUMS, error_model="numpy")
def batch_norm_steps_backward(g_out, starts, stops, batch_stats, rstd, gain, z_hat, dz):
    """Gradient of z through out = z_hat * gain + shift, statistics per step and feature.

    With g = g_out * gain, over the n rows of a step:
        batch statistics:  dz = rstd * (g - mean(g) - z_hat * mean(g * z_hat))
        running statistics (constants):  dz = rstd * g
    """
    features = z_hat.shape[1]
    chunks = (features + _CHUNK - 1) // _CHUNK
    for task in prange(starts.shape[0] * chunks):
        s = task // chunks
        first = (task - s * chunks) * _CHUNK
        last = min(first + _CHUNK, features)
        step_gain = gain[first:last]
        sum_g = np.zeros(last - first)
        sum_g_z_hat = np.zeros(last - first)
        if batch_stats:
            for r in range(starts[s], stops[s]):
                row_g, row_hat = g_out[r, first:last], z_hat[r, first:last]
                for j in range(last - first):
                    g = row_g[j] * step_gain[j]
                    sum_g[j] += g
                    sum_g_z_hat[j] += g * row_hat[j]
            inv_n = 1.0 / (stops[s] - starts[s])
            sum_g *= inv_n
            sum_g_z_hat *= inv_n
        mean_g, mean_g_z_hat = sum_g.astype(dz.dtype), sum_g_z_hat.astype(dz.dtype)
        rstd_z = rstd[s, first:last].astype(dz.dtype)
        for r in range(starts[s], stops[s]):
            row_g, row_hat, row_dz = g_out[r, first:last], z_hat[r, first:last], dz[r, first:last]
            for j in range(last - first):
                row_dz[j] = rstd_z[j] * (row_g[j] * step_gain[j] - mean_g[j] - row_hat[j] * mean_g_z_hat[j])


_SUM_BLOCK_ROWS = 256   # rows per partial sum: the split follows the input, not the thread count


@parallel_kernel(fastmath=_FASTMATH_SUMS, error_model="numpy")
def column_sums(g, z_hat, with_z_hat, blocks):
    """(sum_r g[r, :], sum_r g[r, :] * z_hat[r, :]) in float64: each of ``blocks`` row blocks into its own partial sums."""
    rows, features = g.shape
    partial_g, partial_g_z_hat = np.zeros((blocks, features)), np.zeros((blocks, features))
    for block in prange(blocks):
        block_g, block_g_z_hat = partial_g[block], partial_g_z_hat[block]
        for r in range(block * rows // blocks, (block + 1) * rows // blocks):
            row_g = g[r]
            for j in range(features):
                block_g[j] += row_g[j]
            if with_z_hat:
                row_hat = z_hat[r]
                for j in range(features):
                    block_g_z_hat[j] += row_g[j] * row_hat[j]
    return partial_g.sum(axis=0), partial_g_z_hat.sum(axis=0)


# The three ways a summed input is (not) normalized
# ----------------------------------------------------------------------------
# Each holds, for the whole sequence, what its backward needs (in slots, where
# the autograd engine looks for kept arrays to check their versions).
# ``forward`` maps a block of rows (all steps at once for the input side, one
# step for the hidden and cell sides) into ``out`` (which may be the block
# itself); ``backward`` returns the gradient of the block; ``parameter_grads``
# sums the gain and shift gradients over all rows at the end (float64).

class _NoNorm:
    """The identity: the shift (bias) is added by the cell kernel instead."""

    __slots__ = ("shift",)

    def __init__(self, rows, features, dtype, gain, shift, steps):
        self.shift = shift

    def forward(self, z, step_rows, out):
        return z

    def backward(self, g_out, step_rows, out):
        return g_out

    def parameter_grads(self, g_all):
        return None, (None if self.shift is None else _sums(g_all, None)[0])


class _LayerNorm:
    """Layer normalization of each row (Ba et al. 2016): the same at any batch size, in training and eval."""

    __slots__ = ("gain", "shift", "has_shift", "eps", "z_hat", "rstd")

    def __init__(self, rows, features, dtype, gain, shift, steps, eps):
        self.gain = gain
        self.shift = np.zeros(features, dtype) if shift is None else shift
        self.has_shift = shift is not None
        self.eps = eps
        self.z_hat = np.empty((rows, features), dtype)
        self.rstd = np.empty(rows)

    def forward(self, z, step_rows, out):
        rows = step_rows[0]
        layer_norm_rows_forward(z, self.gain, self.shift, self.eps, self.z_hat[rows], self.rstd[rows], out,
                                work=3 * z.size)
        return out

    def backward(self, g_out, step_rows, out):
        rows = step_rows[0]
        layer_norm_rows_backward(g_out, self.gain, self.z_hat[rows], self.rstd[rows], out, work=3 * out.size)
        return out

    def parameter_grads(self, g_all):
        sum_g, sum_g_z_hat = _sums(g_all, self.z_hat)
        return sum_g_z_hat, (sum_g if self.has_shift else None)


class _StepBatchNorm:
    """Batch normalization per time step (Cooijmans et al. 2016).

    ``slots[s]`` is the running-statistics row of step s at time ``times[s]``:
    min(time, max_steps - 1).
    Training normalizes each step with its own batch statistics (its valid
    sequences only: the step's rows) and moves the running statistics of the
    steps t < max_steps (those beyond have no slot of their own); eval
    normalizes with the running statistics of each step's slot.
    """

    __slots__ = ("gain", "shift", "has_shift", "eps", "training", "running", "times", "slots", "starts", "stops",
                 "z_hat", "mean", "var", "rstd")

    def __init__(self, rows, features, dtype, gain, shift, steps, eps, training, running, times, starts, stops):
        self.gain = gain
        self.shift = np.zeros(features, dtype) if shift is None else shift
        self.has_shift = shift is not None
        self.eps, self.training, self.running = eps, training, running
        self.times, self.starts, self.stops = times, starts, stops
        self.slots = np.minimum(times, running[0].shape[0] - 1)
        self.z_hat = np.empty((rows, features), dtype)
        self.var, self.rstd = np.empty((steps, features)), np.empty((steps, features))
        if training:
            self.mean = np.empty((steps, features))
        else:
            running_mean, running_var = running
            self.mean = np.asarray(running_mean, dtype=np.float64)[self.slots]
            self.rstd[...] = 1.0 / np.sqrt(np.asarray(running_var, dtype=np.float64)[self.slots] + eps)

    def forward(self, z, step_rows, out):
        rows, steps = step_rows
        first = rows.start
        batch_norm_steps_forward(z, self.starts[steps] - first, self.stops[steps] - first, self.training,
                                 self.mean[steps], self.var[steps], self.rstd[steps], self.gain, self.shift, self.eps,
                                 self.z_hat[rows], out, work=3 * z.size)
        return out

    def backward(self, g_out, step_rows, out):
        rows, steps = step_rows
        first = rows.start
        batch_norm_steps_backward(g_out, self.starts[steps] - first, self.stops[steps] - first, self.training,
                                  self.rstd[steps], self.gain, self.z_hat[rows], out, work=3 * out.size)
        return out

    def parameter_grads(self, g_all):
        sum_g, sum_g_z_hat = _sums(g_all, self.z_hat)
        return sum_g_z_hat, (sum_g if self.has_shift else None)

    def update_running(self, momentum):
        """torch's rule per step slot: new = (1 - momentum) old + momentum * batch (unbiased variance)."""
        running_mean, running_var = self.running
        counts = self.stops - self.starts
        for s, (time, slot) in enumerate(zip(self.times, self.slots)):
            if time != slot:   # steps past max_steps have no slot of their own
                continue
            unbiased = self.var[s] * (counts[s] / (counts[s] - 1))
            running_mean[slot] = (1.0 - momentum) * running_mean[slot] + momentum * self.mean[s]
            running_var[slot] = (1.0 - momentum) * running_var[slot] + momentum * unbiased


def _sums(g, z_hat):
    """(sum over rows of g, of g * z_hat) accumulated in float64, returned in g's dtype."""
    blocks = max(1, -(-g.shape[0] // _SUM_BLOCK_ROWS))
    sum_g, sum_g_z_hat = column_sums(g, g if z_hat is None else z_hat, z_hat is not None, blocks,
                                     work=(2 if z_hat is not None else 1) * g.size)
    return sum_g.astype(g.dtype), (None if z_hat is None else sum_g_z_hat.astype(g.dtype))


def _make_norm(norm, rows, features, dtype, gain, shift, steps, *, eps, training, running, times, starts, stops):
    if norm is None:
        return _NoNorm(rows, features, dtype, gain, shift, steps)
    if norm == "layer":
        return _LayerNorm(rows, features, dtype, gain, shift, steps, eps)
    return _StepBatchNorm(rows, features, dtype, gain, shift, steps, eps, training, running, times, starts, stops)


# ----------------------------------------------------------------------------
# One layer, one direction, the whole sequence
# ----------------------------------------------------------------------------

class RecurrentSaved:
    """What BPTT needs: the inputs, every step's previous state and activated gates, the norms' state."""

    __slots__ = ("cell", "x", "weight_ih", "weight_hh", "offsets", "batch_sizes", "order", "gates", "h_prev",
                 "c_prev", "tanh_u", "hidden_n", "h_saved", "norm_ih", "norm_hh", "norm_c", "has_bias",
                 "hidden_size", "batch")

    def __init__(self, **fields) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))


def recurrent_forward(x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, gain_ih=None, gain_hh=None,
                      gain_c=None, bias_c=None, *, cell, batch_sizes, reverse=False, norm=None, training=True,
                      running=None, first_step=0, momentum=0.1, eps=1e-5):
    """Run one recurrent layer in one direction over packed rows.

    Shapes: x (N, I) packed time-major (see the module docstring), h0/c0 (B, H)
    with B = batch_sizes[0], weight_ih (G*H, I), weight_hh (G*H, H), biases and
    gain_ih/gain_hh (G*H,), gain_c/bias_c (H,) (LSTM with a norm). c0 only for
    the LSTM. ``running`` (norm="batch"): dict ``{"ih"|"hh"|"c": (mean, var)}``
    of (max_steps, F) arrays, updated in place in training. ``first_step``:
    the time index of the first step (a cell called step by step).

    Returns ``((y (N, H), h_n (B, H), c_n (B, H) or None), saved)``.
    """
    cell = cell.lower()
    gates_per_unit = CELLS[cell]
    dtype = x.dtype
    # the small vectors go into kernels: contiguous, in x's dtype
    bias_ih, bias_hh, gain_ih, gain_hh, gain_c, bias_c = (
        None if v is None else np.ascontiguousarray(v, dtype=dtype)
        for v in (bias_ih, bias_hh, gain_ih, gain_hh, gain_c, bias_c))
    batch_sizes = np.asarray(batch_sizes, dtype=np.int64)
    steps = batch_sizes.shape[0]
    batch, hidden = h0.shape
    rows_total = x.shape[0]
    features = gates_per_unit * hidden
    offsets = np.zeros(steps + 1, dtype=np.int64)
    np.cumsum(batch_sizes, out=offsets[1:])
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    starts, stops = offsets[:-1], offsets[1:]
    if norm == "batch" and training and batch_sizes.min() < 2:
        raise ValueError(f"recurrent batch norm: expected at least 2 sequences at every time step in training, "
                         f"got batch sizes {batch_sizes.tolist()}")
    options = dict(eps=eps, training=training, times=first_step + np.arange(steps), starts=starts, stops=stops)
    norm_ih = _make_norm(norm, rows_total, features, dtype, gain_ih, bias_ih, steps,
                         running=running and running["ih"], **options)
    norm_hh = _make_norm(norm, rows_total, features, dtype, gain_hh, bias_hh, steps,
                         running=running and running["hh"], **options)
    norm_c = None
    if cell == "lstm" and norm is not None:
        norm_c = _make_norm(norm, rows_total, hidden, dtype, gain_c, bias_c, steps,
                            running=running and running["c"], **options)

    # The input-to-hidden products of every step: one GEMM, then the input side's bias or norm.
    preact_x = matmul(x, weight_ih.T)
    if norm is None:
        if bias_ih is not None:
            preact_x += bias_ih
    else:
        norm_ih.forward(preact_x, (slice(0, rows_total), slice(0, steps)), preact_x)   # in place: once per call
    # A raw hidden side gets b_hh in the cell kernel; a normalized one has it as its shift.
    cell_bias = bias_hh if (norm is None and bias_hh is not None) else np.zeros(features, dtype)

    weight_hh_t = np.ascontiguousarray(weight_hh.T)
    h_state = np.array(h0, dtype=dtype, copy=True)
    c_state = np.array(c0, dtype=dtype, copy=True) if cell == "lstm" else None
    y = np.empty((rows_total, hidden), dtype)
    h_prev = np.empty((rows_total, hidden), dtype)
    preact_h = np.empty((batch, features), dtype)
    # a separate output for the per-step norms: in place, the kernels' loops would not vectorise
    hh_normalized = np.empty((batch, features), dtype) if norm is not None else preact_h
    saved = RecurrentSaved(cell=cell, x=x, weight_ih=weight_ih, weight_hh=weight_hh, offsets=offsets,
                           batch_sizes=batch_sizes, order=order, gates=preact_x, h_prev=h_prev,
                           norm_ih=norm_ih, norm_hh=norm_hh, norm_c=norm_c, has_bias=bias_ih is not None,
                           hidden_size=hidden, batch=batch)
    if cell == "lstm":
        saved.c_prev = np.empty((rows_total, hidden), dtype)
        saved.tanh_u = np.empty((rows_total, hidden), dtype)
        u_scratch = np.empty((batch, hidden), dtype) if norm_c is not None else None
    elif cell == "gru":
        saved.hidden_n = np.empty((rows_total, hidden), dtype)
    else:
        saved.h_saved = np.empty((rows_total, hidden), dtype)

    for t in order:
        n = batch_sizes[t]
        rows = slice(offsets[t], offsets[t + 1])
        step_rows = (rows, slice(t, t + 1))
        np.copyto(h_prev[rows], h_state[:n])
        hh = matmul(h_prev[rows], weight_hh_t, out=preact_h[:n])
        hh = norm_hh.forward(hh, step_rows, hh_normalized[:n])
        if cell == "lstm":
            np.copyto(saved.c_prev[rows], c_state[:n])
            lstm_step_forward(preact_x[rows], hh, cell_bias, saved.c_prev[rows], c_state[:n], norm_c is None,
                              saved.tanh_u[rows], h_state[:n], y[rows])
            if norm_c is not None:   # h = o * tanh(N_c(c)): the norm needs the whole step's c first
                u = norm_c.forward(c_state[:n], step_rows, u_scratch[:n])
                lstm_output_forward(preact_x[rows], u, saved.tanh_u[rows], h_state[:n], y[rows])
        elif cell == "gru":
            gru_step_forward(preact_x[rows], hh, cell_bias, h_prev[rows], saved.hidden_n[rows], h_state[:n], y[rows])
        else:
            rnn_step_forward(preact_x[rows], hh, cell_bias, cell == "rnn_relu", saved.h_saved[rows],
                             h_state[:n], y[rows])

    if norm == "batch" and training:
        for side in (norm_ih, norm_hh, norm_c):
            if side is not None:
                side.update_running(momentum)
    return (y, h_state, c_state), saved


def recurrent_backward(dy, dh_n, dc_n, saved: RecurrentSaved, needs=(True,) * 11):
    """Backpropagation through time for one layer and direction.

    Returns gradients for (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh,
    gain_ih, gain_hh, gain_c, bias_c); None where not needed or not present.

    Walking the steps in reverse order, each step receives dh_t = dy_t + (the
    gradient its state passes to step t+1), or dh_n at a sequence's last step;
    the cell's backward gives the pre-activation gradients of the step,
    g_x (input side) and g_h (hidden side: the same array except in the GRU),
    and through the hidden-side norm N_h the gradient of z_t = h_{t-1} W_hh^T:

        dh_{t-1} = dz_t W_hh  (+ dh_t * z for the GRU)     dc_{t-1} = dc_t * f   (LSTM)

    The parameters are shared by all steps, so their gradients are sums over
    t, done at the end as one GEMM over the stacked rows:

        dW_hh = sum_t dz_t^T h_{t-1} = DZ^T H_prev      dW_ih = DX_proj^T x
        dx    = DX_proj W_ih

    where DX_proj is g_x pulled back through the input-side norm N_x (all
    steps at once); gains and shifts: sum over rows of g * z_hat and of g.
    """
    cell = saved.cell
    x, weight_ih, weight_hh = saved.x, saved.weight_ih, saved.weight_hh
    offsets, batch_sizes = saved.offsets, saved.batch_sizes
    dtype = x.dtype
    batch, hidden = saved.batch, saved.hidden_size
    rows_total = x.shape[0]
    features = weight_hh.shape[0]
    normalized = not isinstance(saved.norm_hh, _NoNorm)

    dy = np.zeros((rows_total, hidden), dtype) if dy is None else np.ascontiguousarray(dy, dtype=dtype)
    dh = np.zeros((batch, hidden), dtype) if dh_n is None else np.array(dh_n, dtype=dtype, copy=True)
    dc = None
    if cell == "lstm":
        dc = np.zeros((batch, hidden), dtype) if dc_n is None else np.array(dc_n, dtype=dtype, copy=True)
        # du = gradient of the (normalized) cell state under the tanh; every step's when the
        # cell-state norm's gain needs it summed over all rows
        du = np.empty((rows_total if saved.norm_c is not None else batch, hidden), dtype)
        dc_from_h = np.empty((batch, hidden), dtype)
    g_x = np.empty((rows_total, features), dtype)
    g_h = np.empty((rows_total, features), dtype) if cell == "gru" else g_x
    # dz: gradient of z = h_prev W_hh^T; with no norm it is g_h itself
    dz = np.empty((rows_total, features), dtype) if normalized else g_h
    dh_matmul = np.empty((batch, hidden), dtype) if cell == "gru" else None

    for t in reversed(saved.order):
        n = batch_sizes[t]
        rows = slice(offsets[t], offsets[t + 1])
        step_rows = (rows, slice(t, t + 1))
        if cell == "lstm":
            if saved.norm_c is None:
                lstm_step_backward(dy[rows], dh[:n], saved.gates[rows], saved.tanh_u[rows], saved.c_prev[rows], True,
                                   du[:n], dc[:n], g_x[rows], du[:n])
            else:
                lstm_output_backward(dy[rows], dh[:n], saved.gates[rows], saved.tanh_u[rows], g_x[rows], du[rows])
                dc_u = saved.norm_c.backward(du[rows], step_rows, dc_from_h[:n])
                lstm_step_backward(dy[rows], dh[:n], saved.gates[rows], saved.tanh_u[rows], saved.c_prev[rows],
                                   False, dc_u, dc[:n], g_x[rows], du[rows])
        elif cell == "gru":
            gru_step_backward(dy[rows], dh[:n], saved.gates[rows], saved.hidden_n[rows], saved.h_prev[rows],
                              g_x[rows], g_h[rows])
        else:
            rnn_step_backward(dy[rows], dh[:n], saved.h_saved[rows], cell == "rnn_relu", g_x[rows])
        dz_t = saved.norm_hh.backward(g_h[rows], step_rows, dz[rows])
        if cell == "gru":
            dh[:n] += matmul(dz_t, weight_hh, out=dh_matmul[:n])
        else:
            matmul(dz_t, weight_hh, out=dh[:n])

    # The sums over time: one GEMM each.
    all_rows = (slice(0, rows_total), slice(0, len(batch_sizes)))
    dx_proj = g_x
    if normalized:
        dx_proj = saved.norm_ih.backward(g_x, all_rows, np.empty_like(g_x))
    grad_x = matmul(dx_proj, weight_ih) if needs[0] else None
    grad_weight_ih = matmul(dx_proj.T, x) if needs[3] else None
    grad_weight_hh = matmul(dz.T, saved.h_prev) if needs[4] else None
    gain_ih, bias_ih = saved.norm_ih.parameter_grads(g_x)
    if not normalized and g_h is g_x:   # b_ih and b_hh are added to the same sum: one gradient, two arrays
        gain_hh, bias_hh = None, (None if bias_ih is None else bias_ih.copy())
    else:
        gain_hh, bias_hh = saved.norm_hh.parameter_grads(g_h)
    gain_c = bias_c = None
    if saved.norm_c is not None:
        gain_c, bias_c = saved.norm_c.parameter_grads(du)
    return (grad_x, dh, dc, grad_weight_ih, grad_weight_hh, bias_ih, bias_hh, gain_ih, gain_hh, gain_c, bias_c)
