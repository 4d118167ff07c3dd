"""1x1 convolutions of channels-last maps as GEMMs.

A channels-last (B, C, H, W) map is a contiguous (B, H, W, C) tensor, so a
1x1 convolution is one GEMM over its rows, with no copy in or out; the
result is channels-last again. Same parameters and state-dict keys as
``nn.Conv2d(in, out, 1)``, the same function on every device.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['PointwiseConv', 'nhwc', 'nchw']


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W, C) view; free for a channels-last map."""
    return x.permute(0, 2, 3, 1)


def nchw(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, C, H, W) view, channels-last in memory."""
    return x.permute(0, 3, 1, 2)


class PointwiseConv(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1)`` computed as one GEMM over
    the channels of the (B, H, W, C) view."""

    def __init__(self, in_channels: int, out_channels: int,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W), channels-last."""
        return nchw(F.linear(nhwc(x), self.weight.flatten(1), self.bias))
