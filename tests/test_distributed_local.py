"""The distributed pieces that need no mpiexec: statistics merge, one-process SyncBatchNorm, conversion,
DistributedSampler, DataLoader(sampler=...), errors, the ImportError without mpi4py, a one-process job.

The multi-process behaviour is in tests/test_distributed.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import normlab
import normlab.distributed as dist
import normlab.nn as nn
from normlab.data import DataLoader, DistributedSampler, TensorDataset
from normlab.ops.sync_batch_norm import local_moments, merge_moments

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True, capture_output=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **env), stdin=subprocess.DEVNULL)


# ----------------------------------------------------------------------------
# The statistics merge (Chan et al.)
# ----------------------------------------------------------------------------

@given(splits=st.lists(st.integers(0, 7), min_size=1, max_size=5).filter(lambda s: sum(s) >= 2),
       spatial=st.sampled_from([(), (3,), (2, 2)]), seed=st.integers(0, 2 ** 16))
def test_merged_moments_equal_the_concatenated_batch(splits, spatial, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(1e4, 1.0, (sum(splits), 3) + spatial).astype(np.float32)  # float32, far from zero
    bounds = np.cumsum([0] + splits)
    table = np.stack([local_moments(x[a:b].reshape(b - a, 3, -1) if b > a else np.zeros((0, 3, 1), np.float32))
                      for a, b in zip(bounds[:-1], bounds[1:])])
    count, mean, m2 = merge_moments(table)
    reference = x.astype(np.float64).transpose(1, 0, *range(2, x.ndim)).reshape(3, -1)
    assert count == reference.shape[1]
    np.testing.assert_allclose(mean, reference.mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(m2 / count, reference.var(axis=1), rtol=1e-10)


# ----------------------------------------------------------------------------
# SyncBatchNorm in one process: BatchNorm, as torch's
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 4, 3), (2, 3, 2, 2, 2)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_one_process_sync_batchnorm_is_torchs(shape, momentum, rng):
    ours, theirs = nn.SyncBatchNorm(3, momentum=momentum).double(), torch.nn.SyncBatchNorm(3, momentum=momentum)
    theirs.double()
    weight, bias = rng.uniform(0.5, 2.0, 3), rng.standard_normal(3)
    with normlab.no_grad():
        ours.weight.copy_(normlab.tensor(weight))
        ours.bias.copy_(normlab.tensor(bias))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(weight))
        theirs.bias.copy_(torch.tensor(bias))
    for training in (True, True, False):
        ours.train(training)
        theirs.train(training)
        x, dy = rng.normal(3.0, 2.0, shape), rng.standard_normal(shape)
        x_ours, x_theirs = normlab.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours.zero_grad()
        theirs.zero_grad()
        y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
        y_ours.backward(dy)
        y_theirs.backward(torch.tensor(dy))
        np.testing.assert_allclose(np.asarray(y_ours), y_theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(x_ours.grad), x_theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
        for name in ("weight", "bias"):
            np.testing.assert_allclose(np.asarray(getattr(ours, name).grad), getattr(theirs, name).grad.numpy(),
                                       rtol=1e-12, atol=1e-12)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("make, error, message", [
    (lambda: np.ones(3), ValueError, r"SyncBatchNorm: expected at least 2D input \(N, C, \*\), got 1D"),
    (lambda: np.ones((4, 5)), ValueError, "SyncBatchNorm: expected input with 3 channels"),
    (lambda: np.ones((4, 3), dtype=np.int64), TypeError, "SyncBatchNorm: expected a floating-point input"),
    (lambda: np.ones((1, 3), dtype=np.float32), ValueError, "SyncBatchNorm: Expected more than 1 value per channel"),
    (lambda: np.ones((4, 3)), TypeError, "SyncBatchNorm: expected input of the parameters' dtype float32"),
])
def test_bad_input_is_refused_before_any_state_changes(make, error, message):
    bn = nn.SyncBatchNorm(3)
    before = {k: v.copy() for k, v in bn.state_dict().items()}
    with pytest.raises(error, match=message):
        bn(make())
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_convert_sync_batchnorm_like_torch():
    def build(lib, renorm):
        layers = [lib.Conv2d(2, 4, 3), lib.BatchNorm2d(4), lib.Flatten(),
                  lib.Sequential(lib.Linear(4, 5), lib.BatchNorm1d(5, momentum=None, affine=False))]
        return lib.Sequential(*layers, *([renorm] if renorm is not None else []))

    ours = build(nn, nn.BatchRenorm1d(5))
    ours[1].eval()
    originals = {name: (m, dict(m.named_parameters()), dict(m.named_buffers())) for name, m in ours.named_modules()}
    keys = list(ours.state_dict())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(ours)
    reference = torch.nn.SyncBatchNorm.convert_sync_batchnorm(build(torch.nn, None))
    ours_types = [type(m).__name__ for _, m in converted.named_modules()]
    assert ours_types[:-1] == [type(m).__name__ for _, m in reference.named_modules()]
    assert ours_types[-1] == "BatchRenorm1d"  # its correction is not BatchNorm's: left alone
    assert list(converted.state_dict()) == keys
    for name, module in converted.named_modules():
        if isinstance(module, nn.SyncBatchNorm):
            old, params, buffers = originals[name]
            assert module.momentum == old.momentum and module.affine == old.affine and module.eps == old.eps
            assert module.training == old.training
            assert all(getattr(module, k) is v for k, v in {**params, **buffers}.items())  # shared, not copied
    assert not converted[1].training and converted[3][1].weight is None
    lone = nn.BatchNorm1d(3)
    assert type(nn.SyncBatchNorm.convert_sync_batchnorm(lone)).__name__ == "SyncBatchNorm"


# ----------------------------------------------------------------------------
# DistributedSampler and DataLoader(sampler=...)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_sampler_without_shuffle_is_torchs(drop_last):
    for n in range(0, 14):
        for replicas in range(1, 5):
            for rank in range(replicas):
                ours = DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
                theirs = torch.utils.data.DistributedSampler(range(n), replicas, rank, shuffle=False,
                                                             drop_last=drop_last)
                assert list(ours) == list(theirs) and len(ours) == len(theirs), (n, replicas, rank)


@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (7, 5, False), (12, 4, False)])
def test_distributed_sampler_shuffles_one_permutation_per_epoch(n, replicas, drop_last):
    def shares(epoch, seed=0):
        samplers = [DistributedSampler(range(n), replicas, r, seed=seed, drop_last=drop_last) for r in range(replicas)]
        for sampler in samplers:
            sampler.set_epoch(epoch)
        return [list(s) for s in samplers]

    first = shares(0)
    total = len(first[0]) * replicas
    assert {len(s) for s in first} == {len(DistributedSampler(range(n), replicas, 0, drop_last=drop_last))}
    visited = np.bincount(np.concatenate(first).astype(int), minlength=n)
    assert visited.sum() == total
    if drop_last:
        assert visited.max() == 1  # a tail is dropped, nothing repeats
    else:
        assert visited.min() >= 1 and visited.max() <= -(-total // n)  # all seen; padding repeats a few
    assert shares(0) == first  # the same on every call of the same epoch
    assert shares(1) != first and shares(0, seed=1) != first


def test_distributed_sampler_checks_its_arguments():
    with pytest.raises(ValueError, match=r"invalid rank 3, rank should be in the interval \[0, 2\]"):
        DistributedSampler(range(4), num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="num_replicas to be a non-negative integer"):
        DistributedSampler(range(4), num_replicas=-1, rank=0)
    with pytest.raises(ValueError, match="has not been initialized"):  # world size from the process group
        DistributedSampler(range(4))


def test_dataloader_follows_a_sampler():
    data = TensorDataset(np.arange(10.0), np.arange(10))
    sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=False)
    loader = DataLoader(data, batch_size=2, sampler=sampler)
    assert len(loader) == 3
    assert [y.tolist() for _, y in loader] == [[1, 3], [5, 7], [9]]
    assert len(DataLoader(data, batch_size=2, sampler=sampler, drop_last=True)) == 2
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(data, sampler=sampler, shuffle=True)
    with pytest.raises(TypeError, match="sampler to be an iterable of indices"):
        DataLoader(data, sampler=3)


# ----------------------------------------------------------------------------
# Errors without a process group, without mpi4py, without mpiexec
# ----------------------------------------------------------------------------

def test_without_a_process_group():
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, lambda: nn.parallel.DistributedDataParallel(nn.Linear(2, 2)),
                 lambda: dist.all_reduce(np.ones(2))):
        with pytest.raises(ValueError, match="Default process group has not been initialized"):
            call()
    for kwargs, message in (({"backend": "nccl"}, "only the 'mpi' backend, got 'nccl'"),
                            ({"init_method": "tcp://x:1"}, "takes no init_method"),
                            ({"timeout": 30}, "has no timeout")):
        with pytest.raises(ValueError, match=message):
            dist.init_process_group(**kwargs)
    assert not dist.is_initialized()


def test_without_mpi4py_the_error_names_the_extra():
    result = _python("import sys; sys.modules['mpi4py'] = None\n"
                     "import normlab.distributed as dist, normlab.nn as nn\n"
                     "assert not dist.is_available()\n"
                     "nn.SyncBatchNorm(2)(normlab.randn(4, 2))  # one process: BatchNorm, no MPI needed\n"
                     "dist.init_process_group('mpi')\n".replace("normlab.randn", "__import__('normlab').randn"))
    assert result.returncode != 0
    assert "ImportError: normlab.distributed needs mpi4py and an MPI library: pip install 'normlab[dist]'" \
        in result.stderr, result.stderr


def test_without_mpiexec_the_launcher_names_the_extra(monkeypatch, capsys):
    from normlab import cli
    from normlab.distributed import launch

    monkeypatch.setattr(launch, "find_mpiexec", lambda: None)
    with pytest.raises(ImportError, match=r"mpiexec was not found .* pip install 'normlab\[dist\]'"):
        launch.mpiexec_command(2, ["python"])
    assert cli.main(["train", "--nproc", "2", "--epochs", "1"]) == 1
    assert "pip install 'normlab[dist]'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--nproc", "0"])
    assert exit_info.value.code == 2


ONE_PROCESS_JOB = """
import numpy as np, normlab, normlab.nn as nn, normlab.nn.functional as F, normlab.distributed as dist
dist.init_process_group("mpi")
assert (dist.get_rank(), dist.get_world_size(), dist.get_backend()) == (0, 1, "mpi")
x = np.array([1.0, 2.0]); dist.all_reduce(x, dist.ReduceOp.AVG); assert x.tolist() == [1.0, 2.0]
def net(seed):
    normlab.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.SyncBatchNorm(4), nn.Tanh(), nn.Linear(4, 2)).double()
plain, wrapped = net(0), nn.parallel.DistributedDataParallel(net(0))
data = np.random.default_rng(0).standard_normal((8, 3))
for model in (plain, wrapped):
    F.mse_loss(model(data), np.ones((8, 2))).backward()
for (name, p), q in zip(plain.named_parameters(), wrapped.module.parameters()):
    assert np.array_equal(np.asarray(p.grad), np.asarray(q.grad)), name
assert list(wrapped.state_dict())[0] == "module.0.weight"
dist.destroy_process_group()
assert not dist.is_initialized()
print("one-process job ok")
"""


@pytest.mark.skipif(not dist.is_available(), reason="needs mpi4py: pip install 'normlab[dist]'")
def test_a_job_of_one_process_without_mpiexec():
    result = _python(ONE_PROCESS_JOB)
    assert result.returncode == 0 and "one-process job ok" in result.stdout, result.stdout + result.stderr
