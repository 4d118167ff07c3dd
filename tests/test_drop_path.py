"""Stochastic depth (``swat_mm.models.layers.drop_path.DropPath``) in every
backbone family: the same draws, outputs and gradients as mmcv's
``DropPath``, and the same again when gradient checkpointing replays a
block."""
import copy

import pytest
import torch
from mmcv.cnn.bricks import DropPath as MMCVDropPath

from swat_mm.models import backbones
from swat_mm.models.layers.drop_path import DropPath
from tests.tiny_archs import FAMILY_CASES

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
def test_same_draws_outputs_and_gradients_as_mmcv(family):
    """Training: the outputs, input gradient and every parameter gradient
    equal those of the model with mmcv's DropPath for the same seed, and
    the draws drop some samples (every branch is seen by the whole batch,
    as officially)."""
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
    assert seen and all(k == batch for k in seen), seen
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
    # the draws act: another seed drops other samples
    assert not torch.allclose(_step(model, x, seed=4)[0][-1], ours[0][-1])


@pytest.mark.parametrize('family', sorted(CASES))
def test_with_cp_recomputes_the_same_draws(family):
    """Gradient checkpointing replays each block in backward with the
    random state of its forward, so the recomputation draws the same
    samples: same outputs and gradients as without it."""
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
