"""Shape helpers of ``swat_mm.models.layers.shape``."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from swat_mm.models.layers import ceil_to


def test_ceil_to():
    assert [ceil_to(n, 4) for n in (0, 1, 3, 4, 5, 8, 9)] == \
        [0, 4, 4, 4, 8, 8, 12]


class _PadToGroups(nn.Module):
    """Pads the last axis to a multiple of 4 and sums groups of 4."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1]
        x = F.pad(x, (0, ceil_to(w, 4) - w))
        return x.reshape(x.shape[0], -1, 4).sum(-1)


def test_torch_export_follows_a_padding_to_a_multiple():
    """With a symbolic width, the padded width is known to be a multiple of
    4, so the reshape exports without a guard on the width (from 5 on:
    torch.export specialises a dimension of one group)."""
    model = _PadToGroups()
    program = torch.export.export(
        model, (torch.randn(2, 7), ),
        dynamic_shapes=({1: torch.export.Dim('w', min=5, max=64)}, ))
    for width in (5, 7, 8, 33, 64):
        x = torch.randn(2, width)
        assert torch.equal(program.module()(x), model(x))
