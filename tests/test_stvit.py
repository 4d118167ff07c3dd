"""STViT: parity with the official model, shapes, sizes, converter, fast
paths. What every backbone promises (frozen_stages, norm_eval, with_cp,
tracing, input checks): tests/test_backbone_contract.py."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import swat_mm  # noqa: F401
from swat_mm.converters import ConversionError, convert_stvit
from swat_mm.models.backbones.stvit import STViT
from swat_mm.utils.complexity import count_complexity
from tests.golden.cases import golden_classifier, load_fixture, stvit_arch
from tests.tiny_archs import STVIT_TINY

CASES = ['stvit_tiny_a', 'stvit_tiny_b', 'stvit_tiny_c', 'stvit_small',
         'stvit_base']
TINY = STVIT_TINY


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    # other test modules leave mmdet/mmseg as the process's default scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


official_kwargs_to_arch = stvit_arch


@pytest.mark.parametrize('name', CASES)
def test_golden_parity_with_official(name):
    """The whole ImageClassifier gives the official logits for the official
    weights (converted by the shipped converter)."""
    model, x, expected = golden_classifier(name)
    with torch.no_grad():
        logits = model(x, mode='tensor')
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


def test_every_parameter_gets_a_gradient():
    """With the options the contract's tiny arch leaves off (layer scale
    on some stages, two super-token iterations), through the whole
    classifier with its neck."""
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
    (dict(arch=TINY, stoken_size=(8, 4, 1)), 'one entry per stage'),
])
def test_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        STViT(**kwargs)


# ---------------------------------------------------------------------------
# Speed-only code paths (module docstring, "Speed"): each against a plain
# formulation of the official computation, outputs and gradients.

def _ref_attention(m, x):
    """Official ``Attention``: softmax over keys of k^T q, NCHW."""
    B, C, H, W = x.shape
    heads = m.num_heads
    qkv = F.conv2d(x, m.qkv.weight, m.qkv.bias)
    q, k, v = qkv.reshape(B, heads, C // heads * 3, H * W).chunk(3, dim=2)
    attn = ((k.transpose(-1, -2) @ q) * m.scale).softmax(dim=-2)
    x = (v @ attn).reshape(B, C, H, W)
    return F.conv2d(x, m.proj.weight, m.proj.bias)


def _ref_stoken_attention(m, x):
    """Official ``StokenAttention`` with F.unfold / F.fold, NCHW."""
    h, w = m.stoken_size
    if max(h, w) == 1:
        return _ref_attention(m.stoken_refine, x)
    B, C, H0, W0 = x.shape
    pad_r, pad_b = (w - W0 % w) % w, (h - H0 % h) % h
    x = F.pad(x, (0, pad_r, 0, pad_b))
    H, W = x.shape[-2:]
    hh, ww = H // h, W // w

    def unfold(t):  # (B, c, hh, ww) -> (B, L, c, 9)
        return F.unfold(t, 3, padding=1).reshape(
            B, t.shape[1], 9, hh * ww).permute(0, 3, 1, 2)

    def fold(t):  # (B, L, c, 9) -> (B, c, hh, ww)
        return F.fold(t.permute(0, 2, 3, 1).reshape(B, -1, hh * ww),
                      (hh, ww), 3, padding=1)

    stokens = F.adaptive_avg_pool2d(x, (hh, ww))
    pixels = x.reshape(B, C, hh, h, ww, w).permute(0, 2, 4, 3, 5, 1) \
        .reshape(B, hh * ww, h * w, C)
    with torch.no_grad():
        for idx in range(m.n_iter):
            aff = ((pixels @ unfold(stokens)) * m.scale).softmax(-1)
            aff_sum = fold(aff.sum(2).unsqueeze(2))
            if idx < m.n_iter - 1:
                stokens = fold(pixels.transpose(-1, -2) @ aff) / (
                    aff_sum + 1e-12)
    stokens = fold(pixels.transpose(-1, -2) @ aff) / (aff_sum + 1e-12)
    stokens = _ref_attention(m.stoken_refine, stokens)
    pixels = unfold(stokens) @ aff.transpose(-1, -2)
    pixels = pixels.reshape(B, hh, ww, C, h, w).permute(0, 3, 1, 4, 2, 5) \
        .reshape(B, C, H, W)
    return pixels[:, :, :H0, :W0]


def _ref_drop_path(x, p, training):
    """timm's DropPath, as the official model uses it."""
    if p == 0. or not training:
        return x
    keep = 1 - p
    mask = (keep + torch.rand((x.shape[0], 1, 1, 1), dtype=x.dtype)).floor_()
    return x.div(keep) * mask


def _ref_block(blk, x):
    """Official ``StokenAttentionLayer`` from plain functional ops."""
    dw = blk.pos_embed.conv
    x = x + F.conv2d(x, dw.weight, dw.bias, 1, 1, 1, dw.groups)
    n1 = blk.norm1.norm
    y = F.layer_norm(x.permute(0, 2, 3, 1), n1.normalized_shape, n1.weight,
                     n1.bias, n1.eps).permute(0, 3, 1, 2)
    y = _ref_stoken_attention(blk.attn, y)
    p = getattr(blk.drop_path, 'drop_prob', 0.)
    if blk.layer_scale:
        y = blk.gamma_1 * y
    x = x + _ref_drop_path(y, p, blk.training)
    y = blk.norm2(x)
    mlp = blk.mlp2
    y = F.gelu(F.conv2d(y, mlp.fc1.weight, mlp.fc1.bias))
    dw = mlp.conv.conv
    y = y + F.conv2d(y, dw.weight, dw.bias, 1, 1, 1, dw.groups)
    y = F.conv2d(y, mlp.fc2.weight, mlp.fc2.bias)
    if blk.layer_scale:
        y = blk.gamma_2 * y
    return x + _ref_drop_path(y, p, blk.training)


def _outputs_and_grads(fn, module, x, seed=0):
    x = x.detach().clone().requires_grad_()
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = fn(x)
    # a non-uniform output gradient
    out.backward(torch.linspace(-1, 1, out.numel()).reshape(out.shape))
    return out.detach(), x.grad, {n: p.grad.clone()
                                  for n, p in module.named_parameters()}


def _assert_close(a, b, name):
    scale = b.abs().max().clamp_min(1e-6)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale), \
        (name, (a - b).abs().max().item(), scale.item())


@pytest.mark.parametrize('fast', [True, False])
@pytest.mark.parametrize('stoken_size, n_iter, layer_scale, size', [
    ((4, 4), 1, False, (16, 16)),
    ((2, 3), 2, True, (9, 10)),   # padding on both sides, two iterations
    ((1, 1), 1, True, (5, 6)),    # global attention
])
def test_block_matches_official_formulation_with_gradients(
        stoken_size, n_iter, layer_scale, size, fast):
    """A training-mode block (channels-last, PointwiseConv GEMMs, fused
    residual conv, gather/scatter of super tokens in either formulation,
    SDPA) gives the official outputs and gradients (input and every
    parameter) for the same drop-path draws; forward hooks on the branches
    see the branch outputs alone."""
    from swat_mm.models.backbones.stvit import StokenAttentionLayer
    from swat_mm.models.layers.config import fast_layers
    torch.manual_seed(0)
    with fast_layers(fast):
        blk = StokenAttentionLayer(32, stoken_size, n_iter=n_iter,
                                   num_heads=2, qkv_bias=True, drop_path=0.5,
                                   layer_scale=layer_scale,
                                   layer_scale_init_value=0.5)
    assert blk.attn.fast is fast
    for p in blk.parameters():  # away from the trivial init values
        nn.init.normal_(p, std=0.3)
    blk.train()
    ref_blk = copy.deepcopy(blk)  # own BatchNorm running statistics
    seen = {}
    for name in ('attn', 'mlp2'):
        getattr(blk, name).register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, o.detach()))
    x = torch.randn(4, 32, *size)
    ours = _outputs_and_grads(
        lambda t: blk(t.contiguous(memory_format=torch.channels_last)),
        blk, x)
    ref = _outputs_and_grads(lambda t: _ref_block(ref_blk, t), ref_blk, x)
    _assert_close(ours[0], ref[0], 'output')
    _assert_close(ours[1], ref[1], 'input grad')
    assert ours[2].keys() == ref[2].keys()
    for name in ref[2]:
        _assert_close(ours[2][name], ref[2][name], name)
    # the hooks saw the branches, not the residual sums
    with torch.no_grad():
        y = blk.pos_embed(x)
        _assert_close(seen['attn'], blk.attn(blk.norm1(y)), 'attn hook')
    assert seen['mlp2'].shape == x.shape


@pytest.mark.parametrize('kernel_size', [3, 5])
@pytest.mark.parametrize('channels_last', [False, True])
def test_res_dwconv_is_x_plus_conv(kernel_size, channels_last):
    """The shared residual depth-wise conv (one conv with 1 added at the
    kernel centre) gives ``x + conv(x)`` and its gradients, keeps only the
    conv's state-dict keys, and refuses even kernels."""
    from swat_mm.models.layers import ResDWConv
    torch.manual_seed(0)
    layer = ResDWConv(6, kernel_size)
    assert list(layer.state_dict()) == ['conv.weight', 'conv.bias']
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 6, 9, 7).contiguous(memory_format=fmt)
    ours = _outputs_and_grads(layer, layer, x)
    ref = _outputs_and_grads(lambda t: t + layer.conv(t), layer, x)
    assert ours[0].is_contiguous(memory_format=fmt)
    for a, b, name in zip(ours[:2], ref[:2], ('output', 'input grad')):
        _assert_close(a, b, name)
    for name in ref[2]:
        _assert_close(ours[2][name], ref[2][name], name)
    with pytest.raises(ValueError, match='odd'):
        ResDWConv(6, 4)


def test_neighbourhood_formulations_agree_with_exact_gradients():
    """The fast 3x3 gather/scatter (shifted windows) equal the reference
    F.unfold / F.fold ones, and their autograd functions pass gradcheck
    (float64), each being the other's backward."""
    from swat_mm.models.layers.neighbours import (fold3x3, gather3x3,
                                                  scatter3x3, unfold3x3)
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.equal(gather3x3(x), unfold3x3(x))
    with torch.no_grad():
        assert torch.equal(gather3x3(x), unfold3x3(x))
    v = torch.randn(2, 12, 9, 5, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(scatter3x3(v, (3, 4)), fold3x3(v, (3, 4)),
                          atol=1e-12)
    assert torch.autograd.gradcheck(gather3x3, (x, ))
    assert torch.autograd.gradgradcheck(gather3x3, (x, ))
    assert torch.autograd.gradcheck(lambda t: scatter3x3(t, (3, 4)), (v, ))


def test_inference_mlp_in_bands_of_rows_gives_the_same_outputs():
    """Inference on a large map runs the conv-MLP in bands of rows (each
    with the halo rows its 3x3 conv needs); the MLP's output and the whole
    backbone's equal the unbanded ones, first and last bands (zero
    padding) included, for several band heights and batch sizes."""
    from swat_mm.models.backbones.stvit import ConvMlp
    torch.manual_seed(0)
    whole_mlp = ConvMlp(8, 32).eval()
    for p in whole_mlp.parameters():
        nn.init.normal_(p, std=0.3)
    mlp = copy.deepcopy(whole_mlp)
    mlp.band_bytes = 1  # the 16-row minimum
    for batch, h, w in ((1, 50, 7), (2, 37, 9), (1, 17, 3)):
        x = torch.randn(batch, 8, h, w).contiguous(
            memory_format=torch.channels_last)
        with torch.no_grad():
            assert whole_mlp._band_rows(x) == 0
            assert mlp._band_rows(x) == 16
            banded, whole = mlp(x), whole_mlp(x)
        assert banded.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(banded, whole, rtol=1e-6, atol=1e-6)
        # training, or autograd, never bands
        assert mlp._band_rows(x.requires_grad_()) == 0
        with torch.no_grad():
            assert mlp.train()._band_rows(x) == 0
        mlp.eval()
    torch.manual_seed(0)
    model = STViT(arch=TINY, out_indices=(0, 1, 2, 3),
                  mlp_band_bytes=None).eval()
    torch.manual_seed(0)
    banded_model = STViT(arch=TINY, out_indices=(0, 1, 2, 3),
                         mlp_band_bytes=1).eval()
    x = torch.randn(1, 3, 160, 96)  # stage 1: 40 x 24, three bands
    with torch.no_grad():
        for a, b in zip(banded_model(x), model(x)):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='mlp_band_bytes must be a positive'):
        STViT(arch=TINY, mlp_band_bytes=0)
