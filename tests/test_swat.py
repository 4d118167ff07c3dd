"""SWAT ViT/DeiT, MLP-Mixer and ResMLP: parity with the official model,
shapes, sizes, complexity, converter, fast paths. What every backbone
promises (frozen_stages, norm_eval, with_cp, tracing, input checks):
tests/test_backbone_contract.py."""
import importlib.util
import os.path as osp
import sys
from functools import partial

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import swat_mm  # noqa: F401
from swat_mm.converters import ConversionError, convert_swat
from swat_mm.models.backbones.swat_mlp import SWATMixer, SWATResMLP
from swat_mm.models.backbones.swat_vit import SWATViT
from swat_mm.models.layers import SWATTokenizer
from swat_mm.models.layers.config import fast_layers
from swat_mm.utils.complexity import count_complexity
from tests.golden.cases import assert_official_logits, load_fixture
from tests.tiny_archs import (SWAT_MIXER_TINY, SWAT_RESMLP_TINY,
                               SWAT_VIT_TINY)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CASES = ['swat_vit_tiny_a', 'swat_vit_tiny_b', 'swat_deit_tiny',
         'swat_mixer_tiny_a', 'swat_mixer_tiny', 'swat_resmlp_tiny_a',
         'swat_resmlp_s12']
VIT_TINY = SWAT_VIT_TINY
MIXER_TINY = SWAT_MIXER_TINY
RESMLP_TINY = SWAT_RESMLP_TINY


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    # other test modules leave mmdet/mmseg as the process's default scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.mark.parametrize('name', CASES)
def test_golden_parity_with_official(name):
    """The whole ImageClassifier gives the official logits for the official
    weights (converted by the shipped converter, family and arch found from
    the keys for the named archs)."""
    fixture = load_fixture(name)
    arch = fixture['arch']
    state, cfg = convert_swat(fixture['state_dict'],
                              arch=arch if isinstance(arch, dict) else None)
    if isinstance(arch, str):
        assert cfg['backbone']['arch'] == arch
    model = MODELS.build(cfg).eval()
    model.load_state_dict(state, strict=True)
    assert_official_logits(model, fixture)


def test_official_keys_load_into_backbones_directly():
    for name, cls, prefixes in (
            ('swat_vit_tiny_b', SWATViT, ('patch_embed.', 'pos_embed',
                                         'blocks.', 'norm.')),
            ('swat_mixer_tiny_a', SWATMixer, ('stem.', 'blocks.', 'norm.')),
            ('swat_resmlp_tiny_a', SWATResMLP, ('stem.', 'blocks.',
                                               'norm.'))):
        fixture = load_fixture(name)
        backbone = cls(arch=fixture['arch'],
                       img_size=fixture['input'].shape[-1])
        official = {k: v for k, v in fixture['state_dict'].items()
                    if k.startswith(prefixes)}
        backbone.load_state_dict(official, strict=True)


def test_tokenizer_fold_layout():
    """A token holds its (c, p, p) sub-patch: channel (ci, i, j) of token
    (r, s) is pixel (r*p + i, s*p + j) of proj22's channel ci."""
    tok = SWATTokenizer(3, 8, out_channels=2, sub_patch=4, stem_kernel=2,
                        stem_stride=2, stem_padding=0)
    x = torch.randn(1, 3, 40, 24)
    tokens, (hg, wg) = tok(x)
    assert (hg, wg) == (5, 3) == tok.grid_size((40, 24))
    ref = tok.proj22(tok.act(tok.proj21(x)))  # (1, 2, 20, 12)
    r, s, ci, i, j = 3, 1, 1, 2, 3
    # (the fast path's GEMM sums in another order than the conv: rtol 1e-5)
    torch.testing.assert_close(tokens[0, r * wg + s, ci * 16 + i * 4 + j],
                               ref[0, ci, r * 4 + i, s * 4 + j],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('size', [(333, 517), (64, 64), (97, 33)])
def test_vit_featmap_any_size(size):
    """Inputs are zero-padded to a multiple of the token size (16 here):
    the grid is ceil(H / 16) x ceil(W / 16); the position map is tiled and
    the position embedding resized bicubically to it."""
    H, W = size
    model = SWATViT(arch=dict(VIT_TINY, stem_channels=8), img_size=64,
                    out_indices=(0, 1, -2, -1), out_type='featmap').eval()
    stride = model.patch_embed.token_stride
    assert stride == 8
    with torch.no_grad():
        outs = model(torch.randn(1, 3, H, W))
    grid = (-(-H // stride), -(-W // stride))
    assert len(outs) == 4
    for out in outs:
        assert out.shape == (1, 32, *grid)
        assert torch.isfinite(out).all()


def test_vit_real_arch_dense_outputs_at_odd_size():
    model = SWATViT(arch='deit-small', out_indices=(2, 5, 8, 11),
                    out_type='featmap').eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 100, 75))
    assert [o.shape for o in outs] == [(1, 384, 7, 5)] * 4


def test_vit_out_types():
    model = SWATViT(arch=VIT_TINY, img_size=32, out_type='raw').eval()
    x = torch.randn(2, 3, 32, 48)
    raw = model(x)[0]
    assert raw.shape == (2, 4 * 6, 32)
    model.out_type = 'avg_featmap'
    assert torch.allclose(model(x)[0], raw.mean(1))
    model.out_type = 'featmap'
    assert torch.equal(model(x)[0].flatten(2).transpose(1, 2), raw)
    with pytest.raises(ValueError, match="no class token.*avg_featmap"):
        SWATViT(arch=VIT_TINY, out_type='cls_token')


def test_vit_pos_embed_resized_on_load():
    """A checkpoint for img_size 32 loads into a model for 48."""
    src = SWATViT(arch=VIT_TINY, img_size=32)
    dst = SWATViT(arch=VIT_TINY, img_size=48)
    dst.load_state_dict(src.state_dict(), strict=True)
    assert dst.pos_embed.shape == (1, 36, 32)


@pytest.mark.parametrize('cls, arch, size', [
    (SWATMixer, MIXER_TINY, 32), (SWATResMLP, RESMLP_TINY, 32),
    (SWATMixer, 'mixer-tiny', 224)])
def test_fixed_token_models_refuse_other_sizes(cls, arch, size):
    model = cls(arch=arch, img_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))[0]
    grid = size // model.stem.token_stride
    assert out.shape[-2:] == (grid, grid)
    tokens = grid**2
    with pytest.raises(ValueError, match=(
            rf'built for {size}x{size} inputs.*exactly {tokens} tokens.*got '
            rf'{size + 8}x{size}\. Resize or crop the input to {size}x{size}'
            r'.*img_size=')):
        model(torch.randn(1, 3, size + 8, size))


# Computed on the official code (REFERENCE.md section 3): params with the
# classifier and FLOPs at 224 (multiply-accumulates).
REFERENCE = {
    ('SWATViT', 'deit-tiny', 192): (5.83e6, 1.40e9),
    ('SWATViT', 'deit-small', 384): (22.27e6, 4.90e9),
    ('SWATViT', 'vit-base-p32', 768): (86.34e6, 4.52e9),
    ('SWATMixer', 'mixer-tiny', 256): (5.10e6, 0.99e9),
    ('SWATMixer', 'mixer-small', 512): (18.58e6, 3.83e9),
    ('SWATMixer', 'mixer-base-p32', 768): (58.42e6, 3.26e9),
    ('SWATResMLP', 's12', 384): (15.56e6, 3.08e9),
}


def build_classifier(backbone, arch, channels):
    if backbone == 'SWATViT':
        return MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='swat_mm.SWATViT', arch=arch),
            head=dict(type='VisionTransformerClsHead', num_classes=1000,
                      in_channels=channels)))
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type=f'swat_mm.{backbone}', arch=arch),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000,
                  in_channels=channels)))


@pytest.mark.parametrize('key', list(REFERENCE), ids=lambda k: k[1])
def test_params_and_flops_match_reference(key):
    with fast_layers(False):  # as get_flops.py builds a config's model
        model = build_classifier(*key)
    result = count_complexity(model, (224, 224))
    params, flops = REFERENCE[key]
    assert abs(result['params'] - params) / params < 0.01, result['params']
    assert abs(result['flops'] - flops) / flops < 0.02, result['flops']


def test_every_parameter_gets_a_gradient():
    """SWAT ViT with the ViT-B/32 tokenizer projection (``proj_kernel=2``,
    1 in the contract's tiny arch), its default ``avg_featmap`` output into
    the ViT head, on another input size than ``img_size`` (resized
    position embedding)."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='swat_mm.SWATViT',
                      arch=dict(VIT_TINY, proj_kernel=2), img_size=32,
                      drop_path_rate=0.1),
        # its default init zeroes the fc, which would stop every gradient
        head=dict(type='VisionTransformerClsHead', num_classes=3,
                  in_channels=32,
                  init_cfg=dict(type='Normal', layer='Linear', std=0.02))))
    model.init_weights()
    model.train()
    model(torch.randn(2, 3, 40, 56), mode='tensor').sum().backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad


@pytest.mark.parametrize('cls, kwargs, match', [
    (SWATViT, dict(arch='deit-huge'), "Unknown SWATViT arch 'deit-huge'"),
    (SWATViT, dict(arch=dict(embed_dims=32, num_layers=1)),
     r"missing \['num_heads', 'token_channels'\]"),
    (SWATViT, dict(arch=dict(VIT_TINY, heads=2)), r"unknown keys \['heads'\]"),
    (SWATViT, dict(arch=dict(VIT_TINY, embed_dims=48)),
     r'token_channels \* sub_patch\*\*2 = 2 \* 4\*\*2 = 32'),
    (SWATViT, dict(arch=dict(VIT_TINY, num_heads=3)), 'not divisible'),
    (SWATViT, dict(arch=dict(VIT_TINY, mlp_kernel=4)), 'must be odd'),
    (SWATViT, dict(arch=VIT_TINY, out_type='map'), 'out_type must be'),
    (SWATMixer, dict(arch='mixer-huge'), "Unknown SWATMixer arch"),
    (SWATMixer, dict(arch=dict(MIXER_TINY, embed_dims=64)),
     'token_channels'),
    (SWATMixer, dict(arch=MIXER_TINY, img_size=36), 'multiple of the token'),
    (SWATResMLP, dict(arch=dict(RESMLP_TINY, token_kernel=2)),
     'must be odd'),
])
def test_clear_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_converter_refuses_other_models_and_mismatches():
    resnet = MODELS.build(dict(type='ResNet', depth=18)).state_dict()
    with pytest.raises(ConversionError, match='not an official SWAT'):
        convert_swat(resnet)
    vit = load_fixture('swat_vit_tiny_a')
    with pytest.raises(ConversionError,
                       match='not an official SWAT mixer checkpoint '
                       r'\(it looks like a SWAT vit\)'):
        convert_swat(vit['state_dict'], family='mixer')
    with pytest.raises(ConversionError, match="Unknown SWAT family 'swim'"):
        convert_swat(vit['state_dict'], family='swim')
    with pytest.raises(ConversionError, match='none of the named archs'):
        convert_swat(vit['state_dict'])
    with pytest.raises(ConversionError,
                       match=r"arch 'deit-small' does not match.*embed_dims "
                       r'384 \(arch\) vs 32 \(checkpoint\)'):
        convert_swat(vit['state_dict'], arch='deit-small')
    state = dict(vit['state_dict'])
    state.pop('blocks.1.mlp.fc3.bias')
    state['blocks.1.extra.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError) as err:
        convert_swat(state, arch=vit['arch'])
    msg = str(err.value)
    assert 'missing (1): backbone.blocks.1.mlp.fc3.bias' in msg
    assert 'unexpected (1): backbone.blocks.1.extra.weight' in msg
    state = {k: v for k, v in vit['state_dict'].items()
             if not k.startswith('head.')}
    with pytest.raises(ConversionError, match='no classifier'):
        convert_swat(state, arch=vit['arch'])


def test_converter_backbone_only_and_img_size():
    fixture = load_fixture('swat_mixer_tiny')
    state, cfg = convert_swat(fixture['state_dict'], backbone_only=True,
                              family='mixer')
    assert cfg == dict(type='swat_mm.SWATMixer', arch='mixer-tiny')
    assert not any(k.startswith(('backbone.', 'neck.', 'head.'))
                   for k in state)
    SWATMixer(arch='mixer-tiny').load_state_dict(state, strict=True)
    fixture = load_fixture('swat_resmlp_tiny_a')
    _, cfg = convert_swat(fixture['state_dict'], arch=fixture['arch'])
    assert cfg['backbone']['img_size'] == 32
    assert cfg['neck'] == dict(type='GlobalAveragePooling')
    assert cfg['head']['type'] == 'LinearClsHead'


def _load_cli():
    path = osp.join(ROOT, 'tools', 'model_converters',
                    'swat_to_mmpretrain.py')
    spec = importlib.util.spec_from_file_location('swat_to_mmpretrain', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_converts_and_refuses(tmp_path, monkeypatch, capsys):
    cli = _load_cli()
    fixture = load_fixture('swat_vit_tiny_b')
    src = str(tmp_path / 'official.pth')
    torch.save({'state_dict': fixture['state_dict']}, src)
    dst = str(tmp_path / 'out' / 'backbone.pth')
    monkeypatch.setattr(sys, 'argv', ['x', src, dst, '--family', 'mixer'])
    assert cli.main() == 1
    assert 'not an official SWAT mixer' in capsys.readouterr().err
    monkeypatch.setattr(sys, 'argv', ['x', src, dst, '--arch', 'deit-tiny'])
    assert cli.main() == 1
    assert 'does not match' in capsys.readouterr().err
    assert not osp.exists(dst)
    # the (synthesised) real deit-tiny: family and arch found from the keys
    real = load_fixture('swat_deit_tiny')
    torch.save({'state_dict': real['state_dict']}, src)
    monkeypatch.setattr(sys, 'argv', ['x', src, dst, '--backbone-only'])
    assert cli.main() == 0
    saved = torch.load(dst, weights_only=True)['state_dict']
    model = SWATViT(arch='deit-tiny', out_indices=(2, 5, 8, 11),
                    out_type='featmap')
    model.load_state_dict(saved, strict=True)


# ------------------------------------------------- fast paths (performance) --
def _reference_attention_projections(attn, x):
    """The official two-branch formulation of SWATAttention's projections:
    (linear(x) + per-token conv(x)) / 2, conv on (B*N, c, h, w) maps."""
    from swat_mm.models.layers import layout_to_tokens, tokens_to_layout
    B = x.shape[0]
    qkv = (attn.qkv_linear(x) + layout_to_tokens(
        attn.qkv(tokens_to_layout(x, *attn.layout)), B)) * 0.5
    out = (attn.proj_linear(x) + layout_to_tokens(
        attn.proj(tokens_to_layout(x, *attn.layout)), B)) * 0.5
    return qkv, out


@pytest.mark.parametrize('layout,k', [((2, 4, 4), 3), ((3, 8, 8), 5),
                                      ((6, 8, 8), 3), ((24, 2, 2), 1)])
def test_token_conv_matrix_is_the_conv(layout, k):
    """The per-token conv as a matrix holds exactly the conv's weights and
    gives the conv at float64 to 1e-12."""
    from swat_mm.models.layers.swat_mixing import token_conv_matrix
    c, h, w = layout
    torch.manual_seed(0)
    weight = torch.randn(3 * c, c, k, k, dtype=torch.float64)
    m = token_conv_matrix(weight, h, w)
    assert m.shape == (3 * c * h * w, c * h * w)
    # every entry is one kernel weight or zero (exact), each weight used
    vals = set(weight.flatten().tolist()) | {0.}
    assert set(m.flatten().tolist()) <= vals
    x = torch.randn(5, c * h * w, dtype=torch.float64)
    ref = torch.nn.functional.conv2d(x.view(5, c, h, w), weight,
                                     padding=k // 2).flatten(1)
    torch.testing.assert_close(x @ m.T, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-10),
                                       (torch.float32, 1e-5)])
def test_fused_attention_projections_match_two_branch_form(dtype, tol):
    """SWATAttention's fused GEMM projections equal the official
    (linear + conv) / 2, in values and in gradients; the inference cache
    follows in-place weight changes."""
    from swat_mm.models.layers import SWATAttention
    torch.manual_seed(0)
    attn = SWATAttention(3, 4, 4, kernel_size=3, num_heads=3).to(dtype)
    x = torch.randn(2, 7, 48, dtype=dtype, requires_grad=True)
    ref_qkv, ref_out = _reference_attention_projections(attn, x)
    qkv = attn.project_qkv(x)  # (3, B, heads, N, hd)
    fused_qkv = qkv.permute(1, 3, 0, 2, 4).reshape(2, 7, 144)
    torch.testing.assert_close(fused_qkv, ref_qkv, rtol=tol, atol=tol)
    a = x.view(2, 7, 3, 16).transpose(1, 2)  # an attention output
    fused_out = attn.project_out(a)
    torch.testing.assert_close(fused_out, ref_out, rtol=tol, atol=tol)
    grads = torch.autograd.grad((fused_qkv.sin().sum() + fused_out.sum()),
                                [x] + list(attn.parameters()))
    ref_grads = torch.autograd.grad((ref_qkv.sin().sum() + ref_out.sum()),
                                    [x] + list(attn.parameters()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=tol, atol=tol)
    with torch.no_grad():
        first = attn.project_qkv(x)
        assert torch.equal(attn.project_qkv(x), first)  # cached matrix
        attn.qkv.weight.add_(0.1)
        ref_qkv, _ = _reference_attention_projections(attn, x)
        again = attn.project_qkv(x).permute(1, 3, 0, 2, 4).reshape(2, 7, 144)
        torch.testing.assert_close(again, ref_qkv, rtol=tol, atol=tol)
        assert not torch.allclose(again.reshape(-1), first.permute(
            1, 3, 0, 2, 4).reshape(-1), atol=1e-3)


def test_conv_mlp_channels_last_path_matches_nchw():
    """The conv MLP on a channels-last view (GEMMs over the rows) equals
    the NCHW convolution path, outputs and gradients (fp32, rtol 1e-5)."""
    from swat_mm.models.layers import SWATConvMlp
    torch.manual_seed(0)
    mlp = SWATConvMlp(24, 48, kernel_size=5)
    x = torch.randn(2, 24, 6, 7)
    x_cl = x.permute(0, 2, 3, 1).contiguous().requires_grad_()
    x_nchw = x.clone().requires_grad_()
    fast = mlp(x_cl.permute(0, 3, 1, 2))  # channels-last view: fast path
    ref = mlp(x_nchw)  # contiguous NCHW: the convolutions
    assert fast.permute(0, 2, 3, 1).is_contiguous()
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    fast.square().sum().backward()
    fast_grads = [p.grad.clone() for p in mlp.parameters()]
    mlp.zero_grad()
    ref.square().sum().backward()
    torch.testing.assert_close(x_cl.grad.permute(0, 3, 1, 2), x_nchw.grad,
                               rtol=1e-5, atol=1e-5)
    for g, p in zip(fast_grads, mlp.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # the in-place GELU without autograd
        torch.testing.assert_close(mlp(x_cl.permute(0, 3, 1, 2)),
                                   mlp(x_nchw), rtol=1e-5, atol=1e-5)


def _twins(make):
    """``make()`` built with the fast layers and with the reference
    (official) formulation (``fast_layers(False)``), same weights."""
    fast = make()
    with fast_layers(False):
        ref = make()
    ref.load_state_dict(fast.state_dict())
    return fast, ref


@pytest.mark.parametrize('dtype,tol,gtol', [(torch.float64, 1e-10, 1e-9),
                                            (torch.float32, 1e-5, 1e-3)])
@pytest.mark.parametrize('family', ['vit', 'mixer', 'resmlp'])
def test_fast_paths_match_reference_formulation(family, dtype, tol, gtol):
    """Whole backbones: fast layers (fused projections, channels-last conv
    MLPs, channels-last tokenizer) against the reference formulation, in
    eval (cached matrices) and with gradients."""
    torch.manual_seed(0)
    if family == 'vit':
        make = partial(SWATViT, arch=VIT_TINY, img_size=32,
                       out_type='featmap')
    elif family == 'mixer':
        make = partial(SWATMixer, arch=MIXER_TINY, img_size=32)
    else:
        make = partial(SWATResMLP, arch=RESMLP_TINY, img_size=32)
    model, reference = (m.to(dtype) for m in _twins(make))
    assert {m.fast for m in model.modules() if hasattr(m, 'fast')} == {True}
    assert {m.fast for m in reference.modules()
            if hasattr(m, 'fast')} == {False}
    x = torch.randn(2, 3, 32, 32, dtype=dtype)
    model.eval()
    reference.eval()
    with torch.no_grad():
        ref = reference(x)[-1]
        fast = model(x)[-1]
        torch.testing.assert_close(fast, ref, rtol=tol, atol=tol)
        torch.testing.assert_close(model(x)[-1], fast, rtol=0, atol=0)
    model.train()
    reference.train()
    fast = model(x)[-1]
    grads = torch.autograd.grad(fast.square().sum(), list(
        model.parameters()))
    ref = reference(x)[-1]
    ref_grads = torch.autograd.grad(ref.square().sum(), list(
        reference.parameters()))
    torch.testing.assert_close(fast, ref, rtol=tol, atol=tol)
    scale = max(r.abs().max().item() for r in ref_grads)
    for g, r in zip(grads, ref_grads):
        # at the gradients' scale (sums of many products cancel, some
        # gradients are zero but for rounding; fp32: the forward's 1e-6
        # differences pass through the LayerNorms)
        torch.testing.assert_close(g, r, rtol=gtol, atol=gtol * scale)
