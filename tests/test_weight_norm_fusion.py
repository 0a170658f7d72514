"""nn.utils.weight_norm / remove_weight_norm and the BatchNorm fusions against torch (float64)."""
import warnings

import numpy as np
import pytest
import torch

import normlab
import normlab.nn as nn
from tests.oracle import assert_close


def copy_parameters(ours, theirs):
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.tensor(ours.get_parameter(name).detach().numpy()))


@pytest.mark.parametrize("dim", [0, 1, None, -1])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_weight_norm_matches_torch(rng, kind, dim):
    if kind == "linear":
        ours, theirs, shape = nn.Linear(5, 4, dtype=np.float64), torch.nn.Linear(5, 4, dtype=torch.float64), (3, 5)
    else:
        ours, theirs = nn.Conv1d(3, 4, 2, dtype=np.float64), torch.nn.Conv1d(3, 4, 2, dtype=torch.float64)
        shape = (2, 3, 6)
    copy_parameters(ours, theirs)
    nn.utils.weight_norm(ours, dim=dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates the function in favour of parametrizations
        torch.nn.utils.weight_norm(theirs, dim=dim)
    assert sorted(n for n, _ in ours.named_parameters()) == sorted(n for n, _ in theirs.named_parameters())
    for name, p in theirs.named_parameters():
        assert_close(ours.get_parameter(name), p, np.float64, f"initial {name}")
    x = rng.standard_normal(shape)
    g = rng.standard_normal(theirs(torch.tensor(x)).shape)
    # move g away from ||v|| so that the length and the direction both matter
    with normlab.no_grad():
        ours.weight_g.mul_(1.7)
    with torch.no_grad():
        theirs.weight_g.mul_(1.7)
    y, yt = ours(normlab.tensor(x)), theirs(torch.tensor(x))
    assert_close(y, yt, np.float64, "output")
    y.backward(normlab.tensor(g))
    yt.backward(torch.tensor(g))
    for name, p in theirs.named_parameters():
        assert_close(ours.get_parameter(name).grad, p.grad, np.float64, f"grad of {name}")


def test_weight_norm_numerical_gradient(rng):
    layer = nn.utils.weight_norm(nn.Linear(3, 2, dtype=np.float64))
    x = normlab.tensor(rng.standard_normal((4, 3)))
    up = rng.standard_normal((4, 2))

    def loss():
        return float((layer(x).detach().numpy() * up).sum())

    (layer(x) * normlab.tensor(up)).sum().backward()
    for p in (layer.weight_g, layer.weight_v):
        numerical = np.zeros(p.shape)
        for index in np.ndindex(p.shape):
            keep = p._data[index]
            p._data[index] = keep + 1e-6
            plus = loss()
            p._data[index] = keep - 1e-6
            numerical[index] = (plus - loss()) / 2e-6
            p._data[index] = keep
        np.testing.assert_allclose(p.grad.numpy(), numerical, rtol=1e-6, atol=1e-8)


def test_remove_weight_norm_restores_one_parameter(rng):
    layer = nn.Linear(4, 3, dtype=np.float64)
    x = normlab.tensor(rng.standard_normal((2, 4)))
    nn.utils.weight_norm(layer)
    with normlab.no_grad():
        layer.weight_g.mul_(2.0)
    expected = layer(x).detach().numpy()
    nn.utils.remove_weight_norm(layer)
    assert sorted(n for n, _ in layer.named_parameters()) == ["bias", "weight"]
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="not found"):
        nn.utils.remove_weight_norm(layer)


def test_weight_norm_bad_input():
    with pytest.raises(ValueError, match="no parameter 'kernel'"):
        nn.utils.weight_norm(nn.Linear(2, 2), name="kernel")
    with pytest.raises(ValueError, match="expected dim"):
        nn.utils.weight_norm(nn.Linear(2, 2), dim=2)
    layer = nn.utils.weight_norm(nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="two weight_norm hooks"):
        nn.utils.weight_norm(layer)


def trained_bn(ours, theirs, rng, shape):
    """Give both BatchNorms the same non-trivial running statistics and affine parameters."""
    for layer in (ours, theirs):
        layer.train()
    x = rng.standard_normal(shape) * 3 + 1
    for _ in range(3):
        ours(normlab.tensor(x))
        theirs(torch.tensor(x))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.standard_normal(theirs.num_features)))
        theirs.bias.copy_(torch.tensor(rng.standard_normal(theirs.num_features)))
    ours.weight._data[...] = theirs.weight.detach().numpy()
    ours.bias._data[...] = theirs.bias.detach().numpy()


@pytest.mark.parametrize("transpose", [False, True])
def test_fuse_conv_bn_eval_matches_torch(rng, transpose):
    if transpose:
        conv, conv_t = nn.ConvTranspose2d(3, 4, 3, dtype=np.float64), torch.nn.ConvTranspose2d(3, 4, 3,
                                                                                               dtype=torch.float64)
    else:
        conv, conv_t = nn.Conv2d(3, 4, 3, dtype=np.float64), torch.nn.Conv2d(3, 4, 3, dtype=torch.float64)
    copy_parameters(conv, conv_t)
    bn, bn_t = nn.BatchNorm2d(4, dtype=np.float64), torch.nn.BatchNorm2d(4, dtype=torch.float64)
    trained_bn(bn, bn_t, rng, (5, 4, 3, 3))
    for layer in (conv, conv_t, bn, bn_t):
        layer.eval()
    fused = nn.utils.fuse_conv_bn_eval(conv, bn, transpose=transpose)
    fused_t = torch.nn.utils.fuse_conv_bn_eval(conv_t, bn_t, transpose=transpose)
    assert_close(fused.weight, fused_t.weight, np.float64, "fused weight")
    assert_close(fused.bias, fused_t.bias, np.float64, "fused bias")
    x = rng.standard_normal((2, 3, 6, 6))
    np.testing.assert_allclose(fused(normlab.tensor(x)).detach().numpy(),
                               bn(conv(normlab.tensor(x))).detach().numpy(), rtol=1e-10, atol=1e-12)
    assert fused is not conv and conv.weight.shape == fused.weight.shape


def test_fuse_linear_bn_eval_matches_torch(rng):
    lin, lin_t = nn.Linear(5, 4, bias=False, dtype=np.float64), torch.nn.Linear(5, 4, bias=False, dtype=torch.float64)
    copy_parameters(lin, lin_t)
    bn, bn_t = nn.BatchNorm1d(4, dtype=np.float64), torch.nn.BatchNorm1d(4, dtype=torch.float64)
    trained_bn(bn, bn_t, rng, (8, 4))
    for layer in (lin, lin_t, bn, bn_t):
        layer.eval()
    fused, fused_t = nn.utils.fuse_linear_bn_eval(lin, bn), torch.nn.utils.fuse_linear_bn_eval(lin_t, bn_t)
    assert_close(fused.weight, fused_t.weight, np.float64, "fused weight")
    assert_close(fused.bias, fused_t.bias, np.float64, "fused bias")


def test_fusion_refuses_training_mode_and_missing_statistics():
    with pytest.raises(ValueError, match="only for eval"):
        nn.utils.fuse_conv_bn_eval(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    with pytest.raises(ValueError, match="no running statistics"):
        nn.utils.fuse_conv_bn_eval(nn.Conv2d(1, 2, 1).eval(), nn.BatchNorm2d(2, track_running_stats=False).eval())


@pytest.mark.parametrize("kind", ["linear", "conv", "conv_transpose"])
def test_spectral_norm_matches_torch_over_training_steps(rng, kind):
    if kind == "linear":
        ours, theirs, shape = nn.Linear(5, 4, dtype=np.float64), torch.nn.Linear(5, 4, dtype=torch.float64), (3, 5)
    elif kind == "conv":
        ours, theirs = nn.Conv1d(3, 4, 2, dtype=np.float64), torch.nn.Conv1d(3, 4, 2, dtype=torch.float64)
        shape = (2, 3, 6)
    else:
        ours = nn.ConvTranspose1d(3, 4, 2, dtype=np.float64)
        theirs = torch.nn.ConvTranspose1d(3, 4, 2, dtype=torch.float64)
        shape = (2, 3, 6)
    copy_parameters(ours, theirs)
    nn.utils.spectral_norm(ours)
    torch.nn.utils.spectral_norm(theirs)
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    for buffer in ("weight_u", "weight_v"):  # the random starting vectors: torch's, so the iterations agree
        ours.get_buffer(buffer)._data[...] = theirs.get_buffer(buffer).numpy()
    for step in range(3):
        x = rng.standard_normal(shape)
        for layer in (ours, theirs):
            for p in layer.parameters():
                p.grad = None
        theirs.train(step != 2)
        ours.train(step != 2)
        y, yt = ours(normlab.tensor(x)), theirs(torch.tensor(x))
        assert_close(y, yt, np.float64, f"output, step {step}")
        g = rng.standard_normal(tuple(yt.shape))
        y.backward(normlab.tensor(g))
        yt.backward(torch.tensor(g))
        for name, p in theirs.named_parameters():
            assert_close(ours.get_parameter(name).grad, p.grad, np.float64, f"grad of {name}, step {step}")
        for name, b in theirs.named_buffers():
            assert_close(ours.get_buffer(name), b, np.float64, f"{name}, step {step}")


def test_spectral_norm_converges_to_unit_spectral_norm_and_removes(rng):
    layer = nn.utils.spectral_norm(nn.Linear(8, 6, dtype=np.float64), n_power_iterations=3)
    for _ in range(20):
        layer(normlab.tensor(rng.standard_normal((2, 8))))
    assert abs(np.linalg.svd(layer.weight.detach().numpy(), compute_uv=False)[0] - 1.0) < 1e-6
    nn.utils.remove_spectral_norm(layer)
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    with pytest.raises(ValueError, match="expected n_power_iterations"):
        nn.utils.spectral_norm(nn.Linear(2, 2), n_power_iterations=-1)
