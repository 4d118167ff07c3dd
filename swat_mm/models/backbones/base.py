"""Pieces the swat_mm backbones share: arch parsing, per-stage,
``out_indices`` / ``frozen_stages`` and drop-rate checks, freezing,
``norm_eval`` and the per-block gradient checkpointing.

Family-specific validation (widths, kernels, stage tables) stays with each
backbone; these helpers only do what is the same for all of them, with the
same error messages.
"""
import numbers
from typing import (AbstractSet, Any, Callable, Iterable, List, Mapping,
                    Optional, Sequence, Tuple, Union)

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
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
    """``frozen_stages`` after checking it is in ``[-1, num]``."""
    if not -1 <= frozen_stages <= num:
        raise ValueError(f'frozen_stages must be in [-1, {num}], '
                         f'got {frozen_stages}')
    return frozen_stages


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


class StagedBackboneMixin:
    """``out_indices`` / ``frozen_stages`` / ``norm_eval`` / ``with_cp``
    handling of the swat_mm backbones; put it before ``BaseModule`` in the
    bases. The class provides ``_freeze_stages()``."""

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

    def _run_block(self, blk: nn.Module, *args: Any) -> Any:
        """``blk(*args)``, through gradient checkpointing with ``with_cp``
        when gradients are being recorded."""
        if self.with_cp and torch.is_grad_enabled():
            return cp.checkpoint(blk, *args, use_reentrant=False)
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
    'check_input', 'StagedBackboneMixin'
]
