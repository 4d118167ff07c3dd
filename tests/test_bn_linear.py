"""The training-mode batch norm folded into the following 1x1 convolution
(``swat_mm.models.layers.bn_linear``): outputs, every gradient and the
running statistics against ``conv(bn(x)[rows])``."""
import copy

import pytest
import torch
import torch.nn as nn

from swat_mm.models.layers import bn_linear
from swat_mm.models.layers.bn_linear import (_BatchNormLinear,
                                             batch_norm_linear,
                                             batch_norm_linear_ok,
                                             batch_norm_stats)


def _pair(dtype, momentum=0.1):
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(12, momentum=momentum).to(dtype)
    conv = nn.Conv2d(12, 20, 1).to(dtype)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1., 1.)
        bn.running_mean.uniform_(-1., 1.)
    return bn.train(), conv


def _input(dtype, shift=0.5):
    x = torch.randn(5, 12, 7, 6, dtype=dtype) * 2 + shift
    x = x + torch.linspace(-1, 1, 12, dtype=dtype).view(1, 12, 1, 1)
    return x.contiguous(memory_format=torch.channels_last).requires_grad_()


def _run(fn, bn, conv, x, rows):
    out = fn(x, bn, conv, rows)
    grad = torch.linspace(-1, 1, out.numel(), dtype=out.dtype)
    params = [x, bn.weight, bn.bias, conv.weight, conv.bias]
    grads = torch.autograd.grad((out * grad.view(out.shape)).sum(), params)
    return out.detach(), grads


def _plain(x, bn, conv, rows):
    y = bn(x)
    return conv(y if rows is None else y[rows])


def _fused(x, bn, conv, rows):
    return batch_norm_linear(x, bn, conv, batch_norm_stats(x, bn), rows)


@pytest.mark.parametrize('rows', [None, [0, 2, 3]])
@pytest.mark.parametrize('momentum', [0.1, None])
def test_folded_matches_batch_norm_then_conv_float64(rows, momentum):
    """Outputs, the input's and all four parameters' gradients, and the
    running statistics (two steps, exponential and cumulative averages)
    equal the plain pair to float64 rounding, on all samples and on some
    (the statistics always come from the whole batch)."""
    rows = None if rows is None else torch.tensor(rows)
    bn, conv = _pair(torch.float64, momentum)
    ref_bn, ref_conv = copy.deepcopy(bn), copy.deepcopy(conv)
    for step in range(2):
        x = _input(torch.float64, shift=0.5 + step)
        out, grads = _run(_fused, bn, conv, x, rows)
        ref, ref_grads = _run(_plain, ref_bn, ref_conv, x, rows)
        assert out.shape == ref.shape == (5 if rows is None else 3, 20, 7, 6)
        assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)
        for a, b in zip(grads, ref_grads):
            assert torch.allclose(a, b, rtol=1e-11,
                                  atol=1e-12 * b.abs().max())
        assert torch.allclose(bn.running_mean, ref_bn.running_mean,
                              rtol=1e-14, atol=0)
        assert torch.allclose(bn.running_var, ref_bn.running_var,
                              rtol=1e-14, atol=0)
        assert int(bn.num_batches_tracked) == step + 1 == \
            int(ref_bn.num_batches_tracked)


def test_gradcheck():
    bn, conv = _pair(torch.float64)
    x = _input(torch.float64)
    stats = batch_norm_stats(x, bn)

    def fn(x, gamma, beta, weight, bias):
        # the statistics depend on x: recompute them inside
        mean, invstd = batch_norm_stats(x, copy.deepcopy(bn))
        return _BatchNormLinear.apply(x, gamma, beta, weight, bias, mean,
                                      invstd, torch.tensor([1, 4]))

    assert stats[0].shape == (12, )
    inputs = (x, bn.weight, bn.bias, conv.weight.flatten(1), conv.bias)
    assert torch.autograd.gradcheck(fn, inputs)


def test_fp32_cpu_path_and_when_it_applies():
    """In fp32 on the CPU (oneDNN GEMM) the fold is within fp32 rounding of
    the plain pair; it is used only for a training-mode plain
    ``nn.BatchNorm2d`` on a channels-last map with grad."""
    bn, conv = _pair(torch.float32)
    x = _input(torch.float32)
    assert batch_norm_linear_ok(x, bn, conv)
    ref_bn, ref_conv = copy.deepcopy(bn), copy.deepcopy(conv)
    out, grads = _run(_fused, bn, conv, x, None)
    ref, ref_grads = _run(_plain, ref_bn, ref_conv, x, None)
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5 * ref.abs().max())
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * b.abs().max())

    class OtherBN(nn.BatchNorm2d):  # e.g. SyncBN: statistics elsewhere
        pass

    assert not batch_norm_linear_ok(x, OtherBN(12).train(), conv)
    assert not batch_norm_linear_ok(x, copy.deepcopy(bn).eval(), conv)
    assert not batch_norm_linear_ok(x.contiguous(), bn, conv)
    assert not batch_norm_linear_ok(x, bn, nn.Conv2d(12, 20, 3, padding=1))
    assert not batch_norm_linear_ok(x.double(), bn.double(), conv.double())
    with torch.no_grad():
        assert not batch_norm_linear_ok(x, bn, conv)


def test_off_centre_channels_fall_back_to_the_plain_pair(monkeypatch):
    """A channel whose mean is large against its spread would lose
    precision in the un-centred GEMM: the plain pair runs instead, with the
    running statistics still updated once."""
    bn, conv = _pair(torch.float32)
    x = _input(torch.float32)
    ref_bn, ref_conv = copy.deepcopy(bn), copy.deepcopy(conv)
    calls = []
    real = _BatchNormLinear.apply
    monkeypatch.setattr(_BatchNormLinear, 'apply',
                        lambda *a: calls.append(1) or real(*a))
    for limit, folded in ((bn_linear.MAX_MEAN_OVER_STD, True), (0.1, False)):
        calls.clear()
        monkeypatch.setattr(bn_linear, 'MAX_MEAN_OVER_STD', limit)
        out, grads = _run(_fused, bn, conv, x, torch.tensor([1, 2]))
        ref, ref_grads = _run(_plain, ref_bn, ref_conv, x,
                              torch.tensor([1, 2]))
        assert bool(calls) == folded
        assert torch.allclose(out, ref, rtol=1e-5,
                              atol=1e-5 * ref.abs().max())
        for a, b in zip(grads, ref_grads):
            assert torch.allclose(a, b, rtol=1e-4,
                                  atol=1e-5 * b.abs().max())
        assert torch.equal(bn.running_mean, ref_bn.running_mean)
        assert torch.equal(bn.running_var, ref_bn.running_var)
        assert torch.equal(bn.num_batches_tracked, ref_bn.num_batches_tracked)
