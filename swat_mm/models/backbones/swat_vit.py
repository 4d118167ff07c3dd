"""SWAT ViT / DeiT: structure-aware tokenization and mixing ("SWAT: Spatial
Structure Within and Among Tokens", Kahatapitiya & Ryoo, IJCAI 2023).

Paper: https://arxiv.org/abs/2111.13677. Official code: ``kkahatapitiya/SWAT``
(a modified timm 0.4: ``timm/models/vision_transformer.py``,
``layers/patch_embed.py``, ``layers/mlp.py``), classification at 224 only.

The backbone keeps the official state-dict names (``patch_embed.proj21``,
``patch_embed.proj22``, ``patch_embed.pos_embed2``, ``pos_embed``,
``blocks.i.{norm1,attn.{qkv_linear,qkv,proj,proj_linear},norm2,
mlp.{fc1,fc3,fc2}}``, ``norm``), so official checkpoints load with the
``backbone.`` prefix; the head lives in mmpretrain's
``VisionTransformerClsHead`` (``tools/model_converters/swat_to_mmpretrain.py``
maps ``head.*``).

The official model has **no class token**: it classifies the mean of the
final-normed tokens. ``out_type='avg_featmap'`` (the default) returns exactly
that (B, C) vector, which ``VisionTransformerClsHead`` and ``LinearClsHead``
take as is; ``'cls_token'`` is refused with that explanation.

Deviations from the official code, none of which changes an output at the
official sizes beyond float rounding:

* Any input size: the input is zero-padded at the bottom / right to a multiple
  of the token size (16 for DeiT-Ti/S, 32 for ViT-B/32) and gives a
  ``ceil(H / 16) x ceil(W / 16)`` grid; the tokenizer's position map is tiled
  over it and the position embedding is resized bicubically from the
  ``img_size`` grid (mmpretrain's ``resize_pos_embed``), as mmpretrain's
  ViT does. The conv MLP's depth-wise conv runs over the actual grid (the
  official code hard-codes 14x14 or 7x7).
* Attention runs through ``F.scaled_dot_product_attention``.
* Fast layers (the one switch, :mod:`swat_mm.models.layers.config`; the
  reference layers under ``fast_layers(False)``, on which FLOPs are
  counted): the attention's ``(linear + per-token conv) / 2`` projections
  as one GEMM with the averaged matrix, the conv MLPs and the tokenizer on
  channels-last memory with their 1x1 convs as GEMMs
  (:mod:`swat_mm.models.layers.swat_mixing`). Same parameters and keys;
  rtol 1e-5 in fp32, 1e-10 in fp64 against the reference (tested).
* ``out_indices`` / ``out_type='featmap'`` give (B, C, Hg, Wg) maps of any
  blocks for dense prediction; the final norm is applied to the last block's
  output only (mmpretrain's convention).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.models.utils import resize_pos_embed

from swat_mm.registry import MODELS
from ..layers import (SWATAttention, SWATConvMlp, SWATTokenizer,
                      map_to_tokens, tokens_to_map)
from ..layers.drop_path import DropPath
from .base import (IntPair, StagedBackboneMixin, check_heads, check_input,
                   check_odd, check_token_layout, freeze, init_official,
                   parse_arch)
from .base import pair as _pair


class SWATViTBlock(nn.Module):
    """Pre-norm transformer block with structure-aware attention and a conv
    MLP over the token grid (official ``Block``).

    Args:
        embed_dims: C = c * h * w.
        num_heads: attention heads.
        layout: (c, h, w) of a token.
        attn_kernel: k of the attention's projection convs.
        mlp_ratio: MLP width over C.
        mlp_kernel: k of the MLP's depth-wise conv over the grid.
        qkv_bias, drop, attn_drop, drop_path: as in a ViT block.
        norm_eps: LayerNorm epsilon (1e-6 officially).
    """

    def __init__(self, embed_dims: int, num_heads: int,
                 layout: Tuple[int, int, int], attn_kernel: int = 3,
                 mlp_ratio: float = 4., mlp_kernel: int = 5,
                 qkv_bias: bool = True, drop: float = 0.,
                 attn_drop: float = 0., drop_path: float = 0.,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = SWATAttention(*layout, kernel_size=attn_kernel,
                                  num_heads=num_heads, qkv_bias=qkv_bias,
                                  attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0. \
            else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        hidden = int(embed_dims * mlp_ratio)
        self.mlp = SWATConvMlp(embed_dims, hidden, kernel_size=mlp_kernel,
                               drop=drop)

    def forward(self, x: torch.Tensor,
                hw_shape: Tuple[int, int]) -> torch.Tensor:
        """(B, N, C) tokens on an (Hg, Wg) grid -> (B, N, C)."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(map_to_tokens(
            self.mlp(tokens_to_map(self.norm2(x), hw_shape))))


@MODELS.register_module()
class SWATViT(StagedBackboneMixin, BaseModule):
    """SWAT ViT / DeiT backbone.

    Args:
        arch: ``'deit-tiny'``, ``'deit-small'``, ``'vit-base-p32'`` (aliases
            in :attr:`arch_zoo`), or a dict with the keys of
            :attr:`_required_keys` and optionally :attr:`_optional_keys`:

            * ``embed_dims``, ``num_layers``, ``num_heads``;
            * ``token_channels`` (c) and ``sub_patch`` (p, default 8):
              ``embed_dims`` must be ``c * p * p``;
            * tokenizer: ``stem_channels`` (128), ``stem_kernel`` (4),
              ``stem_stride`` (2), ``stem_padding`` (1), ``proj_kernel`` =
              its stride (1; ViT-B/32: 2), ``pos_map_size`` (8; None for
              none), ``stem_norm_cfg`` (None);
            * ``attn_kernel`` (3), ``mlp_ratio`` (4), ``mlp_kernel`` (5;
              ViT-B/32: 3).
        img_size: the input size the position embedding is learnt for (224);
            other sizes resize it bicubically.
        in_channels: image channels.
        out_indices: blocks whose outputs are returned (negative allowed);
            unique and increasing once normalised (``(3, 0)`` or ``(3, 3)``
            are refused).
        out_type: ``'avg_featmap'`` (B, C) mean of the tokens, the official
            classifier input; ``'featmap'`` (B, C, Hg, Wg); ``'raw'``
            (B, N, C).
        qkv_bias: bias of the q/k/v projections.
        drop_rate: dropout after the position embedding and projections,
            in [0, 1).
        attn_drop_rate: dropout on the attention weights, in [0, 1).
        drop_path_rate: stochastic depth, linear over the blocks from 0 to
            this rate, in [0, 1).
        final_norm: apply ``norm`` to the last block's output.
        interpolate_mode: resizing of the position embedding.
        frozen_stages: -1 freezes nothing; 0 the tokenizer and position
            embedding; k > 0 also blocks ``< k``; ``num_layers`` also
            ``norm``.
        norm_eval: keep BatchNorm layers (only a custom ``stem_norm_cfg``
            has any) in eval mode while training.
        with_cp: gradient checkpointing per block.
        init_cfg: mmengine init config.

    Returns from ``forward``: a tuple with one entry per ``out_indices``,
    in their (increasing) order; with ``out_type='featmap'`` (B, C, Hg, Wg)
    maps, ``Hg = ceil(H / token_stride)`` (16 for DeiT-Ti/S); any input
    size.

    Raises:
        ValueError: a bad arch, ``out_type``, ``out_indices``,
            ``frozen_stages`` or drop rate, naming the fix.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['deit-tiny', 'deit-ti', 'vit-tiny'], {
            'embed_dims': 192, 'num_layers': 12, 'num_heads': 3,
            'token_channels': 3, 'mlp_kernel': 5,
        }),
        **dict.fromkeys(['deit-small', 'deit-s', 'vit-small'], {
            'embed_dims': 384, 'num_layers': 12, 'num_heads': 6,
            'token_channels': 6, 'mlp_kernel': 5,
        }),
        **dict.fromkeys(['vit-base-p32', 'deit-base-p32', 'vit-b32'], {
            'embed_dims': 768, 'num_layers': 12, 'num_heads': 12,
            'token_channels': 12, 'proj_kernel': 2, 'pos_map_size': 16,
            'mlp_kernel': 3,
        }),
    }
    _required_keys = {'embed_dims', 'num_layers', 'num_heads',
                      'token_channels'}
    _defaults = dict(sub_patch=8, stem_channels=128, stem_kernel=4,
                     stem_stride=2, stem_padding=1, proj_kernel=1,
                     pos_map_size=8, stem_norm_cfg=None, attn_kernel=3,
                     mlp_ratio=4., mlp_kernel=5)
    _optional_keys = set(_defaults)
    OUT_TYPES = {'avg_featmap', 'featmap', 'raw'}
    #: tokens before the patch tokens (none: no class token); mmpretrain's
    #: tools read it (``vis_cam.py --vit-like`` on the token layers)
    num_extra_tokens = 0

    def __init__(self,
                 arch: Union[str, dict] = 'deit-tiny',
                 img_size: IntPair = 224,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'avg_featmap',
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 final_norm: bool = True,
                 interpolate_mode: str = 'bicubic',
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = s = self._parse_arch(arch)
        if out_type == 'cls_token':
            raise ValueError(
                "SWATViT has no class token (the official SWAT ViT/DeiT "
                'classifies the mean of its final-normed tokens): use '
                "out_type='avg_featmap', which VisionTransformerClsHead and "
                'LinearClsHead take as they take a class token')
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'out_type must be one of '
                             f'{sorted(self.OUT_TYPES)}, got {out_type!r}')
        self.out_type = out_type
        self.embed_dims = s['embed_dims']
        self.num_layers = s['num_layers']
        self.in_channels = in_channels
        self.img_size = _pair(img_size)
        self.interpolate_mode = interpolate_mode
        self.final_norm = final_norm

        self._set_stage_options(
            out_indices, frozen_stages, norm_eval, with_cp, self.num_layers,
            'blocks', rates=dict(drop_rate=drop_rate,
                                 attn_drop_rate=attn_drop_rate,
                                 drop_path_rate=drop_path_rate))

        p = s['sub_patch']
        self.patch_embed = SWATTokenizer(
            in_channels, s['stem_channels'], s['token_channels'], p,
            s['stem_kernel'], s['stem_stride'], s['stem_padding'],
            s['proj_kernel'], s['proj_kernel'], s['pos_map_size'],
            s['stem_norm_cfg'])
        self.patch_resolution = self.patch_embed.grid_size(self.img_size)
        num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_patches, self.embed_dims))
        self.pos_drop = nn.Dropout(drop_rate)

        layout = (s['token_channels'], p, p)
        dpr = torch.linspace(0, drop_path_rate, self.num_layers).tolist()
        self.blocks = nn.ModuleList([
            SWATViTBlock(self.embed_dims, s['num_heads'], layout,
                         s['attn_kernel'], s['mlp_ratio'], s['mlp_kernel'],
                         qkv_bias, drop_rate, attn_drop_rate, dpr[i])
            for i in range(self.num_layers)
        ])
        self.norm = nn.LayerNorm(self.embed_dims, eps=1e-6) if final_norm \
            else nn.Identity()
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        s = dict(cls._defaults, **parse_arch(
            'SWATViT', arch, cls.arch_zoo, cls._required_keys,
            cls._optional_keys))
        if isinstance(arch, str):
            return s
        check_token_layout('SWATViT', s)
        check_heads('SWATViT', [s['embed_dims']], [s['num_heads']])
        check_odd('SWATViT', s, ('attn_kernel', 'mlp_kernel'))
        return s

    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
            self.pos_embed.requires_grad = False
        frozen += list(self.blocks[:max(self.frozen_stages, 0)])
        if self.frozen_stages == self.num_layers:
            frozen.append(self.norm)
        freeze(frozen)

    def _layer_depth_groups(self) -> List[Tuple[str, ...]]:
        """The tokenizer and position embedding, every block, and the
        final norm."""
        return [('patch_embed', 'pos_embed')] + \
            [(f'blocks.{i}', ) for i in range(self.num_layers)] + \
            [('norm', )]

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is not None:
            return
        # timm 0.4's ViT init: trunc-normal(.02) position embedding and
        # linears with zero biases, LayerNorm (1, 0); convs keep PyTorch's
        # defaults; the tokenizer's position map trunc-normal(.02).
        nn.init.trunc_normal_(self.pos_embed, std=.02, a=-2., b=2.)
        init_official(self, linear=lambda m: nn.init.trunc_normal_(
            m.weight, std=.02, a=-2., b=2.))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Fine-tuning at another img_size: resize the checkpoint's position
        # embedding to this model's grid (square source grids only, as
        # official checkpoints are).
        key = prefix + 'pos_embed'
        if key in state_dict and \
                state_dict[key].shape != self.pos_embed.shape:
            src = state_dict[key]
            side = int(math.isqrt(src.shape[1]))
            if side * side == src.shape[1] and src.shape[2] == \
                    self.embed_dims:
                state_dict[key] = resize_pos_embed(
                    src, (side, side), self.patch_resolution,
                    self.interpolate_mode, num_extra_tokens=0)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, in_channels, H, W) -> tuple of (B, C), (B, C, Hg, Wg) or
        (B, N, C) per ``out_type``; Hg = ceil(H / token_stride)."""
        check_input(x, self.in_channels, 'SWATViT')
        x, hw_shape = self.patch_embed(x)
        # resized always: at the img_size grid the interpolation is the
        # identity, exactly, and a traced or exported graph resizes for
        # every input size (mmpretrain's resize_pos_embed skips it there)
        h, w = self.patch_resolution
        pos = self.pos_embed.reshape(1, h, w, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=hw_shape, mode=self.interpolate_mode,
                            align_corners=False)
        x = self.pos_drop(x + pos.flatten(2).transpose(1, 2))
        outs = []
        last = max(self.out_indices)
        for i, blk in enumerate(self.blocks):
            x = self._run_block(blk, x, hw_shape)
            if i == self.num_layers - 1:
                x = self.norm(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, hw_shape))
            if i == last:
                break  # later blocks would only cost time
        return tuple(outs)

    def _format_output(self, x: torch.Tensor,
                       hw_shape: Tuple[int, int]) -> torch.Tensor:
        if self.out_type == 'raw':
            return x
        if self.out_type == 'featmap':
            return tokens_to_map(x, hw_shape)
        return x.mean(dim=1)
