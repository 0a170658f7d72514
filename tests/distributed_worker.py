"""The per-process half of tests/test_distributed.py: run under ``mpiexec -n N``.

    mpiexec -n 2 python tests/distributed_worker.py OUT_DIR scenario...

Each scenario writes ``OUT_DIR/<scenario>-rank<r>.npz``; the test (a single
process) computes the references and compares. The inputs of every case
come from ``case_data``, which the test imports too, so both halves see the
same global batch.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if __name__ == "__main__":  # run as a script: make `import normlab` find this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import normlab  # noqa: E402
import normlab.distributed as dist  # noqa: E402
import normlab.nn as nn  # noqa: E402
import normlab.nn.functional as F  # noqa: E402
from normlab.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

# SyncBatchNorm cases: per-rank batch sizes (their sum is the global batch), channels, spatial shape.
SYNC_BN_CASES = {
    2: [((5, 3), 3, ()), ((2, 6), 4, (5,)), ((1, 1), 2, (3, 2)), ((4, 4), 3, (2, 3))],
    3: [((4, 1, 2), 3, ()), ((1, 1, 1), 2, ()), ((3, 0, 2), 2, (4,)), ((2, 5, 1), 3, (2, 2))],
}
SYNC_BN_STEPS = 2  # two training steps: running statistics move twice, num_batches_tracked reaches 2
DDP_STEPS, DDP_BATCH, DDP_LR, DDP_MOMENTUM = 5, 16, 0.1, 0.9


def case_data(world: int, index: int, step: int):
    """Global input and upstream gradient of SyncBatchNorm case ``index`` at ``step`` (float64).

    The input sits far from zero (mean 5, std 3) so that a merge through
    E[x^2] - E[x]^2 would show.
    """
    splits, channels, spatial = SYNC_BN_CASES[world][index]
    rng = np.random.default_rng(1000 * world + 10 * index + step)
    shape = (sum(splits), channels) + spatial
    return rng.normal(5.0, 3.0, shape), rng.standard_normal(shape)


def sync_bn_momentum(index: int) -> float | None:
    """0.3 for even cases, None (the cumulative average) for odd ones."""
    return 0.3 if index % 2 == 0 else None


def rank_slice(splits, rank: int) -> slice:
    start = sum(splits[:rank])
    return slice(start, start + splits[rank])


def ddp_model(seed: int, sync: bool = True) -> nn.Module:
    """A small CNN with (Sync)BatchNorm after the convolution and after the hidden Linear, float64."""
    normlab.manual_seed(seed)
    norm2d, norm1d = (nn.SyncBatchNorm, nn.SyncBatchNorm) if sync else (nn.BatchNorm2d, nn.BatchNorm1d)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3), norm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(64, 8), norm1d(8), nn.Tanh(), nn.Linear(8, 3),
    ).double()


def ddp_data(step: int, world: int):
    """The global batch of DDP step ``step``: inputs (world * 16, 2, 6, 6) and labels."""
    rng = np.random.default_rng(500 + step)
    n = world * DDP_BATCH
    return rng.standard_normal((n, 2, 6, 6)), rng.integers(0, 3, size=n)


def mlp(seed: int) -> nn.Module:
    normlab.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def no_sync_data(world: int):
    """Two micro-batches of 8 per rank: (x, y) of shape (2, world, 8, 5) and (2, world, 8, 2)."""
    rng = np.random.default_rng(77)
    return rng.standard_normal((2, world, 8, 5)), rng.standard_normal((2, world, 8, 2))


def _grads(module: nn.Module) -> dict:
    return {f"grad:{name}": np.asarray(p.grad).copy() for name, p in module.named_parameters()}


def _state(module: nn.Module, prefix: str) -> dict:
    return {f"{prefix}:{key}": np.array(value, copy=True) for key, value in module.state_dict().items()}


# ----------------------------------------------------------------------------
# Scenarios
# ----------------------------------------------------------------------------

def scenario_sync_bn(rank: int, world: int) -> dict:
    out = {}
    for index, (splits, channels, spatial) in enumerate(SYNC_BN_CASES[world]):
        bn = nn.SyncBatchNorm(channels, momentum=sync_bn_momentum(index)).double()
        with normlab.no_grad():  # a weight and bias away from 1 and 0
            bn.weight.copy_(normlab.tensor(np.linspace(0.5, 2.0, channels)))
            bn.bias.copy_(normlab.tensor(np.linspace(-1.0, 1.0, channels)))
        part = rank_slice(splits, rank)
        for step in range(SYNC_BN_STEPS):
            x_global, dy_global = case_data(world, index, step)
            # step 1 as a user might: a Fortran-ordered input, and the output overwritten before backward
            x_part = x_global[part] if step == 0 else np.asfortranarray(x_global[part])
            x = normlab.tensor(x_part, requires_grad=True)
            bn.zero_grad()
            y = bn(x)
            y_copy = np.asarray(y).copy()
            if step == 1:
                np.asarray(y)[...] = 1e9
            y.backward(dy_global[part])
            out.update({f"{index}:{step}:y": y_copy, f"{index}:{step}:dx": np.asarray(x.grad).copy(),
                        f"{index}:{step}:dweight": np.asarray(bn.weight.grad).copy(),
                        f"{index}:{step}:dbias": np.asarray(bn.bias.grad).copy()})
        out.update({f"{index}:running_mean": bn.running_mean.numpy().copy(),
                    f"{index}:running_var": bn.running_var.numpy().copy(),
                    f"{index}:num_batches_tracked": bn.num_batches_tracked.numpy().copy()})
    return out


FLOAT32_SPLITS = (5, 3)


def float32_data():
    """A float32 batch with mean 1e4 and std 1 (E[x^2] - E[x]^2 loses it all) and its upstream gradient."""
    rng = np.random.default_rng(32)
    shape = (sum(FLOAT32_SPLITS), 3, 4)
    return rng.normal(1e4, 1.0, shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)


def scenario_sync_bn_float32(rank: int, world: int) -> dict:
    bn = nn.SyncBatchNorm(3)
    x_global, dy_global = float32_data()
    part = rank_slice(FLOAT32_SPLITS, rank)
    x = normlab.tensor(x_global[part], requires_grad=True)
    y = bn(x)
    y.backward(dy_global[part])
    return {"y": np.asarray(y).copy(), "dx": np.asarray(x.grad).copy(), "dweight": np.asarray(bn.weight.grad).copy(),
            "dbias": np.asarray(bn.bias.grad).copy(), "running_mean": np.asarray(bn.running_mean).copy(),
            "running_var": np.asarray(bn.running_var).copy()}


def scenario_ddp(rank: int, world: int) -> dict:
    """5 SGD steps of a SyncBatchNorm CNN under DDP; small buckets so several allreduces overlap."""
    model = ddp_model(seed=rank)  # different on every rank: the broadcast must make them rank 0's
    with normlab.no_grad():
        model[1].running_mean.fill_(float(rank + 1))
    out = _state(model, "before")
    ddp = DDP(model, bucket_cap_mb=300 / 2 ** 20)  # about 300 bytes: one bucket per parameter or two
    out.update(_state(model, "constructed"))
    out["buckets"] = np.array(len(ddp._buckets))
    optimizer = normlab.optim.SGD(ddp.parameters(), lr=DDP_LR, momentum=DDP_MOMENTUM)
    part = slice(rank * DDP_BATCH, (rank + 1) * DDP_BATCH)
    losses = []
    for step in range(DDP_STEPS):
        x, y = ddp_data(step, world)
        loss = F.cross_entropy(ddp(x[part]), y[part])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    out.update(_state(model, "final"))
    out["losses"] = np.array(losses)
    return out


def scenario_no_sync(rank: int, world: int) -> dict:
    ddp = DDP(mlp(seed=3))
    (x, target) = no_sync_data(world)
    with ddp.no_sync():
        F.mse_loss(ddp(x[0, rank]), target[0, rank]).backward()
    out = {f"local:{k}": v for k, v in _grads(ddp.module).items()}
    F.mse_loss(ddp(x[1, rank]), target[1, rank]).backward()
    out.update({f"synced:{k}": v for k, v in _grads(ddp.module).items()})
    return out


class PartlyUsed(nn.Module):
    """A model whose forward never uses one of its layers."""

    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = nn.Linear(3, 2).double(), nn.Linear(3, 2).double()

    def forward(self, x):
        return self.used(x)


def scenario_errors(rank: int, world: int) -> dict:
    """Refusals that must happen on every rank, without a hang and before any state changes."""
    out = {}
    try:
        DDP(nn.Linear(3, 4 + (rank == world - 1)))
    except ValueError as error:
        out["shape_error"] = np.array(str(error))
    ddp = DDP(PartlyUsed())
    x = np.ones((4, 3))
    ddp(x).sum().backward()  # reaches only ddp.module.used
    try:
        ddp(x)
    except RuntimeError as error:
        out["unused_error"] = np.array(str(error))
    bn = nn.SyncBatchNorm(3).double()
    before = _state(bn, "bn")
    x = np.ones((1 if rank == 0 else 0, 3))  # one value per channel in the global batch
    try:
        bn(x)
    except ValueError as error:
        out["batch_error"] = np.array(str(error))
    after = _state(bn, "bn")
    out["state_unchanged"] = np.array(all(np.array_equal(before[k], after[k]) for k in before))
    return out


def scenario_collectives(rank: int, world: int) -> dict:
    out = {}
    for op in ("SUM", "AVG", "MAX", "MIN", "PRODUCT"):
        t = normlab.tensor(np.array([rank + 1.0, 2.0 * rank - 1.0]))
        version = t._version
        dist.all_reduce(t, getattr(dist.ReduceOp, op))
        out[f"tensor:{op}"] = np.asarray(t).copy()
        out[f"tensor_version_bumped:{op}"] = np.array(t._version > version)
    strided = np.zeros((3, 4))
    strided[:, ::2] = rank + 1.0  # a non-contiguous view is reduced through a copy and written back
    dist.all_reduce(strided[:, ::2])
    out["strided"] = strided
    work = dist.all_reduce(counts := np.arange(4) + rank, async_op=True)
    work.wait()
    out["async_int"] = counts
    gathered = [np.zeros(2) for _ in range(world)]
    dist.all_gather(gathered, np.array([rank, 10.0 * rank]))
    out["all_gather"] = np.stack(gathered)
    into = np.zeros(2 * world)
    dist.all_gather_into_tensor(into, np.array([rank, -rank], dtype=np.float64))
    out["all_gather_into_tensor"] = into
    b = normlab.tensor(np.full(3, float(rank)))
    dist.broadcast(b, src=world - 1)
    out["broadcast"] = np.asarray(b).copy()
    dist.barrier()
    objects = [None] * world
    dist.all_gather_object(objects, {"rank": rank})
    out["objects"] = np.array([o["rank"] for o in objects])
    if world > 2:
        group = dist.new_group([0, 2])
        if group is not None:
            v = np.array([float(rank)])
            dist.all_reduce(v, group=group)
            out["subgroup"] = v
            out["subgroup_rank"] = np.array(dist.get_rank(group))
    out["rank"], out["world"] = np.array(dist.get_rank()), np.array(dist.get_world_size())
    return out


SCENARIOS = {"sync_bn": scenario_sync_bn, "sync_bn_float32": scenario_sync_bn_float32, "ddp": scenario_ddp, "no_sync": scenario_no_sync,
             "errors": scenario_errors, "collectives": scenario_collectives}


def main(out_dir: str, names: list[str]) -> None:
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    for name in names:
        np.savez(Path(out_dir) / f"{name}-rank{rank}.npz", **SCENARIOS[name](rank, world))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
