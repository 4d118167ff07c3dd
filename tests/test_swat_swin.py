"""SWAT-Swin: parity with the official model, shapes, sizes, converter,
fast paths. What every backbone promises (frozen_stages, norm_eval,
with_cp, tracing, input checks): tests/test_backbone_contract.py."""
import pytest
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import swat_mm  # noqa: F401
from swat_mm.converters import ConversionError
from swat_mm.converters.swat_swin import convert_swat_swin, infer_arch
from swat_mm.models.backbones.swat_swin import SWATSwin
from swat_mm.models.layers.config import fast_layers
from swat_mm.utils.complexity import count_complexity
from tests.golden.cases import assert_official_logits, load_fixture
from tests.tiny_archs import SWAT_SWIN_TINY

CASES = ['swat_swin_custom_a', 'swat_swin_custom_b', 'swat_swin_tiny']
TINY = SWAT_SWIN_TINY


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    # other test modules leave mmdet/mmseg as the process's default scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.mark.parametrize('name', CASES)
def test_golden_parity_with_official(name):
    """The whole ImageClassifier gives the official logits for the official
    weights (converted by the shipped converter, arch read off the
    weights)."""
    fixture = load_fixture(name)
    state, cfg = convert_swat_swin(fixture['state_dict'])
    if name == 'swat_swin_tiny':
        assert cfg['backbone']['arch'] == 'tiny'
        # naming the arch gives the same conversion
        named, named_cfg = convert_swat_swin(fixture['state_dict'],
                                             arch='tiny')
        assert named_cfg == cfg and list(named) == list(state)
    model = MODELS.build(cfg).eval()
    model.load_state_dict(state, strict=True)
    assert_official_logits(model, fixture)


def test_custom_arch_read_off_the_weights():
    """The per-width / per-resolution official tables of the custom case
    become the per-stage settings, including the official window clamp
    (window 14 on the 7x7 last stage) and shift switch-off."""
    fixture = load_fixture('swat_swin_custom_a')
    arch = infer_arch(fixture['state_dict'])
    tables = fixture['tables']
    assert arch['attn_conv'] == [tables['attn'][d] for d in (96, 192, 384,
                                                             768)]
    assert arch['mlp_dw_kernel'] == [tables['mlp'][r] for r in (56, 28, 14,
                                                                7)]
    assert arch['merge_conv'] == [tables['merge'][r] for r in (56, 28, 14)]
    assert arch['window_size'] == [14, 14, 14, 7]
    assert arch['shift'] == [True, False, False, False]
    assert arch['mlp_ratio'] == 2.
    _, cfg = convert_swat_swin(fixture['state_dict'])
    assert cfg['backbone']['qkv_bias'] is False


def test_official_checkpoint_loads_with_prefix_only():
    """Official backbone keys load into SWATSwin directly: shift masks are
    checked and dropped, relative position indices checked."""
    fixture = load_fixture('swat_swin_custom_b')
    official = {k: v for k, v in fixture['state_dict'].items()
                if not k.startswith('head.')}
    assert any(k.endswith('attn_mask') for k in official)
    backbone = SWATSwin(arch=infer_arch(official))
    result = backbone.load_state_dict(official, strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    bad = dict(official)
    key = next(k for k in bad if k.endswith('attn_mask'))
    bad[key] = bad[key] + 1
    with pytest.raises(ValueError, match='0/-100'):
        backbone.load_state_dict(bad)
    bad = dict(official)
    key = next(k for k in bad if k.endswith('relative_position_index'))
    bad[key] = bad[key].flip(0)
    with pytest.raises(ValueError, match='relative position index'):
        backbone.load_state_dict(bad)


def test_converter_refuses_other_models_and_mismatches():
    resnet = MODELS.build(dict(type='ResNet', depth=18)).state_dict()
    with pytest.raises(ConversionError, match='not an official SWAT-Swin'):
        convert_swat_swin(resnet)
    fixture = load_fixture('swat_swin_custom_b')
    state = dict(fixture['state_dict'])
    state.pop('layers.0.blocks.0.mlp.fc1.bias')
    state['layers.0.blocks.0.extra.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError) as err:
        convert_swat_swin(state)
    msg = str(err.value)
    assert 'missing (1): backbone.layers.0.blocks.0.mlp.fc1.bias' in msg
    assert 'unexpected (1): backbone.layers.0.blocks.0.extra.weight' in msg
    with pytest.raises(ConversionError, match=r'depths \[2, 2, 18, 2\]'):
        convert_swat_swin(fixture['state_dict'], arch='small')
    state = dict(fixture['state_dict'])
    key = next(k for k in state if k.endswith('attn_mask'))
    state[key] = torch.ones_like(state[key])
    with pytest.raises(ConversionError, match='0/-100'):
        convert_swat_swin(state)
    no_head = {k: v for k, v in fixture['state_dict'].items()
               if not k.startswith('head.')}
    with pytest.raises(ConversionError, match='backbone_only'):
        convert_swat_swin(no_head)


def test_converter_backbone_only_loads_into_dense_backbone():
    fixture = load_fixture('swat_swin_tiny')
    state, cfg = convert_swat_swin(fixture['state_dict'], backbone_only=True)
    assert cfg['arch'] == 'tiny' and cfg['out_indices'] == (0, 1, 2, 3)
    assert not any(k.startswith(('backbone.', 'head.')) for k in state)
    backbone = SWATSwin(arch='tiny', out_indices=(0, 1, 2, 3))
    result = backbone.load_state_dict(state, strict=False)
    # only the new inner output norms start from scratch
    assert sorted(result.missing_keys) == [
        f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    assert not result.unexpected_keys


def test_swin_entry_of_the_swat_converter():
    """The 'swin' family of :func:`convert_swat` recognises SWAT-Swin
    weights, delegates to :func:`convert_swat_swin` and refuses others."""
    from swat_mm.converters import swat
    fixture = load_fixture('swat_swin_custom_b')
    assert swat.detect_family(fixture['state_dict']) == 'swin'
    state, cfg = swat.convert_swat(fixture['state_dict'])
    assert cfg['backbone']['type'] == 'swat_mm.SWATSwin'
    MODELS.build(cfg).load_state_dict(state, strict=True)
    resnet = MODELS.build(dict(type='ResNet', depth=18)).state_dict()
    with pytest.raises(ConversionError, match='not an official SWAT swin'):
        swat.convert_swat(resnet, family='swin')


def expected_hw(H, W, i):
    return -(-H // 2**(i + 2)), -(-W // 2**(i + 2))


@pytest.mark.parametrize('size', [(224, 224), (333, 517)])
def test_tiny_output_shapes(size):
    H, W = size
    model = SWATSwin(arch='tiny', out_indices=(0, 1, 2, 3)).eval()
    assert model.embed_dims == [96, 192, 384, 768]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, H, W))
    assert len(outs) == 4
    for i, out in enumerate(outs):
        assert out.shape == (1, 96 * 2**i, *expected_hw(H, W, i))
        assert torch.isfinite(out).all()


@pytest.mark.parametrize('size', [(64, 64), (97, 33), (20, 44), (5, 7)])
def test_custom_output_shapes_any_size(size):
    H, W = size
    model = SWATSwin(arch=TINY, out_indices=(0, 1, -2, -1)).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, H, W))
    for i, out in enumerate(outs):
        assert out.shape == (2, 16 * 2**i, *expected_hw(H, W, i))
        assert torch.isfinite(out).all()


def test_out_indices_norms():
    model = SWATSwin(arch=TINY, out_indices=(0, 2)).eval()
    assert hasattr(model, 'norm0') and hasattr(model, 'norm2')
    assert not hasattr(model, 'norm') and not hasattr(model, 'norm1')
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 64]
    # the last stage's output norm is the official final norm
    assert isinstance(SWATSwin(arch=TINY).norm, nn.LayerNorm)


# Computed on the official code (REFERENCE.md section 3): params with the
# classifier, and FLOPs at 224 (multiply-accumulates, fvcore).
SWIN_T_PARAMS, SWIN_T_FLOPS = 27.11e6, 4.71e9


def build_classifier(arch='tiny', **kwargs):
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='swat_mm.SWATSwin', arch=arch, **kwargs),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=768)))


def test_params_and_flops_match_reference():
    with fast_layers(False):  # as get_flops.py builds a config's model
        model = build_classifier()
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - SWIN_T_PARAMS) / SWIN_T_PARAMS < 0.01, params
    # the counter behind tools/analysis_tools/get_flops.py
    result = count_complexity(model, (224, 224))
    assert result['params'] == params
    assert abs(result['flops'] - SWIN_T_FLOPS) / SWIN_T_FLOPS < 0.02, \
        result['flops']


def test_small_arch():
    model = SWATSwin(arch='small')
    assert [len(layer.blocks) for layer in model.layers] == [2, 2, 18, 2]
    params = sum(p.numel() for p in model.parameters())
    # Swin-T's 27.11M with 12 more stage-3 blocks, minus the head
    assert 48.1e6 < params < 48.2e6, params


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='base'), "Unknown SWATSwin arch 'base'"),
    (dict(arch=dict(depths=[2, 2, 6, 2])), r"missing \['num_heads'\]"),
    (dict(arch=dict(TINY, mlp=4)), r"unknown keys \['mlp'\]"),
    (dict(arch=dict(TINY, depths=[1, 1])), 'differ in length'),
    (dict(arch=dict(TINY, merge_conv=TINY['merge_conv'][:2])),
     'differ in length'),
    (dict(arch=dict(TINY, num_heads=[3, 2, 2, 4])), 'not divisible'),
    (dict(arch=dict(TINY, attn_conv=[(4, 2, 2, 3), (4, 4, 4, 1),
                                     (4, 4, 4, 3), (2, 8, 8, 3)])),
     r'attn_conv\[1\]'),
    (dict(arch=dict(TINY, attn_conv=[(4, 2, 2, 2)] + TINY['attn_conv'][1:])),
     'odd k'),
    (dict(arch=dict(TINY, merge_conv=[(1, 4, 4, 3)] + TINY['merge_conv'][1:])),
     'even c'),
    (dict(arch=dict(TINY, mlp_dw_kernel=[3, 4, 5, 1])), 'must be odd'),
    (dict(arch=dict(TINY, tokenizer=dict(patch=2))),
     r"unknown tokenizer keys \['patch'\]"),
])
def test_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SWATSwin(**kwargs)


@pytest.mark.parametrize('dtype,tol,gtol', [(torch.float64, 1e-10, 1e-9),
                                            (torch.float32, 1e-5, 1e-3)])
def test_fast_paths_match_reference_formulation(dtype, tol, gtol):
    """The fast layers (fused conv-attention projections, channels-last
    conv MLPs and tokenizer) against the reference formulation (built inside
    ``fast_layers(False)``, what the FLOPs are counted on), on a padded
    odd-sized input, in eval and with gradients."""
    torch.manual_seed(0)
    model = SWATSwin(arch=TINY, out_indices=(0, 1, 2, 3),
                     drop_path_rate=0.).to(dtype)
    with fast_layers(False):
        reference = SWATSwin(arch=TINY, out_indices=(0, 1, 2, 3),
                             drop_path_rate=0.).to(dtype)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 45, 38, dtype=dtype)

    model.eval()
    reference.eval()
    with torch.no_grad():
        for a, b in zip(model(x), reference(x)):
            # at the map's scale: four stages of fp32 GEMMs summed in
            # another order
            torch.testing.assert_close(a, b, rtol=tol,
                                       atol=tol * b.abs().max().item())
    model.train()
    reference.train()
    grads = torch.autograd.grad(sum(o.square().sum() for o in model(x)),
                                list(model.parameters()))
    ref = torch.autograd.grad(sum(o.square().sum() for o in reference(x)),
                              list(reference.parameters()))
    scale = max(r.abs().max().item() for r in ref)
    for g, r in zip(grads, ref):
        # at the gradients' scale (sums of many products cancel, some
        # gradients are zero but for rounding; fp32: the forward's 1e-6
        # differences pass through the LayerNorms)
        torch.testing.assert_close(g, r, rtol=gtol, atol=gtol * scale)
