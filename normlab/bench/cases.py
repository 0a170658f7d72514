"""The layers ``normlab bench`` times: every layout the normalization and pooling kernels meet, and convolutions.

Each case is a layer built the same way from normlab and from torch (same
constructor arguments) at one input shape. The shapes cover every layout:
one value per (sample, channel) (BatchNorm1d on (N, C)); few and many
channels; short and long rows; pooling windows that tile the input or
overlap it. ``--quick`` shrinks every shape (``quick_shape``) for a smoke
test that must only run.

Bytes that must move (the floor), for x of B bytes and y of b bytes::

    normalization  forward: read x, write y                        2B
                   backward: read dy and x, write dx                3B   (forward + backward: 5B)
    pooling        forward: read x, write y                         B + b
                   backward: read dy, write dx                      b + B
                   max/min also record each window's winner: at least one byte per output,
                   written in forward and read in backward          2 * (b / 4)
    convolution    compute-bound: no bandwidth floor (benchmarks/bench_conv.py gives the GEMM floor)

MinPool has no torch layer: torch's column times what a torch user writes, ``-max_pool(-x)``.

>>> [case.name for case in CASES][:3]
['BatchNorm1d', 'BatchNorm1d', 'BatchNorm2d']
>>> quick_shape((32, 64, 56, 56))
(4, 32, 6, 6)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["Case", "CASES", "quick_shape", "select"]


@dataclass(frozen=True)
class Case:
    """One benchmarked layer at one input shape.

    ``layer(nn, shape)`` builds it from a library's ``nn`` module (normlab's
    or torch's), ``floor_bytes(x_bytes, y_bytes)`` gives the bytes forward and
    forward + backward must move (None: compute-bound).
    """

    name: str
    shape: tuple
    layer: Callable
    floor_bytes: Callable | None

    def matches(self, terms: list[str]) -> bool:
        """True when a term (case-insensitive) occurs in the name; no terms: every case."""
        return not terms or any(term.lower() in self.name.lower() for term in terms)


def _normalization_bytes(x_bytes: int, y_bytes: int) -> tuple[int, int]:
    return 2 * x_bytes, 5 * x_bytes


def _pooling_bytes(winners: bool):
    def floor(x_bytes: int, y_bytes: int) -> tuple[int, int]:
        winner_bytes = y_bytes // 4 if winners else 0
        forward = x_bytes + y_bytes + winner_bytes
        return forward, forward + y_bytes + x_bytes + winner_bytes
    return floor


def _min_pool(nn, **config):
    """normlab's MinPool2d; for torch, -max_pool(-x) (torch has no min pooling)."""
    if hasattr(nn, "MinPool2d"):
        return nn.MinPool2d(**config)
    max_pool = nn.MaxPool2d(**config)
    return lambda x: -max_pool(-x)


def _normalization_cases() -> list[Case]:
    layers = {
        "BatchNorm1d": lambda nn, shape: nn.BatchNorm1d(shape[1]),
        "BatchNorm2d": lambda nn, shape: nn.BatchNorm2d(shape[1]),
        "GroupNorm(32)": lambda nn, shape: nn.GroupNorm(32, shape[1]),
        "InstanceNorm2d(affine)": lambda nn, shape: nn.InstanceNorm2d(shape[1], affine=True),
        "LayerNorm": lambda nn, shape: nn.LayerNorm(shape[-1]),
        "RMSNorm": lambda nn, shape: nn.RMSNorm(shape[-1]),
    }
    shapes = [
        ("BatchNorm1d", (4096, 1024)), ("BatchNorm1d", (256, 64)),
        ("BatchNorm2d", (32, 64, 56, 56)), ("BatchNorm2d", (64, 256, 14, 14)), ("BatchNorm2d", (256, 512, 7, 7)),
        ("GroupNorm(32)", (32, 64, 56, 56)), ("GroupNorm(32)", (8, 256, 7, 7)),
        ("InstanceNorm2d(affine)", (32, 64, 56, 56)), ("InstanceNorm2d(affine)", (8, 256, 7, 7)),
        ("LayerNorm", (64, 128, 768)), ("RMSNorm", (64, 128, 768)), ("LayerNorm", (8192, 64)),
    ]
    return [Case(name, shape, layers[name], _normalization_bytes) for name, shape in shapes]


def _pooling_cases() -> list[Case]:
    configs = {"2": dict(kernel_size=2), "3,2,1": dict(kernel_size=3, stride=2, padding=1)}
    cases = []
    for kind, shapes in (("2d", [(32, 64, 56, 56), (128, 256, 7, 7)]), ("1d", [(64, 128, 1000)])):
        for shape in shapes:
            for label, config in configs.items():
                cases.append(Case(f"MaxPool{kind}({label})", shape,
                                  lambda nn, _, kind=kind, config=config: getattr(nn, f"MaxPool{kind}")(**config),
                                  _pooling_bytes(winners=True)))
                cases.append(Case(f"AvgPool{kind}({label})", shape,
                                  lambda nn, _, kind=kind, config=config: getattr(nn, f"AvgPool{kind}")(**config),
                                  _pooling_bytes(winners=False)))
                if kind == "2d":
                    cases.append(Case(f"MinPool2d({label})", shape,
                                      lambda nn, _, config=config: _min_pool(nn, **config),
                                      _pooling_bytes(winners=True)))
    return cases


def _convolution_cases() -> list[Case]:
    return [
        Case("Conv2d 3x3", (16, 64, 28, 28), lambda nn, shape: nn.Conv2d(shape[1], shape[1], 3, padding=1), None),
        Case("Conv2d 1x1", (32, 256, 14, 14), lambda nn, shape: nn.Conv2d(shape[1], shape[1] // 4, 1), None),
    ]


#: Every case, in the order of the table.
CASES = _normalization_cases() + _pooling_cases() + _convolution_cases()


def quick_shape(shape: tuple) -> tuple:
    """A tiny shape of the same layout: at most 4 samples (16 rows of a 2-D input), 32 channels, 6 or 16 values."""
    caps = {2: (16, 32), 3: (4, 32, 16), 4: (4, 32, 6, 6)}[len(shape)]
    return tuple(min(size, cap) for size, cap in zip(shape, caps))


def select(terms: list[str]) -> list[Case]:
    """The cases whose names contain one of ``terms`` (case-insensitive; no terms: all)."""
    return [case for case in CASES if case.matches(terms)]
