"""Official STViT checkpoints (``hhb072/STViT``) to mmpretrain / det / seg.

Official names map as follows; everything is kept bit for bit:

=====================================  =====================================
official                               mmpretrain ``ImageClassifier``
=====================================  =====================================
``patch_embed.*``, ``layers.*``        ``backbone.patch_embed.*``, ...
``proj.*`` (1x1 conv to 1024)          ``neck.proj.*``
``norm.*`` (BatchNorm)                 ``neck.norm.*``
``head.*`` (Linear)                    ``head.fc.*``
``*.attn.unfold.weights``,             dropped (frozen identity kernels,
``*.attn.fold.weights``                checked to be exactly that)
=====================================  =====================================
"""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple, Union

import torch

from .common import (ConversionError, check_arch_fits, check_model_keys,
                     require_classifier, route_key, stage_depths)

_FOLD_KEY = re.compile(r'\.attn\.(un)?fold\.weights$')
_BLOCK_KEY = re.compile(r'^layers\.(\d+)\.blocks\.(\d+)\.')


def _infer_arch(state: Dict[str, torch.Tensor]) -> dict:
    depths = stage_depths(state, _BLOCK_KEY)
    num_stages = len(depths)
    return dict(
        embed_dims=[
            int(state[f'layers.{i}.blocks.0.pos_embed.conv.weight'].shape[0])
            for i in range(num_stages)
        ],
        depths=depths,
        layer_scale=[
            f'layers.{i}.blocks.0.gamma_1' in state for i in range(num_stages)
        ])


def _resolve_arch(state: Dict[str, torch.Tensor],
                  arch: Optional[Union[str, dict]]) -> Union[str, dict]:
    from swat_mm.models.backbones.stvit import STViT
    found = _infer_arch(state)
    if arch is None:
        for name in ('small', 'base', 'large'):
            zoo = STViT.arch_zoo[name]
            if all(zoo[k] == found[k]
                   for k in ('embed_dims', 'depths', 'layer_scale')):
                return name
        raise ConversionError(
            f'The checkpoint is an STViT with embed_dims '
            f'{found["embed_dims"]} and depths {found["depths"]}, which is '
            'none of small/base/large; pass the arch (with num_heads, which '
            'a state dict does not record) explicitly')
    check_arch_fits(arch, STViT._parse_arch(arch), found,
                    ('embed_dims', 'depths'))
    return arch


def convert_stvit(
    state: Dict[str, torch.Tensor],
    arch: Optional[Union[str, dict]] = None,
    backbone_only: bool = False,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Convert an official STViT state dict.

    Args:
        state: the official model's state dict (see
            :func:`swat_mm.converters.load_official_state_dict`).
        arch: ``'small'``/``'base'``/``'large'`` or a custom arch dict;
            inferred from the shapes when None.
        backbone_only: return only the backbone's weights without prefix,
            for ``init_cfg=dict(type='Pretrained', checkpoint=...)`` of a
            detector or segmentor.

    Returns:
        The converted state dict and the model config it loads into
        strictly (an mmpretrain ``ImageClassifier``, or the backbone).

    Raises:
        ConversionError: not an STViT checkpoint, or keys/shapes that do not
            match the model; the message names every offending key.
    """
    if 'patch_embed.proj.0.weight' not in state or not any(
            _BLOCK_KEY.match(k) for k in state):
        raise ConversionError(
            'This is not an official STViT checkpoint: it has no '
            '"patch_embed.proj.0.weight" / "layers.<i>.blocks.<j>.*" keys '
            f'(first keys: {list(state)[:5]})')
    arch = _resolve_arch(state, arch)
    eye = torch.eye(9).reshape(9, 1, 3, 3)
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in state.items():
        if _FOLD_KEY.search(key):
            if value.shape != eye.shape or not torch.equal(value.float(), eye):
                raise ConversionError(
                    f'{key} should hold the frozen 3x3 identity kernel')
            continue
        name = route_key(key, ('patch_embed.', 'layers.'), backbone_only,
                         (('proj.', 'neck.proj.'), ('norm.', 'neck.norm.'),
                          ('head.', 'head.fc.')))
        if name is not None:
            out[name] = value

    backbone = dict(type='swat_mm.STViT', arch=arch)
    if backbone_only:
        num_stages = len(_infer_arch(state)['depths'])
        cfg = dict(backbone, out_indices=tuple(range(num_stages)))
    else:
        require_classifier(out, {
            k: k[len('head.'):] for k in ('neck.proj.weight', 'head.fc.weight')
        })
        proj, fc = out['neck.proj.weight'], out['head.fc.weight']
        cfg = dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='swat_mm.STViTClsNeck', in_channels=proj.shape[1],
                      out_channels=proj.shape[0]),
            head=dict(type='LinearClsHead', num_classes=fc.shape[0],
                      in_channels=fc.shape[1]))
    # Key names do not depend on the super-token sizes; a custom arch with
    # other than four stages needs its own sizes in the returned config.
    check_cfg = dict(cfg) if backbone_only else dict(
        cfg, backbone=dict(backbone, stoken_size=1))
    if backbone_only:
        check_cfg['stoken_size'] = 1
    check_model_keys(out, cfg, check_cfg)
    return out, cfg
