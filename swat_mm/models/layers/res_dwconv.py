import torch
import torch.nn as nn
import torch.nn.functional as F


class ResDWConv(nn.Module):
    """Residual depth-wise convolution ``x + dwconv(x)``.

    Used as the conditional position encoding and inside the conv-MLP of
    STViT. The convolution is a child called ``conv`` (official key names).

    The sum is computed as one depth-wise convolution whose kernel has 1
    added at its centre: one pass over the map instead of two, with the same
    parameters and gradients (the identity kernel is a constant buffer, not
    in the state dict). The result equals ``x + self.conv(x)`` up to float
    rounding.

    Args:
        channels: C, kept.
        kernel_size: odd size of the depth-wise kernel.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}')
        self.conv = nn.Conv2d(channels, channels, kernel_size, 1,
                              kernel_size // 2, groups=channels)
        eye = torch.zeros(1, 1, kernel_size, kernel_size)
        eye[..., kernel_size // 2, kernel_size // 2] = 1.
        self.register_buffer('eye', eye, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), in ``x``'s memory format."""
        conv = self.conv
        return F.conv2d(x, conv.weight + self.eye.to(conv.weight.dtype),
                        conv.bias, 1, conv.padding, 1, conv.groups)
