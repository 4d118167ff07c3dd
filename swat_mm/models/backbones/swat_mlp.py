"""SWAT MLP-Mixer and ResMLP ("SWAT: Spatial Structure Within and Among
Tokens", Kahatapitiya & Ryoo, IJCAI 2023).

Paper: https://arxiv.org/abs/2111.13677. Official code: ``kkahatapitiya/SWAT``
(``timm/models/mlp_mixer.py``: ``MixerBlockConv``, ``ResBlockConv``;
``layers/patch_embed.py``; ``layers/mlp.py``), classification at 224 only.

Both keep the official state-dict names (``stem.proj21``, ``stem.proj22``,
``blocks.i.*``, ``norm``); the official ``head`` becomes mmpretrain's
``LinearClsHead.fc`` behind a ``GlobalAveragePooling`` neck
(``tools/model_converters/swat_to_mmpretrain.py``).

Their token mixing acts on a fixed number of tokens (the token axis is a
conv's channel axis), so a model is built for one ``img_size`` and accepts
that input size only; any other size is refused with a message naming the
expected size. The official models are built for 224.

``forward`` returns the final-normed token grid as a (B, C, Hg, Wg) map (a
tuple, one per ``out_indices``); ``GlobalAveragePooling`` turns it into the
mean over tokens the official classifier uses.

Deviations from the official code, none of which changes an output beyond
float rounding:

* ``drop_path_rate`` is one rate for every block, as officially (not a
  linear ramp).
* ``out_indices``, ``frozen_stages``, ``norm_eval``, ``with_cp`` are
  additions.
* Fast layers (the one switch, :mod:`swat_mm.models.layers.config`): the
  conv MLPs and the tokenizer on channels-last memory with their 1x1 convs
  as GEMMs (:mod:`swat_mm.models.layers.swat_mixing`); the reference
  layers under ``fast_layers(False)``, on which FLOPs are counted.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmengine.model import BaseModule

from swat_mm.registry import MODELS
from ..layers import (SWATConvMlp, SWATTokenConvMlp, SWATTokenizer,
                      map_to_tokens, subpatches_to_tokens, tokens_to_map,
                      tokens_to_subpatches)
from ..layers.drop_path import DropPath
from .base import (IntPair, StagedBackboneMixin, check_input, check_odd,
                   check_token_layout, freeze, init_official, parse_arch)
from .base import pair as _pair


def lecun_normal_(weight: torch.Tensor) -> None:
    """timm's ``lecun_normal_``: std sqrt(1 / fan_in) / .8796 (the std of a
    unit normal truncated at +-2), cut at +-2 absolute as timm does."""
    fan_in = weight.shape[1] * weight[0][0].numel()
    std = math.sqrt(1. / fan_in) / .87962566103423978
    nn.init.trunc_normal_(weight, std=std, a=-2., b=2.)


class Affine(nn.Module):
    """ResMLP's per-channel affine 'norm' ``alpha * x + beta`` (official
    names and (1, 1, C) shapes)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones((1, 1, dim)))
        self.beta = nn.Parameter(torch.zeros((1, 1, dim)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        return torch.addcmul(self.beta, self.alpha, x)


class SWATMixerBlock(nn.Module):
    """Mixer block: LayerNorm + token-mixing conv MLP over sub-patches,
    LayerNorm + channel conv MLP over the token grid, each residual
    (official ``MixerBlockConv``).

    Args:
        embed_dims: C = c * p * p.
        num_tokens: N, the fixed token count.
        layout: (c, p, p) of a token.
        mlp_ratio: (token-mixing, channel) widths over C.
        token_kernel: k of the token MLP's depth-wise conv (over p x p).
        channel_kernel: k of the channel MLP's depth-wise conv (over the
            grid).
        drop, drop_path: dropout in the MLPs, stochastic depth.
        norm_eps: LayerNorm epsilon (1e-6 officially).
    """

    def __init__(self, embed_dims: int, num_tokens: int,
                 layout: Tuple[int, int, int],
                 mlp_ratio: Tuple[float, float] = (0.5, 4.0),
                 token_kernel: int = 3, channel_kernel: int = 5,
                 drop: float = 0., drop_path: float = 0.,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        tokens_dim, channels_dim = (int(r * embed_dims) for r in mlp_ratio)
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp_tokens = SWATTokenConvMlp(num_tokens, tokens_dim, *layout,
                                           kernel_size=token_kernel,
                                           drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0. \
            else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp_channels = SWATConvMlp(embed_dims, channels_dim,
                                        kernel_size=channel_kernel, drop=drop)

    def forward(self, x: torch.Tensor,
                hw_shape: Tuple[int, int]) -> torch.Tensor:
        """(B, N, C) tokens on an (Hg, Wg) grid -> (B, N, C)."""
        x = x + self.drop_path(self.mlp_tokens(self.norm1(x)))
        return x + self.drop_path(map_to_tokens(
            self.mlp_channels(tokens_to_map(self.norm2(x), hw_shape))))


class SWATResMLPBlock(nn.Module):
    """ResMLP block (official ``ResBlockConv``): Affine + token convs
    (``linear_tokens1``: 1x1 over the N tokens as channels, act,
    ``linear_tokens2``: depth-wise k x k over each sub-patch) with layer
    scale ``ls1``; Affine + channel conv MLP over the grid with ``ls2``.

    Args:
        embed_dims: C = c * p * p.
        num_tokens: N, the fixed token count.
        layout: (c, p, p) of a token.
        mlp_ratio: channel MLP width over C.
        token_kernel: k of ``linear_tokens2``.
        channel_kernel: k of the channel MLP's depth-wise conv.
        init_values: initial layer scales (1e-4 in the official code).
        drop, drop_path: dropout in the MLP, stochastic depth.
    """

    def __init__(self, embed_dims: int, num_tokens: int,
                 layout: Tuple[int, int, int], mlp_ratio: float = 4.,
                 token_kernel: int = 3, channel_kernel: int = 5,
                 init_values: float = 1e-4, drop: float = 0.,
                 drop_path: float = 0.) -> None:
        super().__init__()
        self.layout = layout
        self.num_tokens = num_tokens
        self.norm1 = Affine(embed_dims)
        self.linear_tokens1 = nn.Conv2d(num_tokens, num_tokens, 1)
        self.linear_tokens2 = nn.Conv2d(num_tokens, num_tokens, token_kernel,
                                        padding=token_kernel // 2,
                                        groups=num_tokens)
        self.act = build_activation_layer(dict(type='GELU'))
        self.drop_path = DropPath(drop_path) if drop_path > 0. \
            else nn.Identity()
        self.norm2 = Affine(embed_dims)
        self.mlp_channels = SWATConvMlp(embed_dims,
                                        int(embed_dims * mlp_ratio),
                                        kernel_size=channel_kernel, drop=drop)
        self.ls1 = nn.Parameter(init_values * torch.ones(embed_dims))
        self.ls2 = nn.Parameter(init_values * torch.ones(embed_dims))

    def forward(self, x: torch.Tensor,
                hw_shape: Tuple[int, int]) -> torch.Tensor:
        """(B, N, C) tokens on an (Hg, Wg) grid -> (B, N, C)."""
        x = x + self.drop_path(self.ls1 * self._token_branch(x))
        return x + self.drop_path(self.ls2 * map_to_tokens(
            self.mlp_channels(tokens_to_map(self.norm2(x), hw_shape))))

    def _token_branch(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C): Affine and the two token convs over each
        sub-patch."""
        y = tokens_to_subpatches(self.norm1(x), *self.layout)
        y = self.linear_tokens2(self.act(self.linear_tokens1(y)))
        return subpatches_to_tokens(y, self.layout[0])


class _SWATFixedTokens(StagedBackboneMixin, BaseModule):
    """Shared part of :class:`SWATMixer` and :class:`SWATResMLP`: tokenizer
    (``stem``), blocks on a fixed token grid, final norm, output handling,
    freezing and the input-size check. A subclass provides the block and the
    final norm through :meth:`_make_block` and :meth:`_make_norm`."""

    name = 'SWATMLP'
    arch_zoo: Dict[str, dict] = {}
    _required_keys = {'embed_dims', 'num_layers', 'token_channels'}
    #: tokens before the patch tokens (none: no class token); mmpretrain's
    #: tools read it (``vis_cam.py --vit-like`` on the token layers)
    num_extra_tokens = 0
    _defaults: dict = {}

    def __init__(self, arch: Union[str, dict], img_size: IntPair,
                 in_channels: int, out_indices: Union[int, Sequence[int]],
                 drop_rate: float, drop_path_rate: float, frozen_stages: int,
                 norm_eval: bool, with_cp: bool,
                 init_cfg: Optional[Union[dict, List[dict]]]) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = s = self._parse_arch(arch)
        self.embed_dims = s['embed_dims']
        self.num_layers = s['num_layers']
        self.in_channels = in_channels
        self.img_size = _pair(img_size)
        self._set_stage_options(
            out_indices, frozen_stages, norm_eval, with_cp, self.num_layers,
            'blocks', rates=dict(drop_rate=drop_rate,
                                 drop_path_rate=drop_path_rate))
        self.drop_rate = drop_rate
        self.drop_path_rate = drop_path_rate

        p = s['sub_patch']
        self.stem = SWATTokenizer(
            in_channels, s['stem_channels'], s['token_channels'], p,
            s['stem_kernel'], s['stem_stride'], s['stem_padding'],
            s['proj_kernel'], s['proj_kernel'], None, s['stem_norm_cfg'])
        stride = self.stem.token_stride
        if self.img_size[0] % stride or self.img_size[1] % stride:
            raise ValueError(
                f'{self.name}: img_size {self.img_size} must be a multiple of '
                f'the token size {stride} (stem stride x sub-patch)')
        self.grid = self.stem.grid_size(self.img_size)
        self.num_tokens = self.grid[0] * self.grid[1]
        self.layout = (s['token_channels'], p, p)
        self.blocks = nn.ModuleList(
            [self._make_block() for _ in range(self.num_layers)])
        self.norm = self._make_norm()
        self._freeze_stages()

    def _make_block(self) -> nn.Module:
        """One block, from :attr:`arch_settings` and the stored options."""
        raise NotImplementedError

    def _make_norm(self) -> nn.Module:
        """The final norm."""
        raise NotImplementedError

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        s = dict(cls._defaults, **parse_arch(
            cls.name, arch, cls.arch_zoo, cls._required_keys,
            set(cls._defaults)))
        if isinstance(arch, str):
            return s
        check_token_layout(cls.name, s)
        check_odd(cls.name, s, ('token_kernel', 'channel_kernel'))
        return s

    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.stem)
        frozen += list(self.blocks[:max(self.frozen_stages, 0)])
        if self.frozen_stages == self.num_layers:
            frozen.append(self.norm)
        freeze(frozen)

    def _layer_depth_groups(self) -> List[Tuple[str, ...]]:
        """The tokenizer, every block, and the final norm."""
        return [('stem', )] + \
            [(f'blocks.{i}', ) for i in range(self.num_layers)] + \
            [('norm', )]

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is not None:
            return
        # timm 0.4's Mixer init (used by ResMLP too): lecun-normal convs with
        # zero biases, LayerNorm (1, 0); Affine and layer scales as built.
        init_official(self, conv=lambda m: lecun_normal_(m.weight))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, in_channels, *img_size) -> tuple of (B, C, Hg, Wg) maps, the
        last block's after the final norm."""
        check_input(x, self.in_channels, self.name)
        if tuple(x.shape[-2:]) != self.img_size:
            H, W = self.img_size
            raise ValueError(
                f'{self.name} was built for {H}x{W} inputs (its token mixing '
                f'acts on exactly {self.num_tokens} tokens), got '
                f'{x.shape[-2]}x{x.shape[-1]}. Resize or crop the input to '
                f'{H}x{W} in the data pipeline, or build the model with '
                f'img_size=({x.shape[-2]}, {x.shape[-1]}) (weights for '
                f'{self.num_tokens} tokens then no longer fit)')
        x, hw_shape = self.stem(x)
        outs = []
        last = max(self.out_indices)
        for i, blk in enumerate(self.blocks):
            x = self._run_block(blk, x, hw_shape)
            if i == self.num_layers - 1:
                x = self.norm(x)
            if i in self.out_indices:
                outs.append(tokens_to_map(x, hw_shape))
            if i == last:
                break
        return tuple(outs)


_STEM_DEFAULTS = dict(sub_patch=8, stem_channels=128, stem_kernel=2,
                      stem_stride=2, stem_padding=0, proj_kernel=1,
                      stem_norm_cfg=None)


@MODELS.register_module()
class SWATMixer(_SWATFixedTokens):
    """SWAT MLP-Mixer backbone.

    Args:
        arch: ``'mixer-tiny'``, ``'mixer-small'``, ``'mixer-base-p32'``
            (aliases in :attr:`arch_zoo`), or a dict with ``embed_dims``,
            ``num_layers``, ``token_channels`` (c) and optionally
            ``sub_patch`` (p, 8), ``stem_channels`` (128), ``stem_kernel``
            (2), ``stem_stride`` (2), ``stem_padding`` (0), ``proj_kernel``
            (= its stride, 1), ``stem_norm_cfg`` (None), ``mlp_ratio``
            ((0.5, 4.0)), ``token_kernel`` (3), ``channel_kernel`` (5);
            ``embed_dims`` must be ``c * p * p``.
        img_size: the one input size the model accepts (224).
        in_channels: image channels.
        out_indices: blocks whose outputs are returned (negative allowed);
            unique and increasing once normalised (``(3, 0)`` or ``(3, 3)``
            are refused).
        drop_rate: dropout inside the MLPs, in [0, 1).
        drop_path_rate: stochastic depth of every block, in [0, 1).
        frozen_stages: -1 nothing; 0 the tokenizer; k also blocks ``< k``;
            ``num_layers`` also ``norm``.
        norm_eval: BatchNorm layers (a custom ``stem_norm_cfg`` only) in
            eval mode while training.
        with_cp: gradient checkpointing per block.
        init_cfg: mmengine init config.

    ``forward`` returns a tuple of (B, C, Hg, Wg) maps, one per
    ``out_indices`` in their (increasing) order, Hg = H / token size (16 for
    the Mixer-Ti/S, 32 for B/32); ``img_size`` inputs only.

    Raises:
        ValueError: a bad arch, ``img_size``, ``out_indices``,
            ``frozen_stages`` or drop rate, naming the fix.
    """

    name = 'SWATMixer'
    arch_zoo = {
        **dict.fromkeys(['mixer-tiny', 'mixer-ti', 'ti'], {
            'embed_dims': 256, 'num_layers': 8, 'token_channels': 4,
            'stem_channels': 64, 'token_kernel': 3, 'channel_kernel': 5,
        }),
        **dict.fromkeys(['mixer-small', 'mixer-s', 's'], {
            'embed_dims': 512, 'num_layers': 8, 'token_channels': 8,
            'token_kernel': 3, 'channel_kernel': 5,
        }),
        **dict.fromkeys(['mixer-base-p32', 'mixer-b32', 'b32'], {
            'embed_dims': 768, 'num_layers': 12, 'token_channels': 3,
            'sub_patch': 16, 'token_kernel': 5, 'channel_kernel': 3,
        }),
    }
    _defaults = dict(_STEM_DEFAULTS, mlp_ratio=(0.5, 4.0), token_kernel=3,
                     channel_kernel=5)

    def __init__(self,
                 arch: Union[str, dict] = 'mixer-tiny',
                 img_size: IntPair = 224,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(arch, img_size, in_channels, out_indices, drop_rate,
                         drop_path_rate, frozen_stages, norm_eval, with_cp,
                         init_cfg)

    def _make_block(self) -> nn.Module:
        s = self.arch_settings
        return SWATMixerBlock(self.embed_dims, self.num_tokens, self.layout,
                              tuple(s['mlp_ratio']), s['token_kernel'],
                              s['channel_kernel'], self.drop_rate,
                              self.drop_path_rate)

    def _make_norm(self) -> nn.Module:
        return nn.LayerNorm(self.embed_dims, eps=1e-6)


@MODELS.register_module()
class SWATResMLP(_SWATFixedTokens):
    """SWAT ResMLP backbone.

    Args:
        arch: ``'s12'`` (alias ``'resmlp-s12'``), or a dict with
            ``embed_dims``, ``num_layers``, ``token_channels`` (c) and
            optionally the tokenizer keys of :class:`SWATMixer`,
            ``mlp_ratio`` (4), ``token_kernel`` (3), ``channel_kernel`` (5),
            ``init_values`` (1e-4, the official code's layer-scale init).
        img_size, in_channels, out_indices, drop_rate, drop_path_rate,
        frozen_stages, norm_eval, with_cp, init_cfg: see :class:`SWATMixer`.

    ``forward`` and its errors: as :class:`SWATMixer`'s (maps in the
    increasing order of ``out_indices``).
    """

    name = 'SWATResMLP'
    arch_zoo = {
        **dict.fromkeys(['s12', 'resmlp-s12'], {
            'embed_dims': 384, 'num_layers': 12, 'token_channels': 6,
        }),
    }
    _defaults = dict(_STEM_DEFAULTS, mlp_ratio=4., token_kernel=3,
                     channel_kernel=5, init_values=1e-4)

    def __init__(self,
                 arch: Union[str, dict] = 's12',
                 img_size: IntPair = 224,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(arch, img_size, in_channels, out_indices, drop_rate,
                         drop_path_rate, frozen_stages, norm_eval, with_cp,
                         init_cfg)

    def _make_block(self) -> nn.Module:
        s = self.arch_settings
        return SWATResMLPBlock(self.embed_dims, self.num_tokens, self.layout,
                               s['mlp_ratio'], s['token_kernel'],
                               s['channel_kernel'], s['init_values'],
                               self.drop_rate, self.drop_path_rate)

    def _make_norm(self) -> nn.Module:
        return Affine(self.embed_dims)
