"""Whole-model loads through mmengine fail when swat_mm's parts do not fit.

mmengine's ``load_checkpoint`` (behind mmpretrain's ``init_model``, its
inferencers, ``Runner.load_checkpoint`` and ``load_from``) loads with
``strict=False``: a checkpoint of another model, or an SVT checkpoint with
the token-labelling head in a model without it, only logs the keys it
skipped, and the model predicts with what it has.
:func:`install_strict_part_loading` (called by ``import swat_mm``) makes
mmengine's non-strict ``load_state_dict`` first check every swat_mm part of
the model (a module with a ``strict_part_hint`` method: the backbones and
SVT's head) and raise a ``CheckpointMismatchError`` naming the keys of a
part that do not fit, with the part's hint (e.g. the config to use).
Everything else keeps mmengine's behaviour, and torch's own
``load_state_dict`` is not touched.

A load meant to be partial runs inside :func:`partial_load_allowed` (or
after :func:`allow_partial_load`): ``swat_mm.CheckpointFitHook`` approves
fine-tuning with a new head and ``allow_partial_load=True`` this way.
"""
import contextlib
from typing import Any, Callable, Iterator, List, Mapping

from mmengine.model import BaseTTAModel, is_model_wrapper
from torch import nn

from .checkpoint import CheckpointMismatchError

_allowed: List[bool] = [False]
_installed: List[Callable] = []


def allow_partial_load(flag: bool) -> None:
    """Allow (or stop allowing) partial loads until told otherwise."""
    _allowed[0] = flag


@contextlib.contextmanager
def partial_load_allowed() -> Iterator[None]:
    """Partial loads are allowed inside the block."""
    before = _allowed[0]
    _allowed[0] = True
    try:
        yield
    finally:
        _allowed[0] = before


def _short(keys: List[str], limit: int = 5) -> str:
    text = ', '.join(keys[:limit])
    return text + (f', ... (+{len(keys) - limit} more)'
                   if len(keys) > limit else '')


def check_model_parts(model: nn.Module,
                      state_dict: Mapping[str, Any]) -> None:
    """Raise if, for any swat_mm part of ``model``, the keys of
    ``state_dict`` under the part's name are not exactly the part's own
    (``num_batches_tracked`` may be absent).

    Raises:
        CheckpointMismatchError: the first part that does not fit.
    """
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    for name, part in model.named_modules():
        if not name or not hasattr(part, 'strict_part_hint'):
            continue
        prefix = name + '.'
        own = set(part.state_dict(keep_vars=True))
        expected = {prefix + k for k in own
                    if not k.endswith('num_batches_tracked')}
        given = {k for k in state_dict if k.startswith(prefix)}
        missing = sorted(expected - given)
        unexpected = sorted(given - {prefix + k for k in own})
        if not missing and not unexpected:
            continue
        hint = part.strict_part_hint(state_dict, prefix)
        raise CheckpointMismatchError(
            f'The checkpoint does not fit this model\'s {name} '
            f'({type(part).__name__}): {len(missing)} of its '
            f'{len(expected)} tensors missing ({_short(missing)}), '
            f'{len(unexpected)} unexpected ({_short(unexpected)}). '
            + (hint + ' ' if hint else '') +
            'mmengine would load the rest and go on with the model partly '
            'random; swat_mm refuses. To load what fits on purpose: '
            '--cfg-options allow_partial_load=True with swat_mm\'s tools, '
            'or load inside swat_mm.utils.partial_load_allowed().')


def install_strict_part_loading() -> None:
    """Make mmengine's ``load_state_dict(strict=False)`` (what
    ``load_checkpoint`` calls) run :func:`check_model_parts` first.
    Idempotent."""
    if _installed:
        return
    import mmengine.runner.checkpoint as mm_checkpoint
    original = mm_checkpoint.load_state_dict

    def load_state_dict(module, state_dict, strict=False, logger=None):
        if not strict and not _allowed[0]:
            check_model_parts(module, state_dict)
        return original(module, state_dict, strict, logger)

    load_state_dict.__doc__ = original.__doc__
    mm_checkpoint.load_state_dict = load_state_dict
    _installed.append(original)
