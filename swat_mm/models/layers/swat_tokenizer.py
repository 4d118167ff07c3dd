"""SWAT structure-aware tokenizer (Kahatapitiya & Ryoo, IJCAI 2023).

Official code: ``kkahatapitiya/SWAT``, ``timm/models/layers/patch_embed.py``
(the ``PatchEmbed`` whose body is picked per variant by commented-out code).
Here one module covers every variant through explicit arguments, and works at
any input size (the official one asserts its fixed 224 input).

Fast formulation (1x1 ``proj22``; chosen when the tokenizer is built by the
one switch, :mod:`swat_mm.models.layers.config`): the stem runs on
a channels-last map and ``proj22`` is one GEMM over the pixels
(:meth:`SWATTokenizer._forward_nhwc`); not bit-for-bit (summation order of
the GEMM), within rtol 1e-5 / atol 1e-6 of the NCHW convolution path
(``tests/test_swat.py``).
"""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer

from .config import use_fast_layers
from .shape import ceil_to
from .swat_mixing import _no_autograd, act_

IntPair = Union[int, Tuple[int, int]]


def _pair(v: IntPair) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class SWATTokenizer(nn.Module):
    """Structure-aware tokenization.

    ``proj21`` (a small strided conv ``in_channels -> stem_channels``),
    [+ a learned position map ``pos_embed2`` tiled over the map], activation,
    [``norm2`` over channels], ``proj22`` (conv to ``out_channels`` = c), then
    every ``sub_patch`` x ``sub_patch`` (p x p) cell of that map is folded
    into one token of ``c * p * p`` channels, ordered ``(c, p1, p2)``
    (einops ``'b c (n1 p1) (n2 p2) -> b (n1 n2) (c p1 p2)'``), so that a
    token keeps its c x p x p spatial layout for the structure-aware mixing.

    Sizes: the input is zero-padded at the bottom and right to a multiple of
    :attr:`token_stride` (``stem_stride * proj_stride * sub_patch``), like
    mmcv's ``AdaptivePadding(padding='corner')``; should the convs then still
    leave a map that is not a multiple of p (kernels that do not preserve
    size modulo their stride), that map is zero-padded too. The position
    map is tiled (``repeat``) to cover the stem output and cropped to it, so
    it fits any grid; at the official sizes (8x8 map, 112x112 stem output)
    this is exactly the official ``pos_embed2.repeat(1, 1, 14, 14)``.

    State-dict names are the official ones: ``proj21``, ``proj22``,
    ``pos_embed2`` (only with ``pos_map_size``), ``norm2`` (only with
    ``norm_cfg``).

    Args:
        in_channels: image channels.
        stem_channels: channels of ``proj21`` (64 or 128 officially).
        out_channels: c, channels of ``proj22`` (3 for DeiT-Ti, 24 for
            Swin-T, ...).
        sub_patch: p; tokens have ``out_channels * p * p`` channels.
        stem_kernel, stem_stride, stem_padding: of ``proj21`` (ViT: 4, 2, 1;
            Swin / Mixer / ResMLP: 2, 2, 0).
        proj_kernel, proj_stride: of ``proj22`` (1, 1; ViT-B/32: 2, 2),
            no padding.
        pos_map_size: (h, w) of the tiled position map added after
            ``proj21`` (ViT: 8 or 16); None for none.
        norm_cfg: norm after the activation, over the stem channels (Swin:
            ``dict(type='LN')``, applied channels-last as officially; a
            BN-type norm is applied on the NCHW map); None for none.
        act_cfg: activation after ``proj21`` (GELU).
    """

    def __init__(self,
                 in_channels: int = 3,
                 stem_channels: int = 128,
                 out_channels: int = 3,
                 sub_patch: int = 8,
                 stem_kernel: int = 4,
                 stem_stride: int = 2,
                 stem_padding: int = 1,
                 proj_kernel: int = 1,
                 proj_stride: int = 1,
                 pos_map_size: Optional[IntPair] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='GELU')) -> None:
        super().__init__()
        for name, value in (('in_channels', in_channels),
                            ('stem_channels', stem_channels),
                            ('out_channels', out_channels),
                            ('sub_patch', sub_patch),
                            ('stem_kernel', stem_kernel),
                            ('stem_stride', stem_stride),
                            ('proj_kernel', proj_kernel),
                            ('proj_stride', proj_stride)):
            if int(value) < 1:
                raise ValueError(f'SWATTokenizer: {name} must be >= 1, '
                                 f'got {value}')
        if stem_padding < 0:
            raise ValueError(f'SWATTokenizer: stem_padding must be >= 0, '
                             f'got {stem_padding}')
        self.in_channels = in_channels
        self.stem_channels = stem_channels
        self.out_channels = out_channels
        self.sub_patch = sub_patch
        self.stem_cfg = (stem_kernel, stem_stride, stem_padding)
        self.proj_cfg = (proj_kernel, proj_stride, 0)
        self.embed_dims = out_channels * sub_patch * sub_patch
        self.token_stride = stem_stride * proj_stride * sub_patch

        self.proj21 = nn.Conv2d(in_channels, stem_channels, stem_kernel,
                                stem_stride, stem_padding)
        self.act = build_activation_layer(act_cfg)
        self.norm2: Optional[nn.Module] = None
        self.norm_channels_last = False
        if norm_cfg is not None:
            self.norm2 = build_norm_layer(norm_cfg, stem_channels)[1]
            self.norm_channels_last = isinstance(self.norm2, nn.LayerNorm)
        self.proj22 = nn.Conv2d(stem_channels, out_channels, proj_kernel,
                                proj_stride)
        self.fast = use_fast_layers()
        self.pos_map_size = None if pos_map_size is None else _pair(
            pos_map_size)
        if self.pos_map_size is not None:
            self.pos_embed2 = nn.Parameter(
                torch.zeros(1, stem_channels, *self.pos_map_size))
            nn.init.trunc_normal_(self.pos_embed2, std=.02, a=-2., b=2.)
        else:
            self.register_parameter('pos_embed2', None)

    def grid_size(self, img_size: IntPair) -> Tuple[int, int]:
        """(H, W) of the token grid for an (H, W) input."""
        out = []
        for size in _pair(img_size):
            size = ceil_to(size, self.token_stride)  # as forward pads
            size = _conv_out(size, *self.stem_cfg)
            size = _conv_out(size, *self.proj_cfg)
            out.append(math.ceil(size / self.sub_patch))
        return out[0], out[1]

    def tiled_pos_map(self, size: Tuple[int, int]) -> torch.Tensor:
        """The position map repeated over an (H, W) stem output:
        (1, stem_channels, H, W)."""
        ph, pw = self.pos_map_size
        H, W = size
        # ceil as integer arithmetic, so that sizes stay data under tracing
        # (positive operands: ONNX divides integers rounding towards zero)
        pos = self.pos_embed2.repeat(1, 1, (H + ph - 1) // ph,
                                     (W + pw - 1) // pw)
        return pos[:, :, :H, :W]

    def forward(self, x: torch.Tensor
                ) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """(B, in_channels, H, W) -> tokens (B, N, c*p*p) and the grid
        (Hg, Wg), N = Hg * Wg, Hg = ceil(H / token_stride) for the official
        (size-preserving) kernels."""
        H, W = x.shape[-2:]
        s = self.token_stride
        # padded always (by zero where nothing is missing), so that a traced
        # or exported graph pads at every input size; to s * ceil(H / s), so
        # that torch.export sees the padded side is a multiple of s
        x = F.pad(x, (0, ceil_to(W, s) - W, 0, ceil_to(H, s) - H))
        if self.fast and self.proj_cfg[:2] == (1, 1):
            return self._forward_nhwc(x)
        x = self.proj21(x)
        if self.pos_embed2 is not None:
            x = x + self.tiled_pos_map(x.shape[-2:])
        x = self.act(x)
        if self.norm2 is not None:
            if self.norm_channels_last:
                x = self.norm2(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            else:
                x = self.norm2(x)
        x = self.proj22(x)
        p = self.sub_patch
        h, w = x.shape[-2:]
        x = F.pad(x, (0, ceil_to(w, p) - w, 0, ceil_to(h, p) - h))
        B, c, h, w = x.shape
        hg, wg = h // p, w // p
        # (B, c, hg, p1, wg, p2) -> (B, hg, wg, c, p1, p2): the official
        # 'b c (n1 p1) (n2 p2) -> b (c p1 p2) n1 n2' then flatten(2).T
        x = x.reshape(B, c, hg, p, wg, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(B, hg * wg, c * p * p), (hg, wg)

    def _forward_nhwc(self, x: torch.Tensor
                      ) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """The fast path of :meth:`forward` for a 1x1 ``proj22`` (every
        official variant but ViT-B/32), on the padded input: the stem conv
        runs channels-last, so that the position map, the activation, a
        LayerNorm ``norm2`` and ``proj22`` (one GEMM over the pixels) all
        work on the contiguous (B, H, W, C) memory, without the permuted
        copies of the NCHW path; then the sub-patches are folded into tokens.
        Same values as the NCHW path up to the GEMM's summation order."""
        x = self.proj21(x.contiguous(memory_format=torch.channels_last))
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C), contiguous from oneDNN
        if not x.is_contiguous():
            x = x.contiguous()
        if self.pos_embed2 is not None:
            pos = self.tiled_pos_map(x.shape[1:3]).permute(0, 2, 3, 1)
            # in place without autograd: x is the conv's fresh output
            x = x.add_(pos) if _no_autograd() else x + pos
        x = act_(self.act, x)
        if self.norm2 is not None:
            if self.norm_channels_last:
                x = self.norm2(x)
            else:
                x = self.norm2(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = F.linear(x, self.proj22.weight.flatten(1), self.proj22.bias)
        p = self.sub_patch
        B, h, w, c = x.shape
        x = F.pad(x, (0, 0, 0, ceil_to(w, p) - w, 0, ceil_to(h, p) - h))
        hg, wg = x.shape[1] // p, x.shape[2] // p
        # (B, hg, p1, wg, p2, c) -> (B, hg, wg, c, p1, p2)
        x = x.reshape(B, hg, p, wg, p, c).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(B, hg * wg, c * p * p), (hg, wg)
