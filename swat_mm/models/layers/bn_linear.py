"""A training-mode batch norm folded into the 1x1 convolution after it.

``conv(bn(x))`` with batch statistics is ``(W * s) x + b + W (beta - m s)``
with ``s = gamma / sqrt(var + eps)``, so the normalised map never has to be
written, read back or kept for backward: the statistics are one read of
``x``, the convolution a GEMM on ``x`` with per-channel scaled weights. The
backward needs no pass of its own over the map for the norm's reductions
either: the column sums of the normalised input's gradient follow from the
convolution's weight and bias gradients, which are computed anyway, and the
input gradient is ``g W' + a + b x`` (one ``addcmul`` pass, the GEMM
accumulating into it).

Used in CPU training (fp32, oneDNN) by the blocks whose MLP starts with a
batch norm and a 1x1 convolution (STViT). The same function as the plain
pair, with a different rounding: the un-centred ``x`` enters the GEMM, so
the rounding error grows with ``|mean| / std`` of a channel, and
:func:`batch_norm_linear` falls back to the plain pair where that ratio
exceeds :data:`MAX_MEAN_OVER_STD` (rounding within about that many times the
plain pair's). Running statistics are updated as ``bn(x)`` would.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .drop_path import TakeRows
from .onednn import column_sums, onednn_ok, weight_grad

__all__ = ['batch_norm_linear_ok', 'batch_norm_stats', 'batch_norm_linear',
           'MAX_MEAN_OVER_STD', 'MIN_MAP_OVER_WEIGHT']

#: largest ``|mean| / std`` of an input channel for which the fold is used
MAX_MEAN_OVER_STD = 8.

#: smallest input map size, in multiples of the convolution's weight size,
#: for which the fold is used. It saves passes over the map and adds a few
#: over the weight (scaling it, and the per-channel sums of the backward):
#: a gain on high-resolution maps (STViT stages 1-2 at 224), none measured
#: where map and weight are of a size (stage 3, 14x14).
MIN_MAP_OVER_WEIGHT = 8


def batch_norm_linear_ok(x: torch.Tensor, bn: nn.Module,
                         conv: nn.Conv2d) -> bool:
    """Whether :func:`batch_norm_linear` folds ``bn`` into ``conv`` for
    ``x``: a plain affine ``nn.BatchNorm2d`` in training mode (not SyncBN:
    its statistics span processes), a 1x1 convolution (stride 1, no groups,
    no padding) whose weight is small against the map (see
    :data:`MIN_MAP_OVER_WEIGHT`), and a channels-last fp32 map on the CPU
    with grad (see :func:`~swat_mm.models.layers.onednn.onednn_ok`)."""
    return (type(bn) is nn.BatchNorm2d and bn.training and bn.affine
            and isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1)
            and conv.groups == 1 and conv.stride == (1, 1)
            and conv.padding == (0, 0)
            and torch.is_grad_enabled() and onednn_ok(x, train=True)
            and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and x.numel() >= MIN_MAP_OVER_WEIGHT * conv.weight.numel())


def batch_norm_stats(x: torch.Tensor, bn: nn.BatchNorm2d
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The batch mean and ``1 / sqrt(var + eps)`` of ``x`` (B, C, H, W)
    per channel, as a training-mode ``bn(x)`` computes them, with ``bn``'s
    running statistics (and ``num_batches_tracked``) updated the same way."""
    factor = 0. if bn.momentum is None else bn.momentum
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            factor = 1. / float(bn.num_batches_tracked)
    with torch.no_grad():
        mean, var = torch.batch_norm_update_stats(
            x, bn.running_mean if bn.track_running_stats else None,
            bn.running_var if bn.track_running_stats else None, factor)
        return mean, (var + bn.eps).rsqrt_()


class _BatchNormLinear(torch.autograd.Function):
    """(B, C, H, W) channels-last, batch statistics -> (k, H, W, O): the
    1x1 convolution of the normalised samples ``rows`` (None: all)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                weight: torch.Tensor, bias: Optional[torch.Tensor],
                mean: torch.Tensor, invstd: torch.Tensor,
                rows: Optional[torch.Tensor]) -> torch.Tensor:
        rows_x = x.permute(0, 2, 3, 1)
        if rows is not None:
            rows_x = rows_x[rows]
        scale = gamma * invstd
        shift = torch.addcmul(beta, mean, scale, value=-1)
        folded_w = weight * scale
        folded_b = weight.mv(shift) if bias is None else \
            torch.addmv(bias, weight, shift)
        ctx.save_for_backward(x, rows_x, weight, folded_w, scale, mean,
                              invstd, shift, rows)
        ctx.has_bias = bias is not None
        if onednn_ok(rows_x, train=True):
            return torch.ops.mkldnn._linear_pointwise(
                rows_x.contiguous(), folded_w, folded_b, 'none', [], '')
        return F.linear(rows_x, folded_w, folded_b)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (x, rows_x, weight, folded_w, scale, mean, invstd, shift,
         rows) = ctx.saved_tensors
        B, C, H, W = x.shape
        g = grad.reshape(-1, grad.shape[-1])
        xk = rows_x.reshape(-1, C)
        # column sums and g^T x, the plain convolution's bias and weight
        # gradients with x in place of the normalised input
        grad_b = column_sums(g)
        gx = weight_grad(g, xk)
        # sum over pixels of the normalised input's gradient (= beta's) and
        # of that times the normalised input (= gamma's)
        grad_beta = weight.t().mv(grad_b)
        grad_gamma = torch.linalg.vecdot(weight, gx, dim=0).sub_(
            grad_beta * mean).mul_(invstd)
        # weight: g^T y with y = x * scale + shift. In place where possible:
        # fresh weight-sized tensors cost page faults in a training step
        if gx.is_contiguous():
            grad_w = gx.mul_(scale)
        else:
            grad_w = torch.mul(gx, scale, out=torch.empty_like(weight))
        grad_w.addr_(grad_b, shift)
        # input: scale * (g_y - mean(g_y) - xhat * mean(g_y * xhat)), with
        # scale * g_y = g W' and the rest per channel: a + b * x
        n = B * H * W
        b = grad_gamma * scale * invstd / -n
        a = torch.addcmul(grad_beta * scale / -n, b, mean, value=-1)
        grad_x = torch.addcmul(a, x.permute(0, 2, 3, 1).reshape(n, C), b)
        if rows is None:
            grad_x.addmm_(g, folded_w)
        else:
            grad_x.view(B, -1).index_add_(
                0, rows, (g @ folded_w).view(len(rows), -1))
        grad_x = grad_x.view(B, H, W, C).permute(0, 3, 1, 2)
        return (grad_x, grad_gamma, grad_beta, grad_w,
                grad_b if ctx.has_bias else None, None, None, None)


def batch_norm_linear(x: torch.Tensor, bn: nn.BatchNorm2d, conv: nn.Conv2d,
                      stats: Tuple[torch.Tensor, torch.Tensor],
                      rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``conv(bn(x)[rows])`` for a training-mode ``bn`` whose statistics
    ``stats`` (:func:`batch_norm_stats`) were taken on all of ``x``:
    (B, C, H, W) -> (k, O, H, W) channels-last, k = ``len(rows)`` or B.
    Folded where :func:`batch_norm_linear_ok` and every channel's
    ``|mean| / std`` is at most :data:`MAX_MEAN_OVER_STD`."""
    mean, invstd = stats
    if (mean.abs() * invstd).max() > MAX_MEAN_OVER_STD:
        y = F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0., bn.eps)
        return conv(y if rows is None else TakeRows.apply(y, rows))
    out = _BatchNormLinear.apply(x, bn.weight, bn.bias, conv.weight.flatten(1),
                                 conv.bias, mean, invstd, rows)
    return out.permute(0, 3, 1, 2)
