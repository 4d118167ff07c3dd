"""Stochastic depth for the residual branches of every family."""
from typing import Optional

import torch
from mmcv.cnn.bricks import DropPath as _MMCVDropPath

__all__ = ['DropPath']


class DropPath(_MMCVDropPath):
    """mmcv's ``DropPath`` (the same random draws: one uniform per sample,
    ``floor(keep_prob + u)``; the same ``drop_prob``, no state) with the
    ``1 / keep_prob`` scale applied to the (B, 1, ..., 1) mask rather than
    to the whole map: one pass over the map instead of two."""

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
