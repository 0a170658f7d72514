"""Where pooling windows lie: the one definition of a window and of average pooling's divisor.

Along one spatial axis of size ``L`` with kernel ``k``, stride ``s``, padding
``p`` and dilation ``d`` (torch's rules):

    out = floor((L + 2p - d(k-1) - 1 [+ s - 1 if ceil_mode]) / s) + 1
    ceil_mode: drop the last window when it would start in the right padding,
               i.e. when (out - 1) * s >= L + p.

Window ``o`` has members at ``origin[o] + j*d`` for ``j = 0 .. k-1`` with
``origin[o] = o*s - p``; members outside ``[0, L)`` are padding: -inf for max
pooling (it never wins), +inf for min pooling, zeros for average pooling.
Average pooling divides by the window's padded extent cut at ``L + p`` (the
part of a ceil_mode window past the right padding never counts), or, without
``count_include_pad``, by its real members only. A 2d or 3d window is the
product of its axes' windows, so its divisor is the product of theirs. Padding
may be at most half the (undilated) kernel, as torch requires.

torch's adaptive windows: output ``i`` of ``out`` covers ``floor(i L / out)``
up to ``ceil((i + 1) L / out) - 1`` (step 1, no padding).

One deliberate difference from torch: with dilation a window can skip over
every real element and lie entirely in the padding (e.g. L=2, k=2, d=3, p=1).
torch then reports -inf with an index outside the window, and its backward
writes outside the input; here it is a ValueError naming the sizes.

One refusal of torch's is not kept: torch's avg_pool3d (not its 1d or 2d
pools) refuses an input smaller than the kernel even where padding makes the
windows fit; here the one window rule above holds in every dimension.
"""
from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import numpy as np

from normlab._checks import tuple_of


class Axis(NamedTuple):
    """The windows along one spatial axis.

    Member ``j`` (``0 <= j < kernel``) of window ``o`` sits at
    ``origin[o] + j * step``; it is real when inside ``[start[o], end[o])``,
    padding otherwise. ``start[o]`` is the first real member (so
    ``(start[o] - origin[o]) / step`` is its member number), ``end[o]`` one past
    the last real position. ``divisor[o]`` is average pooling's count along
    this axis. An adaptive axis has step 1, ``origin == start`` and
    ``kernel`` = its widest window.
    """

    size: int
    kernel: int
    stride: int                 # 0 for adaptive windows (their origins are not evenly spaced)
    step: int
    origin: np.ndarray
    start: np.ndarray
    end: np.ndarray
    divisor: np.ndarray

    @property
    def out(self) -> int:
        return self.origin.shape[0]

    def membership(self) -> np.ndarray:
        """member[o, i]: input position ``i`` is a real member of window ``o`` (for pictures and tests)."""
        i = np.arange(self.size)[None, :]
        start, end = self.start[:, None], self.end[:, None]
        return (i >= start) & (i < end) & ((i - start) % self.step == 0)


class Windows(NamedTuple):
    """The windows of a 3d pool, one ``Axis`` per spatial axis.

    A 2d pool is a 3d pool of depth 1 and a 1d pool one of height 1 too: the
    missing leading axes are flat (size, kernel and output 1), so one set of
    loops serves every dimension.
    """

    depth: Axis
    height: Axis
    width: Axis
    spatial_dims: int           # 1, 2 or 3: how many of the axes the caller's input has

    @property
    def axes(self) -> tuple[Axis, ...]:
        """The caller's spatial axes, outermost first."""
        return (self.depth, self.height, self.width)[3 - self.spatial_dims:]

    @property
    def input_size(self) -> tuple[int, ...]:
        return tuple(axis.size for axis in self.axes)

    @property
    def output_size(self) -> tuple[int, ...]:
        return tuple(axis.out for axis in self.axes)

    @property
    def is_sliding(self) -> bool:
        """Evenly spaced windows of one kernel shape (not adaptive ones)."""
        return all(axis.stride > 0 for axis in (self.depth, self.height, self.width))

    @property
    def members(self) -> int:
        """How many members a window has (its padded, dilated kernel volume)."""
        return self.depth.kernel * self.height.kernel * self.width.kernel

    def divisors(self, divisor_override: int | None = None) -> np.ndarray:
        """Average pooling's divisor of every window, shape (out_d, out_h, out_w): the product of the axes' counts."""
        shape = (self.depth.out, self.height.out, self.width.out)
        if divisor_override is not None:
            return np.full(shape, float(divisor_override))
        return (self.depth.divisor[:, None, None] * self.height.divisor[None, :, None]
                * self.width.divisor[None, None, :]).astype(np.float64)


_FLAT_AXIS = Axis(1, 1, 1, 1, *(np.zeros(1, np.int64),) * 2, np.ones(1, np.int64), np.ones(1, np.int64))


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """torch's pooling output length along one axis (may be < 1: the caller raises)."""
    numerator = size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1  # floor division rounds toward -inf, as torch's div_rtn
    # A last window that would start in the right padding covers no input: drop it.
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def fmt(values: tuple[int, ...]):
    """One value for a 1d pool's messages, the tuple for a 2d or 3d pool's."""
    return values[0] if len(values) == 1 else values


def normalize_stride(name: str, n: int, kernel: tuple[int, ...], stride) -> tuple[int, ...]:
    """torch's rule: a stride of None (or an empty tuple) is the kernel size."""
    if stride is None or (not isinstance(stride, numbers.Integral) and len(tuple(stride)) == 0):
        return kernel
    return tuple_of(name, "stride", stride, n, minimum=1)


def normalize_pool_args(name: str, n: int, kernel_size, stride, padding, dilation=1):
    """Expand int-or-tuple arguments into n-tuples and check their ranges (stride None/empty = kernel)."""
    kernel = tuple_of(name, "kernel_size", kernel_size, n, minimum=1)
    stride = normalize_stride(name, n, kernel, stride)
    padding = tuple_of(name, "padding", padding, n, minimum=0)
    dilation = tuple_of(name, "dilation", dilation, n, minimum=1)
    for k, p in zip(kernel, padding):
        # torch's rule compares with the kernel size itself, not the dilated extent.
        if p > k // 2:
            raise ValueError(
                f"{name}: padding should be at most half of kernel_size, got padding={fmt(padding)} "
                f"and kernel_size={fmt(kernel)}"
            )
    return kernel, stride, padding, dilation


def _sliding_axis(name, axis_name, L, k, s, p, d, out, count_include_pad) -> Axis:
    origin = np.arange(out, dtype=np.int64) * s - p           # member 0, possibly in the left padding
    end = np.minimum(origin + (k - 1) * d + 1, L)             # one past the last in-bounds position
    # Skip the left padding in whole dilation steps so that start is a real member.
    start = origin + np.where(origin < 0, (-origin + d - 1) // d, 0) * d
    if np.any(start >= end):
        # Only possible with dilation: every member of the window lies in the padding.
        bad = int(np.argmax(start >= end))
        raise ValueError(
            f"{name}: window {bad} along {axis_name} lies entirely in the padding "
            f"(input size {L}, kernel_size={k}, dilation={d}, padding={p}, stride={s}); reduce padding or dilation"
        )
    # The divisor (average pooling has no dilation): the padded window cut at L + p, or its real part.
    padded = np.minimum(origin + k, L + p) - origin
    inside = np.minimum(origin + k, L) - np.maximum(origin, 0)
    return Axis(L, k, s, d, origin, start, end, padded if count_include_pad else inside)


@functools.lru_cache(maxsize=256)   # a training loop asks for the same windows every step; nothing mutates them
def pool_windows(name: str, input_size: tuple[int, ...], kernel, stride, padding, dilation,
                 ceil_mode: bool, count_include_pad: bool = True) -> Windows:
    """The windows of a sliding pool over ``input_size``; raises ValueError when the output would be empty."""
    n = len(input_size)
    out_size = tuple(pool_output_size(L, k, s, p, d, ceil_mode)
                     for L, k, s, p, d in zip(input_size, kernel, stride, padding, dilation))
    if any(o < 1 for o in out_size):
        raise ValueError(
            f"{name}: input of spatial size {fmt(tuple(input_size))} is too small for kernel_size={fmt(kernel)} "
            f"(dilation={fmt(dilation)}, padding={fmt(padding)}, stride={fmt(stride)}): "
            f"the output size would be {fmt(out_size)}"
        )
    names = ("length",) if n == 1 else ("depth", "height", "width")[3 - n:]
    axes = [_sliding_axis(name, *args, count_include_pad)
            for args in zip(names, input_size, kernel, stride, padding, dilation, out_size)]
    return Windows(*[_FLAT_AXIS] * (3 - n), *axes, n)


@functools.lru_cache(maxsize=256)
def adaptive_windows(input_size: tuple[int, ...], output_size: tuple[int, ...]) -> Windows:
    """torch's adaptive windows: output i covers floor(i*L/out) .. ceil((i+1)*L/out) - 1."""
    axes = []
    for L, out in zip(input_size, output_size):
        i = np.arange(out, dtype=np.int64)
        start = (i * L) // out
        end = ((i + 1) * L + out - 1) // out
        axes.append(Axis(L, int((end - start).max()), 0, 1, start, start, end, end - start))
    return Windows(*[_FLAT_AXIS] * (3 - len(axes)), *axes, len(axes))


def normalize_adaptive_output_size(name: str, output_size, input_size: tuple[int, ...]) -> tuple[int, ...]:
    """An int or a tuple with None entries (None keeps that input size), checked positive."""
    n = len(input_size)
    if output_size is None or isinstance(output_size, numbers.Integral):
        values = (output_size,) * n
    else:
        try:
            values = tuple(output_size)
        except TypeError:
            raise TypeError(f"{name}: expected output_size to be an int or a tuple of {n}, got {output_size!r}") from None
        if len(values) != n:
            raise ValueError(f"{name}: expected output_size to be an int or a tuple of {n}, got {output_size!r}")
    result = []
    for v, L in zip(values, input_size):
        if v is None:
            result.append(L)
        elif isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0:
            result.append(int(v))
        else:
            raise ValueError(f"{name}: expected output_size entries to be positive ints or None, got {output_size!r}")
    return tuple(result)


def unpool_output_size(name, input_spatial, kernel, stride, padding, output_size):
    """torch's ``_unpool_output_size``: the default size, or a checked explicit one."""
    n = len(kernel)
    default = tuple((L - 1) * s + k - 2 * p for L, k, s, p in zip(input_spatial, kernel, stride, padding))
    if output_size is None:
        size = default
    else:
        size = tuple(output_size)
        if len(size) == n + 2:
            size = size[2:]
        if len(size) != n:
            raise ValueError(f"{name}: expected output_size with {n} or {n + 2} elements, got {tuple(output_size)}")
        for d in range(n):
            low, high = default[d] - stride[d], default[d] + stride[d]
            if not low < size[d] < high:
                raise ValueError(
                    f"{name}: invalid output_size {tuple(output_size)} (dim {d} must be between {low} and {high}, exclusive)"
                )
        size = tuple(int(v) for v in size)
    if any(v < 1 for v in size):
        raise ValueError(f"{name}: the output size would be {fmt(size)}; it must be positive")
    return size


def as_planes(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` as contiguous (planes, D, H, W): the leading axes flattened, missing spatial axes of size 1."""
    spatial = (1,) * (3 - n) + x.shape[len(x.shape) - n:]
    return np.ascontiguousarray(x).reshape((-1,) + spatial)
