import torch
import torch.nn as nn


class ResDWConv(nn.Module):
    """Residual depth-wise convolution ``x + dwconv(x)``.

    Used as the conditional position encoding and inside the conv-MLP of
    STViT. The convolution is a child called ``conv`` (official key names).

    Args:
        channels: C, kept.
        kernel_size: odd size of the depth-wise kernel.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, 1,
                              kernel_size // 2, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return x + self.conv(x)
