"""One training step of a small CNN, normlab's or torch's, and the peak memory it needs.

The network (issue 10's): Conv2d(1, 16, 3, padding=1) - BatchNorm2d - ReLU -
MaxPool2d(2) - Conv2d(16, 32, 3, padding=1) - BatchNorm2d - ReLU -
MaxPool2d(2) - Flatten - Linear(32 * 7 * 7, 10); one step is forward,
cross-entropy, backward and an SGD step (momentum 0.9), on a float32 batch
of 128 x 1 x 28 x 28. With torch installed both libraries start from the
same weights and data.

Peak memory: measured in a fresh subprocess per library, the same way for
both. After two warm-up steps (so that optimizer state, compiled kernels
and the allocator's first growth are behind us), the kernel's high-water
mark of resident memory is reset (``/proc/self/clear_refs``, value 5) and
the resident size read; after one more step, the high-water mark (VmHWM)
minus that baseline is the step's peak: every byte the step had resident at
once beyond what it started with (activations, gradients, temporaries).
The subprocesses run with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc
hands large blocks back to the system when freed (otherwise a warm heap
hides the step's allocations from the resident size). For ours,
tracemalloc's peak over the step (NumPy's arrays) is measured as a cross-check.

    python -m normlab.bench.cnn --child normlab --threads 1 [--batch 128]   (prints the child's JSON)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

__all__ = ["BATCH", "CLASSES", "build", "set_threads", "peak_memory"]

BATCH, CLASSES = 128, 10


def _torch():
    """torch, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def build(library: str, batch: int = BATCH, seed: int = 0):
    """A function running one training step of ``library``'s ('normlab' or 'torch') CNN on a fixed batch."""
    torch = _torch()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=batch)
    if torch is not None:
        torch.manual_seed(seed)
        reference = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, CLASSES))
    if library == "torch":
        optimizer = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9)
        xt, yt = torch.tensor(x), torch.tensor(y)

        def torch_step():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(reference(xt), yt)
            loss.backward()
            optimizer.step()
            return loss

        return torch_step
    import normlab
    import normlab.nn as nn
    import normlab.nn.functional as F

    normlab.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, CLASSES))
    if torch is not None:
        model.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    optimizer = normlab.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xn = normlab.tensor(x)

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xn), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def set_threads(threads: int) -> None:
    """The same thread count for normlab (Numba and BLAS) and, when installed, torch."""
    import normlab

    normlab.set_num_threads(threads)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(threads)


def _status(field: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _child(library: str, threads: int, batch: int) -> dict:
    """Measure the peak memory of one step in this (fresh) process."""
    import tracemalloc

    set_threads(threads)
    step = build(library, batch)
    step()
    step()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")  # the high-water mark of resident memory restarts from the current size
    baseline = _status("VmRSS")
    tracemalloc.start()
    step()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"rss_peak": _status("VmHWM") - baseline, "traced_peak": traced_peak}


def peak_memory(library: str, threads: int, batch: int = BATCH) -> dict | None:
    """{"rss_peak", "traced_peak"} bytes of one step of ``library``'s CNN, from a fresh subprocess.

    None where it cannot be measured: no ``/proc/self/clear_refs`` (not
    Linux), or the library is not installed.
    """
    if not os.path.exists("/proc/self/clear_refs") or (library == "torch" and _torch() is None):
        return None
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    command = [sys.executable, "-m", "normlab.bench.cnn", "--child", library, "--threads", str(threads),
               "--batch", str(batch)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["normlab", "torch"], required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=BATCH)
    args = parser.parse_args(argv)
    print(json.dumps(_child(args.child, args.threads, args.batch)))


if __name__ == "__main__":
    main()
