"""Every backbone compiles with ``torch.compile(fullgraph=True)`` (no graph
break in its forward) and gives the eager outputs and gradients.

The backend is ``aot_eager``: it traces forward and backward through
dynamo and AOTAutograd, which is what proves the absence of graph breaks,
without inductor's C++ compilation (slow on two cores). Add a backbone with
one row in :data:`CASES`.
"""
import importlib

import pytest
import torch

#: id -> (module that registers it, backbone config, input (B, C, H, W)).
#: Small custom archs and odd sizes (padding paths); one row per family.
CASES = {
    'stvit': ('swat_mm.models.backbones.stvit',
              dict(type='STViT',
                   arch=dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 2, 1],
                             num_heads=[1, 2, 3, 4],
                             layer_scale=[False, True, True, False]),
                   stoken_size=(4, 2, 1, 1), n_iter=(2, 1, 1, 1),
                   out_indices=(0, 1, 2, 3), drop_path_rate=0.),
              (2, 3, 50, 38)),
    'swat_vit': ('swat_mm.models.backbones.swat_vit',
                 dict(type='SWATViT', img_size=64,
                      arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                                token_channels=2, sub_patch=4,
                                stem_channels=16, pos_map_size=4,
                                mlp_ratio=2., mlp_kernel=3)),
                 (2, 3, 64, 64)),
    'swat_mixer': ('swat_mm.models.backbones.swat_mlp',
                   dict(type='SWATMixer', img_size=64,
                        arch=dict(embed_dims=32, num_layers=3,
                                  token_channels=2, sub_patch=4,
                                  stem_channels=16, token_kernel=3,
                                  channel_kernel=3)),
                   (2, 3, 64, 64)),
    'swat_resmlp': ('swat_mm.models.backbones.swat_mlp',
                    dict(type='SWATResMLP', img_size=64,
                         arch=dict(embed_dims=48, num_layers=3,
                                   token_channels=3, sub_patch=4,
                                   stem_channels=16, mlp_ratio=2.)),
                    (2, 3, 64, 64)),
    'swat_swin': ('swat_mm.models.backbones.swat_swin',
                  dict(type='SWATSwin', out_indices=(0, 1, 2, 3),
                       drop_path_rate=0.,
                       arch=dict(depths=[2, 2, 2, 1], num_heads=[1, 2, 2, 4],
                                 window_size=[4, 4, 2, 2],
                                 shift=[True, True, True, False],
                                 attn_conv=[(4, 2, 2, 3), (2, 4, 4, 1),
                                            (4, 4, 4, 3), (2, 8, 8, 3)],
                                 mlp_dw_kernel=[3, 3, 5, 1],
                                 merge_conv=[(4, 2, 2, 3), (2, 4, 4, 3),
                                             (4, 4, 4, 1)],
                                 tokenizer=dict(stem_channels=16,
                                                out_channels=4),
                                 mlp_ratio=2.)),
                  (2, 3, 64, 64)),
    # an odd map with a resized filter at the scatter stage (13 x 10)
    'svt': ('swat_mm.models.backbones.svt',
            dict(type='SVT', img_size=64, drop_path_rate=0.,
                 out_indices=(0, 1, 2, 3),
                 arch=dict(stem_channels=8, embed_dims=[16, 24, 32, 40],
                           depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 5],
                           mlp_ratios=[2, 2, 2, 2])),
            (2, 3, 50, 38)),
}

#: Known graph breaks, with the reason; strict xfail, so a fix shows.
XFAIL = {}


def _cases():
    return [pytest.param(c, marks=pytest.mark.xfail(reason=XFAIL[c],
                                                    strict=True))
            if c in XFAIL else c for c in CASES]

# outputs of differently fused kernels: float rounding only
TOL = dict(rtol=1e-4, atol=1e-5)


def build(case):
    module, cfg, shape = CASES[case]
    importlib.import_module(module)
    from swat_mm.registry import MODELS
    torch.manual_seed(0)
    # scoped type: other test modules leave mmdet/mmseg/mmpretrain as the
    # process's default scope
    cfg = dict(cfg, type='swat_mm.' + cfg['type'])
    return MODELS.build(cfg), torch.randn(*shape)


def _flat(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


@pytest.mark.parametrize('case', _cases())
def test_compiled_inference_matches_eager(case):
    torch._dynamo.reset()
    model, x = build(case)
    model.eval()
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    with torch.no_grad():
        expected = _flat(model(x))
        got = _flat(compiled(x))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        # at the output's scale: inductor fuses and reorders the sums
        # (SWAT Swin 2.3e-5 at a scale of about 3 on an AMD EPYC)
        scale = max(1., b.abs().max().item())
        assert torch.allclose(a, b, rtol=TOL['rtol'],
                              atol=TOL['atol'] * scale), (a - b).abs().max()


@pytest.mark.parametrize('case', _cases())
def test_compiled_training_matches_eager(case):
    """Train mode (BatchNorm batch statistics; the rows switch stochastic
    depth and dropout off): outputs and
    every parameter's gradient."""
    torch._dynamo.reset()
    model, x = build(case)
    model.train()
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    grads = []
    outs = []
    for fn in (model, compiled):
        model.zero_grad(set_to_none=True)
        out = _flat(fn(x))
        sum(o.square().mean() for o in out).backward()
        outs.append([o.detach() for o in out])
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None})
    for a, b in zip(*outs):
        # at the output's scale: train-mode batch norm over the small maps
        # of the tiny archs amplifies fp32 rounding (SWAT Swin 2.2e-5 at a
        # scale of 3.2 on an AMD EPYC)
        assert torch.allclose(a, b, rtol=TOL['rtol'],
                              atol=10 * TOL['atol'] * b.abs().max().item())
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert torch.allclose(grads[1][name], grads[0][name], rtol=1e-4,
                              atol=1e-6), name
