"""Layer-wise learning-rate decay works with every registered backbone.

Each backbone's ``get_layer_depth(param_name, prefix)`` keeps the contract
of mmpretrain's ``VisionTransformer`` / ``SwinTransformer``: it returns
``(depth, num_layers)`` with ``num_layers`` = blocks + 2, the stem at 0,
block ``k`` (in forward order) at ``k + 1`` and the final norm, neck and
head at ``num_layers - 1``. Checked here against the forward pass itself
(the order in which the modules run), and through mmpretrain's
``LearningRateDecayOptimWrapperConstructor`` on a real ``ImageClassifier``:
every parameter group's learning rate is ``lr * rate ** (num_layers - 1 -
depth)``.

The backbones come from the swat_mm registry at their tiny sizes
(``tests/test_backbone_contract.py``), with every stage output (and SVT's
final norm) built so that every optional module gets a depth.
"""
from typing import Dict, List

import pytest
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope

from tests.test_backbone_contract import (BACKBONES, all_indices, build,
                                          image, spec)


def num_blocks(name: str) -> int:
    arch = spec(name)[0]['arch']
    return sum(arch['depths']) if 'depths' in arch else arch['num_layers']


def full_backbone(name: str, **overrides) -> nn.Module:
    """The tiny backbone with every optional module: all outputs (their
    norms) and, for SVT, the final norm."""
    extra = dict(final_norm=True) if name == 'SVT' else {}
    extra.update(overrides)
    return build(name, out_indices=all_indices(name), **extra)


def forward_order(model: nn.Module, x: torch.Tensor) -> List[str]:
    """Names of the modules that own parameters, in the order the forward
    pass first calls them."""
    order: List[str] = []
    handles = []
    for mod_name, mod in model.named_modules():
        if mod_name and any(True for _ in mod.parameters(recurse=False)):
            handles.append(mod.register_forward_pre_hook(
                lambda m, a, n=mod_name: None if n in order
                else order.append(n)))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    return order


@pytest.mark.parametrize('name', BACKBONES)
def test_every_parameter_has_a_depth_in_forward_order(name: str) -> None:
    model = full_backbone(name)
    n = num_blocks(name)
    depths: Dict[str, int] = {}
    for pname, _ in model.named_parameters():
        depth, num_layers = model.get_layer_depth('backbone.' + pname,
                                                  'backbone.')
        assert num_layers == n + 2
        assert 0 <= depth < num_layers
        depths[pname] = depth
    # every block depth is there, nothing else between stem and end
    assert set(range(1, n + 1)) <= set(depths.values())
    # the stem (what frozen_stages=0 freezes) is depth 0
    stem = spec(name)[1]['parts'][0]
    for pname, depth in depths.items():
        is_stem = any(pname == p or pname.startswith(p + '.') for p in stem)
        assert (depth == 0) == is_stem, (pname, depth)
    # in forward order depths never fall, and rise one block at a time
    order = forward_order(model, image(name, 1))
    owned = {m: {depths[f'{m}.{p}'] for p, _ in
                 model.get_submodule(m).named_parameters(recurse=False)}
             for m in order}
    assert all(len(d) == 1 for d in owned.values()), owned
    seq = [next(iter(owned[m])) for m in order]
    assert all(0 <= b - a <= 1 for a, b in zip(seq, seq[1:])), \
        list(zip(order, seq))
    assert seq[-1] >= n  # the last block, or the final norm
    # the stage parts of frozen_stages have non-overlapping depth ranges
    parts = spec(name)[1]['parts']
    ranges = []
    for part in parts:
        ds = [d for p, d in depths.items()
              if any(p == q or p.startswith(q + '.') for q in part)]
        ranges.append((min(ds), max(ds)))
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:])), ranges
    # outside the prefix: the head's depth
    assert model.get_layer_depth('head.fc.weight', 'backbone.') == \
        (n + 1, n + 2)


@pytest.mark.parametrize('name', BACKBONES)
def test_unknown_name_under_the_prefix_is_refused(name: str) -> None:
    model = full_backbone(name)
    with pytest.raises(ValueError, match="not a parameter of this backbone"):
        model.get_layer_depth('backbone.no_such_module.weight', 'backbone.')


def last_channels(name: str) -> int:
    return spec(name)[1]['channels'][-1]


@pytest.mark.parametrize('name', BACKBONES)
def test_layer_decay_constructor_gives_decayed_lrs(name: str) -> None:
    """mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` on an
    ``ImageClassifier`` with this backbone: the head keeps the base lr, the
    stem gets ``lr * rate ** (blocks + 1)``, block ``k``
    ``lr * rate ** (blocks - k)``; frozen parameters are left out."""
    import mmpretrain.models  # noqa: F401  (registers ImageClassifier)
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
    kwargs, geometry = spec(name)
    backbone = dict(type=f'swat_mm.{name}', **kwargs, **geometry['extra'],
                    out_indices=all_indices(name))
    if name == 'SVT':
        backbone['final_norm'] = True
    # another toolbox's Runner earlier in the process leaves its scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = PRETRAIN_MODELS.build(dict(
            type='ImageClassifier', backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3,
                      in_channels=last_channels(name))))
        lr, rate = 1e-3, 0.5
        constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='LearningRateDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05)),
            paramwise_cfg=dict(layer_decay_rate=rate)))
        optim_wrapper = constructor(model)
    groups = optim_wrapper.optimizer.param_groups
    names = [g['param_name'] for g in groups]
    assert sorted(names) == sorted(p for p, _ in model.named_parameters())
    n = num_blocks(name)
    stem = spec(name)[1]['parts'][0]
    for g in groups:
        pname = g['param_name']
        if pname.startswith('head.'):
            assert g['lr'] == pytest.approx(lr)
            continue
        depth = g['layer_id']
        assert g['lr'] == pytest.approx(lr * rate**(n + 1 - depth),
                                        rel=1e-12)
    stem_lrs = {g['lr'] for g in groups if any(
        g['param_name'].startswith(f'backbone.{p}') for p in stem)}
    assert len(stem_lrs) == 1
    assert stem_lrs.pop() == pytest.approx(lr * rate**(n + 1), rel=1e-12)
    # one lr per depth: the stem's, each block's, the head's
    by_depth = {g['layer_id']: g['lr'] for g in groups}
    assert sorted(by_depth) == list(range(n + 2))
    assert [by_depth[d] for d in range(n + 2)] == pytest.approx(
        [lr * rate**(n + 1 - d) for d in range(n + 2)], rel=1e-12)
    # a frozen stem is not optimised at all
    model.backbone = full_backbone(name, frozen_stages=0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        frozen_groups = constructor(model).optimizer.param_groups
    assert all(g['layer_id'] > 0 for g in frozen_groups)


SHIPPED = {  # one ImageNet config per backbone class (and SVT's token
    # labelling classifier): its number of blocks
    'configs/cls/stvit/stvit-small_8xb128_in1k.py': 20,
    'configs/cls/svt/svt-h-small_8xb128_in1k.py': 16,
    'configs/cls/svt/svt-h-small_8xb128_in1k-tl.py': 16,
    'configs/cls/swat/swat-deit-tiny_8xb256_in1k.py': 12,
    'configs/cls/swat/swat-mixer-tiny_8xb256_in1k.py': 8,
    'configs/cls/swat/swat-resmlp-s12_8xb256_in1k.py': 12,
    'configs/cls/swat/swat-swin-tiny_8xb96_in1k.py': 12,
}


@pytest.mark.parametrize('path', sorted(SHIPPED))
def test_shipped_classifiers_take_the_layer_decay_optim_wrapper(path):
    """The fine-tuning ``optim_wrapper`` of
    ``configs/cls/finetune/*`` on each family's shipped classifier: every
    trainable parameter gets a group, the head the base lr, the stem the
    lowest and each depth its own lr."""
    import os.path as osp

    import mmpretrain.models  # noqa: F401
    from mmengine.config import Config
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = Config.fromfile(osp.join(root, path))
    finetune = Config.fromfile(osp.join(
        root, 'configs/cls/finetune/stvit-small_in1k-pre_1xb64_custom.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = PRETRAIN_MODELS.build(cfg.model)
        wrapper = dict(finetune.optim_wrapper)
        constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type=wrapper.pop('constructor'),
            paramwise_cfg=wrapper.pop('paramwise_cfg'),
            optim_wrapper_cfg=wrapper))
        groups = constructor(model).optimizer.param_groups
    n = SHIPPED[path]
    lr, rate = finetune.optim_wrapper.optimizer.lr, 0.85
    assert len(groups) == sum(1 for p in model.parameters()
                              if p.requires_grad)
    by_depth = {}
    for g in groups:
        by_depth.setdefault(g['layer_id'], set()).add(g['lr'])
        if g['param_name'].startswith('head.'):
            assert g['layer_id'] == n + 1
    assert sorted(by_depth) == list(range(n + 2))
    for depth, lrs in by_depth.items():
        assert len(lrs) == 1
        assert lrs.pop() == pytest.approx(lr * rate**(n + 1 - depth),
                                          rel=1e-9)
