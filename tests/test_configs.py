"""Every shipped config parses and builds its model through its toolbox's
registry (the real mmpretrain / mmdet / mmseg ones)."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                       recursive=True)
    # _base_ files are fragments, complete only inside a config
    if '_base_' not in p.split(osp.sep))


def toolbox_models(scope):
    if scope == 'mmpretrain':
        import mmpretrain.models  # noqa: F401
        from mmpretrain.registry import MODELS
    elif scope == 'mmdet':
        import mmdet.models  # noqa: F401
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        import mmseg.models  # noqa: F401
        from mmseg.registry import MODELS
    else:
        raise AssertionError(f'unexpected default_scope {scope}')
    return MODELS


REQUIRED = [
    *[f'configs/cls/stvit/stvit-{v}_8xb128_in1k.py'
      for v in ('small', 'base', 'large')],
    *[f'configs/cls/stvit/stvit-{v}_8xb64_in1k-384px.py'
      for v in ('small', 'base', 'large')],
    *[f'configs/det/stvit/mask-rcnn_stvit-{v}_fpn_{s}_coco.py'
      for v in ('small', 'base', 'large') for s in ('1x', 'ms-3x')],
    'configs/det/stvit/cascade-mask-rcnn_stvit-base_fpn_ms-3x_coco.py',
    'configs/seg/stvit_upernet_ade20k.py',
    'configs/seg/stvit-small_upernet_ade20k.py',
    'configs/seg/stvit-large_upernet_ade20k.py',
    *[f'configs/cls/svt/svt-h-{v}_8xb128_in1k.py'
      for v in ('small', 'base', 'large')],
    *[f'configs/det/svt/mask-rcnn_svt-h-{v}_fpn_1x_coco.py'
      for v in ('small', 'base', 'large')],
    *[f'configs/seg/svt-h-{v}_upernet_ade20k.py'
      for v in ('small', 'base', 'large')],
    *[f'configs/cls/swat/swat-{v}_8xb256_in1k.py'
      for v in ('deit-tiny', 'deit-small', 'vit-base-p32', 'mixer-tiny',
                'mixer-small', 'mixer-base-p32', 'resmlp-s12')],
    'configs/cls/swat/swat-swin-tiny_8xb96_in1k.py',
    'configs/seg/swat-swin-tiny_upernet_ade20k.py',
    'configs/seg/swat-deit-small_upernet_ade20k.py',
    'configs/det/swat/mask-rcnn_swat-swin-tiny_fpn_1x_coco.py',
]


def test_required_configs_exist():
    missing = [p for p in REQUIRED if p not in CONFIGS]
    assert not missing


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds(path):
    """The model builds and runs: a forward through backbone, neck and heads
    checks that the widths the necks/heads were configured with are the
    backbone's (a mismatch fails inside the first conv/linear that sees it)."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert cfg.custom_imports == dict(imports=['swat_mm'],
                                      allow_failed_imports=False)
    init_default_scope(cfg.default_scope)
    model = toolbox_models(cfg.default_scope).build(cfg.model)
    backbone = model.backbone
    assert type(backbone).__module__.startswith('swat_mm.')
    n_params = sum(p.numel() for p in backbone.parameters())
    assert n_params > 1e5 and torch.isfinite(
        next(backbone.parameters())).all()
    model.eval()
    with torch.no_grad():
        if cfg.default_scope == 'mmpretrain':
            # 224: the size every classifier accepts (Mixer/ResMLP only it)
            logits = model(torch.randn(1, 3, 224, 224), mode='tensor')
            assert logits.shape == (1, cfg.model.head.num_classes)
            assert torch.isfinite(logits).all()
        elif cfg.default_scope == 'mmdet':
            feats = model.extract_feat(torch.randn(1, 3, 96, 128))
            assert len(feats) == cfg.model.neck.num_outs
            assert all(f.shape[1] == cfg.model.neck.out_channels
                       for f in feats)
        else:
            feats = model.extract_feat(torch.randn(1, 3, 96, 128))
            seg = model.decode_head(feats)
            aux = model.auxiliary_head(feats)
            assert seg.shape[:2] == aux.shape[:2] == (1, 150)
            assert torch.isfinite(seg).all()
