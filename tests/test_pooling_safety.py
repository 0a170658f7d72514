"""Breaking pooling as a user would: writing into returned arrays, bad indices, read-only and strided inputs.

The cases that once crashed the interpreter (a kernel writing through an index
the user had changed) run in a subprocess, so a segfault fails one test
instead of killing pytest.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import normlab
import normlab.nn.functional as F
from tests.oracle import random_upstream
from tests.test_pooling_common import close, distinct_input, tied_input


def run_isolated(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a crash shows as a negative return code (-11: SIGSEGV)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def assert_survives(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (
        f"the interpreter exited with {result.returncode} (negative: killed by signal {-result.returncode})\n"
        f"stdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
    )


# ---------------------------------------------------------------- returned indices are the caller's own


WRITE_INTO_INDICES = """
    import numpy as np
    import normlab
    import normlab.nn.functional as F

    rng = np.random.default_rng(0)
    x = rng.permutation(2 * 3 * 8 * 8).reshape(2, 3, 8, 8).astype(np.float64)
    dy = rng.standard_normal((2, 3, 4, 4))

    reference = normlab.tensor(x, requires_grad=True)
    F.{op}(reference, 2).backward(dy)

    t = normlab.tensor(x, requires_grad=True)
    y, indices = F.{op}(t, 2, return_indices=True)
    indices.detach().numpy()[...] = {value}          # a user scribbling over the returned indices
    y.backward(dy)
    assert np.array_equal(t.grad, reference.grad), "writing into the returned indices changed the gradient"
    print("ok")
"""


@pytest.mark.parametrize("op", ["max_pool2d", "min_pool2d"])
@pytest.mark.parametrize("value", ["10**9", "-10**9", "-1"])
def test_writing_into_returned_indices_neither_crashes_nor_changes_backward(op, value):
    # once: the returned indices were the saved argmax; 10**9 made the scatter-add write far out of bounds
    # (exit 139), -1 silently moved a gradient to the plane's last element
    assert_survives(run_isolated(WRITE_INTO_INDICES.format(op=op, value=value)))


@pytest.mark.parametrize("op,args", [("max_pool1d", (2,)), ("max_pool2d", (3, 2, 1)), ("adaptive_max_pool2d", (3,)),
                                     ("adaptive_max_pool1d", (3,)), ("max_pool3d", (3, 2, 1)),
                                     ("min_pool3d", (2,)), ("adaptive_max_pool3d", (2,))])
def test_returned_indices_share_no_memory_with_saved_state(op, args, rng):
    shape = (2, 3) + (9,) * int(op[-2])
    x = distinct_input(shape, np.float64, rng)
    t = normlab.tensor(x, requires_grad=True)
    y, indices = getattr(F, op)(t, *args, return_indices=True)
    expected = indices.detach().numpy().copy()
    dy = random_upstream(y.shape, np.float64, rng)
    indices.detach().numpy()[...] = 0
    y.detach().numpy()[...] = 123.0                  # the output is the caller's too
    y.backward(dy)
    fresh = normlab.tensor(x, requires_grad=True)
    y2, indices2 = getattr(F, op)(fresh, *args, return_indices=True)
    y2.backward(dy)
    np.testing.assert_array_equal(indices2.detach().numpy(), expected)
    np.testing.assert_array_equal(t.grad, fresh.grad)


@pytest.mark.parametrize("op", [F.max_pool2d, F.min_pool2d])
def test_writing_into_the_output_does_not_change_a_split_backward(op, rng):
    # tie="split" compares each window member with the window's value: that value must not be the
    # returned output array, or editing the output would move the gradient
    x = tied_input((2, 2, 6, 6), np.float64, rng, levels=2)
    dy = random_upstream((2, 2, 3, 3), np.float64, rng)
    reference = normlab.tensor(x, requires_grad=True)
    op(reference, 2, tie="split").backward(dy)
    t = normlab.tensor(x, requires_grad=True)
    y = op(t, 2, tie="split")
    y.detach().numpy()[...] = 7.0
    y.backward(dy)
    np.testing.assert_array_equal(t.grad, reference.grad)


# ---------------------------------------------------------------- max_unpool: bad indices are refused


UNPOOL_INDICES_CHANGED_AFTER_FORWARD = """
    import numpy as np
    import normlab
    import normlab.nn.functional as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8))
    y, indices = F.max_pool2d(x, 2, return_indices=True)
    index = indices.detach().numpy().copy()
    dy = rng.standard_normal((2, 3, 8, 8))

    reference = normlab.tensor(y.detach().numpy(), requires_grad=True)
    F.max_unpool2d(reference, index.copy(), 2).backward(dy)

    t = normlab.tensor(y.detach().numpy(), requires_grad=True)
    out = F.max_unpool2d(t, index, 2)
    index[...] = {value}                     # changed between forward and backward
    out.backward(dy)
    assert np.array_equal(t.grad, reference.grad), "changing the indices after forward changed the gradient"
    print("ok")
"""


@pytest.mark.parametrize("value", ["10**9", "-10**9", "-1"])
def test_max_unpool_indices_changed_after_forward_neither_crash_nor_change_backward(value):
    # once: max_unpool kept the caller's int64 index array itself and gathered through it in backward
    assert_survives(run_isolated(UNPOOL_INDICES_CHANGED_AFTER_FORWARD.format(value=value)))


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("bad", [-1, -(10**9), 64, 10**9])
def test_max_unpool_refuses_out_of_range_indices_like_torch(n, bad):
    shape = (1, 1) + (2,) * n
    x = np.ones(shape)
    indices = np.zeros(shape, dtype=np.int64)
    indices.flat[-1] = bad
    ours, theirs = getattr(F, f"max_unpool{n}d"), getattr(TF, f"max_unpool{n}d")
    with pytest.raises(RuntimeError):
        theirs(torch.tensor(x), torch.tensor(indices), 2)
    with pytest.raises(ValueError, match=rf"max_unpool{n}d: found an invalid max index {bad}"):
        ours(x, indices, 2)


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint8, np.uint64])
def test_max_unpool_takes_any_integer_indices(dtype, rng):
    x = distinct_input((2, 3, 6, 6), np.float64, rng)
    y, indices = F.max_pool2d(x, 2, return_indices=True)
    expected = F.max_unpool2d(y, indices, 2).detach().numpy()
    np.testing.assert_array_equal(F.max_unpool2d(y, indices.detach().numpy().astype(dtype), 2).detach().numpy(), expected)


# ---------------------------------------------------------------- inputs a user hands over


@pytest.mark.parametrize("op,args", [(F.max_pool2d, (3, 2, 1)), (F.avg_pool2d, (3, 2, 1)), (F.min_pool2d, (2,)),
                                     (F.max_pool2d, (2,)), (F.avg_pool2d, (2,))])
@pytest.mark.parametrize("layout", ["read-only", "transposed", "sliced", "channels-last"])
def test_read_only_and_strided_inputs_match_torch(op, args, layout, rng):
    base = distinct_input((2, 3, 10, 12), np.float64, rng)
    if layout == "read-only":
        x = base.copy()
        x.flags.writeable = False
    elif layout == "transposed":
        x = base.transpose(0, 1, 3, 2)
    elif layout == "sliced":
        x = base[:, :, 1::2, ::-1]
    else:
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(base, 1, -1)), -1, 1)
    sign = -1.0 if op is F.min_pool2d else 1.0
    torch_op = TF.avg_pool2d if op is F.avg_pool2d else TF.max_pool2d
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    ty = sign * torch_op(sign * xt, *args)
    dy = random_upstream(ty.shape, np.float64, rng)
    ty.backward(torch.tensor(dy))
    t = normlab.tensor(x, requires_grad=True)
    y = op(t, *args)
    y.backward(dy)
    close(y, ty, np.float64, "output")
    close(t.grad, xt.grad, np.float64, "input gradient")


@pytest.mark.parametrize("kind,args", [("max", (3, 2, 1)), ("avg", (3, 2, 1)), ("min", (2,)), ("max", ((1, 2, 3),))])
@pytest.mark.parametrize("layout", ["read-only", "transposed", "sliced", "channels-last"])
def test_read_only_and_strided_3d_inputs_match_torch(kind, args, layout, rng):
    base = distinct_input((2, 3, 6, 7, 8), np.float64, rng)
    if layout == "read-only":
        x = base.copy()
        x.flags.writeable = False
    elif layout == "transposed":
        x = base.transpose(0, 1, 4, 2, 3)
    elif layout == "sliced":
        x = base[:, :, ::-1, 1::2, ::2]
    else:
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(base, 1, -1)), -1, 1)
    sign = -1.0 if kind == "min" else 1.0
    torch_op = TF.avg_pool3d if kind == "avg" else TF.max_pool3d
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    ty = sign * torch_op(sign * xt, *args)
    dy = random_upstream(ty.shape, np.float64, rng)
    ty.backward(torch.tensor(dy))
    t = normlab.tensor(x, requires_grad=True)
    y = getattr(F, f"{kind}_pool3d")(t, *args)
    y.backward(dy)
    close(y, ty, np.float64, "output")
    close(t.grad, xt.grad, np.float64, "input gradient")


WRONG_SHAPED_GRADIENT = """
    import numpy as np
    from normlab.ops import pooling as ops

    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.{dtype})
    for forward, backward in ((ops.avg_pool2d_forward, ops.avg_pool2d_backward),
                              (ops.max_pool2d_forward, ops.max_pool2d_backward),
                              (ops.min_pool2d_forward, ops.min_pool2d_backward)):
        for args in ((2,), (3, 2, 1)):
            y, saved = forward(x, *args)
            try:
                backward(np.ones((2, 3, 40, 40), np.{dtype}), saved)   # the ops are public: no engine checks dy
            except ValueError as error:
                assert "expected dy of shape" in str(error), error
            else:
                raise AssertionError("a gradient of the wrong shape was accepted")
    print("ok")
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ops_backward_refuses_a_gradient_of_the_wrong_shape(dtype):
    # the kernels index dy by the windows' sizes: a larger dy once reached past the divisor and the plane
    assert_survives(run_isolated(WRONG_SHAPED_GRADIENT.format(dtype=dtype)))
