"""Fused CPU inference kernels for the linear layers and depth-wise
convolutions of SVT's and SWAT's feed-forward networks.

PyTorch's CPU ``addmm`` copies the bias into the output before the GEMM,
and an activation after a linear or a convolution is one more pass over
the (largest) hidden tensor. oneDNN's ``mkldnn._linear_pointwise`` and
``mkldnn._convolution_pointwise`` (the ops inductor emits for CPU inference)
add the bias and apply GELU in the GEMM/convolution epilogue. They serve
CPU fp32 inference only; everywhere else the plain ops run, with the same
results up to fp32 rounding (the tests compare). A CPU-only path: its gain
for SVT and SWAT is still to be measured against the 10 % bar that removed
it from STViT (docs/benchmarks.md), and its tracing check to go with it.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import use_fast_layers

HAS_ONEDNN = (torch.backends.mkldnn.is_available()
              and hasattr(torch.ops.mkldnn, '_linear_pointwise')
              and hasattr(torch.ops.mkldnn, '_convolution_pointwise'))


def onednn_ok(x: torch.Tensor) -> bool:
    """Whether the fused ops serve ``x``: CPU fp32 inference (no autograd)
    outside autocast, tracing and compilation, with the fast layers on."""
    return (HAS_ONEDNN and use_fast_layers() and x.device.type == 'cpu'
            and x.dtype == torch.float32
            and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled('cpu')
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling())


def linear(x: torch.Tensor, weight: torch.Tensor,
           bias: Optional[torch.Tensor], gelu: bool = False) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` (then exact GELU with ``gelu``),
    (..., in) -> (..., out), fused where :func:`onednn_ok`."""
    if weight.dtype == torch.float32 and x.is_contiguous():
        if onednn_ok(x):
            return torch.ops.mkldnn._linear_pointwise(
                x, weight, bias, 'gelu' if gelu else 'none', [],
                'none' if gelu else '')
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
