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
  tanh use a vectorisable ``exp`` (below): libm's scalar ``exp`` would cost
  more than the step's matrix multiply.

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

# No 'reassoc': exp's range reduction (x - k*ln2_hi - k*ln2_lo) and its
# rounding must be evaluated as written. 'contract' allows fused multiply-adds.
_FASTMATH = {"contract"}

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
# straight into the exponent bits. Measured: within 1 ulp of the correctly
# rounded result, 10x faster than libm's. x is clamped so that 2^k stays a
# normal number (e^x saturates there instead of reaching 0 or inf, which moves
# sigmoid/tanh by less than one ulp); NaN passes the clamps unchanged.

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
    """exp, sigmoid and tanh for one float type, constants typed so nothing is promoted."""
    f = float_type
    one, two, half = f(1.0), f(2.0), f(0.5)
    low, high = f(low), f(high)
    log2_e, ln2_hi, ln2_lo = f(1.4426950408889634), f(0.693359375), f(-2.121944400546905827679e-4)
    coefficients = tuple(f(1.0 / math.factorial(n)) for n in range(degree, -1, -1))
    bias, shift = int_type(exponent_bias), int_type(mantissa_bits)

    @njit(fastmath=_FASTMATH)
    def exp(x):
        clamped = low if x < low else x                  # comparisons with NaN are False: NaN stays NaN
        clamped = high if clamped > high else clamped
        k = np.floor(clamped * log2_e + half)
        r = (clamped - k * ln2_hi) - k * ln2_lo
        p = coefficients[0]
        for c in coefficients[1:]:
            p = p * r + c
        return p * _float_from_bits(int_type((int_type(k) + bias) << shift))

    def sigmoid(x):
        return one / (one + exp(-x))

    def tanh(x):
        # 1 - 2 / (e^{2x} + 1): exact limits +-1, absolute error ~ 1 ulp of 1 near 0
        return one - two / (exp(two * x) + one)

    return sigmoid, tanh


_MATH = {types.float32: _elementwise_math(np.float32, np.int32, 23, 127, -87.0, 88.0, 7),
         types.float64: _elementwise_math(np.float64, np.int64, 52, 1023, -708.0, 709.0, 13)}


def _sigmoid(x):
    """1 / (1 + e^-x) of one float inside a kernel (float32 or float64)."""
    return 1.0 / (1.0 + math.exp(-x))


def _tanh(x):
    """tanh(x) of one float inside a kernel (float32 or float64)."""
    return math.tanh(x)


@overload(_sigmoid, inline="always")
def _sigmoid_overload(x):
    return _MATH[x][0] if x in _MATH else None


@overload(_tanh, inline="always")
def _tanh_overload(x):
    return _MATH[x][1] if x in _MATH else None


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def sigmoid_tanh(x, sigmoid_out, tanh_out):
    """sigmoid(x) and tanh(x) of a 1-D array with the kernels' own math (for tests)."""
    for k in range(x.shape[0]):
        sigmoid_out[k] = _sigmoid(x[k])
        tanh_out[k] = _tanh(x[k])


# ----------------------------------------------------------------------------
# Cells: one time step, rows of the step's batch in parallel
# ----------------------------------------------------------------------------
# Arguments are the step's rows: preact_x (rows, G) = normalized x W_ih^T + b_ih
# (overwritten in place by the activated gates, which backward needs),
# preact_h (rows, G) = h_prev W_hh^T (normalized and shifted, or raw),
# bias (G,) = b_hh when preact_h is raw, zeros otherwise.

@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def rnn_step_forward(preact_x, preact_h, bias, relu, h_saved, h_state, y):
    """h = tanh(a) or relu(a), a = preact_x + preact_h + bias; h into the state, the output and h_saved."""
    rows, hidden = y.shape
    zero = y.dtype.type(0.0)
    for r in prange(rows):
        for j in range(hidden):
            a = preact_x[r, j] + preact_h[r, j] + bias[j]
            if relu:
                h = zero if a <= zero else a      # NaN stays NaN, as torch's relu
            else:
                h = _tanh(a)
            h_saved[r, j] = h
            h_state[r, j] = h
            y[r, j] = h


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def rnn_step_backward(dy, dh, h_saved, relu, g_preact):
    """Gradient of the pre-activation from dh_t = dy_t + (gradient from step t+1).

    h = tanh(a):  da = dh_t * (1 - h^2)         h = relu(a):  da = dh_t * [h > 0]
    (torch's relu passes no gradient at a = 0.)
    """
    rows, hidden = h_saved.shape
    one, zero = h_saved.dtype.type(1.0), h_saved.dtype.type(0.0)
    for r in prange(rows):
        for j in range(hidden):
            dh_t = dy[r, j] + dh[r, j]
            h = h_saved[r, j]
            if relu:
                g_preact[r, j] = dh_t if h > zero else zero
            else:
                g_preact[r, j] = dh_t * (one - h * h)


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def lstm_step_forward(preact_x, preact_h, bias, c_prev, c):
    """Gates and cell: i, f, g, o from a = preact_x + preact_h + bias; c = f * c_prev + i * g.

    The gates overwrite preact_x (torch's order i, f, g, o, blocks of H).
    h = o * tanh(c) follows in ``lstm_output_forward`` (after N_c when normalized).
    """
    rows, hidden = c.shape
    for r in prange(rows):
        for j in range(hidden):
            i = _sigmoid(preact_x[r, j] + preact_h[r, j] + bias[j])
            f = _sigmoid(preact_x[r, hidden + j] + preact_h[r, hidden + j] + bias[hidden + j])
            g = _tanh(preact_x[r, 2 * hidden + j] + preact_h[r, 2 * hidden + j] + bias[2 * hidden + j])
            o = _sigmoid(preact_x[r, 3 * hidden + j] + preact_h[r, 3 * hidden + j] + bias[3 * hidden + j])
            preact_x[r, j] = i
            preact_x[r, hidden + j] = f
            preact_x[r, 2 * hidden + j] = g
            preact_x[r, 3 * hidden + j] = o
            c[r, j] = f * c_prev[r, j] + i * g


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def lstm_output_forward(gates, u, tanh_u, h_state, y):
    """h = o * tanh(u), u = c (or its normalization); tanh(u) kept for backward."""
    rows, hidden = u.shape
    for r in prange(rows):
        for j in range(hidden):
            t = _tanh(u[r, j])
            h = gates[r, 3 * hidden + j] * t
            tanh_u[r, j] = t
            h_state[r, j] = h
            y[r, j] = h


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def lstm_output_backward(dy, dh, gates, tanh_u, g_preact, du):
    """From dh_t = dy_t + (gradient from step t+1) through h = o * tanh(u):

        do = dh_t * tanh(u)        da_o = do * o (1 - o)
        du = dh_t * o * (1 - tanh(u)^2)
    """
    rows, hidden = tanh_u.shape
    one = tanh_u.dtype.type(1.0)
    for r in prange(rows):
        for j in range(hidden):
            dh_t = dy[r, j] + dh[r, j]
            o = gates[r, 3 * hidden + j]
            t = tanh_u[r, j]
            g_preact[r, 3 * hidden + j] = dh_t * t * o * (one - o)
            du[r, j] = dh_t * o * (one - t * t)


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def lstm_step_backward(dc_from_h, dc, gates, c_prev, g_preact):
    """Through c = f * c_prev + i * g, with dc_t = dc (from step t+1, in place) + dc_from_h:

        di = dc_t * g   df = dc_t * c_prev   dg = dc_t * i   dc_prev = dc_t * f
        da_i = di * i (1 - i)   da_f = df * f (1 - f)   da_g = dg * (1 - g^2)
    (sigma' = sigma (1 - sigma), tanh' = 1 - tanh^2: from the saved activations.)
    """
    rows, hidden = c_prev.shape
    one = c_prev.dtype.type(1.0)
    for r in prange(rows):
        for j in range(hidden):
            dc_t = dc[r, j] + dc_from_h[r, j]
            i = gates[r, j]
            f = gates[r, hidden + j]
            g = gates[r, 2 * hidden + j]
            g_preact[r, j] = dc_t * g * i * (one - i)
            g_preact[r, hidden + j] = dc_t * c_prev[r, j] * f * (one - f)
            g_preact[r, 2 * hidden + j] = dc_t * i * (one - g * g)
            dc[r, j] = dc_t * f


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def gru_step_forward(preact_x, preact_h, bias, h_prev, hidden_n, h_state, y):
    """r, z = sigma(.), n = tanh(x_n + r * (h_n + b_hn)), h = (1 - z) * n + z * h_prev.

    torch's GRU: r multiplies the hidden part of n *after* its bias, so the
    hidden pre-activation is not summed into a; ``hidden_n`` keeps
    h_n + b_hn for backward, the gates r, z, n overwrite preact_x.
    """
    rows, hidden = h_prev.shape
    one = h_prev.dtype.type(1.0)
    for r in prange(rows):
        for j in range(hidden):
            reset = _sigmoid(preact_x[r, j] + preact_h[r, j] + bias[j])
            update = _sigmoid(preact_x[r, hidden + j] + preact_h[r, hidden + j] + bias[hidden + j])
            hn = preact_h[r, 2 * hidden + j] + bias[2 * hidden + j]
            n = _tanh(preact_x[r, 2 * hidden + j] + reset * hn)
            h = (one - update) * n + update * h_prev[r, j]
            preact_x[r, j] = reset
            preact_x[r, hidden + j] = update
            preact_x[r, 2 * hidden + j] = n
            hidden_n[r, j] = hn
            h_state[r, j] = h
            y[r, j] = h


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def gru_step_backward(dy, dh, gates, hidden_n, h_prev, g_preact_x, g_preact_h):
    """From dh_t = dy_t + dh (dh is overwritten by the direct part of dh_prev):

        h = (1 - z) n + z h_prev  =>  dn = dh_t (1 - z)   dz = dh_t (h_prev - n)   dh_prev += dh_t z
        n = tanh(x_n + r hn)      =>  da_n = dn (1 - n^2)  (gradient of x_n)
                                      d(hn) = da_n r        dr = da_n hn
        da_r = dr r (1 - r)       da_z = dz z (1 - z)
    The input side gets [da_r, da_z, da_n], the hidden side [da_r, da_z, da_n r]
    (its bias b_hn included); the caller adds (hidden side) @ W_hh to dh_prev.
    """
    rows, hidden = h_prev.shape
    one = h_prev.dtype.type(1.0)
    for r in prange(rows):
        for j in range(hidden):
            dh_t = dy[r, j] + dh[r, j]
            reset = gates[r, j]
            update = gates[r, hidden + j]
            n = gates[r, 2 * hidden + j]
            da_n = dh_t * (one - update) * (one - n * n)
            da_r = da_n * hidden_n[r, j] * reset * (one - reset)
            da_z = dh_t * (h_prev[r, j] - n) * update * (one - update)
            g_preact_x[r, j] = da_r
            g_preact_x[r, hidden + j] = da_z
            g_preact_x[r, 2 * hidden + j] = da_n
            g_preact_h[r, j] = da_r
            g_preact_h[r, hidden + j] = da_z
            g_preact_h[r, 2 * hidden + j] = da_n * reset
            dh[r, j] = dh_t * update


# ----------------------------------------------------------------------------
# Normalization of a block of rows: layer norm per row, batch norm per step
# ----------------------------------------------------------------------------

@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def layer_norm_rows_forward(z, gain, shift, eps, z_hat, rstd, out):
    """Each row over its F features: z_hat = (z - mean) * rstd, out = z_hat * gain + shift.

    Two-pass statistics in float64; ``out`` may be ``z`` itself.
    """
    rows, features = z.shape
    inv_f = 1.0 / features
    for r in prange(rows):
        total = 0.0
        for j in range(features):
            total += z[r, j]
        mean = total * inv_f
        squares = 0.0
        for j in range(features):
            deviation = z[r, j] - mean
            squares += deviation * deviation
        row_rstd = 1.0 / np.sqrt(squares * inv_f + eps)
        rstd[r] = row_rstd
        for j in range(features):
            x_hat = (z[r, j] - mean) * row_rstd
            z_hat[r, j] = x_hat
            out[r, j] = x_hat * gain[j] + shift[j]


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def layer_norm_rows_backward(g_out, gain, z_hat, rstd, dz):
    """Gradient of z through out = z_hat * gain + shift, z_hat the row's normalization.

    With g = g_out * gain (the gradient reaching z_hat), over each row's F features:
        dz = rstd * (g - mean(g) - z_hat * mean(g * z_hat))
    z moves z_hat directly (rstd), through the row mean (-mean(g)) and through
    the row variance (-z_hat mean(g z_hat)). gain/shift gradients are summed
    over all rows afterwards (``column_sums``).
    """
    rows, features = z_hat.shape
    inv_f = 1.0 / features
    for r in prange(rows):
        sum_g = 0.0
        sum_g_z_hat = 0.0
        for j in range(features):
            g = g_out[r, j] * gain[j]
            sum_g += g
            sum_g_z_hat += g * z_hat[r, j]
        mean_g = sum_g * inv_f
        mean_g_z_hat = sum_g_z_hat * inv_f
        row_rstd = rstd[r]
        for j in range(features):
            dz[r, j] = row_rstd * (g_out[r, j] * gain[j] - mean_g - z_hat[r, j] * mean_g_z_hat)


_CHUNK = 64   # features per parallel task of the per-step batch norm


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def batch_norm_steps_forward(z, starts, stops, batch_stats, mean, var, rstd, gain, shift, eps, z_hat, out):
    """Each feature over the rows starts[s]:stops[s] of each step s (its valid sequences only).

    ``batch_stats``: mean/var (steps, F) are computed (two-pass, float64) and
    rstd = 1/sqrt(var + eps); otherwise mean and rstd are given (running
    statistics). z_hat = (z - mean) * rstd, out = z_hat * gain + shift; ``out``
    may be ``z``.
    """
    steps = starts.shape[0]
    features = z.shape[1]
    chunks = (features + _CHUNK - 1) // _CHUNK
    for task in prange(steps * chunks):
        s = task // chunks
        first = (task - s * chunks) * _CHUNK
        last = min(first + _CHUNK, features)
        if batch_stats:
            inv_n = 1.0 / (stops[s] - starts[s])
            total = np.zeros(last - first)
            for r in range(starts[s], stops[s]):
                for j in range(first, last):
                    total[j - first] += z[r, j]
            for j in range(first, last):
                mean[s, j] = total[j - first] * inv_n
            squares = np.zeros(last - first)
            for r in range(starts[s], stops[s]):
                for j in range(first, last):
                    deviation = z[r, j] - mean[s, j]
                    squares[j - first] += deviation * deviation
            for j in range(first, last):
                var[s, j] = squares[j - first] * inv_n
                rstd[s, j] = 1.0 / np.sqrt(var[s, j] + eps)
        for r in range(starts[s], stops[s]):
            for j in range(first, last):
                x_hat = (z[r, j] - mean[s, j]) * rstd[s, j]
                z_hat[r, j] = x_hat
                out[r, j] = x_hat * gain[j] + shift[j]


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def batch_norm_steps_backward(g_out, starts, stops, batch_stats, rstd, gain, z_hat, dz):
    """Gradient of z through out = z_hat * gain + shift, statistics per step and feature.

    With g = g_out * gain, over the n rows of a step:
        batch statistics:  dz = rstd * (g - mean(g) - z_hat * mean(g * z_hat))
        running statistics (constants):  dz = rstd * g
    """
    steps = starts.shape[0]
    features = z_hat.shape[1]
    chunks = (features + _CHUNK - 1) // _CHUNK
    for task in prange(steps * chunks):
        s = task // chunks
        first = (task - s * chunks) * _CHUNK
        last = min(first + _CHUNK, features)
        mean_g = np.zeros(last - first)
        mean_g_z_hat = np.zeros(last - first)
        if batch_stats:
            inv_n = 1.0 / (stops[s] - starts[s])
            for r in range(starts[s], stops[s]):
                for j in range(first, last):
                    g = g_out[r, j] * gain[j]
                    mean_g[j - first] += g * inv_n
                    mean_g_z_hat[j - first] += g * z_hat[r, j] * inv_n
        for r in range(starts[s], stops[s]):
            for j in range(first, last):
                dz[r, j] = rstd[s, j] * (g_out[r, j] * gain[j] - mean_g[j - first]
                                         - z_hat[r, j] * mean_g_z_hat[j - first])


@njit(cache=True, parallel=True, fastmath=_FASTMATH, error_model="numpy")
def column_sums(g, z_hat, sum_g, sum_g_z_hat, with_z_hat):
    """sum_g[j] = sum_r g[r, j] and (if ``with_z_hat``) sum_g_z_hat[j] = sum_r g[r, j] * z_hat[r, j], float64."""
    rows, features = g.shape
    chunks = (features + _CHUNK - 1) // _CHUNK
    for chunk in prange(chunks):
        first = chunk * _CHUNK
        last = min(first + _CHUNK, features)
        for r in range(rows):
            for j in range(first, last):
                sum_g[j] += g[r, j]
                if with_z_hat:
                    sum_g_z_hat[j] += g[r, j] * z_hat[r, j]


# ----------------------------------------------------------------------------
# The three ways a summed input is (not) normalized
# ----------------------------------------------------------------------------
# Each holds, for the whole sequence, what its backward needs. ``forward``
# maps a block of rows (all steps at once for the input side, one step for
# the hidden and cell sides) in place; ``backward`` returns the gradient of
# the block; ``parameter_grads`` sums the gain and shift gradients over all
# rows at the end (one pass, float64).

class _NoNorm:
    """The identity: the shift (bias) is added by the cell kernel instead."""

    def __init__(self, rows, features, dtype, gain, shift, steps):
        self.shift = shift

    def forward(self, z, step_rows):
        return z

    def backward(self, g_out, step_rows, out):
        return g_out

    def parameter_grads(self, g_all):
        return None, (None if self.shift is None else _sums(g_all, None)[0])


class _LayerNorm:
    """Layer normalization of each row (Ba et al. 2016): the same at any batch size, in training and eval."""

    def __init__(self, rows, features, dtype, gain, shift, steps, eps):
        self.gain = gain
        self.shift = np.zeros(features, dtype) if shift is None else shift
        self.has_shift = shift is not None
        self.eps = eps
        self.z_hat = np.empty((rows, features), dtype)
        self.rstd = np.empty(rows)

    def forward(self, z, step_rows):
        rows = step_rows[0]
        layer_norm_rows_forward(z, self.gain, self.shift, self.eps, self.z_hat[rows], self.rstd[rows], z)
        return z

    def backward(self, g_out, step_rows, out):
        rows = step_rows[0]
        layer_norm_rows_backward(g_out, self.gain, self.z_hat[rows], self.rstd[rows], out)
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

    def forward(self, z, step_rows):
        rows, steps = step_rows
        first = rows.start
        batch_norm_steps_forward(z, self.starts[steps] - first, self.stops[steps] - first, self.training,
                                 self.mean[steps], self.var[steps], self.rstd[steps], self.gain, self.shift, self.eps, self.z_hat[rows], z)
        return z

    def backward(self, g_out, step_rows, out):
        rows, steps = step_rows
        first = rows.start
        batch_norm_steps_backward(g_out, self.starts[steps] - first, self.stops[steps] - first, self.training,
                                  self.rstd[steps], self.gain, self.z_hat[rows], out)
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
    """(sum over rows of g, of g * z_hat) in float64, as g's dtype."""
    features = g.shape[1]
    sum_g, sum_g_z_hat = np.zeros(features), np.zeros(features)
    column_sums(g, g if z_hat is None else z_hat, sum_g, sum_g_z_hat, z_hat is not None)
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
    preact_x = x @ weight_ih.T
    if norm is None:
        if bias_ih is not None:
            preact_x += bias_ih
    else:
        norm_ih.forward(preact_x, (slice(0, rows_total), slice(0, steps)))
    # A raw hidden side gets b_hh in the cell kernel; a normalized one has it as its shift.
    cell_bias = bias_hh if (norm is None and bias_hh is not None) else np.zeros(features, dtype)

    weight_hh_t = np.ascontiguousarray(weight_hh.T)
    h_state = np.array(h0, dtype=dtype, copy=True)
    c_state = np.array(c0, dtype=dtype, copy=True) if cell == "lstm" else None
    y = np.empty((rows_total, hidden), dtype)
    h_prev = np.empty((rows_total, hidden), dtype)
    preact_h = np.empty((batch, features), dtype)
    saved = RecurrentSaved(cell=cell, x=x, weight_ih=weight_ih, weight_hh=weight_hh, offsets=offsets,
                           batch_sizes=batch_sizes, order=order, gates=preact_x, h_prev=h_prev,
                           norm_ih=norm_ih, norm_hh=norm_hh, norm_c=norm_c, has_bias=bias_ih is not None,
                           hidden_size=hidden, batch=batch)
    if cell == "lstm":
        saved.c_prev = np.empty((rows_total, hidden), dtype)
        saved.tanh_u = np.empty((rows_total, hidden), dtype)
        u_scratch = np.empty((batch, hidden), dtype)
    elif cell == "gru":
        saved.hidden_n = np.empty((rows_total, hidden), dtype)
    else:
        saved.h_saved = np.empty((rows_total, hidden), dtype)

    for t in order:
        n = batch_sizes[t]
        rows = slice(offsets[t], offsets[t + 1])
        step_rows = (rows, slice(t, t + 1))
        np.copyto(h_prev[rows], h_state[:n])
        hh = np.matmul(h_prev[rows], weight_hh_t, out=preact_h[:n])
        hh = norm_hh.forward(hh, step_rows)
        if cell == "lstm":
            np.copyto(saved.c_prev[rows], c_state[:n])
            lstm_step_forward(preact_x[rows], hh, cell_bias, saved.c_prev[rows], c_state[:n])
            u = c_state[:n]
            if norm_c is not None:
                np.copyto(u_scratch[:n], u)
                u = norm_c.forward(u_scratch[:n], step_rows)
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
        du = np.empty((rows_total, hidden), dtype)   # every step's: the cell norm's gain sums it
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
            lstm_output_backward(dy[rows], dh[:n], saved.gates[rows], saved.tanh_u[rows], g_x[rows], du[rows])
            dc_u = du[rows]
            if saved.norm_c is not None:
                dc_u = saved.norm_c.backward(du[rows], step_rows, dc_from_h[:n])
            lstm_step_backward(dc_u, dc[:n], saved.gates[rows], saved.c_prev[rows], g_x[rows])
        elif cell == "gru":
            gru_step_backward(dy[rows], dh[:n], saved.gates[rows], saved.hidden_n[rows], saved.h_prev[rows],
                              g_x[rows], g_h[rows])
        else:
            rnn_step_backward(dy[rows], dh[:n], saved.h_saved[rows], cell == "rnn_relu", g_x[rows])
        dz_t = saved.norm_hh.backward(g_h[rows], step_rows, dz[rows])
        if cell == "gru":
            dh[:n] += np.matmul(dz_t, weight_hh, out=dh_matmul[:n])
        else:
            np.matmul(dz_t, weight_hh, out=dh[:n])

    # The sums over time: one GEMM each.
    all_rows = (slice(0, rows_total), slice(0, len(batch_sizes)))
    dx_proj = g_x
    if normalized:
        dx_proj = saved.norm_ih.backward(g_x, all_rows, np.empty_like(g_x))
    grad_x = dx_proj @ weight_ih if needs[0] else None
    grad_weight_ih = dx_proj.T @ x if needs[3] else None
    grad_weight_hh = dz.T @ saved.h_prev if needs[4] else None
    gain_ih, bias_ih = saved.norm_ih.parameter_grads(g_x)
    gain_hh, bias_hh = saved.norm_hh.parameter_grads(g_h)
    gain_c = bias_c = None
    if saved.norm_c is not None:
        gain_c, bias_c = saved.norm_c.parameter_grads(du)
    return (grad_x, dh, dc, grad_weight_ih, grad_weight_hh, bias_ih, bias_hh, gain_ih, gain_hh, gain_c, bias_c)
