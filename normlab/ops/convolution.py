"""Convolution (torch's cross-correlation) in 1, 2 and 3 dimensions, its transpose, and their gradients.

A convolution is three linear maps, and every layer here is built from them:

    forward       y  = conv(x, W)              (N, C, *in)  -> (N, O, *out)
    input_grad    dx = conv^T(dy, W)           (N, O, *out) -> (N, C, *in)
    weight_grad   dW = sum over n, p of dy x   the adjoint in W

``conv_forward`` / ``conv_backward`` use them as written; the transposed
convolution (``conv_transpose_forward``) is ``input_grad`` run forward, and
its backward is ``forward`` (for dx) and ``weight_grad`` with x and dy
swapped (for dW).

Each map picks one of four algorithms:

* Winograd F(2x2, 3x3) (``normlab.ops.winograd``) for a 3x3, stride-1,
  undilated, ungrouped 2-d kernel on enough channels: 2.25x fewer
  multiplications than im2col;
* a plain GEMM for a 1x1 kernel with stride 1 and no padding (the input is
  its own column matrix);
* direct loops for a depthwise 2-d convolution (one input channel per
  group), whose GEMM would have K = kH kW rows: too thin for BLAS;
* im2col + GEMM for everything else: for one group g, with K = C_g kD kH kW
  rows of receptive-field taps and P output positions, im2col copies every
  window of the input into one column of ``cols`` (K, P); the convolution is
  one GEMM ``y_g = W_g cols`` (W_g the (O_g, K) reshaped weight); input_grad
  is ``W_g^T dY_g`` followed by col2im (the adjoint of im2col: each entry
  added back onto the pixel it was read from), weight_grad ``dY_g cols^T``.

All ranks share one 3-d code path: a 1-d input is viewed as (N, C, 1, 1, L)
and a 2-d one as (N, C, 1, H, W), free reshapes of the same memory.

Tiling and threads: the columns are built tile by tile, so their buffer
stays cache-sized however large the batch: a tile is several whole samples
(small maps: one GEMM still gets many columns) or one sample cut into blocks
of output rows (large maps). Tiles of one sample group form a task; tasks
run on ``normlab.ops._workers`` (Python workers, one BLAS thread each).
Padding is never materialised: im2col writes zeros where a tap falls outside
the input and col2im skips those taps; padding is given per side (before,
after), so torch's asymmetric ``padding="same"`` split costs nothing.
Backward recomputes the columns from the saved input rather than saving
them (they are kD kH kW times larger than the input).
"""
from __future__ import annotations

import numbers

import numpy as np
from numba import njit

from normlab.ops import winograd
from normlab.ops._workers import run_tasks

__all__ = [
    "conv_output_size", "same_padding", "conv_transpose_output_size",
    "conv_forward", "conv_backward", "conv_transpose_forward", "conv_transpose_backward",
]

# Upper bound on one tile's column buffer: it stays in a core's L2 cache
# between im2col and the GEMM (2 MiB per core on the project's machines).
_COLUMN_BUDGET_BYTES = 1 << 20


# ----------------------------------------------------------------------------
# Sizes and arguments
# ----------------------------------------------------------------------------

def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int) -> int:
    """floor((size + pads - dilation * (kernel - 1) - 1) / stride) + 1, torch's rule."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                               output_padding: int) -> int:
    """(size - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1, torch's rule."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """torch's split of ``padding="same"``: total dilation*(k-1), the odd extra pixel after."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def _as_pairs(padding, n: int) -> tuple[tuple[int, int], ...]:
    """Padding as ``n`` (before, after) pairs: an int, n ints, or n pairs."""
    if isinstance(padding, numbers.Integral):
        return ((int(padding), int(padding)),) * n
    padding = tuple(padding)
    if len(padding) != n:
        raise ValueError(f"expected padding for {n} dimensions, got {padding!r}")
    return tuple((int(p), int(p)) if isinstance(p, numbers.Integral) else (int(p[0]), int(p[1])) for p in padding)


def _as_tuple(value, n: int) -> tuple[int, ...]:
    return (int(value),) * n if isinstance(value, numbers.Integral) else tuple(int(v) for v in value)


class _Geometry:
    """One convolution in its 3-d form: shapes, stride, padding, dilation, groups, and the chosen algorithm.

    ``x_shape`` (N, C, D, H, W) and ``weight_shape`` (O, C / groups, kD, kH, kW)
    are 5-d; ``padding`` holds (before, after) per spatial dimension.
    """

    def __init__(self, x_shape, weight_shape, stride, padding, dilation, groups, out_spatial=None) -> None:
        self.x_shape, self.weight_shape = tuple(x_shape), tuple(weight_shape)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        batch, channels = x_shape[:2]
        out_channels, group_channels = weight_shape[:2]
        self.kernel = weight_shape[2:]
        # out_spatial may be given smaller than the formula's: a transposed convolution's output_padding
        # can leave positions that no input reaches; the convolution then stops short of them.
        self.out_spatial = tuple(out_spatial) if out_spatial is not None else tuple(
            conv_output_size(s, k, st, *p, d) for s, k, st, p, d in
            zip(x_shape[2:], self.kernel, stride, padding, dilation))
        self.y_shape = (batch, out_channels) + self.out_spatial
        self.rows = group_channels * int(np.prod(self.kernel))  # K of one group
        self.group_out = out_channels // groups
        # The 2-d algorithms need a depth axis that does nothing (a 1-d or 2-d layer).
        flat = x_shape[2] == 1 and self.kernel[0] == 1 and stride[0] == 1 and padding[0] == (0, 0) \
            and self.out_spatial[0] == 1
        if self.kernel == (1, 1, 1) and stride == (1, 1, 1) and all(p == (0, 0) for p in padding) \
                and self.out_spatial == self.x_shape[2:]:
            self.algorithm = "pointwise"
        elif flat and groups > 1 and groups == channels:
            self.algorithm = "depthwise"
        elif flat and winograd.winograd_applies(channels, self.kernel[1:], stride[1:], dilation[1:], groups) \
                and self.out_spatial[1:] == tuple(conv_output_size(s, 3, 1, *p, 1) for s, p in
                                                  zip(x_shape[3:], padding[1:])):
            self.algorithm = "winograd"
        else:
            self.algorithm = "im2col"

    @property
    def kernel_args(self) -> tuple:
        """(kD, kH, kW, strides, front/top/left pads, dilations, H_out, W_out): the compiled kernels' geometry."""
        (pd, _), (ph, _), (pw, _) = self.padding
        return (*self.kernel, *self.stride, pd, ph, pw, *self.dilation, self.out_spatial[1], self.out_spatial[2])

    @property
    def depthwise_args(self) -> tuple:
        """(sH, sW, top pad, left pad, dH, dW): the depthwise kernels' geometry."""
        return (*self.stride[1:], self.padding[1][0], self.padding[2][0], *self.dilation[1:])

    @property
    def positions(self) -> int:
        """Output positions per sample and channel."""
        return int(np.prod(self.out_spatial))

    def weight_2d(self, weight):
        """The (kH, kW) 2-d weight of a depthwise or Winograd layer (kD = 1)."""
        return weight[:, :, 0]

    def padding_2d(self):
        return self.padding[1:]


# ----------------------------------------------------------------------------
# Compiled kernels (lazily compiled, cached on disk; serial and nogil: the
# workers of normlab.ops._workers run them side by side)
# ----------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _valid_range(out_size, stride, offset, size):
    """Output positions o in [lo, hi) whose tap i = o * stride + offset lies inside [0, size)."""
    lo = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    hi = 0
    if size - offset > 0:
        hi = (size - offset + stride - 1) // stride
    if hi > out_size:
        hi = out_size
    if lo > hi:
        lo = hi
    return lo, hi


@njit(cache=True, nogil=True)
def _im2col(x, row_start, row_stop, kernel_d, kernel_h, kernel_w, stride_d, stride_h, stride_w,
            pad_front, pad_top, pad_left, dilation_d, dilation_h, dilation_w, out_h, out_w, cols):
    """cols[(c, a, i, j), b, (r - row_start, ow)] = x[b, c, od*sd - pf + a*dd, oh*sh - pt + i*dh, ow*sw - pl + j*dw].

    Zero where the tap falls in the padding. An output row r in [row_start,
    row_stop) is (od, oh) = divmod(r, out_h), for every sample b in ``x``.
    """
    batch, channels, depth, height, width = x.shape
    rows, tile_batch, columns = cols.shape
    for c in range(channels):
        for a in range(kernel_d):
            for i in range(kernel_h):
                for j in range(kernel_w):
                    row = ((c * kernel_d + a) * kernel_h + i) * kernel_w + j
                    offset_w = j * dilation_w - pad_left
                    ow_lo, ow_hi = _valid_range(out_w, stride_w, offset_w, width)
                    for b in range(batch):
                        dest_rows = cols[row, b]
                        for r in range(row_start, row_stop):
                            od, oh = r // out_h, r % out_h
                            # A view indexed from 0 with a range variable: Numba then knows the
                            # index is non-negative, drops its wraparound test and LLVM vectorises.
                            dest = dest_rows[(r - row_start) * out_w:(r - row_start + 1) * out_w]
                            id_ = od * stride_d + a * dilation_d - pad_front
                            ih = oh * stride_h + i * dilation_h - pad_top
                            if id_ < 0 or id_ >= depth or ih < 0 or ih >= height:  # the whole run reads padding
                                for t in range(out_w):
                                    dest[t] = 0
                                continue
                            src_row = x[b, c, id_, ih]
                            for t in range(ow_lo):
                                dest[t] = 0
                            if stride_w == 1:
                                src = src_row[ow_lo + offset_w:ow_hi + offset_w]
                                for t in range(ow_hi - ow_lo):
                                    dest[ow_lo + t] = src[t]
                            else:
                                for t in range(ow_lo, ow_hi):
                                    dest[t] = src_row[t * stride_w + offset_w]
                            for t in range(ow_hi, out_w):
                                dest[t] = 0


@njit(cache=True, nogil=True)
def _col2im(dcols, row_start, row_stop, kernel_d, kernel_h, kernel_w, stride_d, stride_h, stride_w,
            pad_front, pad_top, pad_left, dilation_d, dilation_h, dilation_w, out_h, out_w, dx):
    """The adjoint of ``_im2col``: dx[b, c, id, ih, iw] += dcols[(c, a, i, j), b, (r - row_start, ow)] over in-range taps.

    The first tile of a sample (row_start == 0) first zeroes its planes; later
    tiles of the same sample add onto them (their input rows overlap).
    """
    batch, channels, depth, height, width = dx.shape
    if row_start == 0:
        dx[...] = 0
    for c in range(channels):
        for a in range(kernel_d):
            for i in range(kernel_h):
                for j in range(kernel_w):
                    row = ((c * kernel_d + a) * kernel_h + i) * kernel_w + j
                    offset_w = j * dilation_w - pad_left
                    ow_lo, ow_hi = _valid_range(out_w, stride_w, offset_w, width)
                    run = ow_hi - ow_lo
                    for b in range(batch):
                        src_rows = dcols[row, b]
                        for r in range(row_start, row_stop):
                            od, oh = r // out_h, r % out_h
                            id_ = od * stride_d + a * dilation_d - pad_front
                            ih = oh * stride_h + i * dilation_h - pad_top
                            if id_ < 0 or id_ >= depth or ih < 0 or ih >= height:
                                continue  # these taps read padding: no gradient to give back
                            src = src_rows[(r - row_start) * out_w + ow_lo:(r - row_start) * out_w + ow_hi]
                            dest_row = dx[b, c, id_, ih]
                            if stride_w == 1:
                                # Views indexed from 0 (see _im2col): this add vectorises, 4x faster.
                                dest = dest_row[ow_lo + offset_w:ow_hi + offset_w]
                                for t in range(run):
                                    dest[t] += src[t]
                            else:
                                for t in range(run):
                                    dest_row[(ow_lo + t) * stride_w + offset_w] += src[t]


# Depthwise (one input channel per group): the GEMM would have K = kH * kW and
# one row per group, so BLAS has nothing to block; these direct loops are the
# same sums without the columns. Output channel o reads input channel
# o // multiplier (multiplier = O / C, torch's "depth multiplier").

@njit(cache=True, nogil=True)
def _depthwise_forward(x, weight, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, y):
    """y[b, o, oh, ow] = sum over ki, kj of W[o, 0, ki, kj] x[b, o // m, oh*sh - pt + ki*dh, ow*sw - pl + kj*dw]."""
    batch, channels, height, width = x.shape
    _, out_channels, out_h, out_w = y.shape
    _, _, kernel_h, kernel_w = weight.shape
    multiplier = out_channels // channels
    y[...] = 0
    for b in range(batch):
        for o in range(out_channels):
            plane_in, plane_out = x[b, o // multiplier], y[b, o]
            for ki in range(kernel_h):
                offset_h = ki * dilation_h - pad_top
                oh_lo, oh_hi = _valid_range(out_h, stride_h, offset_h, height)
                for kj in range(kernel_w):
                    offset_w = kj * dilation_w - pad_left
                    ow_lo, ow_hi = _valid_range(out_w, stride_w, offset_w, width)
                    run = ow_hi - ow_lo
                    tap = weight[o, 0, ki, kj]
                    for oh in range(oh_lo, oh_hi):
                        dest = plane_out[oh, ow_lo:ow_hi]
                        src_row = plane_in[oh * stride_h + offset_h]
                        if stride_w == 1:
                            src = src_row[ow_lo + offset_w:ow_hi + offset_w]
                            for t in range(run):
                                dest[t] += tap * src[t]
                        else:
                            for t in range(run):
                                dest[t] += tap * src_row[(ow_lo + t) * stride_w + offset_w]


@njit(cache=True, nogil=True)
def _depthwise_input_grad(dy, weight, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, dx):
    """dx[b, c, ih, iw] = sum over taps reading (ih, iw) of W[o, 0, ki, kj] dY[b, o, oh, ow] (the adjoint of the forward)."""
    batch, channels, height, width = dx.shape
    _, out_channels, out_h, out_w = dy.shape
    _, _, kernel_h, kernel_w = weight.shape
    multiplier = out_channels // channels
    dx[...] = 0
    for b in range(batch):
        for o in range(out_channels):
            plane_in, plane_out = dx[b, o // multiplier], dy[b, o]
            for ki in range(kernel_h):
                offset_h = ki * dilation_h - pad_top
                oh_lo, oh_hi = _valid_range(out_h, stride_h, offset_h, height)
                for kj in range(kernel_w):
                    offset_w = kj * dilation_w - pad_left
                    ow_lo, ow_hi = _valid_range(out_w, stride_w, offset_w, width)
                    run = ow_hi - ow_lo
                    tap = weight[o, 0, ki, kj]
                    for oh in range(oh_lo, oh_hi):
                        src = plane_out[oh, ow_lo:ow_hi]
                        dest_row = plane_in[oh * stride_h + offset_h]
                        if stride_w == 1:
                            dest = dest_row[ow_lo + offset_w:ow_hi + offset_w]
                            for t in range(run):
                                dest[t] += tap * src[t]
                        else:
                            for t in range(run):
                                dest_row[(ow_lo + t) * stride_w + offset_w] += tap * src[t]


# reassoc lets LLVM split the dot product into vector lanes (a different but
# equally valid summation order); nothing else of fast-math is allowed.
@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _depthwise_weight_grad(dy, x, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, dweight):
    """dW[o, 0, ki, kj] += sum over b, oh, ow of dY[b, o, oh, ow] x[b, o // m, oh*sh - pt + ki*dh, ow*sw - pl + kj*dw]."""
    batch, channels, height, width = x.shape
    _, out_channels, out_h, out_w = dy.shape
    _, _, kernel_h, kernel_w = dweight.shape
    multiplier = out_channels // channels
    for b in range(batch):
        for o in range(out_channels):
            plane_in, plane_out = x[b, o // multiplier], dy[b, o]
            for ki in range(kernel_h):
                offset_h = ki * dilation_h - pad_top
                oh_lo, oh_hi = _valid_range(out_h, stride_h, offset_h, height)
                for kj in range(kernel_w):
                    offset_w = kj * dilation_w - pad_left
                    ow_lo, ow_hi = _valid_range(out_w, stride_w, offset_w, width)
                    run = ow_hi - ow_lo
                    total = 0.0  # float64 even for float32 input: these sums run over N * P terms
                    for oh in range(oh_lo, oh_hi):
                        grad = plane_out[oh, ow_lo:ow_hi]
                        src_row = plane_in[oh * stride_h + offset_h]
                        if stride_w == 1:
                            src = src_row[ow_lo + offset_w:ow_hi + offset_w]
                            for t in range(run):
                                total += grad[t] * src[t]
                        else:
                            for t in range(run):
                                total += grad[t] * src_row[(ow_lo + t) * stride_w + offset_w]
                    dweight[o, 0, ki, kj] += total


# ----------------------------------------------------------------------------
# Tiles and tasks
# ----------------------------------------------------------------------------

def _tiles(batch: int, rows: int, out_rows: int, out_w: int, itemsize: int):
    """Tasks, each a list of tiles (first sample, stop sample, first output row, stop output row).

    A tile's columns (rows x positions) fit ``_COLUMN_BUDGET_BYTES``: several
    whole samples when one sample's columns are small (7x7 maps: the GEMM
    still gets many columns), else one sample cut into blocks of output rows
    (an output row is one (od, oh) pair). The tiles of one sample stay in one
    task, in order: col2im adds their overlapping input rows one after another.
    """
    row_bytes = max(rows * out_w * itemsize, 1)
    sample_bytes = row_bytes * out_rows
    if sample_bytes <= _COLUMN_BUDGET_BYTES:
        step = max(1, _COLUMN_BUDGET_BYTES // max(sample_bytes, 1))
        return [[(n, min(n + step, batch), 0, out_rows)] for n in range(0, batch, step)]
    block = max(1, _COLUMN_BUDGET_BYTES // row_bytes)
    return [[(n, n + 1, r, min(r + block, out_rows)) for r in range(0, out_rows, block)] for n in range(batch)]


def _sample_tasks(batch: int, per_task: int = 1):
    """Tasks of ``per_task`` whole samples each: (first, stop) pairs."""
    return [(n, min(n + per_task, batch)) for n in range(0, batch, per_task)]


def _im2col_plan(geo: _Geometry, itemsize: int):
    """Tasks of tiles, and one column buffer's size (elements) for the largest tile."""
    out_d, out_h, out_w = geo.out_spatial
    rows = geo.rows * geo.groups
    tasks = _tiles(geo.x_shape[0], rows, out_d * out_h, out_w, itemsize)
    most = max(((n1 - n0) * (r1 - r0) * out_w for task in tasks for n0, n1, r0, r1 in task), default=0)
    return tasks, rows * most


# Output positions of a tile from which its columns are laid out sample by sample, (n, K, T), and each
# sample gets its own GEMM straight into y (no transposed copy of the output, or of dY); below, the
# tile's samples share one wide GEMM on channel-major columns (K, n * T), which BLAS runs faster than
# many narrow ones (measured: 7x7 outputs of a 256-channel layer 15% faster; 28x28 outputs of a
# 1-channel layer 2.2x slower).
_SAMPLE_MAJOR_MIN_POSITIONS = 128


def _sample_major(samples: int, positions: int) -> bool:
    """Whether a tile of ``samples`` samples and ``positions`` output positions each takes sample-major columns."""
    return samples == 1 or positions >= _SAMPLE_MAJOR_MIN_POSITIONS


def _dy_tile(dy_g, n0, n1, r0, r1, out_w):
    """dY of a tile in the channel-major columns' layout (groups, O_g, n_b * T): a view for one sample, else a copy."""
    if n1 - n0 == 1:
        return dy_g[n0, :, :, r0 * out_w:r1 * out_w]  # a strided view, no copy
    groups, group_out = dy_g.shape[1:3]
    return np.ascontiguousarray(dy_g[n0:n1].transpose(1, 2, 0, 3)).reshape(groups, group_out, -1)


def _total(partials):
    """The workers' partial sums, added (into the first)."""
    result = partials[0]
    for partial in partials[1:]:
        result += partial
    return result


def _work(geo: _Geometry) -> int:
    """Elements a call moves, for the serial/parallel choice: input plus output."""
    return int(np.prod(geo.x_shape)) + int(np.prod(geo.y_shape))


# ----------------------------------------------------------------------------
# The three maps, each by algorithm
# ----------------------------------------------------------------------------

def _forward(x, weight, bias, geo: _Geometry):
    """y = conv(x, W) + b for 5-d x and weight (see the module docstring)."""
    batch, channels = geo.x_shape[:2]
    groups, group_out, rows, positions = geo.groups, geo.group_out, geo.rows, geo.positions
    if geo.algorithm == "winograd":
        u = winograd.weight_transform(geo.weight_2d(weight))
        return winograd.conv2d_3x3_forward(x[:, :, 0], u, bias, geo.padding_2d()).reshape(geo.y_shape)
    y = np.empty(geo.y_shape, dtype=x.dtype)
    bias_g = None if bias is None else np.asarray(bias, dtype=x.dtype).reshape(groups, group_out, 1)
    weight_g = weight.reshape(groups, group_out, rows)
    y_g = y.reshape(batch, groups, group_out, positions)
    if geo.algorithm == "pointwise":
        x_g = x.reshape(batch, groups, rows, positions)

        def run(task, _):
            n0, n1 = task
            # (groups, O_g, C_g) @ (n, groups, C_g, P): one GEMM per sample and group, written in place.
            np.matmul(weight_g, x_g[n0:n1], out=y_g[n0:n1])
            if bias_g is not None:
                y_g[n0:n1] += bias_g

        tasks = _sample_tasks(batch, max(1, (1 << 18) // max(channels * positions, 1)))
        run_tasks(run, tasks, _work(geo), None)
        return y
    if geo.algorithm == "depthwise":
        x4, w4, y4 = x[:, :, 0], geo.weight_2d(weight), y[:, :, 0]

        def run(task, _):
            n0, n1 = task
            _depthwise_forward(x4[n0:n1], w4, *geo.depthwise_args, y4[n0:n1])
            if bias_g is not None:
                y_g[n0:n1] += bias_g

        tasks = _sample_tasks(batch)
        run_tasks(run, tasks, _work(geo), None)
        return y
    tasks, buffer_size = _im2col_plan(geo, x.itemsize)
    out_w = geo.out_spatial[2]

    def run(task, buffer):
        for n0, n1, r0, r1 in task:  # a loop over a few large tiles, not over pixels
            nb, columns = n1 - n0, (r1 - r0) * out_w
            y_tile = y_g[n0:n1, :, :, r0 * out_w:r1 * out_w]
            if _sample_major(nb, columns):
                # (groups, O_g, K) @ (n, groups, K, T), one GEMM per sample, straight into y.
                cols = buffer[: nb * groups * rows * columns].reshape(nb, groups, rows, columns)
                _im2col(x[n0:n1], r0, r1, *geo.kernel_args, cols.reshape(nb, groups * rows, columns).transpose(1, 0, 2))
                np.matmul(weight_g, cols, out=y_tile)
            else:
                # Small maps: the samples share one wide GEMM; their outputs come back channel-major.
                cols = buffer[: groups * rows * nb * columns].reshape(groups, rows, nb * columns)
                _im2col(x[n0:n1], r0, r1, *geo.kernel_args, cols.reshape(groups * rows, nb, columns))
                product = np.matmul(weight_g, cols)
                y_tile[...] = product.reshape(groups, group_out, nb, columns).transpose(2, 0, 1, 3)
            if bias_g is not None:  # added while the tile is still in cache
                y_tile += bias_g

    run_tasks(run, tasks, _work(geo),
              lambda: np.empty(buffer_size, dtype=x.dtype))
    return y


def _input_grad(dy, weight, geo: _Geometry):
    """dx = conv^T(dY, W): the adjoint of ``_forward`` in x, for 5-d dy and weight."""
    batch = geo.x_shape[0]
    groups, group_out, rows, positions = geo.groups, geo.group_out, geo.rows, geo.positions
    if geo.algorithm == "winograd":
        u = winograd.weight_transform(geo.weight_2d(weight))
        dx4, _ = winograd.conv2d_3x3_backward(dy[:, :, 0], None, u, geo.padding_2d(), True, False,
                                              x_shape=geo.x_shape[:2] + geo.x_shape[3:])
        return dx4.reshape(geo.x_shape)
    dx = np.empty(geo.x_shape, dtype=dy.dtype)
    weight_t = weight.reshape(groups, group_out, rows).transpose(0, 2, 1)
    dy_g = dy.reshape(batch, groups, group_out, positions)
    if geo.algorithm == "pointwise":
        dx_g = dx.reshape(batch, groups, rows, positions)

        def run(task, _):
            n0, n1 = task
            # y[n] = W x[n]  =>  dx[n] = W^T dY[n].
            np.matmul(weight_t, dy_g[n0:n1], out=dx_g[n0:n1])

        tasks = _sample_tasks(batch, max(1, (1 << 18) // max(geo.x_shape[1] * positions, 1)))
        run_tasks(run, tasks, _work(geo), None)
        return dx
    if geo.algorithm == "depthwise":
        dy4, w4, dx4 = dy[:, :, 0], geo.weight_2d(weight), dx[:, :, 0]

        def run(task, _):
            n0, n1 = task
            # y = sum over taps of W_tap x_shifted  =>  dx = sum over taps of W_tap dY shifted back.
            _depthwise_input_grad(dy4[n0:n1], w4, *geo.depthwise_args, dx4[n0:n1])

        tasks = _sample_tasks(batch)
        run_tasks(run, tasks, _work(geo), None)
        return dx
    tasks, buffer_size = _im2col_plan(geo, dy.itemsize)
    out_w = geo.out_spatial[2]

    def run(task, buffer):
        for n0, n1, r0, r1 in task:
            nb, columns = n1 - n0, (r1 - r0) * out_w
            if _sample_major(nb, columns):
                dcols = buffer[: nb * groups * rows * columns].reshape(nb, groups, rows, columns)
                dy_tile = dy_g[n0:n1, :, :, r0 * out_w:r1 * out_w]
                kernel_view = dcols.reshape(nb, groups * rows, columns).transpose(1, 0, 2)
            else:
                dcols = buffer[: groups * rows * nb * columns].reshape(groups, rows, nb * columns)
                dy_tile = _dy_tile(dy_g, n0, n1, r0, r1, out_w)
                kernel_view = dcols.reshape(groups * rows, nb, columns)
            # y_g = W_g cols  =>  dcols = W_g^T dY_g. Each column entry is a copy of one input
            # pixel (or of padding), so dx = col2im(dcols): every entry added back onto the
            # pixel it was read from, padding taps dropped.
            if group_out == 1:
                # One output per group: W_g^T dY_g is an outer product, which a broadcast
                # multiply writes at memory speed where a K=1 GEMM crawls.
                np.multiply(weight_t, dy_tile, out=dcols)
            else:
                np.matmul(weight_t, dy_tile, out=dcols)
            _col2im(kernel_view, r0, r1, *geo.kernel_args, dx[n0:n1])

    run_tasks(run, tasks, _work(geo),
              lambda: np.empty(buffer_size, dtype=dy.dtype))
    return dx


def _weight_grad(dy, x, geo: _Geometry):
    """dW = sum over samples and positions of dY x^T (through the columns), for 5-d dy and x."""
    batch = geo.x_shape[0]
    groups, group_out, rows, positions = geo.groups, geo.group_out, geo.rows, geo.positions
    weight_shape = geo.weight_shape
    if geo.algorithm == "winograd":
        _, dweight = winograd.conv2d_3x3_backward(dy[:, :, 0], x[:, :, 0], None, geo.padding_2d(), False, True)
        return dweight.reshape(weight_shape)
    dy_g = dy.reshape(batch, groups, group_out, positions)

    if geo.algorithm == "pointwise":
        x_g = x.reshape(batch, groups, rows, positions)

        def run(task, dweight_g):
            n0, n1 = task
            # y[n] = W x[n]  =>  dW = sum over n of dY[n] x[n]^T.
            dweight_g += np.matmul(dy_g[n0:n1], x_g[n0:n1].transpose(0, 1, 3, 2)).sum(axis=0)

        tasks = _sample_tasks(batch, max(1, (1 << 18) // max(geo.x_shape[1] * positions, 1)))
        states = run_tasks(run, tasks, _work(geo),
                           lambda: np.zeros((groups, group_out, rows), dtype=dy.dtype))
        return _total(states).reshape(weight_shape)
    if geo.algorithm == "depthwise":
        dy4, x4 = dy[:, :, 0], x[:, :, 0]
        shape_2d = weight_shape[:2] + weight_shape[3:]

        def run(task, dweight):
            n0, n1 = task
            # y = sum over taps of W_tap x_shifted  =>  dW_tap = sum over b, p of dY x_shifted.
            _depthwise_weight_grad(dy4[n0:n1], x4[n0:n1], *geo.depthwise_args, dweight)

        tasks = _sample_tasks(batch)
        states = run_tasks(run, tasks, _work(geo),
                           lambda: np.zeros(shape_2d, dtype=dy.dtype))
        return _total(states).reshape(weight_shape)
    tasks, buffer_size = _im2col_plan(geo, x.itemsize)
    out_w = geo.out_spatial[2]

    def run(task, state):
        buffer, dweight_g = state
        for n0, n1, r0, r1 in task:
            nb, columns = n1 - n0, (r1 - r0) * out_w
            # y_g = W_g cols  =>  dW_g = sum over columns p of dY_g[:, p] cols[:, p]^T = dY_g cols^T,
            # GEMMs summed over the tile's samples and over tiles.
            if _sample_major(nb, columns):
                cols = buffer[: nb * groups * rows * columns].reshape(nb, groups, rows, columns)
                _im2col(x[n0:n1], r0, r1, *geo.kernel_args, cols.reshape(nb, groups * rows, columns).transpose(1, 0, 2))
                products = np.matmul(dy_g[n0:n1, :, :, r0 * out_w:r1 * out_w], cols.transpose(0, 1, 3, 2))
                dweight_g += products.sum(axis=0) if nb > 1 else products[0]
            else:
                cols = buffer[: groups * rows * nb * columns].reshape(groups, rows, nb * columns)
                _im2col(x[n0:n1], r0, r1, *geo.kernel_args, cols.reshape(groups * rows, nb, columns))
                dweight_g += np.matmul(_dy_tile(dy_g, n0, n1, r0, r1, out_w), cols.transpose(0, 2, 1))

    states = run_tasks(run, tasks, _work(geo),
                       lambda: (np.empty(buffer_size, dtype=x.dtype),
                                np.zeros((groups, group_out, rows), dtype=x.dtype)))
    return _total([partial for _, partial in states]).reshape(weight_shape)


# ----------------------------------------------------------------------------
# Public forward/backward pairs
# ----------------------------------------------------------------------------

def _as_5d(array, dims: int):
    """(N, C, *spatial) with 1-3 spatial dimensions viewed as (N, C, D, H, W): leading spatial ones of size 1."""
    return array.reshape(array.shape[:2] + (1,) * (3 - dims) + array.shape[2:])


def _geometry(x_shape, weight_shape, stride, padding, dilation, groups, dims: int, out_spatial=None) -> _Geometry:
    """The 5-d geometry of a ``dims``-d convolution given in its own rank."""
    lead = 3 - dims
    stride = (1,) * lead + _as_tuple(stride, dims)
    dilation = (1,) * lead + _as_tuple(dilation, dims)
    padding = ((0, 0),) * lead + _as_pairs(padding, dims)
    x5 = x_shape[:2] + (1,) * lead + tuple(x_shape[2:])
    w5 = weight_shape[:2] + (1,) * lead + tuple(weight_shape[2:])
    out5 = None if out_spatial is None else (1,) * lead + tuple(out_spatial)
    return _Geometry(x5, w5, stride, padding, dilation, int(groups), out5)


def conv_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o] = sum over c in o's group and taps k of W[o, c, k] x_pad[n, c, s * p + d * k] + b[o].

    Shapes: x (N, C, *spatial) with 1 to 3 spatial dimensions, weight
    (O, C / groups, *kernel), bias (O,) or None -> y (N, O, *out). ``stride``
    and ``dilation`` are an int or one per dimension; ``padding`` an int, one
    per dimension, or one (before, after) pair per dimension. Arguments are
    assumed valid (the functional layer checks them). Returns (y, saved).

    >>> import numpy as np
    >>> conv_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), padding=1)[0][0, 0]
    array([[4., 6., 6., 4.],
           [6., 9., 9., 6.],
           [6., 9., 9., 6.],
           [4., 6., 6., 4.]])
    """
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    dims = x.ndim - 2
    geo = _geometry(x.shape, weight.shape, stride, padding, dilation, groups, dims)
    y = _forward(_as_5d(x, dims), _as_5d(weight, dims), bias, geo)
    saved = (x, weight, bias is not None, geo)
    return y.reshape(y.shape[:2] + y.shape[5 - dims:]), saved


def conv_backward(dy, saved, needs=(True, True, True)):
    """Gradients (dx, dweight, dbias) of ``conv_forward``; None where ``needs`` says no.

    ``needs`` is one flag per positional input (x, weight, bias), as
    ``Function.needs_input_grad``: an input that needs no gradient costs nothing.
    """
    x, weight, has_bias, geo = saved
    dims = x.ndim - 2
    dy5 = _as_5d(np.ascontiguousarray(dy, dtype=x.dtype), dims)
    need_x, need_w = bool(needs[0]), bool(needs[1])
    if geo.algorithm == "winograd" and need_x and need_w:
        # One pass over the tiles for both: dY's transform is shared.
        u = winograd.weight_transform(geo.weight_2d(_as_5d(weight, dims)))
        dx, dweight = winograd.conv2d_3x3_backward(dy5[:, :, 0], _as_5d(x, dims)[:, :, 0], u, geo.padding_2d(),
                                                   True, True)
        dx, dweight = dx.reshape(x.shape), dweight.reshape(weight.shape)
    else:
        dx = _input_grad(dy5, _as_5d(weight, dims), geo).reshape(x.shape) if need_x else None
        dweight = _weight_grad(dy5, _as_5d(x, dims), geo).reshape(weight.shape) if need_w else None
    # y[n, o, p] = ... + b[o]  =>  db[o] = sum over n, p of dY[n, o, p].
    dbias = dy5.sum(axis=(0, 2, 3, 4)) if has_bias and len(needs) > 2 and needs[2] else None
    return dx, dweight, dbias


def conv_transpose_forward(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transposed convolution: the input gradient of ``conv_forward`` with weight W, run forward.

    Shapes: x (N, C_in, *spatial) with 1 to 3 spatial dimensions, weight
    (C_in, C_out / groups, *kernel) (torch's layout), bias (C_out,) or None
    -> y (N, C_out, *out), out = (in - 1) stride - 2 padding + dilation
    (kernel - 1) + output_padding + 1. Each input value scatters W times
    itself onto a window of the output; windows start ``stride`` apart.
    ``padding`` crops each side of the output; ``output_padding`` adds rows
    at the end that only the last windows reach. Returns (y, saved).

    >>> import numpy as np
    >>> conv_transpose_forward(np.array([[[1.0, 2.0]]]), np.ones((1, 1, 3)), stride=2)[0]
    array([[[1., 1., 3., 2., 2.]]])
    """
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    dims = x.ndim - 2
    stride_t, dilation_t = _as_tuple(stride, dims), _as_tuple(dilation, dims)
    padding_t, output_padding_t = _as_tuple(padding, dims), _as_tuple(output_padding, dims)
    kernel = weight.shape[2:]
    out = tuple(conv_transpose_output_size(*args) for args in
                zip(x.shape[2:], kernel, stride_t, padding_t, dilation_t, output_padding_t))
    y_shape = (x.shape[0], weight.shape[1] * groups) + out
    # The convolution this is the transpose of: from y's shape to x's, weight (C_in, C_out / g, k).
    geo = _geometry(y_shape, weight.shape, stride_t, padding_t, dilation_t, groups, dims, out_spatial=x.shape[2:])
    y = _input_grad(_as_5d(x, dims), _as_5d(weight, dims), geo).reshape(y_shape)
    if bias is not None:
        y += np.asarray(bias, dtype=x.dtype).reshape((-1,) + (1,) * dims)
    return y, (x, weight, bias is not None, geo)


def conv_transpose_backward(dy, saved, needs=(True, True, True)):
    """Gradients (dx, dweight, dbias) of ``conv_transpose_forward``; None where ``needs`` says no.

    y = conv^T(x, W) is linear in x with adjoint conv: dx = conv(dY, W).
    In W it is the convolution's weight gradient with the roles of its
    input and output swapped: dW = weight_grad(dy = x, x = dY).
    """
    x, weight, has_bias, geo = saved
    dims = x.ndim - 2
    dy5 = _as_5d(np.ascontiguousarray(dy, dtype=x.dtype), dims)
    dx = _forward(dy5, _as_5d(weight, dims), None, geo).reshape(x.shape) if needs[0] else None
    dweight = _weight_grad(_as_5d(x, dims), dy5, geo).reshape(weight.shape) if needs[1] else None
    dbias = dy5.sum(axis=(0, 2, 3, 4)) if has_bias and len(needs) > 2 and needs[2] else None
    return dx, dweight, dbias
