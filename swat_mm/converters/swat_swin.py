"""Official SWAT-Swin checkpoints (``kkahatapitiya/SWAT``, timm 0.4
``SwinTransformer`` with the SWAT changes) to mmpretrain / det / seg.

=====================================  =====================================
official                               mmpretrain ``ImageClassifier``
=====================================  =====================================
``patch_embed.*``, ``layers.*``,       ``backbone.patch_embed.*``, ...
``norm.*`` (final LayerNorm)           ``backbone.norm.*``
``head.*`` (Linear)                    ``head.fc.*`` (after a
                                       ``GlobalAveragePooling`` neck)
``*.attn_mask``                        dropped (shift masks of the 224
                                       layout, computed per input here)
=====================================  =====================================

Everything else is kept bit for bit. The arch is read off the state dict
(depths, heads from the relative position tables, window sizes, which stages
shift, conv kernels, MLP ratio), and so is ``qkv_bias``; token views
(c, h, w) are taken square (h = w), as in every official setting; pass
``arch`` for anything else.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple, Union

import torch

from .common import (ConversionError, check_arch_fits, check_model_keys,
                     require_classifier, route_key, stage_depths)

_BLOCK_KEY = re.compile(r'^layers\.(\d+)\.blocks\.(\d+)\.')
_SIGNATURE = ('patch_embed.proj21.weight', 'patch_embed.proj22.weight',
              'patch_embed.norm.weight', 'patch_embed.norm2.weight')


def _square_view(dim: int, c: int, k: int, what: str) -> Tuple[int, ...]:
    side = math.isqrt(dim // c)
    if c * side * side != dim:
        raise ConversionError(
            f'{what}: {c} channels do not give a square (c, h, w) view of '
            f'{dim}; pass the arch explicitly')
    return (c, side, side, k)


def infer_arch(state: Dict[str, torch.Tensor]) -> dict:
    """The :class:`~swat_mm.models.backbones.SWATSwin` arch dict of an
    official SWAT-Swin state dict."""
    missing = [k for k in _SIGNATURE if k not in state]
    if missing or not any(_BLOCK_KEY.match(k) for k in state):
        raise ConversionError(
            'This is not an official SWAT-Swin state dict (no '
            f'{", ".join(missing) or "layers.i.blocks.j"} keys)')
    depths = stage_depths(state, _BLOCK_KEY)
    n = len(depths)
    proj21 = state['patch_embed.proj21.weight']
    proj22 = state['patch_embed.proj22.weight']
    c0 = int(proj22.shape[0])
    dim0 = int(state['patch_embed.norm.weight'].shape[0])
    p = math.isqrt(dim0 // c0)
    if proj21.shape[-1] != proj21.shape[-2] or c0 * p * p != dim0:
        raise ConversionError('unexpected SWAT-Swin tokenizer shapes')
    arch = dict(
        depths=depths, num_heads=[], window_size=[],
        shift=[], attn_conv=[], mlp_dw_kernel=[], merge_conv=[],
        mlp_ratio=float(state['layers.0.blocks.0.mlp.fc1.weight'].shape[0] /
                        dim0),
        tokenizer=dict(stem_channels=int(proj21.shape[0]),
                       stem_kernel=int(proj21.shape[-1]),
                       stem_stride=int(proj21.shape[-1]), out_channels=c0,
                       sub_patch=p))
    for i in range(n):
        pre = f'layers.{i}.blocks.'
        table = state[pre + '0.attn.relative_position_bias_table']
        arch['num_heads'].append(int(table.shape[1]))
        arch['window_size'].append((math.isqrt(int(table.shape[0])) + 1) // 2)
        # a stage shifts its odd blocks iff those have plain attention
        arch['shift'].append(depths[i] > 1 and
                             pre + '1.attn.qkv_linear.weight' not in state)
        conv = state[pre + '0.attn.qkv.weight']
        dim = dim0 * 2**i
        arch['attn_conv'].append(_square_view(
            dim, int(conv.shape[1]), int(conv.shape[-1]),
            f'{pre}0.attn.qkv'))
        arch['mlp_dw_kernel'].append(
            int(state[pre + '0.mlp.fc3.weight'].shape[-1]))
        if i < n - 1:
            red = state[f'layers.{i}.downsample.reduction.weight']
            arch['merge_conv'].append(_square_view(
                dim, int(red.shape[1]), int(red.shape[-1]),
                f'layers.{i}.downsample.reduction'))
    return arch


def _infer_options(state: Dict[str, torch.Tensor]) -> dict:
    """The constructor option a state dict fixes besides the arch:
    ``qkv_bias`` (given only when not the default)."""
    if 'layers.0.blocks.0.attn.qkv.bias' in state:
        return {}
    return dict(qkv_bias=False)


def is_swat_swin(state: Dict[str, torch.Tensor]) -> bool:
    """Whether the keys are those of an official SWAT-Swin."""
    return 'patch_embed.proj21.weight' in state and \
        'layers.0.blocks.0.attn.relative_position_bias_table' in state


def _backbone_cls() -> type:
    from swat_mm.models.backbones.swat_swin import SWATSwin
    return SWATSwin


def swin_family(family_cls: type):
    """The ``'swin'`` entry of :data:`swat_mm.converters.swat.FAMILIES`,
    built with the ``SWATFamily`` class passed in (no import cycle). The
    conversion is delegated to :func:`convert_swat_swin` where the family
    class has a ``convert`` field (official Swin checkpoints hold shift
    masks to drop)."""
    import dataclasses
    kwargs = dict(
        backbone='swat_mm.SWATSwin', backbone_cls=_backbone_cls,
        detect=is_swat_swin,
        infer_arch=lambda s: _backbone_cls()._parse_arch(infer_arch(s)),
        num_tokens=None,
        backbone_prefixes=('patch_embed.', 'layers.', 'norm.'), head='gap')
    if 'convert' in {f.name for f in dataclasses.fields(family_cls)}:
        kwargs['convert'] = convert_swat_swin
    return family_cls(**kwargs)


def _resolve_arch(state: Dict[str, torch.Tensor],
                  arch: Optional[Union[str, dict]]) -> Union[str, dict]:
    from swat_mm.models.backbones.swat_swin import SWATSwin
    found = SWATSwin._parse_arch(infer_arch(state))
    if arch is None:
        for name in ('tiny', 'small'):
            if SWATSwin._parse_arch(name) == found:
                return name
        return found
    check_arch_fits(arch, SWATSwin._parse_arch(arch), found,
                    ('depths', 'num_heads', 'window_size', 'mlp_dw_kernel',
                     'mlp_ratio'))
    return arch


def convert_swat_swin(
    state: Dict[str, torch.Tensor],
    arch: Optional[Union[str, dict]] = None,
    backbone_only: bool = False,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Convert an official SWAT-Swin state dict.

    Args:
        state: the official state dict (see
            :func:`~swat_mm.converters.load_official_state_dict`).
        arch: ``'tiny'``, ``'small'`` or a dict; read off the checkpoint if
            None (a zoo name when it matches one).
        backbone_only: return backbone keys without prefix (for
            ``init_cfg=dict(type='Pretrained', ...)`` of detectors and
            segmentors) and a backbone config with all four outputs.

    Returns:
        The converted state dict and the config it loads into with
        ``strict=True``: an mmpretrain ``ImageClassifier`` (``SWATSwin`` +
        ``GlobalAveragePooling`` + ``LinearClsHead``), or the ``SWATSwin``
        backbone alone.
    """
    arch = _resolve_arch(state, arch)
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in state.items():
        if key.endswith('.attn_mask'):
            mask = value
            if mask.dim() != 3 or not bool(((mask == 0) |
                                             (mask == -100)).all()):
                raise ConversionError(f'{key}: not an official 0/-100 '
                                      'shifted-window mask')
            continue
        name = route_key(key, ('patch_embed.', 'layers.', 'norm.'),
                         backbone_only, (('head.', 'head.fc.'), ))
        if name is not None:
            out[name] = value

    num_stages = len(infer_arch(state)['depths'])
    backbone = dict(type='swat_mm.SWATSwin', arch=arch,
                    **_infer_options(state))
    if backbone_only:
        cfg = dict(backbone, out_indices=tuple(range(num_stages)))
        # the inner stages' output norms are new (not in the checkpoint)
        check_model_keys(out, cfg,
                         skip=lambda k: re.match(r'norm\d+\.', k) is not None)
    else:
        require_classifier(out, {'head.fc.weight': 'head'})
        fc = out['head.fc.weight']
        cfg = dict(
            type='ImageClassifier', backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=fc.shape[0],
                      in_channels=fc.shape[1]))
        check_model_keys(out, cfg)
    return out, cfg
