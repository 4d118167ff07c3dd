"""STViT: Vision Transformer with Super Token Sampling (Huang et al., CVPR 2023).

Paper: https://arxiv.org/abs/2211.11167. Official code: ``hhb072/STViT`` at
c9ed9a4 (``models/stvit.py``), classification only.

A stem of four 3x3 convolutions, then four stages of super-token attention
blocks with a strided 3x3 convolution between stages. A block is

    x = x + dwconv3x3(x)                                # position encoding
    x = x + drop_path(gamma_1 * STA(LayerNorm(x)))      # super-token attention
    x = x + drop_path(gamma_2 * ConvMlp(BatchNorm(x)))

where STA samples super tokens (each pixel softly assigned to the nine super
tokens around its grid cell), lets them attend to each other, and maps them
back to pixels with the same assignment
(:class:`~swat_mm.models.layers.StokenAttention`, a layer of its own, whose
association maps forward hooks can see). The official state-dict names are
kept (``patch_embed.proj.N``, ``layers.i.blocks.j.*``,
``layers.i.downsample.proj.N``); the classifier tail lives in
:class:`~swat_mm.models.necks.STViTClsNeck` and mmpretrain's
``LinearClsHead`` (``tools/model_converters/stvit_to_mmpretrain.py``).

Deviations from the official code (none changes an output beyond float
rounding; tests/test_stvit.py compares):

* any input size, and the stage maps as NCHW outputs (``out_indices``,
  taken before each stage's down-sampling);
* the 3x3 super-token neighbourhoods are gathered and scattered without
  the official frozen identity-kernel convolutions
  (:mod:`swat_mm.models.layers.neighbours`); their ``attn.unfold.weights``
  / ``attn.fold.weights`` are dropped from official checkpoints after a
  check that they are the identity;
* attention through ``F.scaled_dot_product_attention``; the affinities are
  kept as (B, cells, 9, pixels), the transpose of the official layout, so
  the softmax over the nine super tokens is vectorised over the pixels;
* channels-last maps inside, 1x1 convolutions as GEMMs over the
  (B, H, W, C) view (:class:`~swat_mm.models.layers.PointwiseConv`),
  ``x + dwconv(x)`` as one convolution
  (:class:`~swat_mm.models.layers.ResDWConv`);
* in inference, a conv-MLP whose hidden map is larger than
  ``mlp_band_bytes`` runs in bands of rows (:class:`ConvMlp`), so the 4x
  wider hidden map never exists whole at dense-prediction resolutions.

Speed and memory against the official code: docs/benchmarks.md.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from swat_mm.registry import MODELS
from ..layers import LayerNorm2d, ResDWConv
from ..layers.drop_path import DropPath
from ..layers.pointwise import PointwiseConv
from ..layers.stoken_attention import StokenAttention
from .base import (IntPair, StagedBackboneMixin, check_heads, check_input,
                   check_stage_lengths, freeze, init_official, parse_arch,
                   per_stage)
from .base import pair as _pair


def _scaled(gamma: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``gamma * x`` for a layer scale, or ``x`` where the block has none."""
    return x if gamma is None else gamma * x


class ConvMlp(nn.Module):
    """1x1 conv, GELU, residual 3x3 depth-wise conv, 1x1 conv on NCHW maps.

    In inference (eval mode, no autograd) a map whose hidden layer would
    take more than ``band_bytes`` runs in bands of rows, each with the row
    above and below that the 3x3 conv needs (recomputed): every other step
    is per pixel, and only the first and last band see the zero padding,
    so the output is the whole map's.

    Args:
        in_channels: C.
        hidden_channels: width after ``fc1``.
        drop: dropout after the activation and after ``fc2``.
        band_bytes: bytes of hidden map per band in inference; None: never
            banded.
    """

    def __init__(self, in_channels: int, hidden_channels: int,
                 drop: float = 0., band_bytes: Optional[int] = None) -> None:
        super().__init__()
        self.fc1 = PointwiseConv(in_channels, hidden_channels)
        self.act1 = nn.GELU()
        self.conv = ResDWConv(hidden_channels, 3)
        self.fc2 = PointwiseConv(hidden_channels, in_channels)
        self.drop = nn.Dropout(drop)
        self.band_bytes = band_bytes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        rows = self._band_rows(x)
        if rows:
            return self._forward_bands(x, rows)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act1(self.fc1(x)))
        return self.drop(self.fc2(self.conv(x)))

    def _band_rows(self, x: torch.Tensor) -> int:
        """Rows per band, or 0 for the whole map at once."""
        if self.band_bytes is None or self.training or \
                torch.is_grad_enabled():
            return 0
        B, _, H, W = x.shape
        per_row = B * W * self.fc1.out_channels * x.element_size()
        # at least 16 rows: the two halo rows per band are recomputed
        rows = max(16, self.band_bytes // max(per_row, 1))
        return rows if rows < H else 0

    def _forward_bands(self, x: torch.Tensor, rows: int) -> torch.Tensor:
        B, C, H, W = x.shape
        out = x.new_empty(B, self.fc2.out_channels, H, W).contiguous(
            memory_format=torch.channels_last)
        for top in range(0, H, rows):
            bottom = min(H, top + rows)
            lo, hi = max(0, top - 1), min(H, bottom + 1)
            band = x[:, :, lo:hi].contiguous(
                memory_format=torch.channels_last)
            out[:, :, top:bottom] = self._forward(band)[
                :, :, top - lo:bottom - lo]
        return out


class StokenAttentionLayer(nn.Module):
    """One STViT block: conditional position encoding (residual 3x3
    depth-wise conv), LayerNorm + super-token attention, BatchNorm +
    conv-MLP, each with a residual and an optional layer scale.

    Args:
        dim: C.
        stoken_size, n_iter, num_heads, qkv_bias, qk_scale, attn_drop: of
            :class:`StokenAttention`.
        mlp_ratio: MLP hidden width over C.
        drop: dropout after the projections.
        drop_path: stochastic depth rate.
        layer_scale: learn per-channel scales ``gamma_1``/``gamma_2``.
        layer_scale_init_value: their initial value.
        norm_cfg: the batch norm before the MLP (BN, or SyncBN for
            distributed dense prediction).
        mlp_band_bytes: see :class:`ConvMlp`.
    """

    def __init__(self, dim: int, stoken_size: IntPair, n_iter: int = 1,
                 num_heads: int = 1, mlp_ratio: float = 4.,
                 qkv_bias: bool = False, qk_scale: Optional[float] = None,
                 drop: float = 0., attn_drop: float = 0.,
                 drop_path: float = 0., layer_scale: bool = False,
                 layer_scale_init_value: float = 1e-5,
                 norm_cfg: Optional[dict] = None,
                 mlp_band_bytes: Optional[int] = None) -> None:
        super().__init__()
        self.pos_embed = ResDWConv(dim, 3)
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.attn = StokenAttention(
            dim, stoken_size=stoken_size, n_iter=n_iter, num_heads=num_heads,
            qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
            proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0. \
            else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg or dict(type='BN'), dim)[1]
        self.mlp2 = ConvMlp(dim, int(dim * mlp_ratio), drop=drop,
                            band_bytes=mlp_band_bytes)
        self.layer_scale = layer_scale
        self.gamma_1 = self.gamma_2 = None
        if layer_scale:
            self.gamma_1 = nn.Parameter(
                torch.full((1, dim, 1, 1), float(layer_scale_init_value)))
            self.gamma_2 = nn.Parameter(
                torch.full((1, dim, 1, 1), float(layer_scale_init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        x = self.pos_embed(x)
        x = x + self.drop_path(_scaled(self.gamma_1, self.attn(self.norm1(x))))
        x = x + self.drop_path(_scaled(self.gamma_2, self.mlp2(self.norm2(x))))
        return x


class PatchEmbed(nn.Module):
    """Stem: four 3x3 convs (strides 2, 1, 2, 1), each followed by GELU and
    BatchNorm; (B, in, H, W) -> (B, out, ceil(H/4), ceil(W/4))."""

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')
        mid = out_channels // 2
        layers: List[nn.Module] = []
        for cin, cout, stride in ((in_channels, mid, 2), (mid, mid, 1),
                                  (mid, out_channels, 2),
                                  (out_channels, out_channels, 1)):
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.GELU(),
                       build_norm_layer(norm_cfg, cout)[1]]
        self.proj = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class PatchMerging(nn.Module):
    """Down-sampling between stages: 3x3 stride-2 conv + BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 2, 1),
            build_norm_layer(norm_cfg or dict(type='BN'), out_channels)[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class BasicLayer(nn.Module):
    """A stage: ``blocks`` and the ``downsample`` to the next stage (None for
    the last), as in the official module tree."""

    def __init__(self, blocks: Sequence[nn.Module],
                 downsample: Optional[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


@MODELS.register_module()
class STViT(StagedBackboneMixin, BaseModule):
    """STViT backbone.

    Args:
        arch: ``'small'``, ``'base'``, ``'large'`` (or ``'s'``, ``'b'``,
            ``'l'``), or a dict with ``embed_dims``, ``depths``, ``num_heads``
            (one entry per stage) and optionally ``layer_scale`` (per-stage
            bools) and ``layer_scale_init_value``.
        in_channels: input channels.
        stoken_size: super-token size per stage, an int or (h, w) each. The
            official ImageNet models use (8, 4, 1, 1) at 224 and 384; the
            weights do not depend on it.
        n_iter: super-token sampling rounds per stage.
        mlp_ratio: MLP hidden width over the embedding width.
        qkv_bias: bias in the attention's qkv projection.
        qk_scale: overrides ``head_dim ** -0.5``.
        drop_rate: dropout after projections, in [0, 1).
        attn_drop_rate: dropout on the attention weights, in [0, 1).
        drop_path_rate: stochastic depth, linear over all blocks from 0 to
            this rate, in [0, 1).
        norm_cfg: every batch norm of the backbone (stem, blocks,
            down-sampling): ``dict(type='BN')`` as officially, or
            ``dict(type='SyncBN')`` for distributed dense prediction; the
            state-dict keys are the same.
        out_indices: stages whose maps (taken before the stage's
            down-sampling) are returned, negative indices allowed; unique
            and increasing once normalised (``(3, 0)`` or ``(3, 3)`` are
            refused).
        frozen_stages: freeze the stem (0) and stages ``< frozen_stages``
            with their down-sampling; -1 freezes nothing.
        norm_eval: keep BatchNorm layers in eval mode while training.
        with_cp: gradient checkpointing per block.
        mlp_band_bytes: in inference, conv-MLPs whose hidden map would
            exceed this many bytes run in bands of rows (same outputs, a
            fraction of the memory at dense-prediction sizes, see
            :class:`ConvMlp`); None: never.
        init_cfg: mmengine init config, e.g.
            ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.

    Returns from ``forward``: a tuple of (B, C_i, H_i, W_i) maps, one per
    ``out_indices`` in their (increasing) order, at strides 4, 8, 16, 32
    (``H_i = ceil(H / 2**(i + 2))``; any input size).

    Raises:
        ValueError: a bad arch, per-stage list, ``out_indices``,
            ``frozen_stages`` or drop rate, naming the fix.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['s', 'small'], {
            'embed_dims': [64, 128, 320, 512],
            'depths': [3, 5, 9, 3],
            'num_heads': [1, 2, 5, 8],
            'layer_scale': [False, False, False, False],
            'layer_scale_init_value': 1e-5,
        }),
        **dict.fromkeys(['b', 'base'], {
            'embed_dims': [96, 192, 384, 512],
            'depths': [4, 6, 14, 6],
            'num_heads': [2, 3, 6, 8],
            'layer_scale': [False, False, True, True],
            'layer_scale_init_value': 1e-6,
        }),
        **dict.fromkeys(['l', 'large'], {
            'embed_dims': [96, 192, 448, 640],
            'depths': [4, 7, 19, 8],
            'num_heads': [2, 3, 7, 10],
            'layer_scale': [False, False, True, True],
            'layer_scale_init_value': 1e-6,
        }),
    }
    _required_keys = {'embed_dims', 'depths', 'num_heads'}
    _optional_keys = {'layer_scale', 'layer_scale_init_value'}

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 in_channels: int = 3,
                 stoken_size: Sequence[IntPair] = (8, 4, 1, 1),
                 n_iter: Union[int, Sequence[int]] = 1,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 norm_cfg: dict = dict(type='BN'),
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 mlp_band_bytes: Optional[int] = 16 << 20,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        embed_dims = self.arch_settings['embed_dims']
        depths = self.arch_settings['depths']
        num_heads = self.arch_settings['num_heads']
        num_stages = len(depths)
        layer_scale = self.arch_settings.get('layer_scale',
                                             [False] * num_stages)
        ls_init = self.arch_settings.get('layer_scale_init_value', 1e-5)

        stoken_size = per_stage(stoken_size, num_stages, 'stoken_size')
        n_iter = per_stage(n_iter, num_stages, 'n_iter')
        self.stoken_size = [_pair(s) for s in stoken_size]
        self.n_iter = list(n_iter)
        if mlp_band_bytes is not None and mlp_band_bytes < 1:
            raise ValueError(f'STViT: mlp_band_bytes must be a positive '
                             f'number of bytes or None (never banded), got '
                             f'{mlp_band_bytes}')

        self._set_stage_options(
            out_indices, frozen_stages, norm_eval, with_cp, num_stages,
            rates=dict(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                       drop_path_rate=drop_path_rate))
        self.in_channels = in_channels
        self.num_stages = num_stages
        self.embed_dims = embed_dims

        self.patch_embed = PatchEmbed(in_channels, embed_dims[0], norm_cfg)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i in range(num_stages):
            first = sum(depths[:i])
            blocks = [
                StokenAttentionLayer(
                    embed_dims[i], stoken_size=self.stoken_size[i],
                    n_iter=self.n_iter[i], num_heads=num_heads[i],
                    mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                    qk_scale=qk_scale, drop=drop_rate,
                    attn_drop=attn_drop_rate, drop_path=dpr[first + j],
                    layer_scale=layer_scale[i],
                    layer_scale_init_value=ls_init, norm_cfg=norm_cfg,
                    mlp_band_bytes=mlp_band_bytes)
                for j in range(depths[i])
            ]
            downsample = PatchMerging(embed_dims[i], embed_dims[i + 1],
                                      norm_cfg) \
                if i < num_stages - 1 else None
            self.layers.append(BasicLayer(blocks, downsample))
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        settings = parse_arch('STViT', arch, cls.arch_zoo, cls._required_keys,
                              cls._optional_keys)
        if isinstance(arch, str):
            return settings
        check_stage_lengths('STViT', arch, cls._required_keys
                            | ({'layer_scale'} & set(arch)))
        check_heads('STViT', arch['embed_dims'], arch['num_heads'])
        return settings

    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
        frozen += list(self.layers[:max(self.frozen_stages, 0)])
        freeze(frozen)

    def _layer_depth_groups(self) -> List[Tuple[str, ...]]:
        """The stem, every block (a stage's last with the down-sampling
        after it), and no final norm (the classifier's is in its neck)."""
        groups: List[Tuple[str, ...]] = [('patch_embed', )]
        for i, layer in enumerate(self.layers):
            for j in range(len(layer.blocks)):
                groups.append((f'layers.{i}.blocks.{j}', ))
            groups[-1] += (f'layers.{i}.downsample', )
        return groups + [()]

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is not None:
            return
        # The official init: LayerNorm to (1, 0), convs and BatchNorm keep
        # PyTorch's defaults.
        init_official(self)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, in_channels, H, W) -> tuple of (B, C_i, H_i, W_i)."""
        check_input(x, self.in_channels, 'STViT')
        # Channels-last throughout: LayerNorm over C and the 1x1 convs work
        # on the contiguous (B, H, W, C) view.
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.pos_drop(self.patch_embed(x))
        last = max(self.out_indices)
        outs = []
        for i, layer in enumerate(self.layers[:last + 1]):
            for blk in layer.blocks:
                x = self._run_block(blk, x)
            if i in self.out_indices:
                outs.append(x.contiguous())  # the usual NCHW for necks
            if i < last:
                x = layer.downsample(x)
        return tuple(outs)
