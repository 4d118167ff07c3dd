from typing import Tuple

import torch
import torch.nn as nn

from swat_mm.registry import MODELS


@MODELS.register_module()
class STViTClsNeck(nn.Module):
    """STViT's classifier tail before the linear head: 1x1 conv projection,
    BatchNorm, Swish, global average pooling.

    Keys ``proj.*`` and ``norm.*`` are the official ones under ``neck.``.
    The official memory-efficient Swish is ``nn.SiLU`` here: the same
    function and gradient.

    Args:
        in_channels: channels of the last backbone stage.
        out_channels: projection width (1024 in every official model).
    """

    def __init__(self, in_channels: int = 512, out_channels: int = 1024) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.SiLU()

    def init_weights(self) -> None:
        """PyTorch's default init, as the official model."""

    def forward(self, inputs: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor]:
        """Last of ``inputs`` (B, C, H, W) -> ((B, out_channels),)."""
        x = self.act(self.norm(self.proj(inputs[-1])))
        return (x.mean(dim=(2, 3)), )
