import argparse
from collections import OrderedDict
from typing import Dict, Iterable, List

import torch

from swat_mm.utils.checkpoint import safe_load


class ConversionError(ValueError):
    """The checkpoint does not fit the model it is converted for."""


def load_official_state_dict(
        path: str,
        use_ema: bool = False) -> 'OrderedDict[str, torch.Tensor]':
    """A plain state dict from an official checkpoint file.

    Accepts a bare state dict or a training checkpoint that holds it under
    ``'model'`` (DeiT-style ``main.py``: STViT, SVT) or ``'state_dict'``
    (timm's ``train.py``: SWAT), with the EMA weights under ``'model_ema'`` /
    ``'state_dict_ema'``; strips the ``module.`` prefix DistributedDataParallel
    leaves. Loaded with ``weights_only=True`` (see
    :mod:`swat_mm.utils.checkpoint`); the training scripts' ``argparse``
    ``args`` entry is allowed as plain data, any other object is refused.

    Args:
        use_ema: take the EMA weights; an error if the file has none.
    """
    ckpt = safe_load(path, map_location='cpu',
                     extra_safe_globals=[argparse.Namespace])
    if not isinstance(ckpt, dict):
        raise ConversionError(f'{path}: expected a dict, got {type(ckpt)}')
    keys = ('model_ema', 'state_dict_ema') if use_ema else ('model',
                                                            'state_dict')
    for key in keys:
        if key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
            break
    else:
        if use_ema:
            raise ConversionError(
                f'{path}: no EMA weights (no model_ema / state_dict_ema '
                f'entry; entries: {sorted(ckpt)[:10]}); drop --use-ema')
    state = OrderedDict()
    for k, v in ckpt.items():
        if not isinstance(v, torch.Tensor):
            raise ConversionError(
                f'{path}: entry {k!r} is a {type(v).__name__}, not a tensor; '
                'this does not look like a model state dict')
        state[k[len('module.'):] if k.startswith('module.') else k] = v
    return state


def check_keys(converted: Dict[str, torch.Tensor],
               expected: Dict[str, torch.Tensor], what: str) -> None:
    """Raise :class:`ConversionError` naming every missing, unexpected or
    mis-shaped key."""
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    shapes = sorted(
        f'{k}: checkpoint {tuple(converted[k].shape)} vs model '
        f'{tuple(expected[k].shape)}' for k in set(converted) & set(expected)
        if converted[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        lines: List[str] = [f'The checkpoint does not match {what}:']
        for title, keys in (('missing', missing), ('unexpected', unexpected),
                            ('shape mismatch', shapes)):
            if keys:
                lines.append(f'  {title} ({len(keys)}): ' + _short(keys))
        raise ConversionError('\n'.join(lines))


def _short(keys: Iterable[str], limit: int = 12) -> str:
    keys = list(keys)
    text = ', '.join(keys[:limit])
    return text + (f', ... (+{len(keys) - limit} more)'
                   if len(keys) > limit else '')
