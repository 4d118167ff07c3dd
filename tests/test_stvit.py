"""STViT: parity with the official model, shapes, sizes, training switches."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import swat_mm  # noqa: F401
from swat_mm.apis.complexity import count_complexity
from swat_mm.converters import ConversionError, convert_stvit
from swat_mm.models.backbones.stvit import STViT
from tests.golden.synth import synth_state_dict

GOLDEN = osp.join(osp.dirname(__file__), 'golden', 'data')
CASES = ['stvit_tiny_a', 'stvit_tiny_b', 'stvit_tiny_c', 'stvit_small',
         'stvit_base']
TINY = dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 2, 1],
            num_heads=[1, 2, 3, 4])


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    # other test modules leave mmdet/mmseg as the process's default scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def load_fixture(name):
    fixture = torch.load(osp.join(GOLDEN, f'{name}.pth'), weights_only=True)
    if 'state_dict' not in fixture:
        synth = fixture['synth']
        fixture['state_dict'] = synth_state_dict(synth['shapes'],
                                                 synth['seed'])
    return fixture


def official_kwargs_to_arch(kw):
    arch = dict(embed_dims=kw['embed_dim'], depths=kw['depths'],
                num_heads=kw['num_heads'], layer_scale=kw['layerscale'],
                layer_scale_init_value=kw['init_values'])
    return arch, dict(stoken_size=kw['stoken_size'], n_iter=kw['n_iter'])


@pytest.mark.parametrize('name', CASES)
def test_golden_parity_with_official(name):
    """The whole ImageClassifier gives the official logits for the official
    weights (converted by the shipped converter)."""
    fixture = load_fixture(name)
    arch, extra = official_kwargs_to_arch(fixture['official_kwargs'])
    state, cfg = convert_stvit(fixture['state_dict'], arch=arch)
    cfg['backbone'].update(extra)
    model = MODELS.build(cfg).eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        logits = model(fixture['input'], mode='tensor')
    expected = fixture['logits']
    assert logits.shape == expected.shape
    assert torch.allclose(logits, expected, rtol=1e-4, atol=1e-5), \
        (logits - expected).abs().max()


def test_official_checkpoint_loads_with_prefix_only():
    """Official keys load into the backbone directly (the frozen identity
    kernels are checked and dropped)."""
    fixture = load_fixture('stvit_tiny_b')
    arch, extra = official_kwargs_to_arch(fixture['official_kwargs'])
    backbone = STViT(arch=arch, **extra)
    official = {k: v for k, v in fixture['state_dict'].items()
                if k.startswith(('patch_embed.', 'layers.'))}
    assert any(k.endswith('attn.unfold.weights') for k in official)
    result = backbone.load_state_dict(official, strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    bad = dict(official)
    key = next(k for k in bad if k.endswith('attn.fold.weights'))
    bad[key] = bad[key] * 2
    with pytest.raises(ValueError, match='identity kernel'):
        backbone.load_state_dict(bad)


def test_converter_refuses_other_models_and_mismatches():
    resnet = MODELS.build(dict(type='ResNet', depth=18)).state_dict()
    with pytest.raises(ConversionError, match='not an official STViT'):
        convert_stvit(resnet)
    fixture = load_fixture('stvit_tiny_a')
    arch, _ = official_kwargs_to_arch(fixture['official_kwargs'])
    state = dict(fixture['state_dict'])
    state.pop('layers.0.blocks.0.mlp2.fc1.weight')
    state['layers.0.blocks.0.extra.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError) as err:
        convert_stvit(state, arch=arch)
    msg = str(err.value)
    assert 'missing (1): backbone.layers.0.blocks.0.mlp2.fc1.weight' in msg
    assert 'unexpected (1): backbone.layers.0.blocks.0.extra.weight' in msg
    with pytest.raises(ConversionError, match='none of small/base/large'):
        convert_stvit(fixture['state_dict'])
    with pytest.raises(ConversionError, match='embed_dims'):
        convert_stvit(fixture['state_dict'], arch='small')


def test_converter_backbone_only_loads_into_backbone():
    fixture = load_fixture('stvit_small')
    state, cfg = convert_stvit(fixture['state_dict'], backbone_only=True)
    assert cfg['arch'] == 'small'
    assert not any(k.startswith(('backbone.', 'neck.', 'head.'))
                   for k in state)
    backbone = STViT(arch='small', out_indices=(0, 1, 2, 3))
    backbone.load_state_dict(state, strict=True)


@pytest.mark.parametrize('size', [(333, 517), (64, 64), (97, 33)])
def test_output_shapes_any_size(size):
    H, W = size
    model = STViT(arch=TINY, out_indices=(0, 1, -2, -1),
                  stoken_size=(8, 4, 2, 1)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, H, W))
    assert len(outs) == 4
    h, w = H, W
    for i, out in enumerate(outs):
        h, w = (h + 1) // 2, (w + 1) // 2  # stride-2 convs with padding 1
        if i == 0:
            h, w = (h + 1) // 2, (w + 1) // 2
        assert out.shape == (1, TINY['embed_dims'][i], h, w)
        assert torch.isfinite(out).all()


def test_out_indices_subset_and_order():
    model = STViT(arch=TINY, out_indices=(2, )).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert len(outs) == 1 and outs[0].shape == (1, 48, 4, 4)


# Computed on the official code (REFERENCE.md section 1): params with the
# classifier, and FLOPs at 224 (multiply-accumulates, fvcore).
PAPER = {'small': (25.50e6, 4.37e9), 'base': (51.69e6, 9.87e9),
         'large': (94.97e6, 15.60e9)}


def build_classifier(arch):
    in_ch = 640 if arch == 'large' else 512
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='swat_mm.STViT', arch=arch),
        neck=dict(type='swat_mm.STViTClsNeck', in_channels=in_ch),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=1024)))


@pytest.mark.parametrize('arch', ['small', 'base', 'large'])
def test_param_count_matches_reference(arch):
    model = build_classifier(arch)
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - PAPER[arch][0]) / PAPER[arch][0] < 0.01, params


@pytest.mark.parametrize('arch', ['small', 'base', 'large'])
def test_flops_at_224_match_reference(arch):
    # the counter behind tools/analysis_tools/get_flops.py
    flops = count_complexity(build_classifier(arch), (224, 224))['flops']
    assert abs(flops - PAPER[arch][1]) / PAPER[arch][1] < 0.02, flops


def test_frozen_stages():
    model = STViT(arch=TINY, frozen_stages=2, out_indices=(0, 1, 2, 3))
    model.train()
    for m in [model.patch_embed, model.layers[0], model.layers[1]]:
        assert not m.training
        assert all(not p.requires_grad for p in m.parameters())
    for m in [model.layers[2], model.layers[3]]:
        assert m.training
        assert all(p.requires_grad for p in m.parameters())
    # frozen BatchNorm statistics do not move
    before = model.patch_embed.proj[2].running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(before, model.patch_embed.proj[2].running_mean)
    assert not torch.equal(model.layers[2].blocks[0].norm2.running_mean,
                           torch.zeros(48))


def test_norm_eval():
    model = STViT(arch=TINY, norm_eval=True, out_indices=(3, ))
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert model.layers[0].blocks[0].attn.training
    stats = [m.running_mean.clone() for m in bns]
    model(torch.randn(2, 3, 32, 32))
    assert all(torch.equal(s, m.running_mean) for s, m in zip(stats, bns))


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    model = STViT(arch=TINY, out_indices=(0, 1, 2, 3), drop_path_rate=0.)
    model_cp = copy.deepcopy(model)
    model_cp.with_cp = True
    x = torch.randn(2, 3, 48, 40)
    outs = model(x)
    outs_cp = model_cp(x)
    for a, b in zip(outs, outs_cp):
        assert torch.allclose(a, b, atol=1e-6)
    sum(o.square().mean() for o in outs).backward()
    sum(o.square().mean() for o in outs_cp).backward()
    for (name, p), p_cp in zip(model.named_parameters(),
                               model_cp.parameters()):
        assert torch.allclose(p.grad, p_cp.grad, atol=1e-6, rtol=1e-5), name


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='swat_mm.STViT', arch=dict(TINY, layer_scale=[
            True, False, True, False]), stoken_size=(4, 2, 1, 1), n_iter=2),
        neck=dict(type='swat_mm.STViTClsNeck', in_channels=64,
                  out_channels=32),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=32)))
    model.train()
    logits = model(torch.randn(2, 3, 40, 56), mode='tensor')
    logits.sum().backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='tiny'), "Unknown STViT arch 'tiny'"),
    (dict(arch=dict(embed_dims=[8], depths=[1])), r"missing \['num_heads'\]"),
    (dict(arch=dict(TINY, mlp=4)), r"unknown keys \['mlp'\]"),
    (dict(arch=dict(TINY, depths=[1, 1])), 'differ in length'),
    (dict(arch=dict(TINY, num_heads=[3, 2, 3, 4])), 'not divisible'),
    (dict(arch=TINY, out_indices=(4, )), 'out of range'),
    (dict(arch=TINY, out_indices=(-5, )), 'out of range'),
    (dict(arch=TINY, stoken_size=(8, 4, 1)), 'one entry per stage'),
])
def test_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        STViT(**kwargs)


def test_wrong_input_channels():
    model = STViT(arch=TINY)
    with pytest.raises(ValueError, match=r'expects \(B, 3, H, W\).*got '
                       r'\(1, 1, 32, 32\).*in_channels=1'):
        model(torch.randn(1, 1, 32, 32))
