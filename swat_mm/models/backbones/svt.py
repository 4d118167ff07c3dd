"""SVT: Scattering Vision Transformer (Patro & Agneeswaran, NeurIPS 2023).

Paper: https://arxiv.org/abs/2311.01310. Official code: ``badripatro/svt``
(``svt.py``), classification only.

The backbone keeps the official state-dict names (``patch_embed{i}.*``,
``block{i}.{j}.*``, ``norm{i}.*`` with 1-based stage numbers, the DTCWT filter
buffers ``*.attn.xfm.h0o`` ... included), so official weights load with the
``backbone.`` prefix; the classification tail (class-attention block
``post_network``, final norm, ``head``, token-labelling ``aux_head``) lives in
:class:`~swat_mm.models.heads.SVTClsHead`.
``tools/model_converters/svt_to_mmpretrain.py`` maps the names.

Structure: a convolutional stem (7x7 stride-2 conv, two 3x3 convs, each with
BatchNorm and ReLU, then a 3x3 stride-2 projection and LayerNorm), then per
stage blocks of ``x + mix(LN(x))``, ``x + FFN(LN(x))`` (FFN: linear,
depth-wise 3x3, GELU, linear). The first ``num_scatter_stages`` stages mix
with :class:`~swat_mm.models.layers.SpectralChannelMixing` (DTCWT), the others
with plain multi-head self-attention; between stages a 3x3 stride-2 conv and
LayerNorm. The released code has one scatter stage (the default here); the
paper's figures draw two.

Deviations from the official code:

* Any input size works: the learned low-pass filters are resized bilinearly
  to the actual feature map, and odd sizes are extended by the DTCWT and
  cropped back (see :mod:`swat_mm.models.layers.spectral`). At the training
  size (``img_size``, 224 for the official models) the outputs are the
  official ones. The official code allocates the filters with sizes keyed by
  the width (64/96 -> 56x56, 128/192 -> 28x28) and fails at any other input;
  here the size follows ``img_size`` and the stage's stride for any width.
* Attention runs through ``F.scaled_dot_product_attention`` (same function).
* Fast layers (the default; ``fast_layers(False)`` builds the reference
  ones, :mod:`swat_mm.models.layers.config`; same outputs up to fp32
  rounding, tested): the DTCWT and its inverse as matrix products on
  channels-last maps and the complex block-diagonal maps as dense GEMMs
  (:mod:`swat_mm.models.layers.spectral`, compilable with
  ``torch.compile``).
* Dense prediction: ``out_indices`` returns the stage maps as NCHW. Stages
  before the last are returned after their LayerNorm ``norm{i}`` (the
  official model feeds exactly that into the next stage); the last stage is
  returned as its blocks leave it (what the classification head needs), or
  through ``norm{num_stages}`` with ``final_norm=True`` (the official final
  norm, which the classifier applies after the class-attention block; it is
  per token, so it normalises the last map the same way).

Token labelling's MixToken (training of the token-labelling models) mixes
the stem's tokens: ``forward(x, mix_box=...)`` replaces those inside the
box by the reversed batch's, as the official model does with
``token_label=True``; see :mod:`swat_mm.models.layers.mix_token` and
:class:`~swat_mm.models.heads.svt_head.SVTTokenLabelClassifier`.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from swat_mm.registry import MODELS
from ..layers.drop_path import DropPath
from ..layers.mix_token import MixBox, mix_tokens
from ..layers.spectral import SpectralChannelMixing
from .base import (IntPair, StagedBackboneMixin, check_heads, check_input,
                   check_stage_lengths, freeze, init_official, parse_arch)
from .base import pair as _pair


def _conv_out(size: int) -> int:
    """Output size of the stride-2 convs of SVT (k7 p3 or k3 p1)."""
    return (size + 1) // 2


def _he_normal_fan_out(m: nn.Conv2d) -> None:
    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
    nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))


class DWConv(nn.Module):
    """Depth-wise 3x3 conv on tokens followed by the FFN's GELU; keys
    ``dwconv.*`` as officially."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """(B, H*W, C) -> GELU(dwconv(x)), (B, H*W, C)."""
        B, N, C = x.shape
        # the tokens as a channels-last (B, C, H, W) view; the conv's
        # output is channels-last too, so the way back is a view as well
        x = F.gelu(self.dwconv(x.transpose(1, 2).reshape(B, C, H, W)))
        return x.flatten(2).transpose(1, 2)


class FFN(nn.Module):
    """Linear, depth-wise 3x3 conv, GELU, linear (PVTv2's FFN)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = DWConv(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """(B, H*W, C) -> (B, H*W, C)."""
        return self.fc2(self.dwconv(self.fc1(x), H, W))


class Attention(nn.Module):
    """Multi-head self-attention over all tokens (separate ``q`` and ``kv``
    linears, no spatial reduction), as the official SVT's."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads '
                             f'{num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        B, N, C = x.shape
        heads = self.num_heads
        q = self.q(x)
        q = q.reshape(B, N, heads, C // heads).transpose(1, 2)
        kv = self.kv(x)
        kv = kv.reshape(B, N, 2, heads, C // heads)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, N, d) each
        x = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class ScatterMixing(SpectralChannelMixing):
    """:class:`SpectralChannelMixing` on tokens: (B, H*W, C) in and out."""

    def forward(self, x: torch.Tensor, H: int,  # type: ignore[override]
                W: int) -> torch.Tensor:
        return super().forward(x, (H, W))


class Block(nn.Module):
    """``x + mix(norm1(x))``, ``x + mlp(norm2(x))`` on (B, H*W, C) tokens,
    ``mix`` being :class:`ScatterMixing` or :class:`Attention` (``attn``)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float,
                 scatter: bool, filter_size: Tuple[int, int],
                 num_blocks: int = 4, drop_path: float = 0.) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn: nn.Module = ScatterMixing(
            dim, filter_size, num_blocks) if scatter \
            else Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FFN(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0. \
            else nn.Identity()

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), H, W))
        return x + self.drop_path(self.mlp(self.norm2(x), H, W))


class Stem(nn.Module):
    """(B, in, H, W) -> tokens (B, H/4 * W/4, C) and the map size.

    7x7 stride-2 conv, two 3x3 convs (each conv without bias, followed by
    BatchNorm and ReLU), 3x3 stride-2 projection, LayerNorm (eps 1e-5, as
    officially)."""

    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, norm_cfg: dict) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        for cin, k, s in ((in_channels, 7, 2), (hidden_channels, 3, 1),
                          (hidden_channels, 3, 1)):
            layers += [nn.Conv2d(cin, hidden_channels, k, s, k // 2,
                                 bias=False),
                       build_norm_layer(norm_cfg, hidden_channels)[1],
                       nn.ReLU(inplace=True)]
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Conv2d(hidden_channels, out_channels, 3, 2, 1)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, int, int]:
        x = self.proj(self.conv(x))
        H, W = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class DownSamples(nn.Module):
    """(B, C, H, W) -> tokens at half the size: 3x3 stride-2 conv,
    LayerNorm (eps 1e-5, as officially)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        H, W = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


@MODELS.register_module()
class SVT(StagedBackboneMixin, BaseModule):
    """SVT backbone.

    Args:
        arch: ``'h-small'``, ``'h-base'``, ``'h-large'`` (also ``'s'``,
            ``'b'``, ``'l'``, ``'small'``, ``'base'``, ``'large'``), or a dict
            with ``embed_dims``, ``depths``, ``num_heads``, ``mlp_ratios``
            (one entry per stage) and optionally ``stem_channels`` (the stem's
            hidden width, default 32).
        in_channels: input channels.
        img_size: the training input size, int or (H, W). It fixes the size
            of the learned low-pass filters of the scatter stages (the
            stage's feature size at this input, rounded up to even: 56 x 56
            for stage 1 at 224); any other input size is served by resizing
            them (see :mod:`swat_mm.models.layers.spectral`). Official
            weights: 224.
        num_scatter_stages: leading stages with DTCWT spectral mixing (the
            rest use attention). 1 in the released code, 2 in the paper's
            figures.
        num_blocks: diagonal blocks of the complex high-pass maps.
        drop_path_rate: stochastic depth, linear over all blocks from 0 to
            this rate, in [0, 1) (official recipes: 0.1 for
            h-small/h-base, 0.3 for h-large).
        norm_cfg: the stem's batch norms (``dict(type='SyncBN')`` for
            distributed dense prediction; same state-dict keys).
        out_indices: stages whose NCHW maps are returned, negative indices
            allowed; unique and increasing once normalised (``(3, 0)`` or
            ``(3, 3)`` are refused); default the last, as the
            classification head needs.
        final_norm: pass the last stage's map through
            ``norm{num_stages}`` (for dense prediction; leave False for
            :class:`~swat_mm.models.heads.SVTClsHead`, which holds that
            norm itself).
        frozen_stages: freeze the stem (0) and stages ``< frozen_stages``
            with their norms; -1 freezes nothing.
        norm_eval: keep BatchNorm layers (the stem's) in eval mode while
            training.
        with_cp: gradient checkpointing per block.
        init_cfg: mmengine init config, e.g.
            ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.

    Returns from ``forward``: a tuple of (B, C_i, H_i, W_i) maps, one per
    ``out_indices`` in their (increasing) order, at strides 4, 8, 16, 32
    (``H_i = ceil(H / 2**(i + 2))``; any input size).

    Raises:
        ValueError: a bad arch, ``num_scatter_stages``, ``img_size``,
            ``out_indices``, ``frozen_stages`` or ``drop_path_rate``,
            naming the fix.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['h-small', 'h-s', 'small', 's'], {
            'stem_channels': 32,
            'embed_dims': [64, 128, 320, 448],
            'depths': [3, 4, 6, 3],
            'num_heads': [2, 4, 10, 14],
            'mlp_ratios': [8, 8, 4, 4],
        }),
        **dict.fromkeys(['h-base', 'h-b', 'base', 'b'], {
            'stem_channels': 64,
            'embed_dims': [64, 128, 320, 512],
            'depths': [3, 4, 12, 3],
            'num_heads': [2, 4, 10, 16],
            'mlp_ratios': [8, 8, 4, 4],
        }),
        **dict.fromkeys(['h-large', 'h-l', 'large', 'l'], {
            'stem_channels': 64,
            'embed_dims': [96, 192, 384, 512],
            'depths': [3, 6, 18, 3],
            'num_heads': [3, 6, 12, 16],
            'mlp_ratios': [8, 8, 4, 4],
        }),
    }
    _required_keys = {'embed_dims', 'depths', 'num_heads', 'mlp_ratios'}
    #: tokens before the patch tokens (none: no class token); mmpretrain's
    #: tools read it (``vis_cam.py --vit-like`` on the token layers)
    num_extra_tokens = 0
    _optional_keys = {'stem_channels'}

    def __init__(self,
                 arch: Union[str, dict] = 'h-small',
                 in_channels: int = 3,
                 img_size: IntPair = 224,
                 num_scatter_stages: int = 1,
                 num_blocks: int = 4,
                 drop_path_rate: float = 0.1,
                 norm_cfg: dict = dict(type='BN'),
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 final_norm: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        embed_dims = list(self.arch_settings['embed_dims'])
        depths = list(self.arch_settings['depths'])
        num_heads = list(self.arch_settings['num_heads'])
        mlp_ratios = list(self.arch_settings['mlp_ratios'])
        stem_channels = int(self.arch_settings.get('stem_channels', 32))
        num_stages = len(depths)

        if not 0 <= num_scatter_stages <= num_stages:
            raise ValueError(f'num_scatter_stages must be in [0, '
                             f'{num_stages}], got {num_scatter_stages}')
        for i in range(num_scatter_stages):
            if embed_dims[i] % num_blocks:
                raise ValueError(
                    f'scatter stage {i}: embed_dims {embed_dims[i]} is not '
                    f'divisible by num_blocks {num_blocks}')
        img_h, img_w = _pair(img_size)
        if img_h < 1 or img_w < 1:
            raise ValueError(f'img_size must be positive, got {img_size}')

        self._set_stage_options(
            out_indices, frozen_stages, norm_eval, with_cp, num_stages,
            rates=dict(drop_path_rate=drop_path_rate))
        self.final_norm = final_norm
        self.in_channels = in_channels
        self.num_stages = num_stages
        self.num_scatter_stages = num_scatter_stages
        self.num_blocks = num_blocks
        self.embed_dims = embed_dims
        self.img_size = (img_h, img_w)

        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        # feature size of each stage at the training input: the stem halves
        # twice, every down-sampling once (stride-2 convs, padded)
        feat_h, feat_w = _conv_out(img_h), _conv_out(img_w)
        self.filter_sizes: List[Tuple[int, int]] = []
        for i in range(num_stages):
            feat_h, feat_w = _conv_out(feat_h), _conv_out(feat_w)
            # the DTCWT extends odd maps to even, so is the low-pass
            self.filter_sizes.append((feat_h + feat_h % 2,
                                      feat_w + feat_w % 2))
            if i == 0:
                patch_embed: nn.Module = Stem(in_channels, stem_channels,
                                              embed_dims[0], norm_cfg)
            else:
                patch_embed = DownSamples(embed_dims[i - 1], embed_dims[i])
            first = sum(depths[:i])
            blocks = nn.ModuleList([
                Block(embed_dims[i], num_heads[i], mlp_ratios[i],
                      scatter=i < num_scatter_stages,
                      filter_size=self.filter_sizes[i],
                      num_blocks=num_blocks, drop_path=dpr[first + j])
                for j in range(depths[i])
            ])
            setattr(self, f'patch_embed{i + 1}', patch_embed)
            setattr(self, f'block{i + 1}', blocks)
            if i < num_stages - 1 or final_norm:
                setattr(self, f'norm{i + 1}',
                        nn.LayerNorm(embed_dims[i], eps=1e-6))
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        settings = parse_arch('SVT', arch, cls.arch_zoo, cls._required_keys,
                              cls._optional_keys)
        if isinstance(arch, str):
            return settings
        if not check_stage_lengths('SVT', arch, cls._required_keys):
            raise ValueError('Custom SVT arch: needs at least one stage')
        for key in ('embed_dims', 'depths', 'num_heads'):
            bad = [v for v in arch[key] if int(v) != v or v < 1]
            if bad:
                raise ValueError(f'Custom SVT arch: {key} must be positive '
                                 f'integers, got {list(arch[key])}')
        if any(not r > 0 for r in arch['mlp_ratios']):
            raise ValueError(f'Custom SVT arch: mlp_ratios must be positive, '
                             f'got {list(arch["mlp_ratios"])}')
        stem = arch.get('stem_channels', 32)
        if int(stem) != stem or stem < 1:
            raise ValueError(f'Custom SVT arch: stem_channels must be a '
                             f'positive integer, got {stem}')
        check_heads('SVT', arch['embed_dims'], arch['num_heads'])
        return settings

    def _stage_modules(self, i: int) -> List[nn.Module]:
        mods = [getattr(self, f'patch_embed{i + 1}'),
                getattr(self, f'block{i + 1}')]
        norm = getattr(self, f'norm{i + 1}', None)
        return mods + ([norm] if norm is not None else [])

    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed1)
        for i in range(max(self.frozen_stages, 0)):
            frozen += self._stage_modules(i)
        freeze(frozen)

    def _layer_depth_groups(self) -> List[Tuple[str, ...]]:
        """The stem, every block (a stage's last with the stage's norm and
        the next stage's down-sampling), and the final norm
        (``final_norm``)."""
        groups: List[Tuple[str, ...]] = [('patch_embed1', )]
        last = self.num_stages - 1
        for i in range(self.num_stages):
            for j in range(len(getattr(self, f'block{i + 1}'))):
                groups.append((f'block{i + 1}.{j}', ))
            if i < last:
                groups[-1] += (f'norm{i + 1}', f'patch_embed{i + 2}')
        return groups + [(f'norm{last + 1}', )]

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is not None:
            return
        # The official init: truncated normal linears, LayerNorm (1, 0),
        # He-normal (fan-out) convs with zero bias; BatchNorm and the
        # spectral weights (N(0, 0.02^2) at construction) as they are.
        init_official(self, linear=lambda m: trunc_normal_(m.weight, std=.02),
                      conv=_he_normal_fan_out)

    def forward(self, x: torch.Tensor,
                mix_box: Optional[MixBox] = None) -> Tuple[torch.Tensor, ...]:
        """(B, in_channels, H, W) -> tuple of (B, C_i, H_i, W_i).

        ``mix_box``: MixToken (token labelling, training): the stem's
        tokens inside this box of the stem's grid are replaced by those of
        the batch in reverse order before the first stage's blocks.
        """
        check_input(x, self.in_channels, 'SVT')
        B = x.shape[0]
        outs = []
        last = max(self.out_indices)
        for i in range(self.num_stages):
            x, H, W = getattr(self, f'patch_embed{i + 1}')(x)
            if i == 0 and mix_box is not None:
                x = mix_tokens(x.reshape(B, H, W, -1), mix_box).reshape(
                    B, H * W, -1)
            for blk in getattr(self, f'block{i + 1}'):
                x = self._run_block(blk, x, H, W)
            norm = getattr(self, f'norm{i + 1}', None)
            if norm is not None:
                x = norm(x)
            x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
            if i in self.out_indices:
                outs.append(x)
            if i == last:
                # later stages would only cost time (and leave DDP with
                # parameters that get no gradient)
                break
        return tuple(outs)
