"""Fused CPU kernels for the linear layers and depth-wise convolutions of
the backbones' feed-forward networks.

PyTorch's CPU ``addmm`` copies the bias into the output before the GEMM,
and an activation after a linear or a convolution is one more pass over
the (largest) hidden tensor. oneDNN's ``mkldnn._linear_pointwise`` and
``mkldnn._convolution_pointwise`` (the ops inductor emits for CPU inference)
add the bias and apply GELU in the GEMM/convolution epilogue. They have no
autograd formula: :class:`OneDNNLinear` pairs the fused forward with the
usual backward for training; the fused convolution is used without grad
only. Everything else (GPU, autocast, half precision, jit tracing for FLOP
counting, torch.compile, which fuses on its own) takes the plain ops, so
the results are the same up to fp32 rounding (the tests compare).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .fast_paths import cpu_fast_path

HAS_ONEDNN = (torch.backends.mkldnn.is_available()
              and hasattr(torch.ops.mkldnn, '_linear_pointwise')
              and hasattr(torch.ops.mkldnn, '_convolution_pointwise'))


def onednn_ok(x: torch.Tensor, train: bool = False) -> bool:
    """Whether the fused ops serve ``x``: CPU fp32 outside autocast,
    tracing and compilation; without grad unless ``train``."""
    return (HAS_ONEDNN and cpu_fast_path(x)
            and x.dtype == torch.float32
            and (train or not torch.is_grad_enabled())
            and not torch.is_autocast_enabled('cpu')
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling())


class OneDNNLinear(torch.autograd.Function):
    """``F.linear`` with oneDNN's fused-bias forward and the usual backward
    (two GEMMs and a sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'none',
                                                  [], '')

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad2d = grad.reshape(-1, grad.shape[-1])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad2d @ weight).reshape(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = weight_grad(grad2d, x.reshape(-1, x.shape[-1]))
            if not grad_w.is_contiguous():
                grad_w = grad_w.contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = column_sums(grad2d)
        return grad_x, grad_w, grad_b


def weight_grad(grad2d: torch.Tensor, x2d: torch.Tensor) -> torch.Tensor:
    """``grad2d.t() @ x2d``, (n, out), (n, in) -> (out, in), a linear
    layer's weight gradient; possibly a transposed view."""
    # The same product in either orientation; for long inputs MKL is
    # markedly faster (up to 1.6x for STViT's stage-1/2 MLPs) when the
    # result has the smaller of the two dimensions as rows.
    if x2d.shape[1] < grad2d.shape[1] and x2d.shape[0] > 4096:
        return (x2d.t() @ grad2d).t()
    return grad2d.t() @ x2d


def column_sums(grad2d: torch.Tensor) -> torch.Tensor:
    """``grad2d.sum(0)`` as a matrix-vector product: MKL's GEMV reads the
    rows 1.3-1.7x faster than the reduction kernel of ``sum(0)``."""
    return grad2d.t().mv(grad2d.new_ones(grad2d.shape[0]))


def linear(x: torch.Tensor, weight: torch.Tensor,
           bias: Optional[torch.Tensor], gelu: bool = False) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` (then exact GELU with ``gelu``),
    (..., in) -> (..., out), fused where :func:`onednn_ok`."""
    if weight.dtype == torch.float32 and x.is_contiguous():
        if onednn_ok(x):
            return torch.ops.mkldnn._linear_pointwise(
                x, weight, bias, 'gelu' if gelu else 'none', [],
                'none' if gelu else '')
        if onednn_ok(x, train=True):
            out = OneDNNLinear.apply(x, weight, bias)
            return F.gelu(out) if gelu else out
    out = F.linear(x, weight, bias)
    return F.gelu(out) if gelu else out


def conv2d_gelu(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``F.gelu(conv(x))`` (exact GELU), fused without grad on CPU fp32;
    ``conv`` without padding modes other than zeros."""
    if onednn_ok(x) and conv.padding_mode == 'zeros' and \
            isinstance(conv.padding, tuple):
        return torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, list(conv.padding),
            list(conv.stride), list(conv.dilation), conv.groups, 'gelu', [],
            'none')
    return F.gelu(conv(x))
