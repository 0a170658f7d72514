"""3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3): 2.25x fewer multiplications.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016).

A 2x2 block of outputs of a 3x3 correlation reads a 4x4 patch ``d`` of each
input channel. With the transforms (exact in binary: only 0, +-1, +-1/2)

    B^T = [[1, 0,-1, 0],    G = [[ 1,   0,   0],    A^T = [[1, 1, 1, 0],
           [0, 1, 1, 0],         [1/2, 1/2, 1/2],          [0, 1,-1,-1]]
           [0,-1, 1, 0],         [1/2,-1/2, 1/2],
           [0, 1, 0,-1]]         [ 0,   0,   1]]

the block is ``Y = A^T [ sum over c of (G g_oc G^T) * (B^T d_c B) ] A`` with
``*`` elementwise over the 16 positions of the 4x4 tile. Writing
``U = G g G^T`` (the weights, 16 x O x C) and ``V = B^T d B`` (the input
tiles, 16 x C x T for T tiles), the sum over channels is 16 independent
matrix products ``M[k] = U[k] V[k]`` (O x T): 16 x O x C x T multiply-adds
where im2col needs 36 x O x C x T (9 taps x 4 outputs per tile).

Backward is the adjoint of each linear step, taken in reverse:

    dM = A dY A^T                 (the 2x2 output gradient of each tile, spread over 16 positions)
    dU[k] = dM[k] V[k]^T          (summed over tiles: 16 products)   ->  dW = G^T dU G
    dV[k] = U[k]^T dM[k]          (16 products)                      ->  dx += B dV B^T, tiles overlapping

Tiles are processed in blocks (a few hundred tiles: their V and M stay
near the core), blocks of one sample in order by one worker, samples
spread over workers (``normlab.ops._workers``). V is recomputed in backward
rather than saved (it is 4x the input). Numerics: the transforms only add,
subtract and halve, so float32 results stay within float32 rounding of the
sums involved (tested against a float64 reference).

Layout (chosen so that every compiled loop is one long flat pass, which
LLVM vectorises; row-by-row loops over 28 values cost more in loop overhead
than in work):

* a block's input rows are first copied (NumPy, one strided copy) into
  zero-padded windows of ``span = 2 (tiles_w + 1)`` columns, even and odd
  rows apart: the 4x4 patch of a tile then is columns 2t .. 2t + 3 of
  (even, odd, even one row down, odd one row down), rows laid end to end;
* so a tile row holds ``tiles_w + 1`` tiles, the last a dummy (its V is set
  to zero, its output dropped); the block's T tiles are the columns of its
  (C, 16, T) and (O, 16, T) arrays: the 16 values of a channel's tiles are
  the 16 rows of one contiguous (16, T) array, and the products read the
  16 matrices (C, T) with a row stride of 16 T, which BLAS takes as is.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from normlab.ops._workers import run_tasks

__all__ = ["winograd_applies", "conv2d_3x3_forward", "conv2d_3x3_backward"]

# Tiles per block: as many as keep V and M (16 (C + O) values per tile) within
# _BLOCK_BYTES, clamped to _BLOCK_TILES_RANGE. Below 256 tiles the products
# got narrow enough to slow BLAS (256 channels, 56 tiles: dV at 53 GFLOP/s,
# against ~100 at 280 tiles) and with few channels a block's Python overhead
# dominated; above 512 the buffers leave the cache for nothing.
_BLOCK_BYTES = 1 << 20
_BLOCK_TILES_RANGE = (256, 512)


def winograd_applies(channels: int, kernel, stride, dilation, groups: int) -> bool:
    """A 3x3, stride-1, undilated, ungrouped kernel on enough input channels that the 16 products pay.

    With a handful of input channels the products are outer products (K = C),
    which BLAS runs at a few percent of its peak; im2col's K = 9 C serves better.
    """
    return tuple(kernel) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) \
        and groups == 1 and channels >= 8


# ----------------------------------------------------------------------------
# Tile transforms (serial, nogil: the workers of _workers run them side by side)
#
# Each takes a block's rows as windows (n, channel, parity, row, span) (see
# the module docstring) and its matrices as (channel, 16, T); tile t of
# sample n of the block is column (n * tile_rows + i) * (tiles_w + 1) + j.
# ----------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _input_transform(windows, tiles_w, v):
    """v[c, 4 xi + nu, t] = (B^T d B)[xi, nu] for the 4x4 patch d of channel c under tile t.

    windows: (n, C, 2, tile_rows + 2, span) padded input rows (the extra row keeps
    the last dummy tile's reads inside).
    """
    samples, channels, _, rows, span = windows.shape
    tile_rows = rows - 2
    count = tile_rows * (tiles_w + 1)  # tiles of one sample
    size = tile_rows * span
    flat = windows.reshape(samples, channels, 2, rows * span)
    mixed = np.empty((4, size + 4), dtype=v.dtype)
    m0, m1, m2, m3 = mixed[0], mixed[1], mixed[2], mixed[3]
    for n in range(samples):
        base = n * count
        for c in range(channels):
            # The patch rows of every tile: d0 = even, d1 = odd, d2 = even and d3 = odd one row down.
            d0, d1 = flat[n, c, 0, :size + 4], flat[n, c, 1, :size + 4]
            d2, d3 = flat[n, c, 0, span:span + size + 4], flat[n, c, 1, span:span + size + 4]
            # B^T d: the rows mixed as (d0 - d2, d1 + d2, d2 - d1, d1 - d3) ...
            for s in range(size + 4):
                m0[s] = d0[s] - d2[s]
            for s in range(size + 4):
                m1[s] = d1[s] + d2[s]
            for s in range(size + 4):
                m2[s] = d2[s] - d1[s]
            for s in range(size + 4):
                m3[s] = d1[s] - d3[s]
            # ... then (B^T d) B: tile t mixes columns 2t .. 2t + 3 of each mixed row the same way.
            vc = v[c]
            for xi in range(4):
                e, k = mixed[xi], 4 * xi
                for t in range(count):
                    e0, e1, e2, e3 = e[2 * t], e[2 * t + 1], e[2 * t + 2], e[2 * t + 3]
                    vc[k, base + t], vc[k + 1, base + t] = e0 - e2, e1 + e2
                    vc[k + 2, base + t], vc[k + 3, base + t] = e2 - e1, e1 - e3
            for i in range(tile_rows):  # the dummy tile of each row: zero, so that it adds nothing
                dummy = base + i * (tiles_w + 1) + tiles_w
                for k in range(16):
                    vc[k, dummy] = 0


@njit(cache=True, nogil=True)
def _output_transform(m, bias, has_bias, tiles_w, windows):
    """windows[n, o, a, i, 2j + b] = (A^T M A)[a, b] + bias[o] for tile (n, i, j): output rows 2i + a.

    windows: (n, O, 2, tile_rows, span); columns from 2 tiles_w on belong to the dummy tiles.
    """
    samples, out_channels, _, tile_rows, span = windows.shape
    count = tile_rows * (tiles_w + 1)
    size = tile_rows * span
    flat = windows.reshape(samples, out_channels, 2, size)
    mixed = np.empty((4, size), dtype=windows.dtype)
    p0, p1, p2, p3 = mixed[0], mixed[1], mixed[2], mixed[3]
    for n in range(samples):
        base = n * count
        for o in range(out_channels):
            b = bias[o] if has_bias else 0.0
            mo = m[o]
            # M A: row xi of each tile mixed as (M0 + M1 + M2, M1 - M2 - M3), into columns 2t, 2t + 1 ...
            for xi in range(4):
                p, k = mixed[xi], 4 * xi
                for t in range(count):
                    g0, g1, g2, g3 = mo[k, base + t], mo[k + 1, base + t], mo[k + 2, base + t], mo[k + 3, base + t]
                    p[2 * t] = g0 + g1 + g2
                    p[2 * t + 1] = g1 - g2 - g3
            # ... then A^T (M A): the same mix down each column gives the tile's two output rows.
            top, bottom = flat[n, o, 0], flat[n, o, 1]
            for s in range(size):
                top[s] = p0[s] + p1[s] + p2[s] + b
            for s in range(size):
                bottom[s] = p1[s] - p2[s] - p3[s] + b


@njit(cache=True, nogil=True)
def _output_transform_adjoint(windows, tiles_w, dm):
    """dm[o, 4 xi + nu, t] = (A dY A^T)[xi, nu] for the 2x2 block dY of tile t.

    windows: (n, O, 2, tile_rows, span) output-gradient rows 2i + a, zero beyond dy's edge.
    """
    samples, out_channels, _, tile_rows, span = windows.shape
    count = tile_rows * (tiles_w + 1)
    size = tile_rows * span
    flat = windows.reshape(samples, out_channels, 2, size)
    mixed = np.empty((4, size), dtype=dm.dtype)
    q0, q1, q2, q3 = mixed[0], mixed[1], mixed[2], mixed[3]
    for n in range(samples):
        base = n * count
        for o in range(out_channels):
            g, h = flat[n, o, 0], flat[n, o, 1]
            # A dY: each tile's two rows (g, h) spread over four as (g, g + h, g - h, -h) ...
            for s in range(size):
                q0[s] = g[s]
            for s in range(size):
                q1[s] = g[s] + h[s]
            for s in range(size):
                q2[s] = g[s] - h[s]
            for s in range(size):
                q3[s] = -h[s]
            # ... then (A dY) A^T: the two columns 2t, 2t + 1 of each row spread the same way.
            mo = dm[o]
            for xi in range(4):
                q, k = mixed[xi], 4 * xi
                for t in range(count):
                    r0, r1 = q[2 * t], q[2 * t + 1]
                    mo[k, base + t], mo[k + 1, base + t] = r0, r0 + r1
                    mo[k + 2, base + t], mo[k + 3, base + t] = r0 - r1, -r1


@njit(cache=True, nogil=True)
def _input_transform_adjoint(dv, tiles_w, windows):
    """windows[n, c] = B dV B^T of every tile, each added onto the 4x4 patch it was read from.

    windows: (n, C, 2, tile_rows + 1, span) padded input-gradient rows (overwritten).
    Neighbouring tiles overlap by two columns and two rows. Each spread runs
    in two loops, the first setting the tiles' first halves (columns 2t,
    2t + 1; rows 2i, 2i + 1), the second adding their second halves, so that
    no loop writes one place twice and both vectorise.
    """
    samples, channels, _, rows, span = windows.shape
    tile_rows = rows - 1
    count = tile_rows * (tiles_w + 1)
    size = tile_rows * span
    flat = windows.reshape(samples, channels, 2, rows * span)
    spread = np.zeros((4, size + 2), dtype=windows.dtype)
    e0, e1, e2, e3 = spread[0][:size], spread[1][:size], spread[2][:size], spread[3][:size]
    for n in range(samples):
        base = n * count
        for c in range(channels):
            g = dv[c]
            # dV B^T: row xi of each tile's gradient spread back over the four columns it was mixed
            # from: column 0 <- g0, 1 <- g1 - g2 + g3, 2 <- -g0 + g1 + g2, 3 <- -g3.
            for xi in range(4):
                e, k = spread[xi], 4 * xi
                for t in range(count):
                    e[2 * t] = g[k, base + t]
                    e[2 * t + 1] = g[k + 1, base + t] - g[k + 2, base + t] + g[k + 3, base + t]
                e[size] = e[size + 1] = 0
                for t in range(count):
                    e[2 * t + 2] += -g[k, base + t] + g[k + 1, base + t] + g[k + 2, base + t]
                    e[2 * t + 3] -= g[k + 3, base + t]
            # B (dV B^T): patch rows 0..3 (even, odd, even and odd one row down) get
            # e0, e1 - e2 + e3, -e0 + e1 + e2 and -e3.
            even, odd = flat[n, c, 0], flat[n, c, 1]
            for s in range(size):
                even[s] = e0[s]
            for s in range(size):
                odd[s] = e1[s] - e2[s] + e3[s]
            even[size:] = 0
            odd[size:] = 0
            high_even, high_odd = even[span:], odd[span:]
            for s in range(size):
                high_even[s] += -e0[s] + e1[s] + e2[s]
            for s in range(size):
                high_odd[s] -= e3[s]


# ----------------------------------------------------------------------------
# Blocks, windows and scratch
# ----------------------------------------------------------------------------

def _blocks(batch: int, tiles_h: int, tiles_w: int, block_tiles: int):
    """Tasks (one per group of samples), each a list of blocks (n0, n1, i0, i1) of about ``block_tiles`` tiles."""
    per_sample = tiles_h * tiles_w
    if per_sample <= block_tiles:
        step = max(1, block_tiles // per_sample)
        return [[(n, min(n + step, batch), 0, tiles_h)] for n in range(0, batch, step)]
    rows = max(1, block_tiles // tiles_w)
    return [[(n, n + 1, i, min(i + rows, tiles_h)) for i in range(0, tiles_h, rows)] for n in range(batch)]


def _row_pairs(first_row: int, pairs: int, parity: int, height: int) -> tuple[slice, slice]:
    """Window rows i (of ``pairs``) and source rows ``first_row + 2 i + parity`` inside [0, height), as slices."""
    start = first_row + parity
    lo = max(0, (-start + 1) // 2)
    hi = min(pairs, (height - start + 1) // 2)
    hi = max(hi, lo)
    return slice(lo, hi), slice(start + 2 * lo, start + 2 * hi - 1 if hi > lo else start + 2 * lo, 2)


def _read_windows(src, n0: int, n1: int, first_row: int, pad_left: int, windows) -> None:
    """windows[n, c, p, i, q] = src[n0 + n, c, first_row + 2 i + p, q - pad_left], zero outside src."""
    windows[...] = 0
    width = min(src.shape[3], windows.shape[4] - pad_left)
    for parity in range(2):
        rows, source = _row_pairs(first_row, windows.shape[3], parity, src.shape[2])
        windows[:, :, parity, rows, pad_left:pad_left + width] = src[n0:n1, :, source, :width]


def _add_windows(windows, n0: int, first_row: int, pad_left: int, dest) -> None:
    """dest[n0 + n, c, first_row + 2 i + p, q - pad_left] += windows[n, c, p, i, q] where that is inside dest."""
    width = min(dest.shape[3], windows.shape[4] - pad_left)
    n1 = n0 + windows.shape[0]
    for parity in range(2):
        rows, target = _row_pairs(first_row, windows.shape[3], parity, dest.shape[2])
        dest[n0:n1, :, target, :width] += windows[:, :, parity, rows, pad_left:pad_left + width]


class _Scratch:
    """One worker's buffers, sized for the largest block and reused from block to block."""

    def __init__(self, dtype, shapes: dict) -> None:
        self.buffers = {name: np.empty(math.prod(shape), dtype=dtype) for name, shape in shapes.items()}

    def get(self, name: str, shape) -> np.ndarray:
        """A contiguous array of ``shape`` at the start of buffer ``name``."""
        return self.buffers[name][: math.prod(shape)].reshape(shape)


def _matrices(kept):
    """The 16 matrices (16, rows, T) of a (rows, 16, T) array, as a view."""
    return kept.transpose(1, 0, 2)


# ----------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _weight_transform_kernel(weight, u):
    """u[o, 4 xi + nu, c] = (G g G^T)[xi, nu] for the 3x3 kernel g = weight[o, c]."""
    out_channels, channels = weight.shape[0], weight.shape[1]
    h = np.empty((4, 3), dtype=u.dtype)
    for o in range(out_channels):
        for c in range(channels):
            g = weight[o, c]
            # G g: rows (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2), column by column ...
            for l in range(3):
                h[0, l] = g[0, l]
                h[1, l] = 0.5 * (g[0, l] + g[1, l] + g[2, l])
                h[2, l] = 0.5 * (g[0, l] - g[1, l] + g[2, l])
                h[3, l] = g[2, l]
            # ... then (G g) G^T: the same along each row.
            for xi in range(4):
                u[o, 4 * xi, c] = h[xi, 0]
                u[o, 4 * xi + 1, c] = 0.5 * (h[xi, 0] + h[xi, 1] + h[xi, 2])
                u[o, 4 * xi + 2, c] = 0.5 * (h[xi, 0] - h[xi, 1] + h[xi, 2])
                u[o, 4 * xi + 3, c] = h[xi, 2]


@njit(cache=True, nogil=True)
def _weight_transform_adjoint(du, dweight):
    """dweight[o, c] = G^T dU G for the 4x4 gradient dU = du[o, :, c]."""
    out_channels, channels = dweight.shape[0], dweight.shape[1]
    h = np.empty((4, 3), dtype=du.dtype)
    for o in range(out_channels):
        for c in range(channels):
            # dU G: each row spread back over the 3 kernel columns (column 0 <- d0 + (d1 + d2) / 2,
            # 1 <- (d1 - d2) / 2, 2 <- (d1 + d2) / 2 + d3) ...
            for xi in range(4):
                d0, d1, d2, d3 = du[o, 4 * xi, c], du[o, 4 * xi + 1, c], du[o, 4 * xi + 2, c], du[o, 4 * xi + 3, c]
                h[xi, 0] = d0 + 0.5 * (d1 + d2)
                h[xi, 1] = 0.5 * (d1 - d2)
                h[xi, 2] = 0.5 * (d1 + d2) + d3
            # ... then G^T (dU G): the same down each column.
            for l in range(3):
                dweight[o, c, 0, l] = h[0, l] + 0.5 * (h[1, l] + h[2, l])
                dweight[o, c, 1, l] = 0.5 * (h[1, l] - h[2, l])
                dweight[o, c, 2, l] = 0.5 * (h[1, l] + h[2, l]) + h[3, l]


def weight_transform(weight):
    """U = G g G^T for every (o, c) of a (O, C, 3, 3) weight: 16 matrices (O, C), as a (16, O, C) view."""
    u = np.empty((weight.shape[0], 16, weight.shape[1]), dtype=weight.dtype)
    _weight_transform_kernel(weight, u)
    return _matrices(u)


# ----------------------------------------------------------------------------
# Forward and backward
# ----------------------------------------------------------------------------

class _Geometry:
    """Tiles and blocks of one call: ``tasks`` (lists of blocks), ``tiles_w``, ``span``, the largest block."""

    def __init__(self, batch: int, out_h: int, out_w: int, channels: int, itemsize: int) -> None:
        tiles_h, self.tiles_w = (out_h + 1) // 2, (out_w + 1) // 2
        self.span = 2 * (self.tiles_w + 1)
        low, high = _BLOCK_TILES_RANGE
        block_tiles = min(high, max(low, _BLOCK_BYTES // (16 * channels * itemsize)))
        self.tasks = _blocks(batch, tiles_h, self.tiles_w, block_tiles)
        self.most_samples = max(n1 - n0 for task in self.tasks for n0, n1, _, _ in task)
        self.most_rows = max(i1 - i0 for task in self.tasks for _, _, i0, i1 in task)
        self.most_tiles = max(self.tiles(block) for task in self.tasks for block in task)

    def tiles(self, block) -> int:
        """Columns of a block's matrices: its tiles, with one dummy per tile row."""
        n0, n1, i0, i1 = block
        return (n1 - n0) * (i1 - i0) * (self.tiles_w + 1)


def conv2d_3x3_forward(x, u, bias, padding):
    """y = conv2d(x, weight, bias, stride 1, padding ((top, bottom), (left, right))), u = weight_transform(weight).

    Shapes: x (N, C, H, W), u (16, O, C), bias (O,) or None -> y (N, O, H_out, W_out).
    """
    batch, channels, height, width = x.shape
    out_channels = u.shape[1]
    (pad_top, pad_bottom), (pad_left, pad_right) = padding
    out_h, out_w = height + pad_top + pad_bottom - 2, width + pad_left + pad_right - 2
    y = np.empty((batch, out_channels, out_h, out_w), dtype=x.dtype)
    has_bias = bias is not None
    bias = np.zeros(1, x.dtype) if bias is None else np.asarray(bias, dtype=x.dtype)
    geo = _Geometry(batch, out_h, out_w, channels + out_channels, x.itemsize)
    nb, rows, tiles = geo.most_samples, geo.most_rows, geo.most_tiles

    def scratch():
        return _Scratch(x.dtype, {"in": (nb, channels, 2, rows + 2, geo.span), "v": (channels, 16, tiles),
                                  "m": (out_channels, 16, tiles), "out": (nb, out_channels, 2, rows, geo.span)})

    def run(task, scratch):
        for block in task:
            n0, n1, i0, i1 = block
            t = geo.tiles(block)
            windows = scratch.get("in", (n1 - n0, channels, 2, i1 - i0 + 2, geo.span))
            v, m = scratch.get("v", (channels, 16, t)), scratch.get("m", (out_channels, 16, t))
            out = scratch.get("out", (n1 - n0, out_channels, 2, i1 - i0, geo.span))
            _read_windows(x, n0, n1, 2 * i0 - pad_top, pad_left, windows)
            _input_transform(windows, geo.tiles_w, v)
            np.matmul(u, _matrices(v), out=_matrices(m))  # M[k] = U[k] V[k], 16 products
            _output_transform(m, bias, has_bias, geo.tiles_w, out)
            for a in range(2):  # output rows 2i + a of the block, cropped to y
                kept = len(range(2 * i0 + a, min(2 * i1, out_h), 2))
                y[n0:n1, :, 2 * i0 + a: 2 * i0 + a + 2 * kept: 2] = out[:, :, a, :kept, :out_w]

    run_tasks(run, geo.tasks, x.size + y.size, scratch)
    return y


def conv2d_3x3_backward(dy, x, u, padding, need_x: bool, need_w: bool, x_shape=None):
    """(dx, dweight) of ``conv2d_3x3_forward``, None where not needed (see the module docstring).

    ``x`` is needed for dweight only; without it, ``x_shape`` gives dx's shape.
    ``u`` (the transformed weight) is needed for dx only.
    """
    x_shape = x.shape if x is not None else tuple(x_shape)
    batch, channels = x_shape[:2]
    out_channels = dy.shape[1]
    (pad_top, _), (pad_left, _) = padding
    dx = np.zeros(x_shape, dtype=dy.dtype) if need_x else None
    geo = _Geometry(batch, dy.shape[2], dy.shape[3], channels + out_channels, dy.itemsize)
    nb, rows, tiles = geo.most_samples, geo.most_rows, geo.most_tiles

    def scratch():
        shapes = {"dy": (nb, out_channels, 2, rows, geo.span), "v": (channels, 16, tiles),
                  "dm": (out_channels, 16, tiles)}
        if need_w:  # the input's windows, this worker's sum of dU, and one block's product
            shapes.update({"in": (nb, channels, 2, rows + 2, geo.span), "du": (out_channels, 16, channels),
                           "product": (out_channels, 16, channels)})
        if need_x:
            shapes["dx"] = (nb, channels, 2, rows + 1, geo.span)
        own = _Scratch(dy.dtype, shapes)
        if need_w:
            own.get("du", shapes["du"])[...] = 0
        return own

    def run(task, scratch):
        for block in task:
            n0, n1, i0, i1 = block
            t = geo.tiles(block)
            v, dm = scratch.get("v", (channels, 16, t)), scratch.get("dm", (out_channels, 16, t))
            dy_windows = scratch.get("dy", (n1 - n0, out_channels, 2, i1 - i0, geo.span))
            _read_windows(dy, n0, n1, 2 * i0, 0, dy_windows)
            _output_transform_adjoint(dy_windows, geo.tiles_w, dm)
            if need_w:
                windows = scratch.get("in", (n1 - n0, channels, 2, i1 - i0 + 2, geo.span))
                _read_windows(x, n0, n1, 2 * i0 - pad_top, pad_left, windows)
                _input_transform(windows, geo.tiles_w, v)
                du = _matrices(scratch.get("du", (out_channels, 16, channels)))
                product = _matrices(scratch.get("product", (out_channels, 16, channels)))
                # dU[k] = sum over tiles of dM[k] V[k]^T
                du += np.matmul(_matrices(dm), _matrices(v).transpose(0, 2, 1), out=product)
            if need_x:
                # dV[k] = U[k]^T dM[k], into V's buffer
                np.matmul(u.transpose(0, 2, 1), _matrices(dm), out=_matrices(v))
                dx_windows = scratch.get("dx", (n1 - n0, channels, 2, i1 - i0 + 1, geo.span))
                _input_transform_adjoint(v, geo.tiles_w, dx_windows)
                _add_windows(dx_windows, n0, 2 * i0 - pad_top, pad_left, dx)

    work = 2 * dy.size + (dx.size if need_x else x.size)
    states = run_tasks(run, geo.tasks, work, scratch)
    dweight = None
    if need_w:
        du = states[0].get("du", (out_channels, 16, channels))
        for state in states[1:]:
            du += state.get("du", (out_channels, 16, channels))
        dweight = np.empty((out_channels, channels, 3, 3), dtype=dy.dtype)
        _weight_transform_adjoint(du, dweight)  # dW = G^T dU G
    return dx, dweight
