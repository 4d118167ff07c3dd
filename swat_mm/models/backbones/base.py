"""Pieces the swat_mm backbones share: arch parsing, per-stage,
``out_indices`` / ``frozen_stages`` and drop-rate checks, freezing,
``norm_eval``, the per-block gradient checkpointing and the ``Pretrained``
init (:func:`load_pretrained_backbone`, strict, for every backbone).

Family-specific validation (widths, kernels, stage tables) stays with each
backbone; these helpers only do what is the same for all of them, with the
same error messages.
"""
import numbers
import os.path as osp
from collections import Counter, OrderedDict
from contextlib import contextmanager, nullcontext
from typing import (AbstractSet, Any, Callable, Dict, Iterable, Iterator,
                    List, Mapping, Optional, Sequence, Tuple, Union)

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.runner.checkpoint import CheckpointLoader
from torch.nn.modules.batchnorm import _BatchNorm


IntPair = Union[int, Tuple[int, int]]


def pair(v: IntPair) -> Tuple[int, int]:
    """``v`` as an (H, W) pair of ints (an int is used for both)."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def parse_arch(family: str, arch: Union[str, dict],
               arch_zoo: Mapping[str, dict], required_keys: AbstractSet[str],
               optional_keys: AbstractSet[str]) -> dict:
    """Look up or check an arch setting.

    Args:
        family: the backbone's name in messages (``'SVT'``).
        arch: a key of ``arch_zoo`` (case-insensitive) or a custom dict.
        arch_zoo: named settings.
        required_keys: keys a custom dict must have.
        optional_keys: keys a custom dict may have besides.

    Returns:
        A shallow copy of the zoo entry, or of the custom dict once it has
        all required keys and no others. The caller validates a custom
        dict's values (``isinstance(arch, str)`` tells which it was).

    Raises:
        ValueError: an unknown name, missing or unknown keys.
        TypeError: neither a str nor a dict.
    """
    if isinstance(arch, str):
        key = arch.lower()
        if key not in arch_zoo:
            raise ValueError(
                f'Unknown {family} arch {arch!r}; choose one of '
                f'{sorted(set(arch_zoo))} or pass a dict with '
                f'{sorted(required_keys)}')
        return dict(arch_zoo[key])
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a str or a dict, got {type(arch)}')
    missing = set(required_keys) - set(arch)
    if missing:
        raise ValueError(
            f'Custom {family} arch is missing {sorted(missing)}; it needs '
            f'{sorted(required_keys)} and may have {sorted(optional_keys)}')
    allowed = set(required_keys) | set(optional_keys)
    unknown = set(arch) - allowed
    if unknown:
        raise ValueError(f'Custom {family} arch has unknown keys '
                         f'{sorted(unknown)}; allowed: {sorted(allowed)}')
    return dict(arch)


def check_stage_lengths(family: str, arch: Mapping[str, Sequence[Any]],
                        keys: Iterable[str]) -> int:
    """Check that the per-stage lists ``arch[k]`` for ``keys`` are equally
    long; returns that length (the number of stages)."""
    lengths = {k: len(arch[k]) for k in sorted(keys)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f'Custom {family} arch: per-stage lists differ in '
                         f'length: {lengths}')
    return next(iter(lengths.values()))


def check_heads(family: str, embed_dims: Sequence[int],
                num_heads: Sequence[int]) -> None:
    """Check that every stage's width is divisible by its head count."""
    for dim, heads in zip(embed_dims, num_heads):
        if dim % heads:
            raise ValueError(f'Custom {family} arch: embed_dims {dim} is not '
                             f'divisible by num_heads {heads}')


def check_token_layout(family: str, settings: Mapping[str, int]) -> None:
    """SWAT tokens hold a (c, p, p) sub-patch: ``embed_dims`` must be
    ``token_channels * sub_patch**2``."""
    c, p = settings['token_channels'], settings['sub_patch']
    if settings['embed_dims'] != c * p * p:
        raise ValueError(
            f"Custom {family} arch: embed_dims {settings['embed_dims']} must "
            f'be token_channels * sub_patch**2 = {c} * {p}**2 = {c * p * p} '
            '(a token holds its c x p x p sub-patch)')


def check_odd(family: str, settings: Mapping[str, int],
              keys: Iterable[str]) -> None:
    """Kernel sizes of same-size convolutions must be odd."""
    for k in keys:
        if settings[k] % 2 == 0:
            raise ValueError(f'Custom {family} arch: {k} must be odd '
                             f'(same-size conv), got {settings[k]}')


def per_stage(value: Union[Any, Sequence[Any]], num_stages: int,
              name: str) -> list:
    """An int repeated for every stage, or a sequence with one entry per
    stage, as a list."""
    if isinstance(value, int):
        return [value] * num_stages
    value = list(value)
    if len(value) != num_stages:
        raise ValueError(f'{name} needs one entry per stage '
                         f'({num_stages}), got {value}')
    return value


def normalize_indices(out_indices: Union[int, Sequence[int]], num: int,
                      what: str = 'stages') -> Tuple[int, ...]:
    """``out_indices`` (an int or a sequence, negative indices counting from
    the end) as a tuple of indices in ``[0, num)``; ``what`` names the
    indexed units (``'stages'``, ``'blocks'``) in the error.

    The backbones return their maps in increasing index order, so the
    indices must be unique and increasing once the negative ones are
    normalised: ``(3, 3)`` or ``(3, 0)`` are refused rather than silently
    returning one map or the maps in another order than asked for.

    Raises:
        ValueError: not an int or a sequence of ints, no index, an index
            out of range, repeated or out of order; the message names the
            fix.
    """
    if isinstance(out_indices, numbers.Integral) and \
            not isinstance(out_indices, bool):
        out_indices = [int(out_indices)]
    if isinstance(out_indices, (str, bytes)) or \
            not isinstance(out_indices, Iterable):
        raise ValueError(
            f'out_indices must be an int or a sequence of ints, got '
            f'{out_indices!r}; use e.g. out_indices=({num - 1}, ) or '
            f'out_indices={tuple(range(num))}')
    given = tuple(out_indices)
    if not given:
        raise ValueError(
            f'out_indices is empty; name at least one of the {num} {what} '
            f'(0..{num - 1}, or -1 for the last)')
    normalized = []
    for i in given:
        if not isinstance(i, numbers.Integral) or isinstance(i, bool):
            raise ValueError(
                f'out_indices {given}: {i!r} is not an int; use ints '
                f'0..{num - 1} or negative indices from the end')
        if not -num <= i < num:
            raise ValueError(
                f'out_indices {given}: {i} is out of range '
                f'for {num} {what}; use 0..{num - 1} or negative indices '
                'from the end')
        normalized.append(int(i) % num)
    if any(a >= b for a, b in zip(normalized, normalized[1:])):
        fixed = tuple(sorted(set(normalized)))
        as_given = '' if tuple(normalized) == given else \
            f' (that is {tuple(normalized)} of {num} {what})'
        raise ValueError(
            f'out_indices {given}{as_given} must be unique and increasing: '
            f'the maps come out in {what[:-1]} order, one per index; use '
            f'out_indices={fixed}')
    return tuple(normalized)


def check_rates(rates: Mapping[str, float]) -> None:
    """Check that every probability in ``rates`` (argument name -> value:
    ``drop_rate``, ``attn_drop_rate``, ``drop_path_rate``) is a number in
    ``[0, 1)``.

    A negative ``drop_path_rate`` would silently turn stochastic depth off
    (the blocks build no ``DropPath`` for rates <= 0); 1 drops every
    branch of every sample, and above 1 the keep probability is negative.
    Dropout rates outside ``[0, 1)`` are not training settings either.

    Raises:
        ValueError: a value that is not a real number or outside ``[0, 1)``,
            naming the argument, the value and the fix.
    """
    for name, value in rates.items():
        is_number = isinstance(value, numbers.Real) and \
            not isinstance(value, bool)
        if is_number and 0 <= value < 1:
            continue
        kind = ('the stochastic-depth rate (probability of skipping a '
                'residual branch)' if 'path' in name else
                'a dropout probability')
        raise ValueError(
            f'{name} must be a number in [0, 1), got {value!r}: it is '
            f'{kind}; use {name}=0 to turn it off or a value below 1 such '
            f'as {name}=0.1')


def check_frozen_stages(frozen_stages: int, num: int) -> int:
    """``frozen_stages`` after checking it is an int in ``[-1, num]``."""
    if isinstance(frozen_stages, bool) or not isinstance(
            frozen_stages, numbers.Integral):
        raise ValueError(
            f'frozen_stages must be an int in [-1, {num}] (-1 freezes '
            f'nothing), got {frozen_stages!r} of type '
            f'{type(frozen_stages).__name__}')
    frozen_stages = int(frozen_stages)
    if not -1 <= frozen_stages <= num:
        raise ValueError(f'frozen_stages must be in [-1, {num}], '
                         f'got {frozen_stages}')
    return frozen_stages


@contextmanager
def batch_norm_statistics_kept(module: nn.Module) -> Iterator[None]:
    """Run code that calls ``module`` again on a batch it has already seen
    (gradient checkpointing's recomputation) without counting that batch
    twice: the running statistics (mean, var, ``num_batches_tracked``) of
    its batch norms in training mode are restored on exit. The outputs are
    unchanged: in training mode a batch norm normalises with the batch's
    own statistics."""
    saved = [(m, [b.clone() for b in m.buffers(recurse=False)])
             for m in module.modules()
             if isinstance(m, _BatchNorm) and m.training
             and m.track_running_stats]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in saved:
                for b, old in zip(m.buffers(recurse=False), buffers):
                    b.copy_(old)


def freeze(modules: Iterable[nn.Module]) -> None:
    """Put ``modules`` in eval mode and stop their parameters' gradients."""
    for m in modules:
        m.eval()
        for p in m.parameters():
            p.requires_grad = False


def init_official(model: nn.Module,
                  linear: Optional[Callable[[nn.Linear], Any]] = None,
                  conv: Optional[Callable[[nn.Conv2d], Any]] = None) -> None:
    """The official models' weight init over ``model.modules()``: ``linear``
    / ``conv`` (where given) on every ``nn.Linear`` / ``nn.Conv2d`` (it sets
    the weight; biases become 0), LayerNorm to (1, 0); anything else keeps
    its construction-time init."""
    for m in model.modules():
        if linear is not None and isinstance(m, nn.Linear):
            linear(m)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif conv is not None and isinstance(m, nn.Conv2d):
            conv(m)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def check_input(x: torch.Tensor, in_channels: int, name: str) -> None:
    """Refuse anything but a (B, in_channels, H, W) batch, naming the fix."""
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f'{name} expects (B, {in_channels}, H, W) input, got '
            f'{tuple(x.shape)}; set in_channels='
            f'{x.shape[1] if x.dim() == 4 else "?"} or fix the data '
            'pipeline')


class PretrainedNotFoundError(FileNotFoundError):
    """A backbone's ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``
    names a local file that does not exist; the message says what the file
    is and the command that makes it."""


class PretrainedMismatchError(ValueError):
    """A ``Pretrained`` checkpoint does not fill the whole backbone (missing
    tensors), holds backbone tensors the backbone has no place for, or
    tensors of other shapes; the message lists them and the likely cause."""


#: How each backbone's ``--backbone-only`` file is made from an official
#: ImageNet checkpoint SRC (README, "Official weights"): the converter's
#: command line with ``{dst}`` for the output, and the folder of the
#: backbone's own ImageNet configs.
_PRETRAINED_SOURCES: Dict[str, Tuple[str, str]] = {
    'STViT': ('python tools/model_converters/stvit_to_mmpretrain.py SRC '
              '{dst} --backbone-only', 'configs/cls/stvit/'),
    'SVT': ('python tools/model_converters/svt_to_mmpretrain.py SRC {dst} '
            '--backbone-only', 'configs/cls/svt/'),
    **{name: ('python tools/model_converters/swat_to_mmpretrain.py SRC '
              f'{{dst}} --family {family} --use-ema --backbone-only',
              'configs/cls/swat/')
       for name, family in (('SWATViT', 'vit'), ('SWATMixer', 'mixer'),
                            ('SWATResMLP', 'resmlp'), ('SWATSwin', 'swin'))}
}

_PRETRAINED_KEYS = frozenset(('type', 'checkpoint', 'prefix',
                              'map_location'))
#: what the default prefix is; a checkpoint without any key under it is
#: taken as a bare backbone state dict
_DEFAULT_PREFIX = 'backbone.'


def _is_pretrained_cfg(cfg: Any) -> bool:
    return isinstance(cfg, dict) and cfg.get('type') in ('Pretrained',
                                                         PretrainedInit)


def _short_list(items: Sequence[str], limit: int = 10) -> str:
    text = ', '.join(items[:limit])
    return text + (f', ... (+{len(items) - limit} more)'
                   if len(items) > limit else '')


def _remedy(name: str, checkpoint: str) -> str:
    """How to make the file a ``name`` backbone's Pretrained init needs, or
    do without it."""
    command, cls_dir = _PRETRAINED_SOURCES.get(
        name, ('python tools/model_converters/<family>_to_mmpretrain.py '
               'SRC {dst} --backbone-only', 'configs/cls/'))
    return (
        f'Make it from the official ImageNet checkpoint SRC (README, '
        f'"Official weights") with\n    {command.format(dst=checkpoint)}\n'
        f'or train the backbone with its ImageNet config in {cls_dir} '
        f'(python tools/train.py {cls_dir}<config>.py) and set '
        'model.backbone.init_cfg.checkpoint to that run\'s checkpoint (its '
        'backbone.* weights are taken); or train from scratch with '
        '--cfg-options model.backbone.init_cfg=None')


def _top_prefixes(keys: Iterable[str]) -> str:
    counts = Counter(k.split('.', 1)[0] + ('.' if '.' in k else '')
                     for k in keys)
    return ', '.join(f'{k} ({n})' for k, n in counts.most_common(8)) or \
        'none'


def _read_state_dict(checkpoint: str, map_location: Any,
                     name: str) -> 'OrderedDict[str, Any]':
    """The state dict in ``checkpoint``, through mmengine's
    ``CheckpointLoader`` (swat_mm's ``weights_only=True`` loader for local
    files); ``state_dict`` is taken when present, DistributedDataParallel's
    ``module.`` prefix dropped."""
    local = '://' not in checkpoint
    if local and not osp.isfile(osp.expanduser(checkpoint)):
        what = 'is a directory, not a file' if osp.isdir(
            osp.expanduser(checkpoint)) else 'does not exist'
        raise PretrainedNotFoundError(
            f'{name}: the pretrained backbone checkpoint {checkpoint!r} '
            f'(model.backbone.init_cfg=dict(type=\'Pretrained\', '
            f'checkpoint=...)) {what}. It is the backbone\'s ImageNet '
            f'weights as bare backbone keys (a converter\'s --backbone-only '
            f'output). {_remedy(name, checkpoint)}.')
    ckpt = CheckpointLoader.load_checkpoint(checkpoint,
                                            map_location=map_location)
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        ckpt = ckpt['state_dict']
    elif isinstance(ckpt, dict) and any(
            isinstance(ckpt.get(k), dict)
            for k in ('model', 'model_ema', 'state_dict_ema')):
        raise PretrainedMismatchError(
            f'{name}: {checkpoint} looks like an official training '
            f'checkpoint (entries {sorted(ckpt)[:8]}), not a converted '
            f'one; its keys do not fit {name}. {_remedy(name, checkpoint)}.')
    if not isinstance(ckpt, dict) or not all(
            isinstance(k, str) for k in ckpt):
        raise PretrainedMismatchError(
            f'{name}: {checkpoint} holds a {type(ckpt).__name__}, not a '
            f'state dict (a dict of tensors, or a checkpoint with a '
            f'\'state_dict\' entry). {_remedy(name, checkpoint)}.')
    return OrderedDict((k[len('module.'):] if k.startswith('module.')
                        else k, v) for k, v in ckpt.items())


def _select_backbone(state: Mapping[str, Any], prefix: str,
                     own_top: AbstractSet[str], name: str,
                     checkpoint: str) -> Tuple['OrderedDict[str, Any]',
                                                str]:
    """The backbone's part of ``state`` and a description of the layout.

    Keys under ``prefix`` (a classifier's or detector's ``backbone.*``) are
    taken without it and the rest (neck, head, ...) dropped, unless a
    dropped key names one of the backbone's own top-level modules (two
    backbones in one file). A file with no key under ``prefix`` is taken
    whole, as a bare backbone state dict (a ``--backbone-only`` file).
    """
    under = [k for k in state if k.startswith(prefix)]
    if not under:
        return OrderedDict(state), 'bare backbone keys'
    rest = [k for k in state if not k.startswith(prefix)]
    stray = [k for k in rest if k.split('.', 1)[0] in own_top]
    if stray:
        raise PretrainedMismatchError(
            f'{name}: {checkpoint} holds backbone keys both under '
            f'{prefix!r} ({len(under)}) and without it ({len(stray)}: '
            f'{_short_list(stray)}); which are the weights is ambiguous. '
            f'Save one backbone per file.')
    return (OrderedDict((k[len(prefix):], state[k]) for k in under),
            f'{len(under)} keys under {prefix!r}, {len(rest)} other keys '
            '(neck, head, ...) dropped')


def _load_collect(module: nn.Module, state: 'OrderedDict[str, Any]'
                  ) -> Tuple[List[str], List[str], List[str]]:
    """``module.load_state_dict(state, strict=True)`` without raising:
    every module's own ``_load_from_state_dict`` (the family-specific
    adaptations: position embedding resizing, official buffers dropped or
    checked) runs; returns (missing, unexpected, error messages)."""
    state = OrderedDict(state)
    missing: List[str] = []
    unexpected: List[str] = []
    errors: List[str] = []

    def load(m: nn.Module, prefix: str) -> None:
        m._load_from_state_dict(state, prefix, {}, True, missing,
                                unexpected, errors)
        for child_name, child in m._modules.items():
            if child is not None:
                load(child, prefix + child_name + '.')

    load(module, '')
    return missing, unexpected, errors


def load_pretrained_backbone(module: nn.Module, init_cfg: Mapping[str, Any]
                             ) -> None:
    """Fill every tensor of the backbone ``module`` from a ``Pretrained``
    ``init_cfg`` (``checkpoint``, optional ``prefix`` and ``map_location``),
    or fail saying why.

    Both layouts load, deliberately: a bare backbone state dict (a
    converter's ``--backbone-only`` file) and a full checkpoint whose
    backbone keys sit under ``prefix`` (default ``'backbone.'``: an
    mmpretrain classifier's or mmdet/mmseg model's training checkpoint,
    whose neck and head keys are dropped). The load is strict: the file must
    hold every backbone tensor (``num_batches_tracked`` counters and the
    layers the backbone adds for dense prediction, its
    ``_pretrained_new_keys()``, excepted) with this model's shapes, after
    the backbone's own load-time adaptations (position embeddings resized,
    official buffers checked and dropped). On any error the backbone keeps
    its weights.

    Raises:
        PretrainedNotFoundError: no such local file; the message names the
            converter command that makes it and how to train from scratch.
        PretrainedMismatchError: missing backbone tensors (listed, with the
            likely cause), unexpected backbone tensors, shape mismatches,
            an unconverted official checkpoint or no state dict at all.
        ValueError: an ``init_cfg`` with unknown or missing entries.
    """
    name = type(module).__name__
    unknown = sorted(set(init_cfg) - _PRETRAINED_KEYS)
    if unknown or not isinstance(init_cfg.get('checkpoint'), str):
        raise ValueError(
            f'{name}: init_cfg {dict(init_cfg)} is not a Pretrained init '
            f'swat_mm reads: it needs checkpoint=<path or URL> and may have '
            f'{sorted(_PRETRAINED_KEYS - {"type", "checkpoint"})}'
            + (f'; unknown: {unknown}' if unknown else ''))
    checkpoint: str = init_cfg['checkpoint']
    prefix = init_cfg.get('prefix') or _DEFAULT_PREFIX
    if not prefix.endswith('.'):
        prefix += '.'
    state = _read_state_dict(checkpoint,
                             init_cfg.get('map_location', 'cpu'), name)
    own = module.state_dict()
    own_top = {k.split('.', 1)[0] for k in own}
    backbone, layout = _select_backbone(state, prefix, own_top, name,
                                        checkpoint)

    def refuse(problem: str, keys: Sequence[str], cause: str) -> None:
        raise PretrainedMismatchError(
            f'{name}: the pretrained checkpoint {checkpoint} ({layout}) '
            f'does not fit this backbone: {problem} ({len(keys)}): '
            f'{_short_list(list(keys))}.\nLikely cause: {cause}.\nFix: '
            f'point init_cfg.checkpoint at a file of this {name} arch. '
            f'{_remedy(name, checkpoint)}.')

    new_keys = getattr(module, '_pretrained_new_keys', list)()
    kept = [k for k in new_keys if k not in backbone]
    needed = [k for k in own if k not in kept
              and not k.endswith('num_batches_tracked')]
    missing = [k for k in needed if k not in backbone]
    if missing:
        found = len(needed) - len(missing)
        if not found:
            cause = (f'the file holds none of the {len(needed)} {name} '
                     f'tensors (its keys start with: '
                     f'{_top_prefixes(state)}): another family\'s '
                     'backbone, a head-only file, or an official '
                     'checkpoint that was not converted')
        else:
            cause = (f'the file holds {found} of the {len(needed)} {name} '
                     'tensors: a checkpoint of another arch (depth, '
                     'stages) or of another family whose names partly '
                     'coincide')
        refuse(f'{len(missing)} of its {len(needed)} tensors are missing '
               f'from the file; missing', missing, cause)
    before = OrderedDict((k, v.detach().clone()) for k, v in own.items())
    try:
        missed, unexpected, errors = _load_collect(module, backbone)
        missed = [k for k in missed if k not in kept and
                  not k.endswith('num_batches_tracked')]
        if missed:  # a load-time adaptation dropped them
            refuse('tensors the load left unset; missing', missed,
                   'the backbone\'s own load-time checks dropped them')
        if unexpected:
            refuse('backbone tensors it has no place for; unexpected',
                   unexpected, 'a checkpoint of a larger arch or another '
                   'family, or official keys the converter did not map')
        if errors:
            refuse('tensors of other shapes; size mismatch',
                   [' '.join(e.split()) for e in errors],
                   'a checkpoint of another arch (widths, heads, window or '
                   'kernel sizes)')
    except BaseException:
        module.load_state_dict(before, strict=True)
        raise
    note = f'; {len(kept)} dense-prediction tensors the file cannot ' \
        f'have kept their initialisation: {_short_list(kept)}' if kept else ''
    print_log(f'{name}: loaded all {len(needed)} backbone tensors '
              f'from {checkpoint} ({layout}){note}', logger='current')
    if hasattr(module, '_params_init_info'):
        update_init_info(module, init_info=f'{name}: Pretrained from '
                         f'{checkpoint} ({layout})')


class StagedBackboneMixin:
    """``out_indices`` / ``frozen_stages`` / ``norm_eval`` / ``with_cp``
    handling of the swat_mm backbones, and their layer depths for
    layer-wise learning-rate decay (:meth:`get_layer_depth`); put it before
    ``BaseModule`` in the bases. The class provides ``_freeze_stages()``
    and ``_layer_depth_groups()``."""

    out_indices: Tuple[int, ...]
    frozen_stages: int
    norm_eval: bool
    with_cp: bool

    def _set_stage_options(self, out_indices: Union[int, Sequence[int]],
                           frozen_stages: int, norm_eval: bool,
                           with_cp: bool, num: int,
                           what: str = 'stages',
                           rates: Optional[Mapping[str, float]] = None
                           ) -> None:
        """Check and store the options over ``num`` stages (or blocks):
        ``out_indices`` through :func:`normalize_indices` (unique and
        increasing), ``frozen_stages`` through :func:`check_frozen_stages`;
        ``rates`` (argument name -> value, e.g. ``drop_path_rate``) are
        checked to be probabilities in ``[0, 1)`` (:func:`check_rates`)."""
        check_rates(rates or {})
        self.out_indices = normalize_indices(out_indices, num, what)
        self.frozen_stages = check_frozen_stages(frozen_stages, num)
        self.norm_eval = norm_eval
        self.with_cp = with_cp

    def _freeze_stages(self) -> None:
        raise NotImplementedError

    def _layer_depth_groups(self) -> List[Tuple[str, ...]]:
        """Module (or parameter) names per layer depth, in depth order:
        entry 0 the stem, then one entry per block in forward order (with
        the down-sampling and stage norms that follow that block), last the
        final norm (possibly empty: the neck and head get that depth)."""
        raise NotImplementedError

    def get_layer_depth(self, param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """The layer depth of a parameter, for mmpretrain's
        ``LearningRateDecayOptimWrapperConstructor`` (the contract of
        mmpretrain's ``VisionTransformer.get_layer_depth``).

        The stem (patch embedding, position embedding) is depth 0, block
        ``k`` of all the blocks in forward order is depth ``k + 1``; a
        down-sampling layer or stage norm between blocks has the depth of
        the block before it (mmpretrain's Swin rule); the final norm, and
        every parameter outside the backbone (names not starting with
        ``prefix``: neck, head), have the last depth,
        ``num_blocks + 1``.

        Args:
            param_name: the parameter's name in the model being optimised,
                e.g. ``'backbone.layers.0.blocks.1.attn.qkv.weight'``.
            prefix: the backbone's prefix in that model (``'backbone.'``
                from mmpretrain's ``ImageClassifier``).

        Returns:
            ``(layer_depth, num_layers)`` with ``num_layers = num_blocks +
            2``.

        Raises:
            ValueError: a name under ``prefix`` that names no module of
                the backbone.
        """
        groups = self._layer_depth_groups()
        num_layers = len(groups)
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        for depth, names in enumerate(groups):
            if any(name == n or name.startswith(n + '.') for n in names):
                return depth, num_layers
        raise ValueError(
            f'{type(self).__name__}.get_layer_depth: {param_name!r} is not '
            f'a parameter of this backbone (prefix {prefix!r}); pass the '
            'backbone\'s prefix in the model, e.g. prefix=\'backbone.\'')

    def _pretrained_new_keys(self) -> List[str]:
        """State-dict keys of layers this backbone adds for dense prediction
        that no ImageNet checkpoint holds (e.g. per-stage output norms); a
        ``Pretrained`` file may lack these and they keep their
        initialisation. Every other key must be in the file."""
        return []

    def strict_part_hint(self, state_dict: Mapping[str, Any],
                         prefix: str) -> Optional[str]:
        """Marks the backbone as a part whose keys must all load when
        mmengine loads a whole model (:mod:`swat_mm.utils.load_guard`);
        no family-specific hint."""
        return None

    def init_weights(self) -> None:
        """mmengine's ``BaseModule.init_weights`` for every ``init_cfg``
        entry but ``Pretrained``, which :func:`load_pretrained_backbone`
        does instead of mmengine's ``PretrainedInit`` (that one loads with
        ``strict=False`` and without a prefix, so a classifier checkpoint's
        ``backbone.*`` keys would load nothing and the backbone would stay
        random without an error). The backbones' own init (the official
        init where ``init_cfg`` is None) follows in their overrides."""
        cfgs = self.init_cfg  # type: ignore[attr-defined]
        cfg_list = [cfgs] if isinstance(cfgs, dict) else list(cfgs or [])
        pretrained = [c for c in cfg_list if _is_pretrained_cfg(c)]
        if not pretrained:
            super().init_weights()  # type: ignore[misc]
            return
        if len(pretrained) > 1:
            raise ValueError(
                f'{type(self).__name__}: init_cfg has {len(pretrained)} '
                'Pretrained entries; give one checkpoint')
        first_call = not getattr(self, '_is_init', False)
        others = [c for c in cfg_list if not _is_pretrained_cfg(c)]
        self.init_cfg = others or None
        try:
            super().init_weights()  # type: ignore[misc]
        finally:
            self.init_cfg = cfgs
        if first_call:  # mmengine initialises a module once
            load_pretrained_backbone(self,  # type: ignore[arg-type]
                                     pretrained[0])

    def _run_block(self, blk: nn.Module, *args: Any) -> Any:
        """``blk(*args)``, through gradient checkpointing with ``with_cp``
        when gradients are being recorded. The backward pass runs the block
        a second time; its batch norms must not count that batch twice, so
        the recomputation runs under :func:`batch_norm_statistics_kept`."""
        if self.with_cp and torch.is_grad_enabled():
            return cp.checkpoint(
                blk, *args, use_reentrant=False,
                context_fn=lambda: (nullcontext(),
                                    batch_norm_statistics_kept(blk)))
        return blk(*args)

    def train(self, mode: bool = True) -> Any:
        """nn.Module's ``train``, then the frozen stages back to eval and,
        with ``norm_eval``, every BatchNorm to eval."""
        super().train(mode)  # type: ignore[misc]
        self._freeze_stages()
        if mode and self.norm_eval:
            modules: List[nn.Module] = list(self.modules())  # type: ignore
            for m in modules:
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


__all__ = [
    'IntPair', 'pair', 'parse_arch', 'check_stage_lengths', 'check_heads',
    'check_token_layout', 'check_odd', 'per_stage', 'normalize_indices',
    'check_rates', 'check_frozen_stages', 'freeze', 'init_official',
    'check_input', 'StagedBackboneMixin', 'PretrainedNotFoundError',
    'PretrainedMismatchError', 'load_pretrained_backbone'
]
