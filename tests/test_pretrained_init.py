"""The backbone-pretraining chain: a backbone's ``Pretrained`` init loads
the whole backbone or fails saying why.

Every swat_mm backbone handles ``init_cfg=dict(type='Pretrained', ...)``
itself (``swat_mm.models.backbones.base.load_pretrained_backbone``): a
converter's ``--backbone-only`` file (bare keys) and a full classification
checkpoint (``backbone.*`` plus neck and head keys) both fill every backbone
tensor; a file that lacks backbone tensors, holds others or other shapes is
refused with the keys named; a missing file names the command that makes it.
The chain tests go through the shipped configs and the real mmpretrain,
mmdet and mmseg model builds and ``model.init_weights()``, with the
backbone's arch shrunk to test size.
"""
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, Tuple

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import (get_state_dict, save_checkpoint,
                                        weights_to_cpu)

import swat_mm  # noqa: F401  (registers modules, installs the loader)
from swat_mm.converters import (convert_stvit, convert_svt, convert_swat,
                                convert_swat_swin)
from swat_mm.converters.common import save_converted
from swat_mm.models import backbones
from swat_mm.models.backbones.base import (PretrainedMismatchError,
                                           PretrainedNotFoundError)
from mmpretrain.models.utils import resize_pos_embed
from tests.golden.cases import load_fixture, stvit_arch, svt_arch
from tests.tiny_archs import FAMILY_CASES

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: family -> (ImageNet config, det/seg config pointed at its checkpoint,
#: official-layout golden case that the converter turns into the
#: ``--backbone-only`` file)
CHAINS = {
    'stvit': ('configs/cls/stvit/stvit-small_8xb128_in1k.py',
              'configs/det/stvit/mask-rcnn_stvit-small_fpn_1x_coco.py',
              'stvit_tiny_a'),
    'svt': ('configs/cls/svt/svt-h-small_8xb128_in1k.py',
            'configs/seg/svt-h-small_upernet_ade20k.py', 'svt_tiny_a'),
    'swat_vit': ('configs/cls/swat/swat-deit-small_8xb256_in1k.py',
                 'configs/seg/swat-deit-small_upernet_ade20k.py',
                 'swat_vit_tiny_a'),
    'swat_swin': ('configs/cls/swat/swat-swin-tiny_8xb96_in1k.py',
                  'configs/det/swat/mask-rcnn_swat-swin-tiny_fpn_1x_coco.py',
                  'swat_swin_custom_b'),
}


def _models(scope: str) -> Any:
    if scope == 'mmpretrain':
        import mmpretrain.models  # noqa: F401
        from mmpretrain.registry import MODELS
    elif scope == 'mmdet':
        import mmdet.models  # noqa: F401
        from mmdet.registry import MODELS
    else:
        import mmseg.models  # noqa: F401
        from mmseg.registry import MODELS
    return MODELS


def build_from_config(path: str, backbone: Dict[str, Any]) -> nn.Module:
    """The model of the shipped config ``path`` through its toolbox's
    registry, with ``backbone`` merged into ``model.backbone`` (and, to
    build in a fraction of the time, 16-channel UperNet heads)."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    cfg.model.backbone.update(backbone)
    for head in ('decode_head', 'auxiliary_head'):
        if cfg.default_scope == 'mmseg' and cfg.model.get(head):
            cfg.model[head].channels = 16
    init_default_scope(cfg.default_scope)
    return _models(cfg.default_scope).build(cfg.model)


def converted_backbone(case: str) -> Tuple['OrderedDict[str, Any]', dict]:
    """The shipped converter's ``--backbone-only`` output for the official
    golden case ``case``: (bare state dict, backbone config)."""
    fixture = load_fixture(case)
    state = fixture['state_dict']
    if case.startswith('stvit'):
        arch, _ = stvit_arch(fixture['official_kwargs'])
        return convert_stvit(state, arch=arch, backbone_only=True)
    if case.startswith('svt'):
        return convert_svt(state, arch=svt_arch(fixture['official_kwargs']),
                           backbone_only=True)
    if case.startswith('swat_swin'):
        return convert_swat_swin(state, backbone_only=True)
    arch = fixture['arch']
    return convert_swat(state, arch=arch if isinstance(arch, dict) else None,
                        backbone_only=True)


def arch_overrides(family: str, cfg: dict) -> Dict[str, Any]:
    """The converted model's shape settings for a config's backbone; the
    config keeps its own outputs and (STViT) super-token sizes, which hold
    no weights."""
    skip = {'type', 'out_indices', 'stoken_size', 'n_iter'}
    out = {k: v for k, v in cfg.items() if k not in skip}
    if family == 'swat_vit':
        out['out_indices'] = (0, 1)  # the tiny case has 2 blocks
    return out


def assert_backbone_equals(backbone: nn.Module,
                           expected: Dict[str, torch.Tensor]) -> None:
    """Every tensor of ``backbone``'s state dict equals ``expected``'s;
    the dense-prediction layers no ImageNet file has (SWATSwin's inner
    output norms), where ``expected`` lacks them, are LayerNorm's (1, 0)."""
    own = backbone.state_dict()
    new = set(backbone._pretrained_new_keys()) - set(expected)
    for k in new:
        value = own.pop(k)
        assert torch.equal(value, torch.full_like(
            value, float(k.endswith('weight')))), k
    assert set(own) <= set(expected), sorted(set(own) - set(expected))
    unequal = [k for k, v in own.items() if not torch.equal(
        v, expected[k].to(v.dtype))]
    assert not unequal, unequal


def differs(backbone: nn.Module, expected: Dict[str, torch.Tensor]) -> int:
    """How many floating-point tensors of ``backbone`` differ from
    ``expected`` (a load that did nothing leaves them different)."""
    return sum(not torch.equal(v, expected[k])
               for k, v in backbone.state_dict().items()
               if v.is_floating_point() and k in expected)


@pytest.mark.parametrize('family', sorted(CHAINS))
def test_chain_both_layouts_load_into_det_seg_backbone(family, tmp_path):
    """ImageNet config -> checkpoint -> det/seg config: the classifier's
    training-checkpoint layout (``backbone.*``, neck, head) and the
    converter's ``--backbone-only`` file each fill every backbone tensor of
    the real mmdet / mmseg model exactly."""
    cls_cfg, target_cfg, case = CHAINS[family]
    bare, cfg = converted_backbone(case)
    arch = arch_overrides(family, cfg)

    # the --backbone-only file, written as the converter CLI writes it
    bare_file = str(tmp_path / 'backbone_only.pth')
    save_converted(bare_file, bare, cfg, f'{case}.pth')
    model = build_from_config(target_cfg, dict(
        arch, init_cfg=dict(type='Pretrained', checkpoint=bare_file)))
    assert differs(model.backbone, bare) > 10
    model.init_weights()
    assert_backbone_equals(model.backbone, bare)

    # a checkpoint of the ImageNet config's classifier, as mmengine writes
    classifier = build_from_config(cls_cfg, arch)
    classifier.init_weights()
    full = weights_to_cpu(get_state_dict(classifier))
    assert any(not k.startswith('backbone.') for k in full)  # neck / head
    full_file = str(tmp_path / 'epoch_1.pth')
    save_checkpoint({'meta': dict(epoch=1), 'state_dict': full}, full_file)
    model = build_from_config(target_cfg, dict(
        arch, init_cfg=dict(type='Pretrained', checkpoint=full_file)))
    model.init_weights()
    assert_backbone_equals(
        model.backbone, {k[len('backbone.'):]: v for k, v in full.items()
                         if k.startswith('backbone.')})


def _target_with_tiny_stvit(checkpoint: str) -> nn.Module:
    bare, cfg = converted_backbone('stvit_tiny_a')
    return build_from_config(CHAINS['stvit'][1], dict(
        arch_overrides('stvit', cfg),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))


def test_wrong_files_are_refused_in_det_and_seg_builds(tmp_path):
    """Another family's backbone file and a head-only file: the mmdet and
    the mmseg model's init_weights fail naming the missing keys, and the
    backbone keeps its weights."""
    vit_bare, vit_cfg = converted_backbone('swat_vit_tiny_a')
    other = str(tmp_path / 'swat_vit_backbone.pth')
    save_converted(other, vit_bare, vit_cfg, 'swat_vit.pth')
    det = _target_with_tiny_stvit(other)
    before = {k: v.clone() for k, v in det.backbone.state_dict().items()}
    with pytest.raises(PretrainedMismatchError) as err:
        det.init_weights()
    msg = str(err.value)
    n = sum(not k.endswith('num_batches_tracked')
            for k in det.backbone.state_dict())
    assert f'STViT: the pretrained checkpoint {other}' in msg
    assert f'{n} of its {n} tensors are missing' in msg
    assert 'patch_embed.proj.0.weight' in msg
    assert 'none of the' in msg and 'another family' in msg
    assert 'stvit_to_mmpretrain.py SRC' in msg and '--backbone-only' in msg
    assert_backbone_equals(det.backbone, before)

    head_only = str(tmp_path / 'head_only.pth')
    torch.save({'state_dict': {'head.fc.weight': torch.zeros(10, 32),
                               'head.fc.bias': torch.zeros(10)}}, head_only)
    _, cfg = converted_backbone('swat_vit_tiny_a')
    seg = build_from_config(CHAINS['swat_vit'][1], dict(
        arch_overrides('swat_vit', cfg),
        init_cfg=dict(type='Pretrained', checkpoint=head_only)))
    with pytest.raises(PretrainedMismatchError) as err:
        seg.init_weights()
    msg = str(err.value)
    n = len(seg.backbone.state_dict())
    assert f'{n} of its {n} tensors are missing' in msg
    assert 'pos_embed, patch_embed.pos_embed2' in msg
    assert 'head. (2)' in msg  # what the file holds instead


@pytest.mark.parametrize('path,command', [
    ('configs/det/stvit/mask-rcnn_stvit-small_fpn_1x_coco.py',
     'python tools/model_converters/stvit_to_mmpretrain.py SRC '
     'checkpoints/stvit-small_in1k_backbone.pth --backbone-only'),
    ('configs/seg/swat-deit-small_upernet_ade20k.py',
     'python tools/model_converters/swat_to_mmpretrain.py SRC '
     'checkpoints/swat-deit-small_in1k_backbone.pth --family vit '
     '--use-ema --backbone-only'),
])
def test_missing_pretrained_file_names_the_command(path, command, tmp_path,
                                                   monkeypatch):
    """A shipped det/seg config without its backbone file: the error says
    what the file is, the command that makes it, and how to train from
    scratch instead."""
    monkeypatch.chdir(tmp_path)  # no checkpoints/ folder here
    family = 'stvit' if 'stvit' in path else 'swat_vit'
    case = 'stvit_tiny_a' if family == 'stvit' else 'swat_vit_tiny_a'
    model = build_from_config(
        path, arch_overrides(family, converted_backbone(case)[1]))
    with pytest.raises(PretrainedNotFoundError) as err:
        model.init_weights()
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert 'does not exist' in msg and 'ImageNet weights' in msg
    assert command in msg
    assert '--cfg-options model.backbone.init_cfg=None' in msg
    assert 'README, "Official weights"' in msg


def _tiny(family: str, **kwargs: Any) -> nn.Module:
    name, kw, _ = FAMILY_CASES[family]
    return getattr(backbones, name)(**dict(kw, **kwargs))


def _save(path: str, state: Dict[str, Any], **extra: Any) -> str:
    torch.save(dict(state_dict=OrderedDict(state), **extra), path)
    return path


@pytest.mark.parametrize('family', sorted(FAMILY_CASES))
def test_every_backbone_loads_both_layouts_with_any_prefix(family, tmp_path):
    """For every registered backbone: bare keys, ``backbone.*`` keys with a
    head beside them, and the same with an explicit ``prefix`` (with or
    without its dot) all fill every tensor."""
    torch.manual_seed(0)
    src = _tiny(family)
    src.init_weights()
    state = src.state_dict()
    bare = _save(str(tmp_path / 'bare.pth'), state)
    full = _save(str(tmp_path / 'full.pth'), {
        **{'backbone.' + k: v for k, v in state.items()},
        'head.fc.weight': torch.randn(5, 3), 'neck.w': torch.randn(2)},
        meta=dict(epoch=3))
    for checkpoint in (bare, full):
        for prefix in ({}, dict(prefix='backbone.'), dict(prefix='backbone')):
            dst = _tiny(family, init_cfg=dict(
                type='Pretrained', checkpoint=checkpoint, **prefix))
            assert differs(dst, state) > 0
            dst.init_weights()
            assert_backbone_equals(dst, state)


def test_partial_unexpected_and_misshaped_files_are_refused(tmp_path):
    """Strict: one tensor missing, one backbone-looking extra key, one
    shape off, backbone keys both with and without the prefix: each is
    refused naming the key, and the backbone keeps its weights."""
    src = _tiny('svt')
    state = src.state_dict()
    key = 'block1.0.attn.q.weight' if 'block1.0.attn.q.weight' in state \
        else next(k for k in state if k.endswith('weight'))
    n = sum(not k.endswith('num_batches_tracked') for k in state)
    cases = {
        'missing': ({k: v for k, v in state.items() if k != key},
                    f'1 of its {n} tensors are missing from the '
                    f'file; missing (1): {key}.'),
        'unexpected': ({**state, 'block1.0.extra.weight': torch.zeros(3)},
                       'unexpected (1): block1.0.extra.weight'),
        'shape': ({**state, key: torch.zeros(1, 1)},
                  f'size mismatch (1): size mismatch for {key}'),
        'stray': ({**{'backbone.' + k: v for k, v in state.items()},
                   key: state[key]}, 'both under'),
    }
    for name, (bad, words) in cases.items():
        path = _save(str(tmp_path / f'{name}.pth'), bad)
        dst = _tiny('svt', init_cfg=dict(type='Pretrained', checkpoint=path))
        before = {k: v.clone() for k, v in dst.state_dict().items()}
        with pytest.raises(PretrainedMismatchError, match='SVT: ') as err:
            dst.init_weights()
        assert words in str(err.value), (name, str(err.value))
        assert_backbone_equals(dst, before)


def test_official_and_non_state_dict_files_are_refused(tmp_path):
    official = str(tmp_path / 'official.pth')
    torch.save({'model': {'patch_embed.proj.weight': torch.zeros(1)},
                'epoch': 300}, official)
    dst = _tiny('stvit', init_cfg=dict(type='Pretrained',
                                       checkpoint=official))
    with pytest.raises(PretrainedMismatchError,
                       match='official training checkpoint'):
        dst.init_weights()
    tensor = str(tmp_path / 'tensor.pth')
    torch.save(torch.zeros(3), tensor)
    dst = _tiny('stvit', init_cfg=dict(type='Pretrained', checkpoint=tensor))
    with pytest.raises(PretrainedMismatchError, match='not a state dict'):
        dst.init_weights()
    dst = _tiny('stvit', init_cfg=dict(type='Pretrained', checkpoint=tensor,
                                       strict=True))
    with pytest.raises(ValueError, match=r"unknown: \['strict'\]"):
        dst.init_weights()


def test_family_adaptations_still_apply(tmp_path):
    """The backbones' own load-time handling runs inside the strict load:
    SWATViT resizes a checkpoint's position embedding to its grid; STViT
    accepts the official identity unfold kernels and refuses other values
    (and then keeps its weights); other init_cfg entries run before the
    checkpoint overwrites them."""
    torch.manual_seed(0)
    src = _tiny('swat_vit')  # img_size 32
    src.init_weights()
    state = src.state_dict()
    path = _save(str(tmp_path / 'vit.pth'), state)
    dst = _tiny('swat_vit', img_size=64,
                init_cfg=[dict(type='Constant', val=0.5, layer='Linear'),
                          dict(type='Pretrained', checkpoint=path)])
    dst.init_weights()
    resized = resize_pos_embed(state['pos_embed'], src.patch_resolution,
                               dst.patch_resolution, dst.interpolate_mode,
                               num_extra_tokens=0)
    assert dst.pos_embed.shape[1] == 4 * state['pos_embed'].shape[1]
    torch.testing.assert_close(dst.pos_embed, resized, rtol=0, atol=0)
    assert_backbone_equals(dst, {**state, 'pos_embed': resized})

    stvit = _tiny('stvit')
    state = stvit.state_dict()
    attn = next(k[:-len('stoken_refine.qkv.weight')] for k in state
                if k.endswith('attn.stoken_refine.qkv.weight'))
    eye = torch.eye(9).reshape(9, 1, 3, 3)
    ok = _save(str(tmp_path / 'eye.pth'), {
        **state, attn + 'unfold.weights': eye, attn + 'fold.weights': eye})
    dst = _tiny('stvit', init_cfg=dict(type='Pretrained', checkpoint=ok))
    dst.init_weights()
    assert_backbone_equals(dst, state)
    bad = _save(str(tmp_path / 'noteye.pth'), {
        **state, attn + 'unfold.weights': 2 * eye})
    dst = _tiny('stvit', init_cfg=dict(type='Pretrained', checkpoint=bad))
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(ValueError, match='frozen 3x3 identity kernel'):
        dst.init_weights()
    assert_backbone_equals(dst, before)
