"""The shared stochastic-depth residual (``swat_mm.models.layers.drop_path``):
its autograd functions, and in every backbone family the CPU training path
that runs a block's branches on the samples the drop path keeps only,
against the plain formulation (mmcv's ``DropPath`` after the branch)."""
import copy

import pytest
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath as MMCVDropPath

from swat_mm.models import backbones
from swat_mm.models.layers.drop_path import (DropPath, RowsResidual,
                                             ScaledResidual, add_branch,
                                             has_dropout)
from tests.tiny_archs import FAMILY_CASES


def test_rows_residual_gradcheck():
    """``x`` plus ``branch * scale`` on some samples, with its own backward
    (float64 gradcheck), for NCHW maps and (B, N, C) tokens."""
    torch.manual_seed(0)
    for shape, scales in (((4, 3, 2, 5), ((2, 1, 1, 1), (2, 3, 1, 1))),
                          ((4, 6, 3), ((2, 1, 1), (2, 1, 3)))):
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        branch = torch.randn((2, ) + shape[1:], dtype=torch.float64,
                             requires_grad=True)
        rows = torch.tensor([0, 2])
        for s in scales:
            scale = torch.randn(s, dtype=torch.float64, requires_grad=True)
            assert torch.autograd.gradcheck(RowsResidual.apply,
                                            (x, branch, scale, rows))
        out = RowsResidual.apply(x, branch, scale, rows).detach()
        assert torch.equal(out[[1, 3]], x[[1, 3]].detach())
        assert torch.allclose(out[[0, 2]], (x[[0, 2]] + branch * scale)
                              .detach())


def test_scaled_residual_gradcheck():
    """``x + branch * scale`` with its own backward (float64 gradcheck),
    for a per-channel, a per-sample and a combined scale."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    branch = torch.randn_like(x).requires_grad_()
    for shape in ((1, 3, 1, 1), (2, 1, 1, 1), (2, 3, 1, 1)):
        scale = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(ScaledResidual.apply,
                                        (x, branch, scale))


def test_has_dropout():
    attn = nn.Module()
    attn.attn_drop = 0.1   # a float handed to F.scaled_dot_product_attention
    assert has_dropout(attn)
    assert not has_dropout(attn.eval())
    attn.attn_drop = 0.
    assert not has_dropout(attn.train())
    assert has_dropout(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.2)))
    assert not has_dropout(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.)))
    assert has_dropout(nn.Sequential(nn.Dropout2d(0.3)))


def test_add_branch_keeps_a_gradient_for_every_parameter():
    """With no sample kept the branch still runs on the whole batch (times
    zero), so that each parameter gets a gradient, as DDP expects; with
    dropout in the branch the whole batch runs (the draw then follows the
    branch)."""
    torch.manual_seed(0)
    x = torch.randn(4, 5, 8)
    lin = nn.Linear(8, 8)
    seen = []
    lin.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    out = add_branch(x, x, lin, DropPath(1 - 1e-7).train())
    out.sum().backward()
    assert seen == [4] and lin.weight.grad is not None
    assert torch.equal(out, x)
    seen.clear()
    branch = nn.Sequential(lin, nn.Dropout(0.1)).train()
    add_branch(x, x, branch, DropPath(0.5).train(),
               per_sample=lambda: not has_dropout(branch))
    assert seen == [4]


CASES = FAMILY_CASES


def _plain(model):
    """A copy whose drop paths are mmcv's: the branch runs on every sample
    and is multiplied by the per-sample mask afterwards."""
    ref = copy.deepcopy(model)
    for m in list(ref.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, DropPath):
                setattr(m, name, MMCVDropPath(child.drop_prob))
    return ref.train()


def _step(model, x, seed):
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    torch.manual_seed(seed)
    outs = model(x)
    loss = sum((o * torch.linspace(-1, 1, o.numel()).reshape(o.shape)).sum()
               for o in outs)
    loss.backward()
    return ([o.detach() for o in outs], x.grad,
            {n: p.grad for n, p in model.named_parameters()})


def _close(a, b, name, scale=None):
    """Equal to float64 rounding, relative to ``scale`` (default: the
    largest entry of ``b``)."""
    scale = b.abs().max() if scale is None else scale
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-10 * scale), \
        (name, (a - b).abs().max().item(), scale.item())


@pytest.mark.parametrize('family', sorted(CASES))
def test_dropped_samples_skip_the_branches(family):
    """Training on CPU: the branches see only the kept samples (checked
    with hooks on the blocks' norms and MLPs), and the outputs, input
    gradient and every parameter gradient equal the plain formulation's
    for the same seed."""
    name, kwargs, size = CASES[family]
    torch.manual_seed(0)
    # float64, so that the comparison is not about summation order
    model = getattr(backbones, name)(
        drop_path_rate=0.6, out_indices=(0, 1, 2, 3) if family in (
            'stvit', 'svt', 'swat_swin') else (-1, ),
        **kwargs).double().train()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.split('.')[-1] in ('gamma_1', 'gamma_2', 'ls1', 'ls2'):
                p.fill_(0.5)  # layer scales away from their 1e-4 / 1e-5
    ref = _plain(model)
    batch = 6
    seen = []
    branch_modules = [m for n, m in model.named_modules()
                      if n.endswith(('.mlp', '.mlp2', '.mlp_channels'))]
    assert branch_modules
    for m in branch_modules:
        m.register_forward_hook(
            lambda m, i, o: seen.append(i[0].shape[0]))
    x = torch.randn(batch, 3, size, size, dtype=torch.float64)
    ours = _step(model, x, seed=3)
    assert any(0 < k < batch for k in seen), seen  # some samples skipped
    assert all(k <= batch for k in seen)
    plain = _step(ref, x, seed=3)
    for i, (a, b) in enumerate(zip(ours[0], plain[0])):
        _close(a, b, f'output {i}')
    _close(ours[1], plain[1], 'input grad')
    # relative to the largest parameter gradient: some are zero up to
    # rounding (a bias before a batch norm)
    top = max(g.abs().max() for g in plain[2].values() if g is not None)
    for n, g in plain[2].items():
        if g is None:
            assert ours[2][n] is None, n
        else:
            _close(ours[2][n], g, n, scale=top)


@pytest.mark.parametrize('family', sorted(CASES))
def test_with_cp_recomputes_the_same_skips(family):
    """Gradient checkpointing replays each block in backward with the
    random state of its forward, so the recomputation draws (and skips)
    the same samples: same outputs and gradients as without it."""
    name, kwargs, size = CASES[family]
    cls = getattr(backbones, name)
    torch.manual_seed(0)
    plain = cls(drop_path_rate=0.6, **kwargs).double().train()
    cp = cls(drop_path_rate=0.6, with_cp=True, **kwargs).double().train()
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, size, size, dtype=torch.float64)
    ours, ref = _step(cp, x, seed=5), _step(plain, x, seed=5)
    for i, (a, b) in enumerate(zip(ours[0], ref[0])):
        _close(a, b, f'output {i}')
    _close(ours[1], ref[1], 'input grad')
    top = max(g.abs().max() for g in ref[2].values() if g is not None)
    for n, g in ref[2].items():
        if g is not None:
            _close(ours[2][n], g, n, scale=top)
