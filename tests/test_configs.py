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
                       recursive=True))


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
]


def test_required_configs_exist():
    missing = [p for p in REQUIRED if p not in CONFIGS]
    assert not missing


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert cfg.custom_imports == dict(imports=['swat_mm'],
                                      allow_failed_imports=False)
    init_default_scope(cfg.default_scope)
    model = toolbox_models(cfg.default_scope).build(cfg.model)
    backbone = model.backbone
    assert type(backbone).__module__.startswith('swat_mm.')
    arch = backbone.arch_settings
    # the widths the necks/heads were configured with match the backbone
    if cfg.default_scope == 'mmpretrain':
        assert cfg.model.neck.in_channels == arch['embed_dims'][-1]
    elif cfg.default_scope == 'mmdet':
        assert list(cfg.model.neck.in_channels) == list(arch['embed_dims'])
    else:
        assert list(cfg.model.decode_head.in_channels) == list(
            arch['embed_dims'])
        assert cfg.model.auxiliary_head.in_channels == arch['embed_dims'][2]
    n_params = sum(p.numel() for p in backbone.parameters())
    assert n_params > 1e5 and torch.isfinite(
        next(backbone.parameters())).all()
