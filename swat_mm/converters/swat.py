"""Official SWAT checkpoints (``kkahatapitiya/SWAT``, timm 0.4) to mmpretrain /
det / seg.

The backbones keep the official names, so only the prefix and the head move;
everything is kept bit for bit:

==========  ===============================  ==================================
family      official                         mmpretrain ``ImageClassifier``
==========  ===============================  ==================================
``vit``     ``patch_embed.*``, ``pos_embed``, ``backbone.*`` (``SWATViT``,
            ``blocks.*``, ``norm.*``          ``out_type='avg_featmap'``)
            ``head.*``                        ``head.layers.head.*``
                                              (``VisionTransformerClsHead``)
``mixer``   ``stem.*``, ``blocks.*``,         ``backbone.*`` (``SWATMixer``),
            ``norm.*``; ``head.*``            ``GlobalAveragePooling`` neck,
                                              ``head.fc.*`` (``LinearClsHead``)
``resmlp``  as ``mixer``                      as ``mixer`` (``SWATResMLP``)
==========  ===============================  ==================================

Families are entries of :data:`FAMILIES` (a :class:`SWATFamily` each); a new
family registers itself with :func:`register_family`.
"""
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple, Union

import torch

from .common import ConversionError, check_model_keys, require_classifier

Arch = Union[str, dict]
State = Dict[str, torch.Tensor]


def _num_blocks(state: State, pattern: str = r'^blocks\.(\d+)\.') -> int:
    regex = re.compile(pattern)
    ids = {int(m.group(1)) for m in map(regex.match, state) if m}
    if ids and sorted(ids) != list(range(len(ids))):
        raise ConversionError(f'blocks {sorted(ids)} are not contiguous')
    return len(ids)


def _ksize(w: torch.Tensor) -> int:
    return int(w.shape[-1])


def _tokenizer_settings(state: State, prefix: str) -> dict:
    """The tokenizer's arch keys that the weights record."""
    proj21 = state[f'{prefix}.proj21.weight']
    proj22 = state[f'{prefix}.proj22.weight']
    return dict(stem_channels=int(proj21.shape[0]),
                stem_kernel=_ksize(proj21),
                token_channels=int(proj22.shape[0]),
                proj_kernel=_ksize(proj22))


def _sub_patch(embed_dims: int, c: int) -> int:
    p = int(round(math.sqrt(embed_dims / c)))
    if c * p * p != embed_dims:
        raise ConversionError(
            f'token width {embed_dims} is not c * p * p for c = {c}')
    return p


def _infer_vit(state: State) -> dict:
    embed = int(state['pos_embed'].shape[2])
    s = _tokenizer_settings(state, 'patch_embed')
    s.update(embed_dims=embed, num_layers=_num_blocks(state),
             sub_patch=_sub_patch(embed, s['token_channels']),
             attn_kernel=_ksize(state['blocks.0.attn.qkv.weight']),
             mlp_ratio=state['blocks.0.mlp.fc1.weight'].shape[0] / embed,
             mlp_kernel=_ksize(state['blocks.0.mlp.fc3.weight']))
    pos = state.get('patch_embed.pos_embed2')
    s['pos_map_size'] = None if pos is None else (
        int(pos.shape[2]) if pos.shape[2] == pos.shape[3] else
        (int(pos.shape[2]), int(pos.shape[3])))
    return s


def _vit_tokens(state: State) -> int:
    return int(state['pos_embed'].shape[1])


def _infer_mixer(state: State) -> dict:
    embed = int(state['norm.weight'].shape[0])
    s = _tokenizer_settings(state, 'stem')
    tokens_dim = state['blocks.0.mlp_tokens.fc1.weight'].shape[0]
    channels_dim = state['blocks.0.mlp_channels.fc1.weight'].shape[0]
    s.update(embed_dims=embed, num_layers=_num_blocks(state),
             sub_patch=_sub_patch(embed, s['token_channels']),
             mlp_ratio=(tokens_dim / embed, channels_dim / embed),
             token_kernel=_ksize(state['blocks.0.mlp_tokens.fc3.weight']),
             channel_kernel=_ksize(
                 state['blocks.0.mlp_channels.fc3.weight']))
    return s


def _infer_resmlp(state: State) -> dict:
    embed = int(state['norm.alpha'].shape[-1])
    s = _tokenizer_settings(state, 'stem')
    s.update(embed_dims=embed, num_layers=_num_blocks(state),
             sub_patch=_sub_patch(embed, s['token_channels']),
             mlp_ratio=state['blocks.0.mlp_channels.fc1.weight'].shape[0] /
             embed,
             token_kernel=_ksize(state['blocks.0.linear_tokens2.weight']),
             channel_kernel=_ksize(
                 state['blocks.0.mlp_channels.fc3.weight']))
    return s


@dataclass
class SWATFamily:
    """How to recognise and convert one SWAT family.

    Attributes:
        backbone: registered backbone type (``'swat_mm.SWATViT'``).
        backbone_cls: returns the backbone class (imported lazily; its
            ``arch_zoo`` and ``_parse_arch`` resolve arch names).
        detect: whether a state dict is of this family.
        infer_arch: arch keys recorded by the weights, compared with the
            chosen arch's settings (a named arch is found by them).
        num_tokens: the token count the weights are built for (the
            backbone's ``img_size`` follows from it), or None when the
            weights do not fix it.
        backbone_prefixes: official top-level names that are the backbone's.
        head: ``'vit'`` (``VisionTransformerClsHead``, no neck) or
            ``'gap'`` (``GlobalAveragePooling`` + ``LinearClsHead``).
        backbone_cfg: extra backbone settings of the classifier config.
        convert: a family-specific ``convert(state, arch, backbone_only) ->
            (state, cfg)`` that :func:`convert_swat` delegates to after the
            family check, for families whose checkpoints need more than the
            generic prefix mapping (Swin: shift masks to drop).
    """
    backbone: str
    backbone_cls: Callable[[], type]
    detect: Callable[[State], bool]
    infer_arch: Callable[[State], dict]
    num_tokens: Optional[Callable[[State], int]]
    backbone_prefixes: Tuple[str, ...]
    head: str = 'gap'
    backbone_cfg: dict = field(default_factory=dict)
    convert: Optional[Callable[[State, Optional[Arch], bool],
                               Tuple['OrderedDict[str, torch.Tensor]',
                                     dict]]] = None


def _vit_cls():
    from swat_mm.models.backbones.swat_vit import SWATViT
    return SWATViT


def _mixer_cls():
    from swat_mm.models.backbones.swat_mlp import SWATMixer
    return SWATMixer


def _resmlp_cls():
    from swat_mm.models.backbones.swat_mlp import SWATResMLP
    return SWATResMLP


#: family name -> :class:`SWATFamily`; :func:`register_family` adds more.
FAMILIES: Dict[str, SWATFamily] = {
    'vit': SWATFamily(
        backbone='swat_mm.SWATViT', backbone_cls=_vit_cls,
        detect=lambda s: 'patch_embed.proj21.weight' in s and
        'pos_embed' in s and 'blocks.0.attn.qkv_linear.weight' in s,
        infer_arch=_infer_vit, num_tokens=_vit_tokens,
        backbone_prefixes=('patch_embed.', 'pos_embed', 'blocks.', 'norm.'),
        head='vit', backbone_cfg=dict(out_type='avg_featmap')),
    'mixer': SWATFamily(
        backbone='swat_mm.SWATMixer', backbone_cls=_mixer_cls,
        detect=lambda s: 'stem.proj21.weight' in s and
        'blocks.0.mlp_tokens.fc1.weight' in s,
        infer_arch=_infer_mixer,
        num_tokens=lambda s: int(
            s['blocks.0.mlp_tokens.fc1.weight'].shape[1]),
        backbone_prefixes=('stem.', 'blocks.', 'norm.')),
    'resmlp': SWATFamily(
        backbone='swat_mm.SWATResMLP', backbone_cls=_resmlp_cls,
        detect=lambda s: 'stem.proj21.weight' in s and
        'blocks.0.linear_tokens1.weight' in s,
        infer_arch=_infer_resmlp,
        num_tokens=lambda s: int(s['blocks.0.linear_tokens1.weight'].shape[0]),
        backbone_prefixes=('stem.', 'blocks.', 'norm.')),
}


def register_family(name: str, family: SWATFamily) -> None:
    """Add (or replace) a family of :func:`convert_swat`."""
    FAMILIES[name] = family


def _register_swin() -> None:
    # SWAT-Swin lives in its own module; it builds its entry from the
    # SWATFamily class handed over, so it need not import this module.
    from .swat_swin import swin_family
    register_family('swin', swin_family(SWATFamily))


_register_swin()


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if not isinstance(a, (list, tuple)) or \
                not isinstance(b, (list, tuple)) or len(a) != len(b):
            return False
        return all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) < 1e-9
    return a == b


def _resolve_arch(name: str, family: SWATFamily, state: State,
                  arch: Optional[Arch]) -> Tuple[Arch, dict]:
    cls = family.backbone_cls()
    found = family.infer_arch(state)
    if arch is None:
        for zoo_name in cls.arch_zoo:
            settings = cls._parse_arch(zoo_name)
            if all(_same(settings.get(k), v) for k, v in found.items()):
                return zoo_name, settings
        raise ConversionError(
            f'The checkpoint is a SWAT {name} with {found}, which is none of '
            f'the named archs {sorted(set(cls.arch_zoo))}; pass the arch as a '
            'dict (with the settings a state dict does not record, such as '
            'num_heads)')
    try:
        settings = cls._parse_arch(arch)
    except (TypeError, ValueError) as err:
        raise ConversionError(str(err)) from err
    diff = {k: (settings.get(k), v) for k, v in found.items()
            if not _same(settings.get(k), v)}
    if diff:
        raise ConversionError(
            f'arch {arch!r} does not match the checkpoint: ' + ', '.join(
                f'{k} {a} (arch) vs {b} (checkpoint)'
                for k, (a, b) in sorted(diff.items())))
    return arch, settings


def _img_size(family: SWATFamily, state: State, settings: dict
              ) -> Optional[int]:
    """The square input size the weights' token count implies, or None
    when that is 224 (the backbones' default) or not fixed."""
    if family.num_tokens is None:
        return None
    n = family.num_tokens(state)
    side = int(round(math.sqrt(n)))
    if side * side != n:
        raise ConversionError(f'{n} tokens do not form a square grid')
    stride = settings['stem_stride'] * settings['proj_kernel'] * \
        settings['sub_patch']
    size = side * stride
    return None if size == 224 else size


def detect_family(state: State) -> str:
    """The SWAT family of an official state dict (:data:`FAMILIES`)."""
    found = [name for name, fam in FAMILIES.items() if fam.detect(state)]
    if len(found) != 1:
        raise ConversionError(
            'This is not an official SWAT checkpoint of a known family '
            f'({sorted(FAMILIES)}): ' + (
                f'it looks like several ({found})' if found else
                f'none matches its keys (first keys: {list(state)[:5]})'))
    return found[0]


def convert_swat(
    state: State,
    arch: Optional[Arch] = None,
    backbone_only: bool = False,
    family: Optional[str] = None,
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Convert an official SWAT state dict.

    Args:
        state: the official model's state dict (see
            :func:`swat_mm.converters.load_official_state_dict`).
        arch: an arch name of the family's backbone or a custom arch dict;
            inferred from the shapes when None.
        backbone_only: return only the backbone's weights without prefix,
            for ``init_cfg=dict(type='Pretrained', checkpoint=...)``.
        family: a key of :data:`FAMILIES` (``'vit'``, ``'mixer'``,
            ``'resmlp'``, ...); detected from the keys when None, checked
            when given.

    Returns:
        The converted state dict and the model config it loads into
        strictly (an mmpretrain ``ImageClassifier``, or the backbone).

    Raises:
        ConversionError: not a SWAT checkpoint (of that family), an arch
            that does not match, or keys/shapes that do not match the model;
            the message names every offending key.
    """
    if family is None:
        family = detect_family(state)
    elif family not in FAMILIES:
        raise ConversionError(f'Unknown SWAT family {family!r}; known: '
                              f'{sorted(FAMILIES)}')
    elif not FAMILIES[family].detect(state):
        others = [n for n, f in FAMILIES.items() if f.detect(state)]
        raise ConversionError(
            f'This is not an official SWAT {family} checkpoint' +
            (f' (it looks like a SWAT {others[0]})' if len(others) == 1
             else '') + f'; first keys: {list(state)[:5]}')
    spec = FAMILIES[family]
    if spec.convert is not None:
        return spec.convert(state, arch, backbone_only)
    try:
        arch, settings = _resolve_arch(family, spec, state, arch)
    except KeyError as err:
        raise ConversionError(
            f'The checkpoint lacks {err} that a SWAT {family} has') from err

    head_prefix = 'head.layers.head.' if spec.head == 'vit' else 'head.fc.'
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in state.items():
        if key.startswith(spec.backbone_prefixes):
            out[key if backbone_only else 'backbone.' + key] = value
        elif backbone_only and key.startswith(('head.', 'head_dist.')):
            continue
        elif key.startswith('head.'):
            out[head_prefix + key[len('head.'):]] = value
        else:
            out[key] = value  # reported as unexpected below

    backbone = dict(type=spec.backbone, arch=arch)
    img_size = _img_size(spec, state, settings)
    if img_size is not None:
        backbone['img_size'] = img_size
    if backbone_only:
        cfg = backbone
    else:
        fc_key = head_prefix + 'weight'
        require_classifier(out, {fc_key: 'head.weight'})
        fc = out[fc_key]
        head_type = 'VisionTransformerClsHead' if spec.head == 'vit' \
            else 'LinearClsHead'
        cfg = dict(type='ImageClassifier',
                   backbone=dict(backbone, **spec.backbone_cfg),
                   neck=None if spec.head == 'vit' else dict(
                       type='GlobalAveragePooling'),
                   head=dict(type=head_type, num_classes=fc.shape[0],
                             in_channels=fc.shape[1]))
    check_model_keys(out, cfg)
    return out, cfg
