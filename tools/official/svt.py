"""The official SVT (``badripatro/svt``), built from a clone for the
benchmark comparison."""
import os.path as osp
from functools import partial

import torch
import torch.nn as nn

from .loading import import_file, load_matching


class _OfficialSVTBackbone(nn.Module):
    """The official SVT up to its last stage (``forward_features`` without
    the class-attention tail), as an NCHW map like our last output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        B = x.shape[0]
        for i in range(m.num_stages):
            x, H, W = getattr(m, f'patch_embed{i + 1}')(x)
            for blk in getattr(m, f'block{i + 1}'):
                x = blk(x, H, W)
            if i != m.num_stages - 1:
                x = getattr(m, f'norm{i + 1}')(x)
            x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
        return x


def build_official_svt(repo: str, ours: nn.Module) -> nn.Module:
    """Official ``svt.py`` SVT with our backbone's settings and weights.

    The official code (it needs timm) hard-codes one scatter stage, spectral
    filters for 224 input and widths 64/96 there; anything else is refused
    here rather than failing inside it."""
    if ours.num_scatter_stages != 1 or ours.img_size != (224, 224) or \
            ours.embed_dims[0] not in (64, 96) or \
            ours.num_blocks != 4:
        raise ValueError(
            'the official SVT only exists with one scatter stage, '
            'img_size 224, a first width of 64 or 96 and num_blocks=4')
    try:
        import timm  # noqa: F401
    except ImportError as e:
        raise ImportError('the official SVT code imports timm: pip install '
                          'timm to compare with it') from e
    official = import_file(osp.join(repo, 'svt.py'), 'official_svt')
    arch = ours.arch_settings
    model = official.SVT(
        stem_hidden_dim=int(arch.get('stem_channels', 32)),
        embed_dims=list(arch['embed_dims']), depths=list(arch['depths']),
        num_heads=list(arch['num_heads']),
        mlp_ratios=list(arch['mlp_ratios']),
        norm_layer=partial(nn.LayerNorm, eps=1e-6), token_label=False,
        drop_path_rate=max((m.drop_prob for m in ours.modules()
                            if hasattr(m, 'drop_prob')), default=0.))
    load_matching(model, ours, lambda k: k.split('.')[0] in (
        f'norm{len(arch["depths"])}', 'post_network', 'head'))
    return _OfficialSVTBackbone(model)
