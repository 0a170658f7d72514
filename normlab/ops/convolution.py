"""Convolution (torch's cross-correlation) as im2col + one matrix product on BLAS.

For one group g, with K = C_g * kH * kW rows of receptive-field taps and
P = H_out * W_out output positions, im2col copies every window of the input
into one column of ``cols`` (K, P); the convolution is then a single GEMM,
``y_g = W_g cols`` with W_g the (O_g, K) reshaped weight. Backward is two
more GEMMs and the adjoint of im2col (col2im, which adds each column back
onto the pixels it was read from).

Layout: the columns are built tile by tile (see ``_tiles``), so their
buffer stays bounded however large the batch: a tile is either several whole
samples, laid out (C * kH * kW, n_b, P) = (groups, K, n_b * P) so that one
GEMM covers all n_b * P columns (small maps, e.g. 7x7, still give BLAS wide
matrices), or one sample cut into blocks of output rows (large maps). A 1x1
kernel with stride 1 and no padding needs no im2col at all, and a depthwise
convolution (one input channel per group) runs direct loops instead: its
GEMM would be a K = kH * kW sliver that BLAS cannot speed up.

Padding is never materialised: im2col writes zeros where a tap falls outside
the input, and col2im skips those taps. Padding is given per side
(before, after), so torch's asymmetric ``padding="same"`` split costs nothing.

conv1d is conv2d with H = 1 (a free reshape of the same memory).

Gradients: backward recomputes ``cols`` from the saved input instead of
saving it: the input is kH * kW times smaller than its columns, and rebuilding
them costs one pass over memory, small next to the GEMMs.
"""
from __future__ import annotations

import numbers

import numpy as np
from numba import njit

__all__ = [
    "conv_output_size", "same_padding",
    "conv2d_forward", "conv2d_backward", "conv1d_forward", "conv1d_backward",
    "pad_forward", "pad_backward",
]

# Upper bound on one tile's column buffer. Smaller tiles stay in cache between
# im2col and the GEMM, larger ones mean fewer, bigger GEMM calls; on 2 shared
# cores fewer calls won (each multi-threaded GEMM call synchronises OpenBLAS's
# threads, which a busy machine makes costly): 8 MiB measured best of 0.4-32.
_COLUMN_BUDGET_BYTES = 8 * 2 ** 20


# ----------------------------------------------------------------------------
# Sizes
# ----------------------------------------------------------------------------

def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int) -> int:
    """floor((size + pads - dilation * (kernel - 1) - 1) / stride) + 1, torch's rule."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


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


# ----------------------------------------------------------------------------
# Compiled kernels (compiled lazily on first call, cached on disk)
#
# They are serial on purpose. The GEMMs between them run on OpenBLAS's own
# threads, which keep spinning for a while after each call; an OpenMP-parallel
# Numba kernel started in that window fights them for the cores (measured on 2
# cores: im2col 6x slower, the whole forward 2x slower than with serial
# kernels). The kernels work on cache-sized tiles, so a serial pass is cheap
# next to the GEMM that follows it.
# ----------------------------------------------------------------------------

@njit(cache=True)
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


@njit(cache=True)
def _im2col(x, row_start, row_stop, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left,
            dilation_h, dilation_w, out_w, cols):
    """cols[(c, ki, kj), b, (oh - row_start, ow)] = x[b, c, oh*sh - pt + ki*dh, ow*sw - pl + kj*dw], 0 outside.

    Output rows oh in [row_start, row_stop) of every sample b in ``x``.
    """
    batch, channels, height, width = x.shape
    rows, tile_batch, columns = cols.shape
    x_flat = x.reshape(-1)
    cols_flat = cols.reshape(-1)
    for c in range(channels):
        for ki in range(kernel_h):
            offset_h = ki * dilation_h - pad_top
            for kj in range(kernel_w):
                row = (c * kernel_h + ki) * kernel_w + kj
                offset_w = kj * dilation_w - pad_left
                ow_lo, ow_hi = _valid_range(out_w, stride_w, offset_w, width)
                for b in range(batch):
                    row_base = (row * tile_batch + b) * columns
                    plane = (b * channels + c) * height
                    for oh in range(row_start, row_stop):
                        start = row_base + (oh - row_start) * out_w
                        # Loops index views from 0 with a range variable: Numba then knows the
                        # index is non-negative, drops its wraparound test and LLVM vectorises.
                        dest = cols_flat[start:start + out_w]
                        ih = oh * stride_h + offset_h
                        if ih < 0 or ih >= height:  # the whole run reads padding
                            for t in range(out_w):
                                dest[t] = 0
                            continue
                        src_start = (plane + ih) * width + offset_w
                        for t in range(ow_lo):
                            dest[t] = 0
                        if stride_w == 1:
                            src = x_flat[src_start + ow_lo:src_start + ow_hi]
                            for t in range(ow_hi - ow_lo):
                                dest[ow_lo + t] = src[t]
                        else:
                            for t in range(ow_lo, ow_hi):
                                dest[t] = x_flat[src_start + t * stride_w]
                        for t in range(ow_hi, out_w):
                            dest[t] = 0


@njit(cache=True)
def _col2im(dcols, row_start, row_stop, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left,
            dilation_h, dilation_w, out_w, dx):
    """The adjoint of ``_im2col``: dx[b, c, ih, iw] += dcols[(c, ki, kj), b, (oh - row_start, ow)] over in-range taps.

    The first tile of a sample (row_start == 0) first zeroes its planes; later
    tiles of the same sample add onto them (their input rows overlap).
    """
    batch, channels, height, width = dx.shape
    rows, tile_batch, columns = dcols.shape
    dcols_flat = dcols.reshape(-1)
    dx_flat = dx.reshape(-1)
    if row_start == 0:
        dx_flat[:] = 0
    for c in range(channels):
        for ki in range(kernel_h):
            offset_h = ki * dilation_h - pad_top
            for kj in range(kernel_w):
                row = (c * kernel_h + ki) * kernel_w + kj
                offset_w = kj * dilation_w - pad_left
                ow_lo, ow_hi = _valid_range(out_w, stride_w, offset_w, width)
                run = ow_hi - ow_lo
                for b in range(batch):
                    row_base = (row * tile_batch + b) * columns
                    plane = (b * channels + c) * height
                    for oh in range(row_start, row_stop):
                        ih = oh * stride_h + offset_h
                        if ih < 0 or ih >= height:  # these taps read padding: no gradient to give back
                            continue
                        src_start = row_base + (oh - row_start) * out_w + ow_lo
                        dest_start = (plane + ih) * width + offset_w + ow_lo * stride_w
                        if stride_w == 1:
                            # Views indexed from 0 (see _im2col): this add vectorises, 4x faster.
                            dest = dx_flat[dest_start:dest_start + run]
                            src = dcols_flat[src_start:src_start + run]
                            for t in range(run):
                                dest[t] += src[t]
                        else:
                            for t in range(run):
                                dx_flat[dest_start + t * stride_w] += dcols_flat[src_start + t]


# Depthwise (one input channel per group): the GEMM would have K = kH * kW and
# one row per group, so BLAS has nothing to block; these direct loops are the
# same sums without the columns. Output channel o reads input channel
# o // multiplier (multiplier = O / C, torch's "depth multiplier").

@njit(cache=True)
def _depthwise_forward(x, weight, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, y):
    """y[b, o, oh, ow] = sum over ki, kj of W[o, 0, ki, kj] x[b, o // m, oh*sh - pt + ki*dh, ow*sw - pl + kj*dw]."""
    batch, channels, height, width = x.shape
    _, out_channels, out_h, out_w = y.shape
    _, _, kernel_h, kernel_w = weight.shape
    multiplier = out_channels // channels
    x_flat, y_flat, w_flat = x.reshape(-1), y.reshape(-1), weight.reshape(-1)
    y_flat[:] = 0
    for b in range(batch):
        for o in range(out_channels):
            plane_in = (b * channels + o // multiplier) * height
            plane_out = (b * out_channels + o) * out_h
            for ki in range(kernel_h):
                offset_h = ki * dilation_h - pad_top
                oh_lo, oh_hi = _valid_range(out_h, stride_h, offset_h, height)
                for kj in range(kernel_w):
                    offset_w = kj * dilation_w - pad_left
                    ow_lo, ow_hi = _valid_range(out_w, stride_w, offset_w, width)
                    run = ow_hi - ow_lo
                    tap = w_flat[(o * kernel_h + ki) * kernel_w + kj]
                    for oh in range(oh_lo, oh_hi):
                        out_start = (plane_out + oh) * out_w + ow_lo
                        in_start = (plane_in + oh * stride_h + offset_h) * width + offset_w + ow_lo * stride_w
                        dest = y_flat[out_start:out_start + run]
                        if stride_w == 1:
                            src = x_flat[in_start:in_start + run]
                            for t in range(run):
                                dest[t] += tap * src[t]
                        else:
                            for t in range(run):
                                dest[t] += tap * x_flat[in_start + t * stride_w]


@njit(cache=True)
def _depthwise_input_grad(dy, weight, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, dx):
    """dx[b, c, ih, iw] = sum over taps reading (ih, iw) of W[o, 0, ki, kj] dY[b, o, oh, ow] (the adjoint of the forward)."""
    batch, channels, height, width = dx.shape
    _, out_channels, out_h, out_w = dy.shape
    _, _, kernel_h, kernel_w = weight.shape
    multiplier = out_channels // channels
    dx_flat, dy_flat, w_flat = dx.reshape(-1), dy.reshape(-1), weight.reshape(-1)
    dx_flat[:] = 0
    for b in range(batch):
        for o in range(out_channels):
            plane_in = (b * channels + o // multiplier) * height
            plane_out = (b * out_channels + o) * out_h
            for ki in range(kernel_h):
                offset_h = ki * dilation_h - pad_top
                oh_lo, oh_hi = _valid_range(out_h, stride_h, offset_h, height)
                for kj in range(kernel_w):
                    offset_w = kj * dilation_w - pad_left
                    ow_lo, ow_hi = _valid_range(out_w, stride_w, offset_w, width)
                    run = ow_hi - ow_lo
                    tap = w_flat[(o * kernel_h + ki) * kernel_w + kj]
                    for oh in range(oh_lo, oh_hi):
                        out_start = (plane_out + oh) * out_w + ow_lo
                        in_start = (plane_in + oh * stride_h + offset_h) * width + offset_w + ow_lo * stride_w
                        src = dy_flat[out_start:out_start + run]
                        if stride_w == 1:
                            dest = dx_flat[in_start:in_start + run]
                            for t in range(run):
                                dest[t] += tap * src[t]
                        else:
                            for t in range(run):
                                dx_flat[in_start + t * stride_w] += tap * src[t]


# reassoc lets LLVM split the dot product into vector lanes (a different but
# equally valid summation order); nothing else of fast-math is allowed.
@njit(cache=True, fastmath={"reassoc"})
def _depthwise_weight_grad(dy, x, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, dweight):
    """dW[o, 0, ki, kj] = sum over b, oh, ow of dY[b, o, oh, ow] x[b, o // m, oh*sh - pt + ki*dh, ow*sw - pl + kj*dw]."""
    batch, channels, height, width = x.shape
    _, out_channels, out_h, out_w = dy.shape
    _, _, kernel_h, kernel_w = dweight.shape
    multiplier = out_channels // channels
    x_flat, dy_flat, dw_flat = x.reshape(-1), dy.reshape(-1), dweight.reshape(-1)
    dw_flat[:] = 0
    for b in range(batch):
        for o in range(out_channels):
            plane_in = (b * channels + o // multiplier) * height
            plane_out = (b * out_channels + o) * out_h
            for ki in range(kernel_h):
                offset_h = ki * dilation_h - pad_top
                oh_lo, oh_hi = _valid_range(out_h, stride_h, offset_h, height)
                for kj in range(kernel_w):
                    offset_w = kj * dilation_w - pad_left
                    ow_lo, ow_hi = _valid_range(out_w, stride_w, offset_w, width)
                    run = ow_hi - ow_lo
                    total = 0.0  # float64 even for float32 input: these sums run over N * P terms
                    for oh in range(oh_lo, oh_hi):
                        out_start = (plane_out + oh) * out_w + ow_lo
                        in_start = (plane_in + oh * stride_h + offset_h) * width + offset_w + ow_lo * stride_w
                        grad = dy_flat[out_start:out_start + run]
                        if stride_w == 1:
                            src = x_flat[in_start:in_start + run]
                            for t in range(run):
                                total += grad[t] * src[t]
                        else:
                            for t in range(run):
                                total += grad[t] * x_flat[in_start + t * stride_w]
                    dw_flat[(o * kernel_h + ki) * kernel_w + kj] += total


# ----------------------------------------------------------------------------
# conv2d
# ----------------------------------------------------------------------------

def _tiles(batch: int, rows: int, out_h: int, out_w: int, itemsize: int):
    """(first sample, stop sample, first output row, stop output row) of each tile.

    A tile's columns (rows x tile positions) fit ``_COLUMN_BUDGET_BYTES``: several
    whole samples when one sample's columns are small (7x7 maps: the GEMM still
    gets many columns), else one sample cut into blocks of output rows.
    """
    row_bytes = max(rows * out_w * itemsize, 1)
    sample_bytes = row_bytes * out_h
    if sample_bytes <= _COLUMN_BUDGET_BYTES:
        step = max(1, _COLUMN_BUDGET_BYTES // max(sample_bytes, 1))
        return [(n, min(n + step, batch), 0, out_h) for n in range(0, batch, step)]
    block = max(1, _COLUMN_BUDGET_BYTES // row_bytes)
    return [(n, n + 1, r, min(r + block, out_h)) for n in range(batch) for r in range(0, out_h, block)]


def _geometry(stride, padding, dilation) -> tuple[int, ...]:
    """The kernels' (stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w); bottom/right pads only size the output."""
    return stride[0], stride[1], padding[0][0], padding[1][0], dilation[0], dilation[1]


def _is_pointwise(kernel_h, kernel_w, stride, padding, dilation) -> bool:
    """A 1x1 kernel with stride 1 and no padding: the columns are the input itself (no im2col)."""
    return kernel_h == kernel_w == 1 and stride == (1, 1) and padding == ((0, 0), (0, 0))


def _is_depthwise(channels: int, groups: int) -> bool:
    """One input channel per group: the direct depthwise loops beat a K = kH * kW GEMM."""
    return groups > 1 and groups == channels


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o] = sum over c in o's group, ki, kj of W[o, c, ki, kj] x_pad[n, c, oh*s + ki*d, ow*s + kj*d] + b[o].

    Shapes: x (N, C, H, W), weight (O, C / groups, kH, kW), bias (O,) or None
    -> y (N, O, H_out, W_out). ``padding`` is an int, (pH, pW), or
    ((top, bottom), (left, right)). Arguments are assumed valid (the
    functional layer checks them).
    """
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    stride, dilation = _as_tuple(stride, 2), _as_tuple(dilation, 2)
    padding = _as_pairs(padding, 2)
    batch, channels, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h = conv_output_size(height, kernel_h, stride[0], *padding[0], dilation[0])
    out_w = conv_output_size(width, kernel_w, stride[1], *padding[1], dilation[1])
    positions = out_h * out_w
    group_out = out_channels // groups
    rows = channels * kernel_h * kernel_w  # all groups' K rows, stacked group by group
    group_rows = rows // groups
    weight_g = weight.reshape(groups, group_out, group_rows)
    y = np.empty((batch, out_channels, out_h, out_w), dtype=x.dtype)
    y_g = y.reshape(batch, groups, group_out, positions)
    bias_g = None if bias is None else np.asarray(bias, dtype=x.dtype).reshape(groups, group_out, 1)
    if _is_pointwise(kernel_h, kernel_w, stride, padding, dilation):
        # (groups, O_g, C_g) @ (N, groups, C_g, P): one GEMM per sample and group, written in place.
        np.matmul(weight_g, x.reshape(batch, groups, group_rows, positions), out=y_g)
        if bias_g is not None:
            y_g += bias_g
    elif _is_depthwise(channels, groups):
        _depthwise_forward(x, weight, *_geometry(stride, padding, dilation), y)
        if bias_g is not None:
            y_g += bias_g
    else:
        geometry = (kernel_h, kernel_w, *_geometry(stride, padding, dilation), out_w)
        tiles = _tiles(batch, rows, out_h, out_w, x.itemsize)
        buffer = np.empty(max((rows * (stop - start) * (r1 - r0) * out_w for start, stop, r0, r1 in tiles),
                              default=0), dtype=x.dtype)
        for start, stop, row_start, row_stop in tiles:  # a loop over a few large tiles, not over pixels
            nb, columns = stop - start, (row_stop - row_start) * out_w
            cols = buffer[: rows * nb * columns].reshape(groups, group_rows, nb * columns)
            _im2col(x[start:stop], row_start, row_stop, *geometry, cols.reshape(rows, nb, columns))
            if nb == 1:
                # (groups, O_g, K) @ (groups, K, T) straight into y's rows [row_start, row_stop).
                y_tile = y_g[start, :, :, row_start * out_w: row_stop * out_w]
                np.matmul(weight_g, cols, out=y_tile)
            else:
                # Several whole samples share one GEMM; their outputs come back sample-major.
                product = np.matmul(weight_g, cols)
                y_tile = y_g[start:stop]
                y_tile[...] = product.reshape(groups, group_out, nb, positions).transpose(2, 0, 1, 3)
            if bias_g is not None:  # added while the tile is still in cache
                y_tile += bias_g
    saved = (x, weight, bias is not None, stride, padding, dilation, groups)
    return y, saved


def conv2d_backward(dy, saved, needs=(True, True, True)):
    """Gradients (dx, dweight, dbias) of ``conv2d_forward``; None where ``needs`` says no.

    ``needs`` is one flag per positional input (x, weight, bias), as
    ``Function.needs_input_grad``: an input that needs no gradient costs nothing.
    """
    x, weight, has_bias, stride, padding, dilation, groups = saved
    need_x, need_w = bool(needs[0]), bool(needs[1])
    need_b = has_bias and len(needs) > 2 and bool(needs[2])
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    batch, channels, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    _, _, out_h, out_w = dy.shape
    positions = out_h * out_w
    group_out = out_channels // groups
    rows = channels * kernel_h * kernel_w
    group_rows = rows // groups
    weight_g = weight.reshape(groups, group_out, group_rows)
    weight_t = weight_g.transpose(0, 2, 1)
    dy_g = dy.reshape(batch, groups, group_out, positions)
    dx = np.empty_like(x) if need_x else None
    dweight_g = None
    if _is_pointwise(kernel_h, kernel_w, stride, padding, dilation):
        x_g = x.reshape(batch, groups, group_rows, positions)
        if need_w:
            # y[n] = W x[n]  =>  dW = sum over n of dY[n] x[n]^T.
            dweight_g = np.matmul(dy_g, x_g.transpose(0, 1, 3, 2)).sum(axis=0)
        if need_x:
            # y[n] = W x[n]  =>  dx[n] = W^T dY[n].
            np.matmul(weight_t, dy_g, out=dx.reshape(batch, groups, group_rows, positions))
    elif _is_depthwise(channels, groups):
        geometry = _geometry(stride, padding, dilation)
        if need_w:
            # y = sum over taps of W_tap x_shifted  =>  dW_tap = sum over b, p of dY x_shifted.
            dweight_g = np.empty_like(weight).reshape(groups, group_out, group_rows)
            _depthwise_weight_grad(dy, x, *geometry, dweight_g.reshape(weight.shape))
        if need_x:
            # y = sum over taps of W_tap x_shifted  =>  dx = sum over taps of W_tap dY shifted back.
            _depthwise_input_grad(dy, weight, *geometry, dx)
    elif need_x or need_w:
        geometry = (kernel_h, kernel_w, *_geometry(stride, padding, dilation), out_w)
        tiles = _tiles(batch, rows, out_h, out_w, x.itemsize)
        buffer = np.empty(max((rows * (stop - start) * (r1 - r0) * out_w for start, stop, r0, r1 in tiles),
                              default=0), dtype=x.dtype)
        dweight_g = np.zeros((groups, group_out, group_rows), dtype=x.dtype) if need_w else None
        for start, stop, row_start, row_stop in tiles:
            nb, columns = stop - start, (row_stop - row_start) * out_w
            if nb == 1:
                dy_tile = dy_g[start, :, :, row_start * out_w: row_stop * out_w]  # a strided view, no copy
            else:
                # dY of several samples in the columns' layout (groups, O_g, n_b * P).
                dy_tile = np.ascontiguousarray(dy_g[start:stop].transpose(1, 2, 0, 3)).reshape(
                    groups, group_out, nb * columns)
            cols = buffer[: rows * nb * columns].reshape(groups, group_rows, nb * columns)
            if need_w:
                _im2col(x[start:stop], row_start, row_stop, *geometry, cols.reshape(rows, nb, columns))
                # y_g = W_g cols  =>  dW_g = sum over columns p of dY_g[:, p] cols[:, p]^T = dY_g cols^T,
                # one GEMM per group and tile, summed over tiles.
                dweight_g += np.matmul(dy_tile, cols.transpose(0, 2, 1))
            if need_x:
                # y_g = W_g cols  =>  dcols = W_g^T dY_g. Each column entry is a copy of one input
                # pixel (or of padding), so dx = col2im(dcols): every entry added back onto the
                # pixel it was read from, padding taps dropped. dcols reuses the columns' buffer.
                if group_out == 1:
                    # One output per group: W_g^T dY_g is an outer product, which a broadcast
                    # multiply writes at memory speed where a K=1 GEMM crawls.
                    dcols = np.multiply(weight_t, dy_tile, out=cols)
                else:
                    dcols = np.matmul(weight_t, dy_tile, out=cols)
                _col2im(dcols.reshape(rows, nb, columns), row_start, row_stop, *geometry, dx[start:stop])
    dweight = dweight_g.reshape(weight.shape) if need_w else None
    # y[n, o, p] = ... + b[o]  =>  db[o] = sum over n, p of dY[n, o, p].
    dbias = dy.sum(axis=(0, 2, 3)) if need_b else None
    return dx, dweight, dbias


# ----------------------------------------------------------------------------
# conv1d: conv2d over a height-1 image
# ----------------------------------------------------------------------------

def conv1d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """conv2d_forward on (N, C, 1, L) with a (O, C / groups, 1, k) kernel; padding an int or (left, right).

    Shapes: x (N, C, L), weight (O, C / groups, k), bias (O,) or None -> y (N, O, L_out).
    """
    pads = _as_pairs((padding,) if isinstance(padding, numbers.Integral) else (tuple(padding),), 1)[0]
    y, saved = conv2d_forward(x[:, :, None, :], weight[:, :, None, :], bias, (1, _as_tuple(stride, 1)[0]),
                              ((0, 0), pads), (1, _as_tuple(dilation, 1)[0]), groups)
    return y[:, :, 0, :], saved


def conv1d_backward(dy, saved, needs=(True, True, True)):
    """Gradients (dx, dweight, dbias) of ``conv1d_forward``: conv2d's, reshaped back."""
    dx, dweight, dbias = conv2d_backward(dy[:, :, None, :], saved, needs)
    return (dx[:, :, 0, :] if dx is not None else None,
            dweight[:, :, 0, :] if dweight is not None else None,
            dbias)


# ----------------------------------------------------------------------------
# Non-zero padding modes (Conv's padding_mode): reflect, replicate, circular
# ----------------------------------------------------------------------------

_NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad_forward(x, pads, mode):
    """Pad the last ``len(pads)`` dimensions of ``x`` with (before, after) pairs in torch's ``mode``.

    ``reflect`` mirrors without repeating the edge, ``replicate`` repeats the
    edge, ``circular`` wraps around; each padded position is a copy of one
    input position, recorded per dimension in ``sources``.
    """
    pads = tuple((int(a), int(b)) for a, b in pads)
    lead = x.ndim - len(pads)
    y = np.pad(x, ((0, 0),) * lead + pads, mode=_NUMPY_PAD_MODE[mode])
    # sources[d][j]: which input index the padded position j of dimension d copies.
    sources = tuple(np.pad(np.arange(x.shape[lead + d]), pad, mode=_NUMPY_PAD_MODE[mode])
                    for d, pad in enumerate(pads))
    return y, (x.shape, pads, sources)


def pad_backward(dy, saved):
    """Gradient of ``pad_forward``: each padded copy's gradient is added back onto its source."""
    shape, pads, sources = saved
    lead = len(shape) - len(pads)
    g = dy
    # Padding is separable, so its adjoint is applied one dimension at a time.
    for d in reversed(range(len(pads))):
        axis = lead + d
        before, after = pads[d]
        size = shape[axis]
        index = [slice(None)] * g.ndim
        index[axis] = slice(before, before + size)
        dx = g[tuple(index)].copy()  # the interior maps onto itself
        # y[j] = x[source[j]]  =>  dx[i] = sum over j with source[j] = i of dy[j]; the padded
        # positions are few (the pad width), so they are added slice by slice.
        for j in list(range(before)) + list(range(before + size, before + size + after)):
            target = [slice(None)] * g.ndim
            target[axis] = sources[d][j]
            index[axis] = j
            dx[tuple(target)] += g[tuple(index)]
        g = dx
    return (g,)
