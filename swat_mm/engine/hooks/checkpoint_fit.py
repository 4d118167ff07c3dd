"""Checkpoints fit the model or the run stops, saying why.

mmengine 0.10.7 loads ``load_from`` and ``resume`` checkpoints with
``strict=False``: a checkpoint of another model only logs a warning, and
the run goes on with random weights (``tools/test.py`` reports chance
accuracy and exits 0, training starts from scratch) or fails later in the
optimizer's ``loaded state dict has a different number of parameter
groups``. :class:`CheckpointFitHook` checks the checkpoint against the
model in ``after_load_checkpoint``, which ``Runner.load_checkpoint`` calls
before it loads any weight, and raises a :class:`CheckpointMismatchError`
that counts and names the keys that do not fit and the likely cause.
"""
import copy
import logging
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.optim import BaseOptimWrapper
from mmengine.runner.base_loop import BaseLoop
from torch import nn

from swat_mm.registry import HOOKS
from swat_mm.utils.checkpoint import CheckpointMismatchError
from swat_mm.utils.load_guard import allow_partial_load

#: Top-level model parts that fine-tuning may replace (any other
#: ``*_head`` too); everything else (``backbone.``, ``neck.``,
#: ``data_preprocessor.``) must load.
HEAD_PREFIXES = ('head', 'decode_head', 'auxiliary_head', 'roi_head',
                 'rpn_head', 'bbox_head', 'mask_head')

#: Official (unconverted) checkpoints by a key each has at the top level,
#: and the converter that turns them into mmpretrain checkpoints.
_OFFICIAL_LAYOUTS = (
    (re.compile(r'^layers\.\d+\.blocks\.\d+\.(pos_embed|attn\.(un)?fold)'
                r'\.'), 'STViT (hhb072/STViT)', 'stvit'),
    (re.compile(r'^(block\d+\.\d+\.|patch_embed\d+\.)'),
     'SVT (badripatro/svt)', 'svt'),
    (re.compile(r'^layers\.\d+\.blocks\.\d+\.attn\.relative_position'),
     'SWAT-Swin (kkahatapitiya/SWAT)', 'swat'),
    (re.compile(r'^(blocks\.\d+\.|stem\.)'), 'SWAT (kkahatapitiya/SWAT)',
     'swat'),
)
#: Top-level names of the official repositories' (and timm's) models.
_OFFICIAL_TOP = re.compile(r'^(blocks|layers|patch_embed\d*|block\d+|stem|'
                           r'cls_token|pos_embed|norm\d*)(\.|$)')

_SIZE_MISMATCH = re.compile(
    r'size mismatch for (\S+): copying a param with shape '
    r'torch\.Size\((\[[^\]]*\])\) from checkpoint, the shape in current '
    r'model is torch\.Size\((\[[^\]]*\])\)')

#: The ``revise_keys`` default of ``Runner.load_checkpoint``.
RUNNER_REVISE_KEYS = ((r'^module.', ''), )

Shape = Tuple[int, ...]


@dataclass
class FitReport:
    """How a state dict fits a model, as ``Runner.load_checkpoint`` would
    load it (the model's own ``_load_from_state_dict`` rules included)."""

    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    #: (key, checkpoint shape, model shape)
    shapes: List[Tuple[str, Shape, Shape]] = field(default_factory=list)
    #: errors of the model's own loading code
    errors: List[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.shapes
                    or self.errors)

    def keys(self) -> List[str]:
        """Every key that does not load."""
        return (self.missing + self.unexpected
                + [k for k, _, _ in self.shapes])


def is_head_key(key: str) -> bool:
    """A key of a part that fine-tuning may replace (see
    :data:`HEAD_PREFIXES`)."""
    top = key.split('.', 1)[0]
    return top in HEAD_PREFIXES or top.endswith('_head')


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module ``Runner.load_checkpoint`` loads into: without the DDP
    (or other) wrapper and a test-time-augmentation wrapper."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def checkpoint_state_dict(
        checkpoint: Any, revise_keys: Tuple[Tuple[str, str], ...] = (
            RUNNER_REVISE_KEYS)) -> 'OrderedDict[str, Any]':
    """``checkpoint['state_dict']`` (or the bare dict) with ``revise_keys``
    applied, as ``Runner.load_checkpoint`` takes it.

    Raises:
        CheckpointMismatchError: the checkpoint is not a dict.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(
            f'the checkpoint holds a {type(checkpoint).__name__}, not a dict '
            'of weights')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(
            "the checkpoint's 'state_dict' is a "
            f'{type(state).__name__}, not a dict of weights')
    metadata = getattr(state, '_metadata', None)
    revised: 'OrderedDict[str, Any]' = OrderedDict(state)
    for pattern, repl in revise_keys:
        revised = OrderedDict((re.sub(pattern, repl, k), v)
                              for k, v in revised.items())
    if metadata is not None:
        revised._metadata = metadata  # type: ignore[attr-defined]
    return revised


def _shape(value: Any) -> Optional[Shape]:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters are meta tensors: loading into
    it runs the model's loading code at the cost of its buffers only
    (kept real: loading code may compare them, e.g. a relative position
    index)."""
    memo: Dict[int, Any] = {
        id(p): torch.empty_like(p, device='meta')
        for p in model.parameters()
    }
    return copy.deepcopy(model, memo)


def _dry_run_load(model: nn.Module,
                  state: 'OrderedDict[str, Any]') -> FitReport:
    """mmengine's ``load_state_dict`` recursion (``runner/checkpoint.py``)
    on a meta copy of ``model``: the same missing, unexpected and
    size-mismatched keys, with nothing loaded."""
    target = _meta_copy(model)
    metadata = getattr(state, '_metadata', None)
    missing: List[str] = []
    unexpected: List[str] = []
    errors: List[str] = []

    def load(module: nn.Module, local: Dict[str, Any], prefix: str) -> None:
        if is_model_wrapper(module) or isinstance(module, BaseTTAModel):
            module = module.module
        local_metadata = {} if metadata is None else metadata.get(
            prefix[:-1], {})
        module._load_from_state_dict(local, prefix, local_metadata, True,
                                     missing, unexpected, errors)
        for name, child in module._modules.items():
            if child is not None:
                child_prefix = prefix + name + '.'
                load(child, {k: v for k, v in local.items()
                             if k.startswith(child_prefix)}, child_prefix)

    with warnings.catch_warnings():
        # copying into a meta tensor is a no-op, which torch warns about
        warnings.simplefilter('ignore')
        load(target, dict(state), '')
    report = FitReport(
        missing=[k for k in missing if 'num_batches_tracked' not in k],
        unexpected=list(unexpected))
    for msg in errors:
        m = _SIZE_MISMATCH.search(msg)
        if m:
            report.shapes.append((m.group(1), tuple(_parse_shape(m.group(2))),
                                  tuple(_parse_shape(m.group(3)))))
        else:
            report.errors.append(msg)
    return report


def _parse_shape(text: str) -> List[int]:
    """``'[3, 4]'`` -> ``[3, 4]`` (no ``eval``)."""
    return [int(x) for x in text.strip('[]').split(',') if x.strip()]


def _static_fit(model_state: Mapping[str, Any],
                state: Mapping[str, Any]) -> FitReport:
    """Key and shape comparison, for a model that cannot be copied."""
    return FitReport(
        missing=[k for k in model_state if k not in state
                 and 'num_batches_tracked' not in k],
        unexpected=[k for k in state if k not in model_state],
        shapes=[(k, _shape(state[k]) or (), tuple(v.shape))
                for k, v in model_state.items()
                if k in state and _shape(state[k]) != tuple(v.shape)])


def check_fit(model: nn.Module,
              state: 'OrderedDict[str, Any]') -> FitReport:
    """How ``state`` (a revised state dict) loads into ``model``."""
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        report = _static_fit(model.state_dict(), state)
        report.errors.append(
            f'{len(bad)} entries are not tensors (e.g. {_short(bad, 4)}): '
            'this is not a state dict')
        return report
    try:
        return _dry_run_load(model, state)
    except (RuntimeError, TypeError, copy.Error, NotImplementedError):
        # a module that cannot be deep-copied onto the meta device
        return _static_fit(model.state_dict(), state)
    except ValueError as err:  # the model's loading code refused it
        report = _static_fit(model.state_dict(), state)
        report.errors.append(str(err))
        return report


# ---------------------------------------------------------------------------
# diagnosis
# ---------------------------------------------------------------------------


def _short(keys: List[str], limit: int = 5) -> str:
    text = ', '.join(keys[:limit])
    return text + (f', ... (+{len(keys) - limit} more)'
                   if len(keys) > limit else '')


def _matches(state: Mapping[str, Any], model_state: Mapping[str, Any]
             ) -> int:
    """How many checkpoint keys have a model key of the same shape."""
    return sum(1 for k, v in state.items()
               if k in model_state and _shape(v) == tuple(
                   model_state[k].shape))


def _strip_nested(text: str) -> str:
    """``text`` with every bracketed group and string literal but the top
    level's strings blanked out, so ``type=`` of nested dicts is not
    read."""
    out, depth, quote = [], 0, ''
    for ch in text:
        if quote:
            if depth == 0:
                out.append(ch)
            if ch == quote:
                quote = ''
            continue
        if ch in '\'"':
            quote = ch
            if depth == 0:
                out.append(ch)
            continue
        if ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
            if depth < 0:
                break
        elif depth == 0:
            out.append(ch)
    return ''.join(out)


def describe_config_text(text: str) -> Optional[str]:
    """``'swat_mm.STViT (arch 'small')'`` from a config's text (mmengine's
    ``meta['cfg']``) or a converter's ``meta['model']`` (a dict repr),
    read with regular expressions, never executed."""
    m = re.search(r'''(?:\bbackbone\s*=\s*dict\(|['"]backbone['"]\s*:\s*\{)''',
                  text)
    if not m:
        return None
    body = _strip_nested(text[m.end():])
    t = re.search(r'''(?:\btype\s*=\s*|['"]type['"]\s*:\s*)['"]([^'"]+)''',
                  body)
    if not t:
        return None
    a = re.search(r'''(?:\barch\s*=\s*|['"]arch['"]\s*:\s*)['"]([^'"]+)''',
                  body)
    arch = f" (arch {a.group(1)!r})" if a else ''
    return f'{t.group(1)}{arch}'


def describe_checkpoint(checkpoint: Any,
                        state: Mapping[str, Any]) -> str:
    """The model a checkpoint was saved from: its meta's config if it has
    one, else its first keys."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) \
        else None
    if isinstance(meta, Mapping):
        for key in ('cfg', 'model', 'config'):
            if isinstance(meta.get(key), str):
                found = describe_config_text(meta[key])
                if found:
                    return f'a {found} model (from its meta)'
    tops = []
    for k in state:
        top = '.'.join(k.split('.')[:2])
        if top not in tops:
            tops.append(top)
    return f'keys like {_short(tops, 4)}'


def describe_model(runner: Any, model: nn.Module) -> str:
    """The model being run: its config's backbone, else its classes."""
    cfg = getattr(runner, 'cfg', None)
    model_cfg = cfg.get('model', None) if cfg is not None else None
    if model_cfg is not None and 'module' in model_cfg:  # TTA wrapper
        model_cfg = model_cfg['module']
    backbone = model_cfg.get('backbone', None) if model_cfg else None
    if isinstance(backbone, Mapping) and 'type' in backbone:
        arch = backbone.get('arch', None)
        arch_text = f' (arch {arch!r})' if isinstance(arch, str) else ''
        return f'{backbone["type"]}{arch_text}'
    sub = getattr(model, 'backbone', None)
    return type(sub if sub is not None else model).__name__


def _official_layout(state: Mapping[str, Any]) -> Optional[Tuple[str, str]]:
    """(model name, converter family) of an official checkpoint's keys."""
    for pattern, name, family in _OFFICIAL_LAYOUTS:
        if any(pattern.match(k) for k in state):
            return name, family
    return None


#: SVT arch names (and aliases) -> the arch of the shipped configs.
_SVT_CONFIG_ARCH = {
    **dict.fromkeys(('h-small', 'h-s', 'small', 's'), 'h-small'),
    **dict.fromkeys(('h-base', 'h-b', 'base', 'b'), 'h-base'),
    **dict.fromkeys(('h-large', 'h-l', 'large', 'l'), 'h-large'),
}


def _svt_aux_head_hint(report: FitReport, model_name: str) -> Optional[str]:
    """SVT's token-labelling head (``head.aux_head.*``) in the checkpoint and
    not in the model, or the other way round: the shipped config to use."""
    if 'SVT' not in model_name or report.shapes or report.errors:
        return None
    m = re.search(r"arch '([^']+)'", model_name)
    arch = _SVT_CONFIG_ARCH.get(m.group(1)) if m else None
    stem = f'configs/cls/svt/svt-{arch}_8xb128_in1k' if arch else \
        'configs/cls/svt/svt-h-<arch>_8xb128_in1k'
    extra = [k for k in report.unexpected if k.startswith('head.aux_head.')]
    if extra and len(extra) == len(report.unexpected) and \
            not report.missing:
        return ('an SVT checkpoint with the token-labelling auxiliary head '
                f'({_short(extra)}; every released SVT checkpoint has it) '
                'in a model without it: use the token-labelling config '
                f'{stem}-tl.py (head with_aux=True, prediction cls + 0.5 x '
                'max over tokens of aux, as the official model)')
    lacking = [k for k in report.missing if k.startswith('head.aux_head.')]
    if lacking and len(lacking) == len(report.missing) and \
            not report.unexpected:
        return ('an SVT checkpoint without the token-labelling auxiliary '
                f'head ({_short(lacking)} missing) in a model with it: use '
                f'the plain config {stem}.py')
    return None


def diagnose(checkpoint: Any, state: 'OrderedDict[str, Any]',
             model_state: Mapping[str, Any], report: FitReport,
             model_name: str, path: Optional[str],
             evaluating: bool) -> str:
    """The likely cause of a mismatch, in words, with the fix."""
    where = path or 'CHECKPOINT'
    ckpt_desc = describe_checkpoint(checkpoint, state)
    n_model, n_ckpt = len(model_state), len(state)
    direct = _matches(state, model_state)
    model_backbone = [k for k in model_state if k.startswith('backbone.')]
    ckpt_prefixed = [k for k in state if k.startswith('backbone.')]

    # official training checkpoint wrapped under 'model' (DeiT's main.py)
    inner = checkpoint.get('model') if isinstance(checkpoint, Mapping) \
        else None
    if 'state_dict' not in checkpoint and isinstance(inner, Mapping):
        layout = _official_layout(inner)
        name, family = layout or ('an official', None)
        script = f'tools/model_converters/{family}_to_mmpretrain.py' \
            if family else 'tools/model_converters/<family>_to_mmpretrain.py'
        return (f'an official {name} training checkpoint (weights under '
                f"'model'), not an mmpretrain one: convert it with python "
                f'{script} {where} OUT.pth')

    # keys with one 'backbone.' too many
    stripped = OrderedDict((k[len('backbone.'):], v) for k, v in
                           state.items() if k.startswith('backbone.'))
    if ckpt_prefixed and _matches(stripped, model_state) > max(
            direct, n_model // 2):
        return (f"the checkpoint's keys carry an extra 'backbone.' prefix "
                f'(e.g. {ckpt_prefixed[0]} where the model has '
                f"{ckpt_prefixed[0][len('backbone.'):]}): load its backbone "
                f"with init_cfg=dict(type='Pretrained', checkpoint="
                f"'{where}', prefix='backbone.'), which strips the prefix")

    # keys without the model's 'backbone.' prefix
    added = OrderedDict(('backbone.' + k, v) for k, v in state.items()
                        if not k.startswith('backbone.'))
    found = _matches(added, model_state)
    if model_backbone and found > direct and \
            found >= len(model_backbone) // 2:
        layout = _official_layout(state)
        if layout is not None and direct == 0 and found < n_ckpt:
            # backbone names at the top, other keys (head, ...) besides,
            # none of the model's layout
            name, family = layout
            return (f'an official {name} checkpoint, not converted: its '
                    f'keys ({_short(list(state), 3)}) have no backbone./'
                    'head. layout; convert it with python tools/'
                    f'model_converters/{family}_to_mmpretrain.py {where} '
                    'OUT.pth')
        if direct == 0 and found >= 0.9 * n_ckpt:
            use = ('evaluating needs the whole model: convert the official '
                   'checkpoint without --backbone-only' if evaluating else
                   "load it into the backbone with model.backbone.init_cfg="
                   f"dict(type='Pretrained', checkpoint='{where}') (no "
                   'prefix: its keys have none) instead of load_from')
            return (f'a backbone-only checkpoint: its {n_ckpt} keys are the '
                    "model's backbone.* keys without the 'backbone.' prefix "
                    f'(e.g. {next(iter(state))}); {use}')
        return ("the checkpoint's keys lack the 'backbone.' prefix the "
                f'model has ({found} of them match once it is added, e.g. '
                f'{next(iter(state))} -> backbone.{next(iter(state))})')

    if not ckpt_prefixed and model_backbone:
        layout = _official_layout(state)
        if layout is not None or any(_OFFICIAL_TOP.match(k) for k in state):
            name, family = layout or ('', None)
            script = f'{family}_to_mmpretrain.py' if family else \
                '<family>_to_mmpretrain.py'
            what = f'an official {name} checkpoint' if name else \
                'an official (unconverted) checkpoint'
            return (f'{what}: its keys ({_short(list(state), 3)}) have no '
                    'backbone./head. layout; convert it with python '
                    f'tools/model_converters/{script} {where} OUT.pth')

    if direct < n_model // 2:
        return (f'a checkpoint of another model: it holds {ckpt_desc}, the '
                f'model is {model_name}; only {direct} of the model\'s '
                f'{n_model} keys match by name and shape. Use the config '
                'the checkpoint was trained with, or a checkpoint of this '
                'model')

    svt_hint = _svt_aux_head_hint(report, model_name)
    if svt_hint is not None:
        return svt_hint

    bad = report.keys()
    if bad and all(is_head_key(k) for k in bad):
        classes = sorted({(c[0], m[0]) for k, c, m in report.shapes
                          if len(c) and len(m) and c[0] != m[0]})
        detail = (f' ({classes[0][0]} outputs in the checkpoint, '
                  f'{classes[0][1]} in the model: another number of '
                  'classes?)') if classes else ''
        fix = ('use the config the checkpoint was trained with; to '
               'fine-tune on these classes, train with load_from (head '
               'mismatches are allowed there)' if evaluating else
               'the heads differ')
        return f'only the heads differ{detail}: {fix}'

    if report.shapes and not report.missing and not report.unexpected:
        return (f'the same model at another size: {len(report.shapes)} '
                f'shapes differ (checkpoint: {ckpt_desc}; model: '
                f'{model_name}); use the arch the checkpoint was trained '
                'with')
    return (f'the checkpoint ({ckpt_desc}) is close to the model '
            f'({model_name}) but not the same: {direct} of {n_model} '
            'keys match; a different variant or version of the model')


def format_mismatch(report: FitReport, mode: str, path: Optional[str],
                    cause: str, partial_hint: bool) -> str:
    """The message of a :class:`CheckpointMismatchError`."""
    what = {'resume': 'resuming must load every weight exactly',
            'eval': 'evaluating needs every weight exactly',
            'finetune': 'fine-tuning (load_from) may only replace heads',
            'partial': 'even partial loading needs some backbone/neck '
                       'weights to fit'}[mode]
    head = (f'checkpoint {path} does not fit the model' if path else
            'the checkpoint does not fit the model')
    lines = [f'{head} ({what}): {len(report.missing)} missing, '
             f'{len(report.unexpected)} unexpected, {len(report.shapes)} '
             'shape-mismatched keys']
    if report.missing:
        lines.append(f'  missing in the checkpoint ({len(report.missing)}): '
                     + _short(report.missing))
    if report.unexpected:
        lines.append('  unexpected in the checkpoint '
                     f'({len(report.unexpected)}): '
                     + _short(report.unexpected))
    if report.shapes:
        shapes = [f'{k} {list(c)} vs model {list(m)}'
                  for k, c, m in report.shapes]
        lines.append(f'  shape mismatch ({len(report.shapes)}): '
                     + _short(shapes, 3))
    for err in report.errors:
        lines.append(f'  loading error: {err}')
    lines.append(f'Likely cause: {cause}.')
    if partial_hint:
        lines.append('To load only the weights that fit, on purpose: '
                     '--cfg-options allow_partial_load=True.')
    return '\n'.join(lines)


# ---------------------------------------------------------------------------
# the hook
# ---------------------------------------------------------------------------


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuse a checkpoint that does not fit the model, before it loads.

    Called by ``Runner.load_checkpoint`` (``load_from`` and ``resume``)
    after reading the file and before loading it. The checkpoint's
    ``state_dict`` (or the bare dict, with the runner's ``^module.`` strip)
    is loaded into a meta-device copy of the model, so the model's own
    loading rules apply (e.g. a resized position embedding) and nothing is
    loaded twice. Then:

    * resuming (``resume=True`` / ``--resume``): every key must fit;
    * evaluating (``tools/test.py``, any run without a training loop):
      every key must fit;
    * ``load_from`` for training (fine-tuning): keys that do not fit are
      allowed only in the heads (``head.``, ``decode_head.``,
      ``auxiliary_head.``, ``roi_head.``, ``rpn_head.``, ``bbox_head.``,
      ``mask_head.``, any ``*_head.``) and logged with a warning; a
      mismatch in ``backbone.``, ``neck.`` or elsewhere raises.

    Otherwise a :class:`CheckpointMismatchError` names the checkpoint, the
    counts and first keys of the missing, unexpected and shape-mismatched
    weights, and the likely cause (another model or arch, a backbone-only
    file, a ``backbone.`` prefix too many or too few, an unconverted
    official checkpoint with the converter to use).

    To load only the weights that fit on purpose (``load_from``, not
    resume), set the top-level config key ``allow_partial_load = True``
    (``--cfg-options allow_partial_load=True``) or list the hook with
    ``custom_hooks = [dict(type='swat_mm.CheckpointFitHook',
    allow_partial=True)]``; what is skipped is logged. A checkpoint of
    which nothing outside the heads fits is refused even then.

    ``tools/train.py`` and ``tools/test.py`` add this hook to every config.

    Args:
        allow_partial: load what fits, whatever is skipped (not for
            resuming).
    """

    priority = 'VERY_HIGH'  # before hooks that use the checkpoint

    def __init__(self, allow_partial: bool = False) -> None:
        if not isinstance(allow_partial, bool):
            raise TypeError('CheckpointFitHook(allow_partial=...) takes True '
                            f'or False, got {allow_partial!r}')
        self.allow_partial = allow_partial

    @staticmethod
    def _training(runner: Any) -> bool:
        # Runner.train builds its loop and optimizer before loading;
        # Runner.test/val leave them as configs.
        return isinstance(runner._train_loop, BaseLoop) and isinstance(
            runner.optim_wrapper, BaseOptimWrapper)

    @staticmethod
    def _path(runner: Any) -> Optional[str]:
        path = getattr(runner, '_load_from', None)
        if path is None and getattr(runner, '_resume', False):
            from mmengine.runner import find_latest_checkpoint
            path = find_latest_checkpoint(runner.work_dir)
        return None if path is None else str(path)

    def _partial_allowed(self, runner: Any) -> bool:
        cfg = getattr(runner, 'cfg', None)
        flag = cfg.get('allow_partial_load', False) if cfg is not None \
            else False
        if not isinstance(flag, bool):
            raise TypeError('allow_partial_load in the config takes True or '
                            f'False, got {flag!r}')
        return self.allow_partial or flag

    def before_train(self, runner: Any) -> None:
        allow_partial_load(False)

    def before_val(self, runner: Any) -> None:
        allow_partial_load(False)

    def before_test(self, runner: Any) -> None:
        allow_partial_load(False)

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """Check ``checkpoint`` against ``runner.model``; raise
        :class:`CheckpointMismatchError` or warn as the class describes."""
        path = self._path(runner)
        resume = bool(getattr(runner, '_resume', False))
        evaluating = not resume and not self._training(runner)
        mode = 'resume' if resume else 'eval' if evaluating else 'finetune'
        partial = not resume and self._partial_allowed(runner)

        model = unwrap_model(runner.model)
        try:
            state = checkpoint_state_dict(checkpoint)
        except CheckpointMismatchError as err:
            raise CheckpointMismatchError(
                f'checkpoint {path}: {err}' if path else str(err)) from None
        report = check_fit(model, state)
        if report.exact:
            return

        bad = report.keys()
        heads_only = not report.errors and all(is_head_key(k) for k in bad)
        model_state = model.state_dict()
        skipped = set(report.unexpected) | {k for k, _, _ in report.shapes}
        # weights outside the heads that would load
        body = sum(1 for k in state if k not in skipped
                   and not is_head_key(k))
        if (mode == 'finetune' and heads_only) or (partial and body > 0
                                                   and not report.errors):
            why = 'head weights' if heads_only and mode == 'finetune' else \
                'weights (allow_partial_load)'
            print_log(
                f'[swat_mm] CheckpointFitHook: loading '
                f'{path or "the checkpoint"} without these {why} that do '
                f'not fit the model (they keep their initialisation): '
                f'{len(report.missing)} missing: '
                f'{_short(report.missing, 8)}; {len(report.unexpected)} '
                f'unexpected: {_short(report.unexpected, 8)}; '
                f'{len(report.shapes)} shape-mismatched: '
                f'{_short([k for k, _, _ in report.shapes], 8)}',
                logger='current', level=logging.WARNING)
            # the runner loads right after this hook, through mmengine's
            # load_state_dict, which swat_mm makes refuse misfitting
            # backbones and heads; the next loop start ends the approval
            allow_partial_load(True)
            return

        cause = diagnose(checkpoint, state, model_state, report,
                         describe_model(runner, model), path, evaluating)
        raise CheckpointMismatchError(format_mismatch(
            report, 'partial' if partial else mode, path, cause,
            partial_hint=not resume and not partial))
