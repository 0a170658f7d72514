"""Numba kernels behind pooling: plain loops over (planes, D, H, W) contiguous arrays.

Every kernel writes into arrays its caller allocated and runs its planes in
blocks of BLOCK, one block per iteration of its ``prange`` loop: each plane is
written by one thread only, so scatter-adds never race, and scratch space is
allocated once per block. Each kernel exists serially and in parallel
(``ops._threading.parallel_kernel``): a call runs in parallel only when its
work, the elements it reads and writes, is large enough to pay for the launch.

A 1d or 2d pool is a 3d pool whose leading axes are flat (``geometry.Windows``).
A window's members are numbered ``code = (a * kernel_h + i) * kernel_w + j``
(member ``a`` of its depth axis, ``i`` of its height axis, ``j`` of its width
axis; see ``geometry.Axis``). Max/min pooling records its winner as that code
(one byte for windows of up to 256 members); backward turns it back into a
position.

Two kinds of loops:

* dense 2d windows (flat depth, no dilation, a kernel shape in DENSE_KERNELS, float32) run
  one output row at a time through ``*_row`` helpers whose loops over a window
  unroll (the kernel's rows and columns come as tuples, whose lengths Numba
  knows when compiling) and vectorise across the row. A *strip* -- a few
  small planes side by side, each padded with the pad value and widened to a
  whole number of strides -- turns the rows of small planes (7 x 7) into one
  long row and makes every window whole, so no window is clipped;
* everything else (3d, dilated, adaptive or large windows) loops over the
  real members of each window.

Positions computed from recorded winners or user indices are checked against
the plane before any write or read; kernels return how many failed the check
(the Python side raises), so no input a caller can build makes a kernel touch
memory outside its arrays.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from normlab.ops._threading import parallel_kernel
from normlab.ops.pooling.geometry import Axis, Windows

#: the kernel shapes (height, width) that get unrolled loops, compiled once each, for float32 (the training
#: dtype); every other shape, dilation, float64 (gradient checks) and nan="ignore" share the general loops
DENSE_KERNELS = ((1, 2), (1, 3), (2, 2), (3, 3))
#: planes narrower than this many windows are laid side by side in a strip of about STRIP_WINDOWS
STRIP_WINDOWS = 64
#: planes (or strips) per iteration of a kernel's parallel loop: scratch space is allocated once per block
BLOCK = 8


def winner_dtype(windows: Windows):
    """The smallest unsigned integer type that numbers every member of a window."""
    members = windows.members
    return np.uint8 if members <= 256 else np.uint16 if members <= 65536 else np.int64


def _dense(windows: Windows, dtype, ignore_nan: bool = False) -> bool:
    """2d sliding windows without dilation, of a shape in DENSE_KERNELS, on float32: the unrolled loops."""
    return (windows.is_sliding and dtype == np.float32 and not ignore_nan
            and windows.depth.size == 1 and windows.depth.kernel == 1
            and windows.height.step == 1 and windows.width.step == 1
            and (windows.height.kernel, windows.width.kernel) in DENSE_KERNELS)


class Strip(NamedTuple):
    """How dense windows are laid out: ``batch`` planes side by side, ``windows`` window slots per plane.

    Plane q of a strip occupies columns ``q * span .. (q + 1) * span - 1`` with
    ``span = windows * stride``: window slot t of the strip starts at column
    ``t * stride`` whatever the plane, so a strip row is one long row of
    windows. Slots past a plane's last window (``ow >= out_w``) are computed and
    dropped. ``direct``: one plane that needs no padding is read in place.
    """

    rows: tuple[int, ...]         # range(kernel_h) as a tuple (see _row helpers)
    cols: tuple[int, ...]
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    height: int                   # rows of the strip
    windows: int                  # window slots per plane
    batch: int                    # planes per strip
    direct: bool

    @property
    def span(self) -> int:
        return self.windows * self.stride_w

    def widen(self, per_window: np.ndarray, fill) -> np.ndarray:
        """A (..., out_w) array of per-window values as (..., batch * windows) strip slots."""
        slots = np.full(per_window.shape[:-1] + (self.windows,), fill, dtype=per_window.dtype)
        slots[..., :per_window.shape[-1]] = per_window
        return np.tile(slots, self.batch)


def _strip(windows: Windows) -> Strip:
    height, width = windows.height, windows.width
    pad_h, pad_w = -int(height.origin[0]), -int(width.origin[0])
    strip_height = (height.out - 1) * height.stride + height.kernel
    # whole strides per plane, enough for the last window's last member
    slots = width.out + max(0, -(-(width.kernel - width.stride) // width.stride))
    batch = max(1, STRIP_WINDOWS // slots) if slots < STRIP_WINDOWS // 4 else 1
    direct = (batch == 1 and pad_h == 0 and pad_w == 0 and strip_height <= height.size
              and (width.out - 1) * width.stride + width.kernel <= width.size)
    return Strip(tuple(range(height.kernel)), tuple(range(width.kernel)), height.stride, width.stride,
                 pad_h, pad_w, strip_height, slots, batch, direct)


def _first_member(axis: Axis) -> np.ndarray:
    """The member number of each window's first real member."""
    return (axis.start - axis.origin) // axis.step


def _member_range(axis: Axis):
    """(origin, first, stop, step): window o's real members are numbers first[o] .. stop[o] - 1, at origin[o] + m * step."""
    return axis.origin, _first_member(axis), (axis.end - 1 - axis.origin) // axis.step + 1, axis.step


def _as_2d(array: np.ndarray) -> np.ndarray:
    """A (planes, 1, H, W) array as (planes, H, W), for the dense 2d loops (a view: writes go through)."""
    return array.reshape(array.shape[0], array.shape[2], array.shape[3])


def extremum_forward(x: np.ndarray, windows: Windows, is_min: bool, ignore_nan: bool):
    """(y, winner): each window's max (min) of the (planes, D, H, W) array ``x`` and the member code of its winner."""
    planes = x.shape[0]
    depth, height, width = windows.depth, windows.height, windows.width
    y = np.empty((planes, depth.out, height.out, width.out), dtype=x.dtype)
    winner = np.empty(y.shape, dtype=winner_dtype(windows))
    # padding never wins: -inf for max, +inf for min; NaN when NaNs are skipped (they never win then)
    pad_value = x.dtype.type(np.nan if ignore_nan else (np.inf if is_min else -np.inf))
    sign = x.dtype.type(-1 if is_min else 1)
    work = x.size + 2 * y.size
    if _dense(windows, x.dtype, ignore_nan):
        strip = _strip(windows)
        first_col = _first_member(width) if strip.direct else strip.widen(_first_member(width), 0)
        _extremum_dense(_as_2d(x), _as_2d(y), _as_2d(winner), *strip[:6], strip.height, strip.windows, strip.batch,
                        strip.direct, _first_member(height), first_col, pad_value, sign, work=work)
    else:
        _extremum_general(x, y, winner, *_member_range(depth), *_member_range(height), *_member_range(width),
                          height.kernel, width.kernel, pad_value, sign, ignore_nan, work=work)
    return y, winner


def _member_offsets(windows: Windows, winner: np.ndarray):
    """(d, h, w): each winner's position along each axis, from its member code."""
    depth, height, width = windows.depth, windows.height, windows.width
    a, rest = np.divmod(winner.astype(np.int64), height.kernel * width.kernel)
    i, j = np.divmod(rest, width.kernel)
    return (depth.origin[:, None, None] + a * depth.step, height.origin[None, :, None] + i * height.step,
            width.origin[None, None, :] + j * width.step)


def winner_positions(windows: Windows, winner: np.ndarray) -> np.ndarray:
    """Each winner's flat position ``(d * H + h) * W + w`` in its plane (torch's indices), from its member code."""
    d, h, w = _member_offsets(windows, winner)
    return (d * windows.height.size + h) * windows.width.size + w


def scatter_to_winners(dy: np.ndarray, winner: np.ndarray, windows: Windows) -> np.ndarray:
    """dx with each output's dy added at its winner's position (a (planes, D, H, W) array)."""
    depth, height, width = windows.depth, windows.height, windows.width
    H, W = height.size, width.size
    a, rest = np.divmod(np.arange(windows.members), height.kernel * width.kernel)
    i, j = np.divmod(rest, width.kernel)
    table = (a * depth.step * H + i * height.step) * W + j * width.step
    dx = np.empty((dy.shape[0], depth.size * H * W), dtype=dy.dtype)
    refused = _scatter_to_winners(dy, winner, depth.origin * H * W, height.origin * W, width.origin, table, dx,
                                  work=dx.size + 2 * dy.size)
    if refused:
        raise ValueError(f"pooling backward: {refused} recorded winners lie outside their windows")
    return dx.reshape(dy.shape[0], depth.size, H, W)


def split_among_tied(dy: np.ndarray, x: np.ndarray, winner: np.ndarray, windows: Windows) -> np.ndarray:
    """dx with each output's dy shared equally among the members of its window tied with the winner."""
    dx = np.empty(x.shape, dtype=dy.dtype)
    _split_among_tied(dy, x, winner, *_member_range(windows.depth), *_member_range(windows.height),
                      *_member_range(windows.width), windows.height.kernel, windows.width.kernel, dx,
                      work=2 * x.size + dy.size)
    return dx


def _bounds(windows: Windows):
    """(start, end) of every axis: the real positions of each window (no dilation: average pooling)."""
    return tuple(bound for axis in (windows.depth, windows.height, windows.width) for bound in (axis.start, axis.end))


def mean_forward(x: np.ndarray, windows: Windows, divisor: np.ndarray) -> np.ndarray:
    """Each window's sum (padding as zeros) over its divisor, for the (planes, D, H, W) array ``x``."""
    y = np.empty((x.shape[0], windows.depth.out, windows.height.out, windows.width.out), dtype=x.dtype)
    if _dense(windows, x.dtype):
        strip = _strip(windows)
        # a dense window sums at most 9 values: float32 sums stay within a few roundings of exact
        divisor = divisor[0].astype(x.dtype)
        _mean_dense(_as_2d(x), _as_2d(y), *strip[:6], strip.height, strip.windows, strip.batch, strip.direct,
                    divisor if strip.direct else strip.widen(divisor, 1.0), work=x.size + y.size)
    else:
        _mean_general(x, y, *_bounds(windows), divisor, work=x.size + y.size)
    return y


def spread_mean(dy: np.ndarray, windows: Windows, divisor: np.ndarray) -> np.ndarray:
    """dx: each output's dy / divisor added to every real member of its window."""
    dx = np.empty((dy.shape[0], windows.depth.size, windows.height.size, windows.width.size), dtype=dy.dtype)
    divisor = divisor.astype(dy.dtype)        # small integers: exact; a float32 share stays float32, as torch
    # small planes (several to a strip) are faster one window at a time: no strip to fill and empty
    if _dense(windows, dy.dtype) and _strip(windows).batch == 1:
        strip = _strip(windows)
        _spread_mean_dense(_as_2d(dy), *strip[:6], strip.height, strip.windows, strip.direct,
                           divisor[0] if strip.direct else strip.widen(divisor[0], 1.0), _as_2d(dx),
                           work=dx.size + dy.size)
    else:
        _spread_mean_general(dy, *_bounds(windows), divisor, dx, work=dx.size + dy.size)
    return dx


def place_at_indices(x: np.ndarray, index: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """(y, refused): y[p, index[p, i]] = x[p, i] in planes of ``size`` zeros; refused counts bad indices."""
    y = np.empty((x.shape[0], size), dtype=x.dtype)
    refused = _place_at_indices(x, index, y, work=2 * x.size + y.size)
    return y, refused


def gather_at_indices(dy: np.ndarray, index: np.ndarray) -> np.ndarray:
    """dx[p, i] = dy[p, index[p, i]] (indices were checked when they were recorded)."""
    dx = np.empty(index.shape, dtype=dy.dtype)
    refused = _gather_at_indices(dy, index, dx, work=3 * index.size)
    if refused:
        raise ValueError(f"max_unpool backward: {refused} indices lie outside the output planes")
    return dx


# ------------------------------------------------------------ loops shared by the kernels

@njit(cache=True, inline="always")
def _blocks(count):
    """How many blocks of BLOCK items a kernel's parallel loop runs (fixed by the input, not the threads)."""
    return (count + BLOCK - 1) // BLOCK


@njit(cache=True, inline="always")
def _block_range(block, count):
    return range(block * BLOCK, min((block + 1) * BLOCK, count))


@njit(cache=True, inline="always")
def _fill_strip(strip, x, p0, count, pad_h, pad_w, span, pad_value):
    """Planes p0 .. p0+count-1 side by side: ``strip[r, q*span + c] = x[p0+q, r - pad_h, c - pad_w]``, padded."""
    H, W = x.shape[1], x.shape[2]
    inside = min(W, span - pad_w)                 # columns of a plane row that fit its block
    for q in range(count):
        plane = x[p0 + q]
        base = q * span
        for r in range(strip.shape[0]):
            h = r - pad_h
            if h < 0 or h >= H:
                for c in range(span):
                    strip[r, base + c] = pad_value
                continue
            for c in range(pad_w):
                strip[r, base + c] = pad_value
            for w in range(inside):               # a plain copy: vectorised
                strip[r, base + pad_w + w] = plane[h, w]
            for c in range(pad_w + inside, span):
                strip[r, base + c] = pad_value


@njit(cache=True, inline="always")
def _empty_strip(strip, dx, p0, count, pad_h, pad_w, span):
    """The reverse of _fill_strip: ``dx[p0+q, h, w] = strip[h + pad_h, q*span + w + pad_w]`` (0 where unreached)."""
    H, W = dx.shape[1], dx.shape[2]
    for q in range(count):
        plane = dx[p0 + q]
        for h in range(H):
            r = h + pad_h
            for w in range(W):
                c = w + pad_w
                plane[h, w] = strip[r, q * span + c] if r < strip.shape[0] and c < span else 0


@njit(cache=True, inline="always")
def _strip_extent(planes, batch, slots, stride, kernel_w):
    """(span, width, groups) of strips of ``batch`` planes: the last slot's window may reach past the planes."""
    span = slots * stride
    return span, batch * span + max(0, kernel_w - stride), (planes + batch - 1) // batch


@njit(cache=True, inline="always")
def _slots_to_planes(values, out, p0, count, slots):
    """``out[p0+q, oh, ow] = values[oh, q*slots + ow]``: a strip's window slots back to their planes."""
    for q in range(count):
        for oh in range(out.shape[1]):
            for ow in range(out.shape[2]):
                out[p0 + q, oh, ow] = values[oh, q * slots + ow]


# ------------------------------------------------------------ max / min forward

@njit(cache=True, inline="always")
def _extremum_row(source, row0, stride, rows, cols, first_code, first_col, pad_value, sign, y_row, winner_row):
    """One row of dense windows, window t's member (i, j) at source[row0 + i, t * stride + j]."""
    kh, kw = len(rows), len(cols)      # rows == range(kh), cols == range(kw): lengths known when compiling
    for t in range(y_row.shape[0]):
        col0 = t * stride
        best = pad_value
        code = first_code + first_col[t]
        for i in range(kh):            # unrolled; i and j are constants in each copy, so LLVM
            for j in range(kw):        # vectorises across t (stride is a literal in the common case)
                v = source[row0 + i, col0 + j]
                # torch: strictly better, or NaN (so the last NaN keeps the window)
                take = (v * sign > best * sign) | (v != v)
                best = v if take else best
                code = i * kw + j if take else code
        y_row[t] = best
        winner_row[t] = code


@njit(cache=True)
def _extremum_rows(source, stride_h, stride_w, rows, cols, first_row, first_col, pad_value, sign, y_rows,
                   winner_rows):
    """Every row of dense windows of one source (a plane read in place, or a strip)."""
    for oh in range(y_rows.shape[0]):
        first_code = first_row[oh] * len(cols)
        if stride_w == 2:              # a literal stride: the common case compiles to vector code
            _extremum_row(source, oh * stride_h, 2, rows, cols, first_code, first_col, pad_value, sign,
                          y_rows[oh], winner_rows[oh])
        else:
            _extremum_row(source, oh * stride_h, stride_w, rows, cols, first_code, first_col, pad_value, sign,
                          y_rows[oh], winner_rows[oh])


@parallel_kernel()
def _extremum_dense(x, y, winner, rows, cols, stride_h, stride_w, pad_h, pad_w, strip_height, slots, batch,
                    direct, first_row, first_col, pad_value, sign):
    """y = each dense window's max (sign = 1) or min (sign = -1), winner = its member code.

    Every window starts from (pad_value, its first real member): padding (-inf
    for max, +inf for min) never wins a strict comparison, so a window of -inf
    reports its first real member, as torch.
    Comparing ``v * sign`` makes min pooling max pooling of -x, exactly.
    """
    planes, out_h = x.shape[0], y.shape[1]
    span, strip_width, groups = _strip_extent(planes, batch, slots, stride_w, len(cols))
    for block in prange(_blocks(groups)):
        strip = np.empty((1, 1) if direct else (strip_height, strip_width), dtype=x.dtype)
        y_slots = np.empty((out_h, batch * slots), dtype=y.dtype)
        winner_slots = np.empty((out_h, batch * slots), dtype=winner.dtype)
        for group in _block_range(block, groups):
            p0 = group * batch
            if direct:                 # one plane read in place, its windows written in place
                _extremum_rows(x[p0], stride_h, stride_w, rows, cols, first_row, first_col, pad_value, sign,
                               y[p0], winner[p0])
                continue
            count = min(batch, planes - p0)
            _fill_strip(strip, x, p0, count, pad_h, pad_w, span, pad_value)
            if batch == 1:             # one padded plane: its windows go straight to y
                _extremum_rows(strip, stride_h, stride_w, rows, cols, first_row, first_col, pad_value, sign,
                               y[p0], winner[p0])
                continue
            _extremum_rows(strip, stride_h, stride_w, rows, cols, first_row, first_col, pad_value, sign,
                           y_slots, winner_slots)
            _slots_to_planes(y_slots, y, p0, count, slots)
            _slots_to_planes(winner_slots, winner, p0, count, slots)


@parallel_kernel()
def _extremum_general(x, y, winner, d_origin, d_first, d_stop, d_step, h_origin, h_first, h_stop, h_step,
                      w_origin, w_first, w_stop, w_step, kh, kw, pad_value, sign, ignore_nan):
    """As ``_extremum_dense``, looping over the real members of any windows (3d, dilated, adaptive, large).

    Member m of window o along an axis sits at ``origin[o] + m * step``; its real
    members are ``first[o] <= m < stop[o]`` (``_member_range``).
    """
    planes = x.shape[0]
    out_d, out_h, out_w = y.shape[1], y.shape[2], y.shape[3]
    for block in prange(_blocks(planes)):
        for plane in _block_range(block, planes):
            xp = x[plane]
            for od in range(out_d):
                for oh in range(out_h):
                    for ow in range(out_w):
                        best = pad_value
                        code = (d_first[od] * kh + h_first[oh]) * kw + w_first[ow]
                        found = False
                        for a in range(d_first[od], d_stop[od]):
                            d = d_origin[od] + a * d_step
                            for i in range(h_first[oh], h_stop[oh]):
                                h = h_origin[oh] + i * h_step
                                for j in range(w_first[ow], w_stop[ow]):
                                    v = xp[d, h, w_origin[ow] + j * w_step]
                                    if ignore_nan:
                                        take = (v == v) & ((not found) | (v * sign > best * sign))
                                        found = found | take
                                    else:
                                        take = (v * sign > best * sign) | (v != v)
                                    best = v if take else best
                                    code = (a * kh + i) * kw + j if take else code
                        y[plane, od, oh, ow] = best
                        winner[plane, od, oh, ow] = code


# ------------------------------------------------------------ max / min backward

@parallel_kernel()
def _scatter_to_winners(dy, winner, d_base, h_base, w_base, table, dx):
    """dx[plane] = 0, then dx[plane][d_base[od] + h_base[oh] + w_base[ow] + table[code]] += dy: returns the count refused.

    Zeroing each plane right before its scatter keeps it in cache.
    """
    planes, out_d, out_h, out_w = dy.shape
    size = dx.shape[1]
    refused = 0
    for block in prange(_blocks(planes)):
        for plane in _block_range(block, planes):
            flat = dx[plane]
            flat[:] = 0
            for od in range(out_d):
                for oh in range(out_h):
                    base = d_base[od] + h_base[oh]
                    for ow in range(out_w):
                        code = winner[plane, od, oh, ow]
                        position = base + w_base[ow] + (table[code] if code < table.shape[0] else -size - 1)
                        if 0 <= position < size:
                            flat[position] += dy[plane, od, oh, ow]
                        else:
                            refused += 1
    return refused


@njit(cache=True, inline="always")
def _clamp(value, low, stop):
    """``value`` moved into ``low .. stop - 1``."""
    return min(max(value, low), stop - 1)


@njit(cache=True, inline="always")
def _same(v, target, target_is_nan):
    """v equals the window's value (NaN counts as equal to NaN)."""
    return (v == target) | (target_is_nan & (v != v))


@parallel_kernel()
def _split_among_tied(dy, x, winner, d_origin, d_first, d_stop, d_step, h_origin, h_first, h_stop, h_step,
                      w_origin, w_first, w_stop, w_step, kh, kw, dx):
    """dx = each window's dy shared equally among its members equal to its value (NaN equal to NaN).

    The window's value is read back from x at the recorded winner (clamped into the window's real members).
    """
    planes = x.shape[0]
    out_d, out_h, out_w = dy.shape[1], dy.shape[2], dy.shape[3]
    for block in prange(_blocks(planes)):
        for plane in _block_range(block, planes):
            xp = x[plane]
            dxp = dx[plane]
            dxp[:, :, :] = 0
            for od in range(out_d):
                a0, a1 = d_first[od], d_stop[od]
                for oh in range(out_h):
                    i0, i1 = h_first[oh], h_stop[oh]
                    for ow in range(out_w):
                        j0, j1 = w_first[ow], w_stop[ow]
                        code = winner[plane, od, oh, ow]
                        a_win = _clamp(code // (kh * kw), a0, a1)
                        i_win = _clamp((code // kw) % kh, i0, i1)
                        j_win = _clamp(code % kw, j0, j1)
                        target = xp[d_origin[od] + a_win * d_step, h_origin[oh] + i_win * h_step,
                                    w_origin[ow] + j_win * w_step]
                        target_is_nan = target != target
                        winners = 0
                        for a in range(a0, a1):
                            for i in range(i0, i1):
                                for j in range(j0, j1):
                                    v = xp[d_origin[od] + a * d_step, h_origin[oh] + i * h_step,
                                           w_origin[ow] + j * w_step]
                                    winners += _same(v, target, target_is_nan)
                        share = dy[plane, od, oh, ow] / winners
                        for a in range(a0, a1):
                            d = d_origin[od] + a * d_step
                            for i in range(i0, i1):
                                h = h_origin[oh] + i * h_step
                                for j in range(j0, j1):
                                    w = w_origin[ow] + j * w_step
                                    if _same(xp[d, h, w], target, target_is_nan):
                                        dxp[d, h, w] += share


# ------------------------------------------------------------ average forward / backward

@njit(cache=True, inline="always")
def _mean_row(source, row0, stride, rows, cols, divisor_row, y_row):
    """One row of dense windows: each window's sum (in the data's dtype), over its divisor."""
    for t in range(y_row.shape[0]):
        col0 = t * stride
        total = source[row0, col0]
        for i in range(len(rows)):     # unrolled, as in _extremum_row
            for j in range(len(cols)):
                if i > 0 or j > 0:     # member (0, 0) started the sum (a constant test once unrolled)
                    total += source[row0 + i, col0 + j]
        y_row[t] = total / divisor_row[t]


@njit(cache=True, inline="always")
def _mean_rows(source, stride_h, stride_w, rows, cols, divisor, y_rows):
    """Every row of dense windows of one source (a plane read in place, or a strip)."""
    for oh in range(y_rows.shape[0]):
        if stride_w == 2:
            _mean_row(source, oh * stride_h, 2, rows, cols, divisor[oh], y_rows[oh])
        else:
            _mean_row(source, oh * stride_h, stride_w, rows, cols, divisor[oh], y_rows[oh])


@parallel_kernel()
def _mean_dense(x, y, rows, cols, stride_h, stride_w, pad_h, pad_w, strip_height, slots, batch, direct,
                divisor):
    """y = (sum of each dense window, padding as zeros) / divisor (divisor per strip slot unless direct)."""
    planes, out_h = x.shape[0], y.shape[1]
    span, strip_width, groups = _strip_extent(planes, batch, slots, stride_w, len(cols))
    for block in prange(_blocks(groups)):
        strip = np.empty((1, 1) if direct else (strip_height, strip_width), dtype=x.dtype)
        y_slots = np.empty((out_h, batch * slots), dtype=y.dtype)
        for group in _block_range(block, groups):
            p0 = group * batch
            if direct:
                _mean_rows(x[p0], stride_h, stride_w, rows, cols, divisor, y[p0])
                continue
            count = min(batch, planes - p0)
            _fill_strip(strip, x, p0, count, pad_h, pad_w, span, 0)
            if batch == 1:
                _mean_rows(strip, stride_h, stride_w, rows, cols, divisor, y[p0])
                continue
            _mean_rows(strip, stride_h, stride_w, rows, cols, divisor, y_slots)
            _slots_to_planes(y_slots, y, p0, count, slots)


@parallel_kernel()
def _mean_general(x, y, d_start, d_end, h_start, h_end, w_start, w_end, divisor):
    """As ``_mean_dense``, looping over each window's real members (3d, adaptive or large windows)."""
    planes = x.shape[0]
    out_d, out_h, out_w = y.shape[1], y.shape[2], y.shape[3]
    for block in prange(_blocks(planes)):
        for plane in _block_range(block, planes):
            xp = x[plane]
            for od in range(out_d):
                for oh in range(out_h):
                    for ow in range(out_w):
                        total = 0.0
                        for d in range(d_start[od], d_end[od]):
                            for h in range(h_start[oh], h_end[oh]):
                                for w in range(w_start[ow], w_end[ow]):
                                    total += xp[d, h, w]
                        y[plane, od, oh, ow] = total / divisor[od, oh, ow]


@njit(cache=True, inline="always")
def _spread_row(target, row0, stride, rows, cols, dy_row, divisor_row, spread):
    """Adds each window's dy / divisor to every member of a row of dense windows.

    The shares are first laid out along one row (``spread[t * stride + j] +=
    share``, one vector pass per column j), then that row is added to the
    kernel_h target rows the windows cover.
    """
    spread[:] = 0
    for j in range(len(cols)):
        for t in range(dy_row.shape[0]):
            spread[t * stride + j] += dy_row[t] / divisor_row[t]
    for i in range(len(rows)):
        target_row = target[row0 + i]
        for c in range(spread.shape[0]):
            target_row[c] += spread[c]


@njit(cache=True, inline="always")
def _spread_rows(target, stride_h, stride_w, rows, cols, dy_rows, divisor, spread):
    """Every row of dense windows into one target (a plane written in place, or a strip), zeroed first."""
    target[:, :] = 0
    for oh in range(dy_rows.shape[0]):
        if stride_w == 2:
            _spread_row(target, oh * stride_h, 2, rows, cols, dy_rows[oh], divisor[oh], spread)
        else:
            _spread_row(target, oh * stride_h, stride_w, rows, cols, dy_rows[oh], divisor[oh], spread)


@parallel_kernel()
def _spread_mean_dense(dy, rows, cols, stride_h, stride_w, pad_h, pad_w, strip_height, slots, direct, divisor,
                       dx):
    """dx = sum over the dense windows holding each element of dy / divisor (the padding's shares dropped).

    One plane at a time, spread into the plane itself or, when it is padded, into a padded copy.
    """
    planes = dy.shape[0]
    span, strip_width, _ = _strip_extent(planes, 1, slots, stride_w, len(cols))
    for block in prange(_blocks(planes)):
        strip = np.empty((1, 1) if direct else (strip_height, strip_width), dtype=dx.dtype)
        spread = np.empty(dx.shape[2] if direct else strip_width, dtype=dx.dtype)
        for plane in _block_range(block, planes):
            if direct:
                _spread_rows(dx[plane], stride_h, stride_w, rows, cols, dy[plane], divisor, spread)
            else:
                _spread_rows(strip, stride_h, stride_w, rows, cols, dy[plane], divisor, spread)
                _empty_strip(strip, dx, plane, 1, pad_h, pad_w, span)


@parallel_kernel()
def _spread_mean_general(dy, d_start, d_end, h_start, h_end, w_start, w_end, divisor, dx):
    """As ``_spread_mean_dense``, looping over each window's real members."""
    planes, out_d, out_h, out_w = dy.shape
    for block in prange(_blocks(planes)):
        for plane in _block_range(block, planes):
            dxp = dx[plane]
            dxp[:, :, :] = 0
            for od in range(out_d):
                for oh in range(out_h):
                    for ow in range(out_w):
                        share = dy[plane, od, oh, ow] / divisor[od, oh, ow]
                        for d in range(d_start[od], d_end[od]):
                            for h in range(h_start[oh], h_end[oh]):
                                for w in range(w_start[ow], w_end[ow]):
                                    dxp[d, h, w] += share


# ------------------------------------------------------------ max unpooling

@parallel_kernel()
def _place_at_indices(x, index, y):
    """y[plane] = 0, then y[plane, index[plane, i]] = x[plane, i] (in order: a repeated index keeps the last)."""
    planes, count = x.shape
    size = y.shape[1]
    refused = 0
    for block in prange(_blocks(planes)):
        for plane in _block_range(block, planes):
            y[plane] = 0
            for i in range(count):
                position = index[plane, i]
                if 0 <= position < size:
                    y[plane, position] = x[plane, i]
                else:
                    refused += 1
    return refused


@parallel_kernel()
def _gather_at_indices(dy, index, dx):
    """dx[plane, i] = dy[plane, index[plane, i]]."""
    planes, count = index.shape
    size = dy.shape[1]
    refused = 0
    for block in prange(_blocks(planes)):
        for plane in _block_range(block, planes):
            for i in range(count):
                position = index[plane, i]
                if 0 <= position < size:
                    dx[plane, i] = dy[plane, position]
                else:
                    dx[plane, i] = 0
                    refused += 1
    return refused
