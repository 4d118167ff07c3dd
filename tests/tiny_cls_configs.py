"""Classification configs of every backbone family at unit-test size, for
the tools that take a config (visualization): the real classification
config (model, head type, recipe) with the tiny arch of tests/tiny_archs.py,
a head that fits it and a test pipeline at its input size, written to a
folder."""
import os.path as osp
from typing import Tuple

from tests.tiny_archs import (STVIT_TINY, SVT_TINY, SWAT_MIXER_TINY,
                              SWAT_RESMLP_TINY, SWAT_SWIN_TINY, SWAT_VIT_TINY)

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# family: (base config, model overrides, input side)
_CASES = {
    'stvit': ('configs/toy/stvit-small_toy-in1k.py', f'''
model = dict(
    backbone=dict(arch=dict({STVIT_TINY!r}, _delete_=True),
                  stoken_size=(4, 2, 1, 1)),
    neck=dict(in_channels=64, out_channels=64),
    head=dict(in_channels=64))''', 64),
    'svt': ('configs/toy/svt-h-small_toy-in1k.py', f'''
model = dict(
    backbone=dict(arch=dict({SVT_TINY!r}, _delete_=True), img_size=64),
    head=dict(in_channels=40, num_heads=5))''', 64),
    'swat_vit': ('configs/toy/swat-deit-tiny_toy-in1k.py', f'''
model = dict(backbone=dict(arch=dict({SWAT_VIT_TINY!r}, _delete_=True),
                           img_size=32),
             head=dict(in_channels=32))''', 32),
    'swat_swin': ('configs/cls/swat/swat-swin-tiny_8xb96_in1k.py', f'''
model = dict(backbone=dict(arch=dict({SWAT_SWIN_TINY!r},
                                     _delete_=True)),
             head=dict(in_channels=128, num_classes=5))''', 64),
    'swat_mixer': ('configs/cls/swat/swat-mixer-tiny_8xb256_in1k.py', f'''
model = dict(backbone=dict(arch=dict({SWAT_MIXER_TINY!r}, _delete_=True),
                           img_size=32),
             head=dict(in_channels=32, num_classes=5))''', 32),
    'swat_resmlp': ('configs/cls/swat/swat-resmlp-s12_8xb256_in1k.py', f'''
model = dict(backbone=dict(arch=dict({SWAT_RESMLP_TINY!r}, _delete_=True),
                           img_size=32),
             head=dict(in_channels=48, num_classes=5))''', 32),
}
FAMILIES = tuple(_CASES)


def tiny_cls_config(family: str, folder: str) -> Tuple[str, int]:
    """Write ``<folder>/<family>_tiny.py``; returns its path and the input
    side its test pipeline crops to."""
    base, model, side = _CASES[family]
    text = f'''_base_ = [{osp.join(_REPO, base)!r}]
{model}
data_preprocessor = dict(num_classes=5)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale={side}, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size={side}),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
'''
    path = osp.join(folder, f'{family}_tiny.py')
    with open(path, 'w') as f:
        f.write(text)
    return path, side


def save_random_checkpoint(config: str, path: str) -> None:
    """A whole classifier's state dict with its construction-time (random,
    non-zero) weights, as a checkpoint."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import swat_mm  # noqa: F401
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(config)
    cfg.model.backbone.pop('init_cfg', None)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=model.state_dict()), path)
