"""What the converters and their command-line tools share: loading an
official checkpoint, routing its keys, checking them against the model the
config builds, and writing the result."""
import argparse
import os
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import (Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)

import torch

from swat_mm.utils.checkpoint import (NotACheckpointError,
                                     UnsafeCheckpointError, safe_load)

StateDict = 'OrderedDict[str, torch.Tensor]'


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


def stage_depths(state: Mapping[str, torch.Tensor], block_key: re.Pattern,
                 first: int = 0) -> List[int]:
    """Blocks per stage of an official state dict.

    Args:
        state: the official state dict.
        block_key: matches a block's keys, groups (stage, block index).
        first: the number of the first stage (1 for SVT's ``block1.*``).

    Raises:
        ConversionError: stage numbers with gaps.
    """
    depths: Dict[int, int] = {}
    for key in state:
        m = block_key.match(key)
        if m:
            stage, block = int(m.group(1)), int(m.group(2))
            depths[stage] = max(depths.get(stage, 0), block + 1)
    if sorted(depths) != list(range(first, first + len(depths))):
        raise ConversionError(f'stages {sorted(depths)} are not contiguous')
    return [depths[i] for i in range(first, first + len(depths))]


def route_key(key: str, backbone_prefixes: Tuple[str, ...],
              backbone_only: bool,
              head_prefixes: Sequence[Tuple[str, str]] = ()
              ) -> Optional[str]:
    """The converted name of an official key, or None to drop it.

    Backbone keys get ``backbone.`` (none with ``backbone_only``, which drops
    every other key); otherwise the first ``(old, new)`` of
    ``head_prefixes`` whose ``old`` starts the key replaces it; any other key
    is kept as it is, for :func:`check_keys` to report as unexpected.
    """
    if key.startswith(backbone_prefixes):
        return key if backbone_only else 'backbone.' + key
    if backbone_only:
        return None
    for old, new in head_prefixes:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def check_arch_fits(arch: object, settings: Mapping[str, object],
                    found: Mapping[str, object], keys: Iterable[str]) -> None:
    """Refuse a given arch whose ``settings`` differ from those read off the
    checkpoint (``found``) in any of ``keys``, naming the first such key.
    Sequences compare as lists, other values as they are."""
    for k in keys:
        value = settings[k]
        if isinstance(value, (list, tuple)):
            value = list(value)
        if value != found[k]:
            raise ConversionError(f'arch {arch!r} has {k} {value} but the '
                                  f'checkpoint has {found[k]}')


def require_classifier(converted: Mapping[str, torch.Tensor],
                       keys: Mapping[str, str]) -> None:
    """Refuse a checkpoint without the classifier a full conversion needs;
    ``keys`` maps converted names to the official ones named in the
    message."""
    for key, official in keys.items():
        if key not in converted:
            raise ConversionError(
                f'The checkpoint has no classifier ({official} of the '
                'official model); convert it with backbone_only')


def build_model(cfg: dict) -> torch.nn.Module:
    """Build ``cfg`` (a swat_mm backbone or an mmpretrain classifier) with
    the registries of mmpretrain, whatever default scope the caller's
    process set (mmdet, mmseg)."""
    import mmpretrain.models  # noqa: F401  (registers ImageClassifier)
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import swat_mm.models  # noqa: F401  (registers the backbones)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def check_model_keys(converted: Dict[str, torch.Tensor], cfg: dict,
                     build_cfg: Optional[dict] = None,
                     skip: Optional[Callable[[str], bool]] = None) -> None:
    """:func:`check_keys` of ``converted`` against the model ``cfg``
    describes (built from ``build_cfg`` where given: a config with the same
    keys); model keys for which ``skip`` is true are not expected."""
    expected = build_model(build_cfg or cfg).state_dict()
    if skip is not None:
        expected = {k: v for k, v in expected.items() if not skip(k)}
    check_keys(converted, expected, f'swat_mm {cfg["type"]}')


def converter_parser(doc: str, model: str,
                     add_model_args: Callable[[argparse.ArgumentParser],
                                              None]
                     ) -> argparse.ArgumentParser:
    """The command line of ``tools/model_converters/*_to_mmpretrain.py``:
    ``SRC DST``, the options ``add_model_args`` adds (``--arch``, ...),
    ``--use-ema`` and ``--backbone-only``.

    Args:
        doc: the script's docstring (its first line describes it).
        model: the model's name in the help (``'SVT'``).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument('src', help=f'official {model} checkpoint')
    parser.add_argument('dst', help='output mmpretrain checkpoint')
    add_model_args(parser)
    parser.add_argument('--use-ema', action='store_true',
                        help="convert the checkpoint's EMA weights "
                        '(model_ema / state_dict_ema)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='keep only the backbone, without prefix')
    return parser


def check_output_path(dst: str) -> None:
    """Refuse an output path that cannot become a file, before any work.

    Raises:
        IsADirectoryError: ``dst`` is an existing directory.
        NotADirectoryError: a folder on the way to ``dst`` is a file.
    """
    if osp.isdir(dst):
        raise IsADirectoryError(
            f'the output path {dst} is an existing directory; give a file '
            f'name, e.g. {osp.join(dst, "converted.pth")}')
    parent = osp.dirname(osp.abspath(dst))
    while parent and not osp.exists(parent):
        parent = osp.dirname(parent)
    if parent and not osp.isdir(parent):
        raise NotADirectoryError(
            f'the output path {dst} lies under {parent}, which is a file, '
            'not a directory; choose another output path')


def save_converted(dst: str, converted: Dict[str, torch.Tensor], cfg: dict,
                   src: str) -> None:
    """Write ``{'state_dict', 'meta'}`` to ``dst`` atomically (through
    ``dst + '.tmp'``), creating its folder.

    The temporary file is removed whatever stops the write (an error, a
    full disk, Ctrl-C): either ``dst`` is complete or it is untouched.

    Raises:
        IsADirectoryError, NotADirectoryError: see
            :func:`check_output_path`.
    """
    check_output_path(dst)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    tmp = dst + '.tmp'
    try:
        torch.save({'state_dict': converted,
                    'meta': {'converted_from': osp.basename(src),
                             'model': repr(cfg)}}, tmp)
        os.replace(tmp, dst)
    finally:
        if osp.isfile(tmp):
            os.remove(tmp)


def _arch_of(cfg: dict) -> str:
    return str(cfg.get('backbone', cfg).get('arch'))


def run_converter(args: argparse.Namespace,
                  convert: Callable[[StateDict], Tuple[StateDict, dict]],
                  describe: Callable[[dict], str] = _arch_of) -> int:
    """The converter scripts' ``main``: load ``args.src`` (EMA weights with
    ``args.use_ema``), ``convert`` it, save it to ``args.dst`` and print
    ``DST: N tensors for TYPE (describe(cfg))``.

    Returns:
        The exit status: 0, or 1 after printing ``error: ...`` to stderr
        for an output path that cannot be written (checked first, before
        any work), a source file that is missing, no checkpoint, unsafe or
        does not convert, or a failed write (nothing is left behind then,
        no ``DST.tmp`` either).
    """
    try:
        check_output_path(args.dst)
        state = load_official_state_dict(args.src, args.use_ema)
        converted, cfg = convert(state)
        save_converted(args.dst, converted, cfg, args.src)
    except (ConversionError, OSError, NotACheckpointError,
            UnsafeCheckpointError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{args.dst}: {len(converted)} tensors for {cfg["type"]} '
          f'({describe(cfg)})')
    return 0
