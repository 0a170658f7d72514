"""Small-model training steps: normlab vs PyTorch CPU at 1 thread, 2 threads and the default environment.

One SGD step (forward, cross-entropy, backward, optimizer step), float32:

* ``mlp-<norm>``: a 3 x 100 sigmoid MLP, input 40, batch 60, 10 classes, with
  ``<norm>`` after each hidden Linear: none, BatchNorm1d, LayerNorm,
  GroupNorm(4), RMSNorm, BatchRenorm1d (torch has no batch renorm: its column
  is torch's BatchNorm1d, the closest layer);
* ``cnn``: conv3x3(1->16)-BN-ReLU-maxpool2 -> conv3x3(16->32)-BN-ReLU-maxpool2
  -> Linear(32*7*7, 10) on 1 x 28 x 28, batch 64.

Every configuration runs in its own subprocess, so the threading layer and
the environment are fresh: ``1`` and ``2`` call ``normlab.set_num_threads(n)``
and ``torch.set_num_threads(n)`` in it; ``default`` calls neither (what a user
gets). Ours and torch's steps are timed interleaved, in short blocks, after a
warm-up (compilation excluded); the table shows medians per step. ``--clock
cpu`` times with the process's CPU clock instead of the wall clock: at one
thread it leaves out the time a busy machine gives to other processes (with
more threads it adds up every thread's time, spinning included).

    python benchmarks/bench_small.py [--configs 1,2,default] [--models mlp-none,mlp-batch,cnn] [--steps 300]
                                     [--clock wall|cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

MLP_NORMS = ("none", "batch", "layer", "group", "rms", "renorm")
MODELS = tuple(f"mlp-{norm}" for norm in MLP_NORMS) + ("cnn",)
BLOCK = 10  # steps per interleaved block


def _mlp(nn, norm: str, torch_side: bool):
    layers, features = [], 40
    for _ in range(3):
        layers.append(nn.Linear(features, 100))
        if norm == "batch" or (norm == "renorm" and torch_side):
            layers.append(nn.BatchNorm1d(100))
        elif norm == "renorm":
            layers.append(nn.BatchRenorm1d(100))
        elif norm == "layer":
            layers.append(nn.LayerNorm(100))
        elif norm == "group":
            layers.append(nn.GroupNorm(4, 100))
        elif norm == "rms":
            layers.append(nn.RMSNorm(100))
        layers.append(nn.Sigmoid())
        features = 100
    layers.append(nn.Linear(features, 10))
    return nn.Sequential(*layers)


def _cnn(nn):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def _data(model: str):
    rng = np.random.default_rng(0)
    if model == "cnn":
        x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, size=64)
    else:
        x = rng.standard_normal((60, 40)).astype(np.float32)
        y = rng.integers(0, 10, size=60)
    return x, y


def _step_functions(model: str):
    """(ours, torch): callables that each run one training step on the same data and weights."""
    import torch

    import normlab
    import normlab.nn as nn
    import normlab.nn.functional as F

    x, y = _data(model)
    norm = model.split("-", 1)[1] if model.startswith("mlp") else None
    theirs = _cnn(torch.nn) if norm is None else _mlp(torch.nn, norm, torch_side=True)
    ours = _cnn(nn) if norm is None else _mlp(nn, norm, torch_side=False)
    state = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state)  # our BatchRenorm1d has BatchNorm1d's parameters and buffers
    ours_opt = normlab.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    torch_opt = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)
    xn, yn = normlab.tensor(x), y
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def ours_step():
        ours_opt.zero_grad()
        loss = F.cross_entropy(ours(xn), yn)
        loss.backward()
        ours_opt.step()

    def torch_step():
        torch_opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs(xt), yt)
        loss.backward()
        torch_opt.step()

    return ours_step, torch_step


def _worker(config: str, models: list[str], steps: int, clock) -> dict:
    import numba
    import torch

    import normlab

    if config != "default":
        normlab.set_num_threads(int(config))
        torch.set_num_threads(int(config))
    results = {"config": config, "numba_threads": numba.get_num_threads(), "torch_threads": torch.get_num_threads(),
               "normlab_threads": normlab.get_num_threads(), "models": {}}
    for model in models:
        ours_step, torch_step = _step_functions(model)
        for _ in range(20):  # warm-up: compile, fill caches
            ours_step()
            torch_step()
        ours_times, torch_times = [], []
        for _ in range(max(1, steps // BLOCK)):
            for step, times in ((ours_step, ours_times), (torch_step, torch_times)):
                for _ in range(BLOCK):
                    t0 = clock()
                    step()
                    times.append(clock() - t0)
        results["models"][model] = {"ours_ms": 1e3 * float(np.median(ours_times)),
                                    "torch_ms": 1e3 * float(np.median(torch_times))}
    try:
        results["threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel kernel ran
        results["threading_layer"] = "none launched"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="1,2,default", help="comma-separated: thread counts and/or 'default'")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per side and model")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = args.models.split(",")
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {MODELS}")
    if args.worker:
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        print(json.dumps(_worker(args.worker, models, args.steps, clock)))
        return

    print(f"one SGD step, float32, median of {args.steps} interleaved steps per side, {args.clock} clock; "
          f"load average {os.getloadavg()[0]:.1f}")
    header = f"{'config':<10}{'model':<24}{'ours ms':>9}{'torch ms':>10}{'ratio':>8}"
    for config in args.configs.split(","):
        command = [sys.executable, __file__, "--worker", config, "--models", args.models, "--steps", str(args.steps),
                   "--clock", args.clock]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{config}: worker failed\n{done.stderr}")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"\n{config}: normlab threads {result['normlab_threads']} (numba {result['numba_threads']}, "
              f"layer {result['threading_layer']}), torch threads {result['torch_threads']}")
        print(header)
        print("-" * len(header))
        for model, row in result["models"].items():
            label = model + (" (torch BN)" if model == "mlp-renorm" else "")
            print(f"{config:<10}{label:<24}{row['ours_ms']:>9.3f}{row['torch_ms']:>10.3f}"
                  f"{row['ours_ms'] / row['torch_ms']:>8.2f}")


if __name__ == "__main__":
    main()
