"""Official SVT checkpoints (``badripatro/svt``) to mmpretrain / det / seg.

Official names map as follows; everything is kept bit for bit:

==========================================  ==================================
official                                    mmpretrain ``ImageClassifier``
==========================================  ==================================
``patch_embed{i}.*``, ``block{i}.*``,       ``backbone.`` + the same name
``norm{i}.*`` for i < num_stages
``norm{num_stages}.*`` (final norm)         ``head.norm.*`` (with
                                            ``backbone_only``: kept as
                                            ``norm{num_stages}.*``, for
                                            ``final_norm=True``)
``post_network.*``, ``head.*``,             ``head.`` + the same name
``aux_head.*`` (token labelling)
==========================================  ==================================

The DTCWT filter buffers of the scatter blocks (``*.attn.xfm.h0o``, ...) are
checked to be pytorch_wavelets' ``near_sym_b`` / ``qshift_b`` filters.
"""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple, Union

import torch

from .common import (ConversionError, check_model_keys, require_classifier,
                     route_key, stage_depths)

_BLOCK_KEY = re.compile(r'^block(\d+)\.(\d+)\.')
_DTCWT_KEY = re.compile(r'\.attn\.(xfm|ifm)\.(\w+)$')


def _dtcwt_buffers() -> Dict[str, torch.Tensor]:
    from pytorch_wavelets import DTCWTForward, DTCWTInverse
    out = {}
    for name, mod in (('xfm', DTCWTForward(J=1, biort='near_sym_b',
                                           qshift='qshift_b')),
                      ('ifm', DTCWTInverse(biort='near_sym_b',
                                           qshift='qshift_b'))):
        for key, buf in mod.state_dict().items():
            out[f'{name}.{key}'] = buf
    return out


def _infer_arch(state: Dict[str, torch.Tensor]) -> dict:
    depths = stage_depths(state, _BLOCK_KEY, first=1)
    num_stages = len(depths)
    try:
        dims = [int(state[f'block{i}.0.norm1.weight'].shape[0])
                for i in range(1, num_stages + 1)]
        hidden = [int(state[f'block{i}.0.mlp.fc1.weight'].shape[0])
                  for i in range(1, num_stages + 1)]
        stem = int(state['patch_embed1.conv.0.weight'].shape[0])
    except KeyError as err:
        raise ConversionError(f'SVT checkpoint without {err}') from None
    scatter = [f'block{i}.0.attn.complex_weight_ll' in state
               for i in range(1, num_stages + 1)]
    num_scatter = scatter.index(False) if False in scatter else num_stages
    if any(scatter[num_scatter:]):
        raise ConversionError(f'scatter blocks in stages {scatter} are not '
                              'the leading stages')
    img_size = 224
    if num_scatter:
        fh, fw = state['block1.0.attn.complex_weight_ll'].shape[-2:]
        img_size = (int(fh) * 4, int(fw) * 4) if fh != fw else int(fh) * 4
    return dict(
        stem_channels=stem, embed_dims=dims,
        depths=depths,
        mlp_ratios=[h / d for h, d in zip(hidden, dims)],
        num_scatter_stages=num_scatter, img_size=img_size)


def _resolve_arch(found: dict,
                  arch: Optional[Union[str, dict]]) -> Union[str, dict]:
    from swat_mm.models.backbones.svt import SVT
    keys = ('stem_channels', 'embed_dims', 'depths', 'mlp_ratios')
    if arch is None:
        for name in ('h-small', 'h-base', 'h-large'):
            zoo = SVT.arch_zoo[name]
            if zoo['stem_channels'] == found['stem_channels'] and all(
                    list(zoo[k]) == list(found[k]) for k in keys[1:]):
                return name
        raise ConversionError(
            f'The checkpoint is an SVT with embed_dims {found["embed_dims"]}, '
            f'depths {found["depths"]}, mlp_ratios {found["mlp_ratios"]} and '
            f'stem_channels {found["stem_channels"]}, which is none of '
            'h-small/h-base/h-large; pass the arch (with num_heads, which a '
            'state dict does not record) explicitly')
    settings = SVT._parse_arch(arch)
    settings.setdefault('stem_channels', 32)
    diffs = [f'{k} {settings[k]} (checkpoint: {found[k]})' for k in keys
             if (settings[k] != found[k] if k == 'stem_channels' else
                 list(settings[k]) != list(found[k]))]
    if diffs:
        raise ConversionError(f'arch {arch!r} does not fit the checkpoint: '
                              + '; '.join(diffs))
    return arch


def convert_svt(
    state: Dict[str, torch.Tensor],
    arch: Optional[Union[str, dict]] = None,
    backbone_only: bool = False,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Convert an official SVT state dict.

    Args:
        state: the official model's state dict (see
            :func:`swat_mm.converters.load_official_state_dict`).
        arch: ``'h-small'``/``'h-base'``/``'h-large'`` or a custom arch dict;
            inferred from the shapes when None. The number of scatter stages
            and ``img_size`` (from the low-pass filter size) are always
            inferred.
        backbone_only: return only the backbone's weights without prefix
            (with the final norm, for ``final_norm=True``), for
            ``init_cfg=dict(type='Pretrained', checkpoint=...)`` of a
            detector or segmentor.

    Returns:
        The converted state dict and the model config it loads into
        strictly (an mmpretrain ``ImageClassifier`` with
        ``swat_mm.SVTClsHead``, or the backbone with all four outputs).

    Raises:
        ConversionError: not an SVT checkpoint, other DTCWT filters, or
            keys/shapes that do not match the model; the message names every
            offending key.
    """
    if 'patch_embed1.conv.0.weight' not in state or not any(
            _BLOCK_KEY.match(k) for k in state):
        raise ConversionError(
            'This is not an official SVT checkpoint: it has no '
            '"patch_embed1.conv.0.weight" / "block<i>.<j>.*" keys '
            f'(first keys: {list(state)[:5]})')
    found = _infer_arch(state)
    arch = _resolve_arch(found, arch)
    num_stages = len(found['depths'])
    final_norm = f'norm{num_stages}.'
    filters = _dtcwt_buffers()

    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in state.items():
        m = _DTCWT_KEY.search(key)
        if m:
            ref = filters.get(f'{m.group(1)}.{m.group(2)}')
            if ref is None or ref.shape != value.shape or not torch.allclose(
                    value.float(), ref, atol=1e-6):
                raise ConversionError(
                    f'{key} is not the near_sym_b/qshift_b DTCWT filter of '
                    'pytorch_wavelets that SVT uses')
        if key.startswith(final_norm):
            out[key if backbone_only else 'head.norm.' +
                key[len(final_norm):]] = value
            continue
        name = route_key(key, ('patch_embed', 'block', 'norm'),
                         backbone_only,
                         [(p, 'head.' + p) for p in ('post_network.', 'head.',
                                                     'aux_head.')])
        if name is not None:
            out[name] = value

    backbone = dict(type='swat_mm.SVT', arch=arch,
                    img_size=found['img_size'],
                    num_scatter_stages=found['num_scatter_stages'])
    if backbone_only:
        cfg = dict(backbone, out_indices=tuple(range(num_stages)),
                   final_norm=True)
    else:
        require_classifier(out, {
            k: k[len('head.'):]
            for k in ('head.head.weight', 'head.post_network.0.attn.q.weight')
        })
        fc = out['head.head.weight']
        mlp = out['head.post_network.0.mlp.fc1.weight']
        from swat_mm.models.backbones.svt import SVT
        heads = SVT._parse_arch(arch)['num_heads'][-1]
        cfg = dict(
            type='ImageClassifier',
            backbone=backbone,
            head=dict(type='swat_mm.SVTClsHead', num_classes=fc.shape[0],
                      in_channels=fc.shape[1], num_heads=heads,
                      mlp_ratio=mlp.shape[0] / fc.shape[1],
                      with_aux='head.aux_head.weight' in out))
    check_model_keys(out, cfg)
    return out, cfg
