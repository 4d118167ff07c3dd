"""Residual branches with stochastic depth: ``x + drop_path(gamma * f(inp))``.

Shared by the blocks of every family. Same random draws as mmcv's
``DropPath`` (one uniform per sample, ``floor(keep_prob + u)``), with two
speed-only changes, both tested against the plain formulation for outputs
and gradients (``tests/test_drop_path.py``):

* the per-sample factor (0 or ``1 / keep_prob``) and the per-channel layer
  scale ``gamma`` form one factor, and the residual sum is one ``addcmul``
  pass with a minimal backward (:class:`ScaledResidual`) instead of up to
  three passes over the map;
* in training on CPU, :func:`add_branch` runs the branch on the samples the
  drop path keeps only and adds it back to those rows
  (:class:`RowsResidual`). The plain formulation computes the branch for
  every sample and multiplies the dropped ones by zero. This needs a branch
  that treats samples independently (layer or no norm inside it; a batch
  norm goes before it, on the whole batch) and takes nothing from the
  random generator (no active dropout, see :func:`has_dropout`): the draw
  is made before the branch here, after it in the plain formulation. The
  kept samples are taken with their own backward (:class:`SplitRows` where
  the branch reads the residual stream itself, :class:`TakeRows`
  otherwise): autograd's indexing backward scatters into zeros with an
  accumulating, single-threaded kernel, 4.5 ms against 1.2 ms for an
  STViT-S stage-1 map (8x64x56x56, two threads).
"""
from typing import Callable, Optional, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath as _MMCVDropPath

from .fast_paths import cpu_fast_path

__all__ = ['DropPath', 'ScaledResidual', 'RowsResidual', 'TakeRows',
           'SplitRows', 'residual', 'add_branch', 'has_dropout']


class DropPath(_MMCVDropPath):
    """mmcv's ``DropPath`` (same random draws, same ``drop_prob``, no state)
    with the ``1 / keep_prob`` scale applied to the per-sample mask rather
    than to the whole map: one pass over the map instead of two."""

    def sample_scale(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """The per-sample factor (B, 1, ..., 1), 0 or ``1 / keep_prob``, for
        a batch like ``x``; None where the path is the identity."""
        if self.drop_prob == 0. or not self.training:
            return None
        keep_prob = 1 - self.drop_prob
        shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
        mask = (keep_prob + torch.rand(shape, dtype=x.dtype,
                                       device=x.device)).floor_()
        return mask / keep_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.sample_scale(x)
        return x if scale is None else x * scale


def has_dropout(*modules: nn.Module) -> bool:
    """Whether any of ``modules`` (or their children) would draw random
    numbers in its forward: an ``nn.Dropout``-like module in training mode
    with ``p > 0``, or an attention module in training mode whose float
    ``attn_drop`` (the ``dropout_p`` it passes to
    ``F.scaled_dot_product_attention``) is above 0."""
    for module in modules:
        for m in module.modules():
            if not m.training:
                continue
            if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0.:
                return True
            p = getattr(m, 'attn_drop', None)
            if isinstance(p, float) and p > 0.:
                return True
    return False


def _branch_and_scale_grads(ctx, grad: torch.Tensor,
                            branch: Optional[torch.Tensor],
                            scale: torch.Tensor) -> tuple:
    """Gradients of ``branch`` and ``scale`` in ``branch * scale`` for the
    output gradient ``grad`` (None where ``ctx`` needs none; inputs 1 and 2
    of the residual functions)."""
    grad_branch = grad * scale if ctx.needs_input_grad[1] else None
    grad_scale = (grad * branch).sum_to_size(scale.shape) \
        if ctx.needs_input_grad[2] else None
    return grad_branch, grad_scale


class ScaledResidual(torch.autograd.Function):
    """``x + branch * scale`` (``scale`` broadcast, e.g. (B, C, 1, 1)) with
    the minimal backward: ``addcmul``'s own formula multiplies ``branch``
    by its (unit) value in one more pass over the map before forming the
    gradient of ``scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, branch: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(branch if ctx.needs_input_grad[2] else None,
                              scale)
        return torch.addcmul(x, branch, scale)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        branch, scale = ctx.saved_tensors
        return (grad, ) + _branch_and_scale_grads(ctx, grad, branch, scale)


class RowsResidual(torch.autograd.Function):
    """``x`` with ``branch * scale`` added to the samples ``rows``:
    (B, ...), (k, ...), (k, ...) broadcast to the branch, (k, ) -> (B, ...),
    in ``x``'s memory format (channels-last kept)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, branch: torch.Tensor,
                scale: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(branch if ctx.needs_input_grad[2] else None,
                              scale, rows)
        out = x.clone()
        out[rows] = torch.addcmul(x[rows], branch, scale)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        branch, scale, rows = ctx.saved_tensors
        return (grad, ) + _branch_and_scale_grads(
            ctx, grad[rows], branch, scale) + (None, )


class TakeRows(torch.autograd.Function):
    """``x[rows]`` for distinct ``rows`` (B, ...), (k, ) -> (k, ...), whose
    backward copies the gradient into zeros: autograd's own (an indexed
    accumulation, for indices that may repeat) runs on one thread and takes
    several times as long."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.batch = x.shape[0]
        return x[rows]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        rows, = ctx.saved_tensors
        out = grad.new_zeros((ctx.batch, ) + grad.shape[1:])
        return out.index_copy_(0, rows, grad), None


class SplitRows(torch.autograd.Function):
    """``(x, x[rows])``: the residual stream and the samples a branch reads
    from it (distinct ``rows``). One backward node for both, so the
    branch's gradient is added into the rows of the stream's gradient
    instead of being scattered into zeros and summed over the whole map."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rows: torch.Tensor):
        ctx.save_for_backward(rows)
        return x.view_as(x), x[rows]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Optional[torch.Tensor],
                 grad_rows: Optional[torch.Tensor]):
        rows, = ctx.saved_tensors
        if grad_rows is None:
            return grad, None
        # the incoming gradient may be shared with other nodes: a copy
        out = grad.clone()
        return out.index_add_(0, rows, grad_rows), None


def residual(x: torch.Tensor, branch: torch.Tensor,
             gamma: Optional[torch.Tensor] = None,
             drop_path: Optional[nn.Module] = None,
             branch_is_fresh: bool = False) -> torch.Tensor:
    """``x + drop_path(gamma * branch)`` (``gamma`` None: 1; ``gamma`` may
    already hold the drop path's per-sample factor; ``drop_path`` another
    module than :class:`DropPath`: applied as it is, the plain formulation).

    Stochastic depth is a per-sample scale, which commutes with the
    per-channel layer scale, so both become one factor and the sum one
    ``addcmul`` pass over the map. The random draw happens after the branch
    ran, as in the plain formulation, so dropout inside the branch sees the
    same generator state. With ``branch_is_fresh`` (the branch's output is
    a tensor of the block's own, no view of anything else) and no autograd,
    the sum is written into ``branch`` instead of a new map."""
    scale = gamma
    if isinstance(drop_path, DropPath):
        keep = drop_path.sample_scale(branch)
        if keep is not None:
            scale = keep if scale is None else scale * keep
    elif drop_path is not None and not isinstance(drop_path, nn.Identity):
        if scale is not None:
            branch = branch * scale
            scale = None
        branch = drop_path(branch)
    if torch.is_grad_enabled() or not branch_is_fresh:
        if scale is None:
            return x + branch
        if torch.jit.is_tracing() or not torch.is_grad_enabled():
            # the jit tracer records no custom functions
            return torch.addcmul(x, branch, scale)
        return ScaledResidual.apply(x, branch, scale)
    if scale is not None:
        branch = branch.mul_(scale)
    return branch.add_(x)


def add_branch(x: torch.Tensor, inp: torch.Tensor,
               branch: Callable[[torch.Tensor], torch.Tensor],
               drop_path: nn.Module, gamma: Optional[torch.Tensor] = None,
               per_sample: Union[bool, Callable[[], bool]] = True,
               branch_is_fresh: bool = False,
               branch_takes_rows: bool = False) -> torch.Tensor:
    """``x + drop_path(gamma * branch(inp))``; in CPU training the branch
    runs on the samples the drop path keeps only.

    Args:
        x: the residual stream (B, ...).
        inp: the branch's input (B, ...), e.g. ``norm(x)``.
        branch: a function of ``inp``, (B, ...) -> like ``x``.
        drop_path: :class:`DropPath` or ``nn.Identity``.
        gamma: layer scale broadcast against ``x`` (per channel), or None.
        per_sample: the branch treats samples independently and draws no
            random numbers (see :func:`has_dropout`); without it the branch
            runs on the whole batch and the draw follows it. A callable is
            asked only where the answer matters (CPU training with an
            active drop path).
        branch_is_fresh: see :func:`residual`.
        branch_takes_rows: ``branch`` is called as ``branch(inp, rows)``
            and selects the samples ``rows`` (a 1-D index tensor, or None
            for all) itself, e.g. to compute batch statistics on the whole
            ``inp`` first.

    The draw comes before the branch here, the same draw as after it when
    the branch takes nothing from the random generator. Where the kept rows
    would be data-dependent shapes (tracing, compilation), and under
    autocast (where the draw would be made in the branch's lower precision),
    the whole batch runs and the draw follows the branch. CPU only: on CUDA
    finding the kept rows synchronises with the device, and its cost
    against the saving has not been measured there yet. With no sample
    kept the branch still runs, times zero, so that every parameter gets a
    gradient (as distributed data parallel expects)."""
    if branch_takes_rows:
        run = branch
    else:
        def run(t, rows):
            return branch(t if rows is None else TakeRows.apply(t, rows))
    if not (isinstance(drop_path, DropPath)
            and drop_path.training and drop_path.drop_prob > 0.
            and cpu_fast_path(inp)
            and not torch.is_autocast_enabled('cpu')
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
            and (per_sample() if callable(per_sample) else per_sample)):
        return residual(x, run(inp, None), gamma, drop_path,
                        branch_is_fresh)
    keep = drop_path.sample_scale(inp)
    scale = keep if gamma is None else gamma * keep
    rows = keep.flatten().nonzero().flatten()
    if 0 < len(rows) < len(keep):
        if inp is x and not branch_takes_rows:
            x, sub = SplitRows.apply(x, rows)
            return RowsResidual.apply(x, branch(sub), scale[rows], rows)
        return RowsResidual.apply(x, run(inp, rows), scale[rows], rows)
    return residual(x, run(inp, None), scale,
                    branch_is_fresh=branch_is_fresh)
