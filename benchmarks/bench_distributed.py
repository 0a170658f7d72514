"""Data-parallel speed: a CNN training step on 1 and 2 processes, allreduce vs message size, SyncBN's overhead.

    python benchmarks/bench_distributed.py [--repeat 20] [--quick]

The script starts itself under ``mpiexec`` (``normlab[dist]``) once per
configuration and prints three tables:

1. A CNN training step (conv-BN-ReLU-pool twice, then Linear; SGD; float32)
   under weak scaling: the per-process batch stays fixed, so 2 processes do
   twice the work of 1 per step. normlab's DistributedDataParallel next to
   torch's (gloo backend, same processes, same thread count, interleaved
   step by step); efficiency = throughput(P) / (P x throughput(1 process,
   1 thread)). torch has no CPU SyncBatchNorm, so its sync-batch cell is empty.
2. ``all_reduce`` (SUM, float32, in place) on 2 processes against torch's
   gloo all_reduce, by message size; GB/s is the algorithm bandwidth
   (bytes / time), "% copy" relates it to this machine's copy bandwidth.
3. SyncBatchNorm against BatchNorm2d, forward + backward, per process input
   fixed: what the synchronisation (one allgather, one allreduce, and
   SyncBatchNorm's own NumPy statistics) costs.

A step's time is the slowest rank's (a MAX allreduce of each rank's time),
median over ``--repeat`` steps after warm-up, by the wall clock: a CPU clock
would not see gloo's background threads (torch) while it counts MPI's
spinning waits (ours), so it cannot compare the two.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))  # normlab from this checkout when run as a script

CNN_BATCH = 32            # per process (weak scaling)
IMAGE = (3, 32, 32)
SYNC_BN_SHAPE = (16, 64, 28, 28)
ALLREDUCE_BYTES = [2 ** k for k in range(10, 27, 2)]  # 1 KiB .. 64 MiB


# ----------------------------------------------------------------------------
# Worker: one process of an mpiexec job
# ----------------------------------------------------------------------------

def normlab_cnn(norm: str):
    import normlab.nn as nn

    bn = nn.SyncBatchNorm if norm == "sync-batch" else nn.BatchNorm2d
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), bn(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), bn(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


def torch_cnn():
    import torch.nn as tnn

    return tnn.Sequential(tnn.Conv2d(3, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Conv2d(16, 32, 3, padding=1), tnn.BatchNorm2d(32), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(32 * 8 * 8, 10))


class Clock:
    """Times a callable on every rank and keeps the slowest rank's time of each call."""

    def __init__(self, dist):
        self.dist = dist

    def __call__(self, f) -> float:
        self.dist.barrier()
        start = time.perf_counter()
        f()
        elapsed = np.array([time.perf_counter() - start])
        self.dist.all_reduce(elapsed, self.dist.ReduceOp.MAX)
        return float(elapsed[0])


def worker(args) -> None:
    import normlab  # before torch: normlab then sets up its threads its own way (see ops/_threading.py)
    import normlab.distributed as dist
    import normlab.nn.functional as F
    import torch
    import torch.distributed as tdist
    import torch.nn.functional as TF
    from normlab.bench.timing import interleaved
    from normlab.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank, world_size=world)
    torch.set_num_threads(args.threads)
    normlab.set_num_threads(args.threads)
    clock = Clock(dist)
    rng = np.random.default_rng(rank)
    result = {"world": world, "threads": args.threads}

    # 1. CNN training step, weak scaling
    x = rng.standard_normal((CNN_BATCH, *IMAGE)).astype(np.float32)
    y = rng.integers(0, 10, CNN_BATCH)
    runs = {}
    for norm in ("batch", "sync-batch"):
        normlab.manual_seed(0)
        model = normlab_cnn(norm)
        model = DDP(model) if world > 1 else model
        optimizer = normlab.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step(model=model, optimizer=optimizer):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        runs[f"ours {norm}"] = step
    torch.manual_seed(0)
    tmodel = torch_cnn()
    tmodel = torch.nn.parallel.DistributedDataParallel(tmodel) if world > 1 else tmodel
    toptimizer = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step():
        loss = TF.cross_entropy(tmodel(tx), ty)
        toptimizer.zero_grad()
        loss.backward()
        toptimizer.step()

    runs["torch batch"] = torch_step
    result["cnn"] = interleaved(runs, args.repeat, clock=clock)

    if world > 1:
        # 2. allreduce vs message size
        result["allreduce"] = {}
        for nbytes in ALLREDUCE_BYTES if not args.quick else ALLREDUCE_BYTES[::2]:
            a = np.ones(nbytes // 4, dtype=np.float32)
            t = torch.ones(nbytes // 4)
            repeat = max(5, min(200, int(2e8 // nbytes)))
            result["allreduce"][nbytes] = interleaved(
                {"ours": lambda: dist.all_reduce(a), "torch": lambda: tdist.all_reduce(t)}, repeat, clock=clock)

    # 3. SyncBatchNorm against BatchNorm2d, forward + backward
    import normlab.nn as nn

    xs = rng.standard_normal(SYNC_BN_SHAPE).astype(np.float32)
    dys = rng.standard_normal(SYNC_BN_SHAPE).astype(np.float32)
    layers = {"BatchNorm2d": nn.BatchNorm2d(SYNC_BN_SHAPE[1]), "SyncBatchNorm": nn.SyncBatchNorm(SYNC_BN_SHAPE[1])}

    def forward_backward(layer):
        xt = normlab.tensor(xs, requires_grad=True)
        layer(xt).backward(dys)

    result["sync_bn"] = interleaved({name: (lambda layer=layer: forward_backward(layer))
                                            for name, layer in layers.items()}, args.repeat, clock=clock)
    if rank == 0:
        Path(args.out).write_text(json.dumps(result))
    tdist.destroy_process_group()
    dist.destroy_process_group()


# ----------------------------------------------------------------------------
# Driver: start the configurations, print the tables
# ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, threads: int, args) -> dict:
    from normlab.distributed.launch import mpiexec_command

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = mpiexec_command(nproc, [sys.executable, str(HERE), "--worker", "--threads", str(threads),
                                          "--port", str(free_port()), "--out", str(out),
                                          "--repeat", str(args.repeat)] + (["--quick"] if args.quick else []))
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        subprocess.run(command, env=env, check=True, stdin=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="fewer message sizes")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from normlab.bench.timing import copy_bandwidth

    cores = os.cpu_count()
    configurations = [(1, 1), (1, 2), (2, 1)]  # (processes, threads per process)
    results = {config: launch(*config, args) for config in configurations}
    print(f"{cores} cores; float32; median of {args.repeat} steps (slowest rank), ours and torch interleaved")

    print(f"\n1. CNN training step, {CNN_BATCH} images {IMAGE} per process (weak scaling)")
    header = (f"{'procs x threads':<16}{'global batch':>13}{'norm':>12}{'ours ms':>9}{'torch ms':>10}{'ratio':>7}"
              f"{'ours img/s':>11}{'efficiency':>11}")
    print(header + "\n" + "-" * len(header))
    base = {norm: CNN_BATCH / results[(1, 1)]["cnn"][f"ours {norm}"] for norm in ("batch", "sync-batch")}
    for (procs, threads), result in results.items():
        for norm in ("batch", "sync-batch"):
            ours = result["cnn"][f"ours {norm}"]
            theirs = result["cnn"]["torch batch"] if norm == "batch" else None
            throughput = procs * CNN_BATCH / ours
            print(f"{f'{procs} x {threads}':<16}{procs * CNN_BATCH:>13}{norm:>12}{ours * 1e3:>9.1f}"
                  + (f"{theirs * 1e3:>10.1f}{ours / theirs:>7.2f}" if theirs else f"{'-':>10}{'-':>7}")
                  + f"{throughput:>11.0f}{throughput / (procs * base[norm]):>11.2f}")

    two = results[(2, 1)]
    bandwidth = copy_bandwidth(max(ALLREDUCE_BYTES), 5)
    print(f"\n2. all_reduce (SUM, float32) on 2 processes x 1 thread; copy bandwidth {bandwidth / 1e9:.1f} GB/s")
    header = f"{'bytes':>10}{'ours us':>10}{'torch us':>10}{'ratio':>7}{'ours GB/s':>10}{'% copy':>8}"
    print(header + "\n" + "-" * len(header))
    for nbytes, times in two["allreduce"].items():
        ours, theirs = times["ours"], times["torch"]
        print(f"{int(nbytes):>10}{ours * 1e6:>10.1f}{theirs * 1e6:>10.1f}{ours / theirs:>7.2f}"
              f"{int(nbytes) / ours / 1e9:>10.2f}{100 * int(nbytes) / ours / bandwidth:>7.1f}%")

    print(f"\n3. SyncBatchNorm vs BatchNorm2d, forward + backward, {SYNC_BN_SHAPE} per process "
          "(torch has no CPU SyncBatchNorm)")
    header = f"{'procs x threads':<16}{'BatchNorm2d ms':>15}{'SyncBatchNorm ms':>17}{'overhead ms':>12}{'ratio':>7}"
    print(header + "\n" + "-" * len(header))
    for (procs, threads), result in results.items():
        bn, sync = result["sync_bn"]["BatchNorm2d"], result["sync_bn"]["SyncBatchNorm"]
        print(f"{f'{procs} x {threads}':<16}{bn * 1e3:>15.2f}{sync * 1e3:>17.2f}{(sync - bn) * 1e3:>12.2f}"
              f"{sync / bn:>7.2f}")


if __name__ == "__main__":
    main()
