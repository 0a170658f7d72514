"""Multi-process tests: each launches ``mpiexec -n 2`` or ``-n 3`` itself (tests/distributed_worker.py).

Few launches, many checks: one launch per world size runs every scenario and
the tests below compare what the ranks wrote with single-process references
(torch's BatchNorm for SyncBatchNorm; normlab in one process at the global
batch for DistributedDataParallel). Skipped, with the reason, where mpi4py or
mpiexec is missing; CI installs both (the ``dist`` extra is in ``test``).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import normlab
import normlab.nn as nn
import normlab.nn.functional as F
from normlab.distributed import is_available
from normlab.distributed.launch import find_mpiexec
from normlab.train import mlp
from tests.oracle import assert_float32_close
from tests import distributed_worker as worker

MPIEXEC = find_mpiexec()
pytestmark = pytest.mark.skipif(
    MPIEXEC is None or not is_available(),
    reason="needs mpi4py and mpiexec: pip install 'normlab[dist]' (CI installs it with the test extra)")

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(worker.__file__)
LAUNCH_TIMEOUT = 120  # seconds; a hang fails the test instead of stalling CI


def run_mpi(nproc: int, program: list[str], timeout: float = LAUNCH_TIMEOUT, cwd=ROOT) -> subprocess.CompletedProcess:
    """Run ``mpiexec -n nproc program``; kill its whole process group if it outlives ``timeout``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(ROOT))
    process = subprocess.Popen([MPIEXEC, "-n", str(nproc), *program], cwd=cwd, env=env, text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"mpiexec -n {nproc} {' '.join(program)} hung for {timeout} s\n{out}\n{err}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def run_worker(nproc: int, out_dir: Path, scenarios: list[str]):
    """Run the scenarios on ``nproc`` ranks; return name -> [what rank r wrote, for every r]."""
    result = run_mpi(nproc, [sys.executable, str(WORKER), str(out_dir), *scenarios])
    assert result.returncode == 0, f"workers failed:\n{result.stdout}\n{result.stderr}"
    return {name: [dict(np.load(out_dir / f"{name}-rank{rank}.npz")) for rank in range(nproc)]
            for name in scenarios}


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    return run_worker(2, tmp_path_factory.mktemp("two"),
                      ["sync_bn", "sync_bn_float32", "ddp", "no_sync", "errors", "collectives"])


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    return run_worker(3, tmp_path_factory.mktemp("three"), ["sync_bn", "errors", "collectives"])


def assert_relative(actual, expected, what: str, rtol: float = 1e-12) -> None:
    """Equal to ``rtol`` relative to the reference's largest magnitude (elementwise relative fails near zero)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


# ----------------------------------------------------------------------------
# SyncBatchNorm
# ----------------------------------------------------------------------------

def torch_batch_norm_reference(world: int, index: int):
    """torch's BatchNorm on the concatenated batch, step by step: outputs, gradients, final buffers."""
    splits, channels, spatial = worker.SYNC_BN_CASES[world][index]
    layer = (torch.nn.BatchNorm2d if len(spatial) == 2 else torch.nn.BatchNorm1d)(channels, momentum=worker.sync_bn_momentum(index)).double()
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(0.5, 2.0, channels, dtype=torch.float64))
        layer.bias.copy_(torch.linspace(-1.0, 1.0, channels, dtype=torch.float64))
    steps = []
    for step in range(worker.SYNC_BN_STEPS):
        x_global, dy_global = worker.case_data(world, index, step)
        x = torch.tensor(x_global, requires_grad=True)
        layer.zero_grad()
        y = layer(x)
        y.backward(torch.tensor(dy_global))
        steps.append({"y": y.detach().numpy(), "dx": x.grad.numpy(), "dweight": layer.weight.grad.numpy().copy(),
                      "dbias": layer.bias.grad.numpy().copy()})
    return steps, layer


@pytest.mark.parametrize("world", [2, 3])
def test_sync_batchnorm_is_batchnorm_on_the_concatenated_batch(world, request):
    ranks = request.getfixturevalue({2: "two", 3: "three"}[world])["sync_bn"]
    for index, (splits, _, _) in enumerate(worker.SYNC_BN_CASES[world]):
        steps, reference = torch_batch_norm_reference(world, index)
        for step, expected in enumerate(steps):
            case = f"world {world}, splits {splits}, step {step}"
            for key in ("y", "dx"):  # each rank holds its slice of the global result
                gathered = np.concatenate([r[f"{index}:{step}:{key}"] for r in ranks])
                assert_relative(gathered, expected[key], f"{key} ({case})")
            for key in ("dweight", "dbias"):  # each rank holds its part; DDP sums the parts
                assert_relative(sum(r[f"{index}:{step}:{key}"] for r in ranks), expected[key], f"{key} ({case})")
        for rank, r in enumerate(ranks):
            case = f"world {world}, splits {splits}, rank {rank}"
            assert_relative(r[f"{index}:running_mean"], reference.running_mean.numpy(), f"running_mean ({case})")
            assert_relative(r[f"{index}:running_var"], reference.running_var.numpy(), f"running_var ({case})")
            assert int(r[f"{index}:num_batches_tracked"]) == worker.SYNC_BN_STEPS, case


def test_sync_batchnorm_float32_far_from_zero_against_float64(two):
    """float32 in, statistics in float64: within float32 rounding of torch's float64 BatchNorm."""
    x32, dy32 = worker.float32_data()
    layer = torch.nn.BatchNorm1d(3).double()
    x = torch.tensor(x32.astype(np.float64), requires_grad=True)
    y = layer(x)
    y.backward(torch.tensor(dy32.astype(np.float64)))
    ranks = two["sync_bn_float32"]
    gathered = {key: np.concatenate([r[key] for r in ranks]) for key in ("y", "dx")}
    assert_float32_close(gathered["y"], y.detach().numpy(), scale=1.0, what="y")
    assert_float32_close(gathered["dx"], x.grad.numpy(), scale=np.abs(x.grad.numpy()).max(), what="dx")
    n = x32.size // 3
    for key, expected in (("dweight", layer.weight.grad), ("dbias", layer.bias.grad)):  # sums of n terms of |dy|
        assert_float32_close(sum(r[key] for r in ranks), expected.numpy(), scale=n * np.abs(dy32).max(), what=key)
    for r in ranks:
        assert_float32_close(r["running_mean"], layer.running_mean.numpy(), scale=1e4, what="running_mean")
        assert_float32_close(r["running_var"], layer.running_var.numpy(), scale=1.0, what="running_var")


@pytest.mark.parametrize("world", [2, 3])
def test_refusals_happen_on_every_rank_before_any_state_changes(world, request):
    for rank, r in enumerate(request.getfixturevalue({2: "two", 3: "three"}[world])["errors"]):
        assert "Expected more than 1 value per channel" in str(r["batch_error"]), rank
        assert "1 value(s) per channel in the global batch" in str(r["batch_error"]), rank
        assert bool(r["state_unchanged"]), f"rank {rank}: running stats or num_batches_tracked moved"
        message = str(r["shape_error"])
        assert "every process must build the same model" in message and "'weight'" in message, rank
        assert f"rank {world - 1} has parameter 'weight' of shape (5, 3)" in message, rank
        unused = str(r["unused_error"])
        assert "did not finish reducing gradients" in unused and "['unused.weight', 'unused.bias']" in unused, rank


# ----------------------------------------------------------------------------
# DistributedDataParallel
# ----------------------------------------------------------------------------

def test_ddp_five_steps_on_two_processes_equal_five_steps_on_the_global_batch(two):
    ranks = two["ddp"]
    assert all(int(r["buckets"]) > 2 for r in ranks)  # several buckets, each its own nonblocking allreduce
    reference = worker.ddp_model(seed=0, sync=False)
    with normlab.no_grad():
        reference[1].running_mean.fill_(1.0)  # what the workers set on rank 0 before wrapping
    optimizer = normlab.optim.SGD(reference.parameters(), lr=worker.DDP_LR, momentum=worker.DDP_MOMENTUM)
    losses = []
    for step in range(worker.DDP_STEPS):
        x, y = worker.ddp_data(step, world=2)
        loss = F.cross_entropy(reference(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert_relative(np.mean([r["losses"] for r in ranks], axis=0), losses, "mean loss per step")
    for key, expected in reference.state_dict().items():
        for rank, r in enumerate(ranks):
            if key.endswith("num_batches_tracked"):
                assert int(r[f"final:{key}"]) == int(expected) == worker.DDP_STEPS
            else:
                assert_relative(r[f"final:{key}"], expected, f"{key} on rank {rank} after {worker.DDP_STEPS} steps")


def test_ddp_broadcasts_rank_0s_parameters_and_buffers_at_construction(two):
    rank0, rank1 = two["ddp"]
    keys = [k.removeprefix("before:") for k in rank0 if k.startswith("before:")]
    assert any(not np.array_equal(rank0[f"before:{k}"], rank1[f"before:{k}"]) for k in keys)  # built differently
    assert not np.array_equal(rank0["before:1.running_mean"], rank1["before:1.running_mean"])
    for key in keys:
        for r in (rank0, rank1):
            np.testing.assert_array_equal(r[f"constructed:{key}"], rank0[f"before:{key}"], err_msg=key)


def test_no_sync_accumulates_locally_then_averages_the_sum(two):
    x, target = worker.no_sync_data(world=2)

    def gradients(*batches):
        model = worker.mlp(seed=3)
        for micro, rank in batches:
            F.mse_loss(model(x[micro, rank]), target[micro, rank]).backward()
        return {name: np.asarray(p.grad) for name, p in model.named_parameters()}

    for rank, r in enumerate(two["no_sync"]):
        local = gradients((0, rank))
        for name, expected in local.items():
            assert_relative(r[f"local:grad:{name}"], expected, f"{name} after the no_sync backward on rank {rank}")
    assert not np.allclose(two["no_sync"][0]["local:grad:0.weight"], two["no_sync"][1]["local:grad:0.weight"])
    summed = [gradients((0, rank), (1, rank)) for rank in range(2)]
    for rank, r in enumerate(two["no_sync"]):
        for name in summed[0]:
            average = (summed[0][name] + summed[1][name]) / 2
            assert_relative(r[f"synced:grad:{name}"], average, f"{name} after the synchronised backward")


# ----------------------------------------------------------------------------
# Collectives, failure, launch
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("world", [2, 3])
def test_collectives(world, request):
    ranks = request.getfixturevalue({2: "two", 3: "three"}[world])["collectives"]
    values = np.array([[r + 1.0, 2.0 * r - 1.0] for r in range(world)])
    expected = {"SUM": values.sum(0), "AVG": values.mean(0), "MAX": values.max(0), "MIN": values.min(0),
                "PRODUCT": values.prod(0)}
    for rank, r in enumerate(ranks):
        assert int(r["rank"]) == rank and int(r["world"]) == world
        for op, value in expected.items():
            np.testing.assert_allclose(r[f"tensor:{op}"], value, rtol=1e-15, err_msg=op)
            assert bool(r[f"tensor_version_bumped:{op}"]), op
        strided = np.zeros((3, 4))
        strided[:, ::2] = world * (world + 1) / 2
        np.testing.assert_array_equal(r["strided"], strided)
        np.testing.assert_array_equal(r["async_int"], world * np.arange(4) + world * (world - 1) // 2)
        np.testing.assert_array_equal(r["all_gather"], [[q, 10.0 * q] for q in range(world)])
        np.testing.assert_array_equal(r["all_gather_into_tensor"], np.ravel([[q, -q] for q in range(world)]))
        np.testing.assert_array_equal(r["broadcast"], np.full(3, world - 1.0))
        np.testing.assert_array_equal(r["objects"], np.arange(world))
        if world == 3 and rank in (0, 2):
            np.testing.assert_array_equal(r["subgroup"], [2.0])
            assert int(r["subgroup_rank"]) == rank // 2
        else:
            assert "subgroup" not in r


RAISING_RANK = """
import time, normlab.distributed as dist
dist.init_process_group()
if dist.get_rank() == 1:
    time.sleep(0.5)
    raise ValueError("boom on rank 1")
dist.barrier()   # rank 0 waits here for a rank that will never come
"""


def test_a_raising_rank_ends_the_whole_job_with_its_traceback():
    start = time.perf_counter()
    result = run_mpi(2, [sys.executable, "-c", RAISING_RANK], timeout=60)
    elapsed = time.perf_counter() - start
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert elapsed < 30, f"the job took {elapsed:.1f} s to end"
    assert "rank 1 of 2 raised an exception" in output
    assert "Traceback (most recent call last)" in output and "ValueError: boom on rank 1" in output


def test_normlab_train_nproc_2_with_sync_batchnorm(tmp_path):
    checkpoint = tmp_path / "net.safetensors"
    command = [sys.executable, "-m", "normlab", "train", "--nproc", "2", "--norm", "sync-batch", "--epochs", "2",
               "--depth", "1", "--width", "16", "--save", str(checkpoint)]
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(command, cwd=tmp_path, env=env, text=True, capture_output=True, timeout=LAUNCH_TIMEOUT,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("train accuracy") == 1  # only rank 0 prints
    assert "batch 64 per process x 2 processes" in result.stdout
    accuracy = float(result.stdout.split("test accuracy")[-1])
    assert accuracy > 0.8
    net = mlp(64, 16, 10, depth=1, norm="batch")  # the checkpoint loads into a plain BatchNorm net
    net.load_state_dict(normlab.load(checkpoint))
    assert int(net[1].num_batches_tracked.item()) > 0
