"""SWAT-Swin: Swin Transformer with structure-aware tokenization and mixing
(Kahatapitiya & Ryoo, "SWAT: Spatial Structure Within and Among Tokens",
IJCAI 2023, https://arxiv.org/abs/2111.13677).

Official code: ``kkahatapitiya/SWAT``, a modified timm 0.4
(``timm/models/swin_transformer.py``, the Swin-T tokenizer of
``timm/models/layers/patch_embed.py``, ``ConvMlpGeneral`` of
``timm/models/layers/mlp.py``), classification at 224 only.

What SWAT changes in Swin-T:

* Tokenizer: 2x2 stride-2 conv to 128 channels, GELU, LayerNorm over
  channels, 1x1 conv to c = 24 channels; every 2x2 cell of that map becomes a
  96-channel token that keeps its (24, 2, 2) layout; LayerNorm over tokens.
* Token mixing: in the non-shifted blocks the window attention's qkv and
  output projections are the average of the usual linear map
  (``qkv_linear`` / ``proj_linear``) and a 2D conv over each token viewed as
  a (c, h, w) image (``qkv`` / ``proj``); the shifted blocks keep plain
  linear projections (``qkv`` / ``proj``).
* Channel mixing: the MLP is 1x1 conv, GELU, k x k depth-wise conv over the
  token grid, GELU, 1x1 conv.
* Patch merging: every token is unfolded back to its (c, h, w) pixels, the
  whole pixel map is LayerNorm-ed over c and convolved (stride 1) to c / 2
  channels, and regrouped into tokens of (c / 2, 2h, 2w): the pixel map keeps
  its resolution through the network while tokens halve per side and double
  in width.

The official code keys these settings by embedding width (attention conv)
or by input resolution at 224 (MLP kernel, merging conv); here they are
per-stage arch settings: ``attn_conv`` (c, h, w, k), ``mlp_dw_kernel``,
``merge_conv`` (c, h, w, k), and also ``window_size`` and ``shift`` per stage
(at 224 the official code gives the last stage, whose 7x7 map is a single
window, neither a shift nor plain attention: all its blocks are conv
attention).

State-dict names are the official ones (``patch_embed.*``,
``layers.i.blocks.j.*``, ``layers.i.downsample.*``, ``norm``); the
classifier's ``head`` becomes mmpretrain's ``LinearClsHead`` after a
``GlobalAveragePooling`` neck (see :mod:`swat_mm.converters.swat_swin`).

Deviations from the official code, none of which changes an output at the
official 224 input beyond float rounding:

* Any input size. The image is zero-padded at the bottom/right to a multiple
  of 4 (mmcv's ``AdaptivePadding(padding='corner')``, as mmpretrain's Swin
  patch embedding); each block zero-pads its normalised map at the
  bottom/right to a multiple of the window and crops back (as mmpretrain's /
  mmdet's Swin: padded tokens take part in non-shifted windows; shifted
  windows use the official mask, computed for the padded map); a map that
  fits in one window is not shifted (the official code turns the shift off
  there too). Patch merging of a map with an odd number of token rows or
  columns zero-pads the merged pixel map at the bottom/right (mmpretrain's
  Swin pads odd maps before merging likewise), after the convolution, so
  the real pixels see exactly the official convolution.
* The ``attn_mask`` buffers of the official shifted blocks (fixed to the
  224 layout) are computed per input; official checkpoints' ``attn_mask``
  entries are checked to be such 0 / -100 masks and dropped.
* Attention runs through ``F.scaled_dot_product_attention`` with the
  relative position bias (and shift mask) as additive mask.
* The fast layers of SWAT ViT (fused conv-attention projections in the
  non-shifted blocks, channels-last conv MLPs and tokenizer; see
  :mod:`swat_mm.models.layers.swat_mixing`), chosen by the one switch;
  tested against ``fast_layers(False)`` on a padded odd-sized input.
* Dense prediction: ``out_indices`` returns NCHW stage maps taken before the
  stage's merging, each through its own LayerNorm (``norm0``.. for inner
  stages; the last stage uses the official final ``norm``), as mmpretrain's
  SwinTransformer.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from swat_mm.registry import MODELS
from ..layers import SWATAttention, SWATConvMlp, SWATTokenizer
from ..layers.drop_path import DropPath
from ..layers.shape import ceil_to
from .base import (StagedBackboneMixin, check_input, freeze, init_official,
                   parse_arch)

ConvView = Tuple[int, int, int, int]  # (c, h, w, kernel)


class _RelativePositionBias:
    """The official Swin relative position bias, mixed into both window
    attentions: ``relative_position_bias_table`` ((2Wh-1)(2Ww-1), heads) and
    the persistent ``relative_position_index`` buffer (in official
    checkpoints too)."""

    def _init_relative_position(self, window_size: Tuple[int, int],
                                num_heads: int) -> None:
        self.window_size = window_size
        Wh, Ww = window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * Wh - 1) * (2 * Ww - 1), num_heads))
        coords = torch.stack(torch.meshgrid(
            torch.arange(Wh), torch.arange(Ww), indexing='ij')).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
        index = (rel[..., 0] + Wh - 1) * (2 * Ww - 1) + rel[..., 1] + Ww - 1
        self.register_buffer('relative_position_index', index)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)

    def _check_relative_index(self, state_dict, prefix) -> None:
        key = prefix + 'relative_position_index'
        if key in state_dict and not torch.equal(
                state_dict[key].cpu(), self.relative_position_index.cpu()):
            raise ValueError(
                f'{key}: the checkpoint holds another relative position '
                f'index (shape {tuple(state_dict[key].shape)}) than a '
                f'{self.window_size} window; wrong window_size?')

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                mask: Optional[torch.Tensor], dropout: float) -> torch.Tensor:
        """q, k, v: (B*nW, heads, N, head_dim); mask: (nW, N, N) of 0 / -100
        or None. Returns softmax(q k^T * scale + bias + mask) v, shaped
        like q."""
        B_, heads, N, _ = q.shape
        bias = self.relative_position_bias_table[
            self.relative_position_index.reshape(-1)].reshape(
                N, N, -1).permute(2, 0, 1)  # (heads, N, N)
        if mask is None:
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias.unsqueeze(0).to(q.dtype),
                dropout_p=dropout, scale=self.scale)
            # in (B*nW, N, heads, head_dim) memory, by a copy: the callers
            # merge the heads with a reshape, which torch.export records as
            # a view where the example's layout allows one; SDPA's kernel
            # writes this layout, but the decomposition that the dynamo ONNX
            # exporter runs writes (B*nW, heads, N, head_dim), where the
            # view fails
            return _copied(x.transpose(1, 2)).transpose(1, 2)
        nW = mask.shape[0]
        bias = (bias.unsqueeze(0) + mask.unsqueeze(1)).reshape(
            nW * heads, N, N)
        # the windows of one image share a batch row, so the (nW*heads)
        # masks broadcast over the images
        q, k, v = (t.reshape(B_ // nW, nW * heads, N, -1)
                   for t in (q, k, v))
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.unsqueeze(0).to(q.dtype),
            dropout_p=dropout, scale=self.scale)
        return x.reshape(B_, heads, N, -1)


class WindowAttention(_RelativePositionBias, nn.Module):
    """Window multi-head self-attention with a relative position bias and
    plain linear projections ``qkv`` / ``proj`` (the shifted blocks).

    Args:
        dim: C.
        window_size: (Wh, Ww).
        num_heads: heads; must divide ``dim``.
        qkv_bias: bias in ``qkv``.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, window_size: Tuple[int, int],
                 num_heads: int, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self._init_relative_position(window_size, num_heads)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._check_relative_index(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B*nW, N, C) windows; mask: (nW, N, N) or None ->
        (B*nW, N, C)."""
        B_, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(
            2, 0, 3, 1, 4)
        x = self._attend(q, k, v, mask,
                         self.attn_drop if self.training else 0.)
        x = self.proj(x.transpose(1, 2).reshape(B_, N, C))
        return self.proj_drop(x)


class ConvWindowAttention(_RelativePositionBias, SWATAttention):
    """SWAT window attention of the non-shifted blocks:
    :class:`~swat_mm.models.layers.SWATAttention` (qkv and output
    projections averaging a linear map, ``qkv_linear`` / ``proj_linear``,
    and a conv over each token viewed as a (c, h, w) image, ``qkv`` /
    ``proj``) on windows, with Swin's relative position bias.

    Args:
        dim: C.
        window_size: (Wh, Ww).
        num_heads: heads; must divide ``dim``.
        conv_view: (c, h, w, k) with ``c * h * w == dim``.
        qkv_bias: bias in ``qkv_linear`` and both convs (officially).
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, window_size: Tuple[int, int],
                 num_heads: int, conv_view: ConvView, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.) -> None:
        c, h, w, k = (int(v) for v in conv_view)
        if c * h * w != dim:
            raise ValueError(f'attention conv view (c, h, w) = {(c, h, w)} '
                             f'does not hold {dim} channels')
        super().__init__(c, h, w, k, num_heads, qkv_bias=qkv_bias,
                         attn_drop=attn_drop, proj_drop=proj_drop)
        self._init_relative_position(window_size, num_heads)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._check_relative_index(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor,  # type: ignore[override]
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B*nW, N, C) windows; mask: (nW, N, N) or None ->
        (B*nW, N, C)."""
        q, k, v = self.project_qkv(x)
        x = self._attend(q, k, v, mask,
                         self.attn_drop if self.training else 0.)
        return self.project_out(x)


def _copied(x: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of a permuted ``x``, to merge its dimensions.

    For ``torch.export`` with symbolic sizes (the dynamo ONNX exporter),
    the window helpers name every size of a reshape (no -1) and merge the
    dimensions of such a copy only: ``x.contiguous()``, or a reshape of the
    permuted view, first asks whether ``x`` is contiguous already, which
    depends on whether a window count is 1, and torch.export fixes the
    answer to the example's, so the export would hold for some sizes only.
    Eager merges of a permuted tensor copy it anyway."""
    return x.clone(memory_format=torch.contiguous_format)


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ws -> (B*nW, ws*ws, C)."""
    B, H, W, C = x.shape
    nh, nw = H // ws, W // ws
    x = x.reshape(B, nh, ws, nw, ws, C).permute(0, 1, 3, 2, 4, 5)
    return _copied(x).reshape(B * nh * nw, ws * ws, C)


def window_reverse(windows: torch.Tensor, ws: int, B: int, H: int,
                   W: int) -> torch.Tensor:
    """(B*nW, ws*ws, C) -> (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.reshape(B, H // ws, W // ws, ws, ws, C)
    return _copied(x.permute(0, 1, 3, 2, 4, 5)).reshape(B, H, W, C)


def shift_window_mask(H: int, W: int, ws: int, shift: int,
                      device: torch.device) -> torch.Tensor:
    """The official SW-MSA mask for an (H, W) map rolled by ``shift``:
    (nW, ws*ws, ws*ws) with 0 within a region and -100 across regions. The
    regions are the official ones: per side, the map before the last window,
    the last window before the rolled-in strip and that strip, labelled row
    region * 3 + column region. Written with ``arange`` of the map's sides
    so that a traced graph computes it for the size it is given."""
    def regions(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device)
        return (i >= n - ws).long() + (i >= n - shift).long()

    label = regions(H)[:, None] * 3 + regions(W)[None, :]
    win = window_partition(label[None, :, :, None], ws).squeeze(-1)
    cross = win.unsqueeze(1) != win.unsqueeze(2)  # (nW, ws*ws, ws*ws)
    return cross.float() * -100.


def roll_rows_cols(x: torch.Tensor, shift: Any) -> torch.Tensor:
    """``torch.roll(x, (shift, shift), dims=(1, 2))`` of (B, H, W, C), as
    index selects, so that ``shift`` may be a tensor: a traced graph keeps
    the shift as data of the input size rather than a constant."""
    H, W = x.shape[1], x.shape[2]
    # sizes as tensors: exporters cannot take a symbolic size as the scalar
    # operand of a remainder
    rows = torch.arange(H, device=x.device)
    cols = torch.arange(W, device=x.device)
    rows = torch.remainder(rows - shift, rows.new_full((), H))
    cols = torch.remainder(cols - shift, cols.new_full((), W))
    return x.index_select(1, rows).index_select(2, cols)


class SwinBlock(nn.Module):
    """One SWAT-Swin block: LN + (shifted) window attention, LN + conv MLP,
    each with a residual and stochastic depth.

    Args:
        dim: C.
        num_heads: attention heads.
        window_size: window side.
        shift: shifted windows (plain linear attention) or not (SWAT conv
            attention with ``attn_conv``).
        attn_conv: (c, h, w, k) of the conv attention.
        mlp_ratio: MLP hidden width over C.
        mlp_dw_kernel: the MLP's depth-wise kernel.
        qkv_bias, drop, attn_drop, drop_path: as in Swin.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int,
                 shift: bool, attn_conv: ConvView, mlp_ratio: float = 4.,
                 mlp_dw_kernel: int = 5, qkv_bias: bool = True,
                 drop: float = 0., attn_drop: float = 0.,
                 drop_path: float = 0.) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.norm1 = nn.LayerNorm(dim)
        ws = (window_size, window_size)
        if self.shift_size > 0:
            self.attn = WindowAttention(dim, ws, num_heads, qkv_bias,
                                        attn_drop, drop)
        else:
            self.attn = ConvWindowAttention(dim, ws, num_heads, attn_conv,
                                            qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0. \
            else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SWATConvMlp(dim, int(dim * mlp_ratio),
                               kernel_size=mlp_dw_kernel, drop=drop)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Official shifted blocks store their mask for the 224 layout; it is
        # computed per input here. Drop it, but only if it is such a mask.
        key = prefix + 'attn_mask'
        if key in state_dict:
            mask = state_dict.pop(key)
            if mask.dim() != 3 or not bool(((mask == 0) |
                                             (mask == -100)).all()):
                raise ValueError(f'{key}: expected an official 0/-100 '
                                 'shifted-window mask')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C), any H and W."""
        x = x + self.drop_path(self._attn_branch(x))
        return x + self.drop_path(self.mlp(
            self.norm2(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1))

    def _attn_branch(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C): norm1 and (shifted) window
        attention."""
        B, H, W, C = x.shape
        ws = self.window_size
        x = self.norm1(x)
        Hp, Wp = ceil_to(H, ws), ceil_to(W, ws)
        x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
        mask = None
        if self.shift_size:
            # A map inside one window is not shifted (as the official code).
            # Written as data, not a Python branch on the size: under
            # tracing the sizes are tensors and the graph keeps the rule.
            # Long, not bool: TorchScript folds ``shift * 1`` to a bool.
            on = ((torch.arange(H, device=x.device) >= ws).any()
                  | (torch.arange(W, device=x.device) >= ws).any()).long()
            shift = self.shift_size * on
            x = roll_rows_cols(x, -shift)
            mask = shift_window_mask(Hp, Wp, ws, self.shift_size,
                                     x.device) * on
        x = self.attn(window_partition(x, ws), mask=mask)
        x = window_reverse(x, ws, B, Hp, Wp)
        if self.shift_size:
            x = roll_rows_cols(x, shift)
        # cropped by a negative pad, not a slice: torch.export cannot prove
        # a slice's H <= Hp for symbolic sizes, and specialises the export
        return F.pad(x, (0, 0, 0, W - Wp, 0, H - Hp))


class PatchMerging(nn.Module):
    """SWAT patch merging: tokens (c, h, w) -> pixel map, LayerNorm over c
    (``norm``), k x k conv to c / 2 (``reduction``, stride 1, no bias),
    regrouped into tokens of (c / 2, 2h, 2w) on a grid halved per side.

    Args:
        dim: C = c * h * w.
        merge_conv: (c, h, w, k).
    """

    def __init__(self, dim: int, merge_conv: ConvView) -> None:
        super().__init__()
        c, h, w, k = (int(v) for v in merge_conv)
        if c * h * w != dim or c % 2:
            raise ValueError(f'merge conv view (c, h, w) = {(c, h, w)} must '
                             f'hold {dim} channels with an even c')
        self.view = (c, h, w)
        self.out_dims = 2 * dim
        self.norm = nn.LayerNorm(c)
        self.reduction = nn.Conv2d(c, c // 2, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C)."""
        B, H, W, _ = x.shape
        c, h, w = self.view
        x = x.reshape(B, H, W, c, h, w).permute(0, 1, 4, 2, 5, 3)
        x = self.norm(x.reshape(B, H * h, W * w, c))
        x = self.reduction(x.permute(0, 3, 1, 2))  # (B, c/2, H*h, W*w)
        # padded always (by zero where the side is even), so that a traced
        # or exported graph pads at every input size
        x = F.pad(x, (0, (W % 2) * w, 0, (H % 2) * h))
        H2, W2 = (H + 1) // 2, (W + 1) // 2
        x = x.reshape(B, c // 2, H2, 2 * h, W2, 2 * w)
        x = x.permute(0, 2, 4, 1, 3, 5)
        return x.reshape(B, H2, W2, self.out_dims)


class SWATSwinPatchEmbed(SWATTokenizer):
    """The Swin variant of the SWAT tokenizer: :class:`SWATTokenizer` with
    LayerNorm over channels, followed by LayerNorm over each token
    (``norm``), returning a (B, Hg, Wg, c*p*p) channels-last grid."""

    def __init__(self, in_channels: int = 3, stem_channels: int = 128,
                 stem_kernel: int = 2, stem_stride: int = 2,
                 out_channels: int = 24, sub_patch: int = 2) -> None:
        super().__init__(
            in_channels=in_channels, stem_channels=stem_channels,
            out_channels=out_channels, sub_patch=sub_patch,
            stem_kernel=stem_kernel, stem_stride=stem_stride, stem_padding=0,
            proj_kernel=1, proj_stride=1, norm_cfg=dict(type='LN'))
        self.norm = nn.LayerNorm(self.embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore
        """(B, in, H, W) -> (B, ceil(H/s), ceil(W/s), C), s = token stride."""
        tokens, (hg, wg) = super().forward(x)
        return self.norm(tokens).reshape(x.shape[0], hg, wg, -1)


class BasicLayer(nn.Module):
    """A stage: ``blocks`` and the ``downsample`` to the next stage (None for
    the last), as in the official module tree."""

    def __init__(self, blocks: Sequence[nn.Module],
                 downsample: Optional[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


_SWIN_T_TABLES = dict(
    window_size=[7, 7, 7, 7],
    # at 224 the last stage's 7x7 map is one window: no shift, and the
    # official code then builds conv attention in all its blocks
    shift=[True, True, True, False],
    attn_conv=[(24, 2, 2, 1), (12, 4, 4, 1), (6, 8, 8, 3), (3, 16, 16, 5)],
    mlp_dw_kernel=[5, 5, 5, 3],
    merge_conv=[(24, 2, 2, 3), (12, 4, 4, 5), (6, 8, 8, 9)],
    tokenizer=dict(stem_channels=128, stem_kernel=2, stem_stride=2,
                   out_channels=24, sub_patch=2),
    mlp_ratio=4.,
)


@MODELS.register_module()
class SWATSwin(StagedBackboneMixin, BaseModule):
    """SWAT-Swin backbone.

    Args:
        arch: ``'tiny'`` / ``'t'`` (Swin-T depths 2, 2, 6, 2) or ``'small'`` /
            ``'s'`` (2, 2, 18, 2), both with the official Swin-T SWAT tables,
            or a dict with ``depths`` and ``num_heads`` (one entry per stage)
            and optionally (defaults: the Swin-T values)

            - ``tokenizer``: dict of ``stem_channels``, ``stem_kernel``,
              ``stem_stride``, ``out_channels`` (c), ``sub_patch`` (p); stage
              widths are ``c * p * p * 2**i``;
            - ``window_size``: per stage;
            - ``shift``: per stage, shifted windows in the odd blocks; a
              stage without shift has SWAT conv attention in every block;
            - ``attn_conv``: per stage (c, h, w, k), c * h * w = stage width;
            - ``mlp_dw_kernel``: per stage;
            - ``merge_conv``: per stage but the last, (c, h, w, k), c * h * w
              = stage width, c even;
            - ``mlp_ratio``: MLP hidden width over the stage width (4).
        in_channels: image channels.
        qkv_bias: bias in the qkv projections and, as officially, in the
            conv attention's output conv.
        drop_rate: dropout after the tokenizer and the projections, in
            [0, 1).
        attn_drop_rate: dropout on the attention weights, in [0, 1).
        drop_path_rate: stochastic depth, linear over all blocks from 0 to
            this rate, in [0, 1) (official class default 0.1; the official
            ImageNet recipe uses 0).
        out_indices: stages whose maps (before the stage's merging, each
            through its own LayerNorm) are returned; negative from the end;
            unique and increasing once normalised (``(3, 0)`` or ``(3, 3)``
            are refused).
        frozen_stages: freeze the tokenizer (0) and stages ``<
            frozen_stages`` with their merging and output norms; -1 freezes
            nothing.
        norm_eval: keep BatchNorm layers in eval mode while training (the
            model has LayerNorms only; accepted for config compatibility).
        with_cp: gradient checkpointing per block.
        init_cfg: mmengine init config.

    ``forward`` returns a tuple of (B, C_i, H_i, W_i) maps, one per
    ``out_indices`` in their (increasing) order, at strides 4, 8, 16, 32
    (for the default tokenizer), ``H_i = ceil(H / 2**(i + 2))``; any input
    size.

    Raises:
        ValueError: a bad arch, ``out_indices``, ``frozen_stages`` or drop
            rate, naming the fix.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], dict(
            depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
            **_SWIN_T_TABLES)),
        **dict.fromkeys(['s', 'small'], dict(
            depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24],
            **_SWIN_T_TABLES)),
    }
    _required_keys = {'depths', 'num_heads'}
    _optional_keys = {'tokenizer', 'window_size', 'shift', 'attn_conv',
                      'mlp_dw_kernel', 'merge_conv', 'mlp_ratio'}
    _tokenizer_keys = set(_SWIN_T_TABLES['tokenizer'])

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = arch = self._parse_arch(arch)
        depths = arch['depths']
        num_stages = len(depths)
        self.num_stages = num_stages
        self.in_channels = in_channels

        self._set_stage_options(
            out_indices, frozen_stages, norm_eval, with_cp, num_stages,
            rates=dict(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                       drop_path_rate=drop_path_rate))

        self.patch_embed = SWATSwinPatchEmbed(in_channels, **arch['tokenizer'])
        dim0 = self.patch_embed.embed_dims
        self.embed_dims = [dim0 * 2**i for i in range(num_stages)]
        self.pos_drop = nn.Dropout(drop_rate)

        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i in range(num_stages):
            first = sum(depths[:i])
            blocks = [
                SwinBlock(
                    self.embed_dims[i], arch['num_heads'][i],
                    arch['window_size'][i],
                    shift=arch['shift'][i] and j % 2 == 1,
                    attn_conv=arch['attn_conv'][i],
                    mlp_ratio=arch['mlp_ratio'],
                    mlp_dw_kernel=arch['mlp_dw_kernel'][i],
                    qkv_bias=qkv_bias, drop=drop_rate,
                    attn_drop=attn_drop_rate, drop_path=dpr[first + j])
                for j in range(depths[i])
            ]
            downsample = PatchMerging(self.embed_dims[i],
                                      arch['merge_conv'][i]) \
                if i < num_stages - 1 else None
            self.layers.append(BasicLayer(blocks, downsample))

        # the last stage's norm is the official final ``norm``
        for i in self.out_indices:
            self.add_module(self._norm_name(i),
                            nn.LayerNorm(self.embed_dims[i]))
        self._freeze_stages()

    def _norm_name(self, i: int) -> str:
        return 'norm' if i == self.num_stages - 1 else f'norm{i}'

    def _pretrained_new_keys(self) -> List[str]:
        """The inner stages' output norms (``norm0``..): dense prediction
        adds them, so no ImageNet checkpoint has them; a ``Pretrained``
        init leaves them at LayerNorm's (1, 0)."""
        return [f'{self._norm_name(i)}.{p}' for i in self.out_indices
                if i != self.num_stages - 1 for p in ('weight', 'bias')]

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        settings = cls._copy(parse_arch('SWATSwin', arch, cls.arch_zoo,
                                        cls._required_keys,
                                        cls._optional_keys))
        if isinstance(arch, str):
            return settings
        out = cls._copy(_SWIN_T_TABLES)
        out.update(settings)
        if not out['mlp_ratio'] > 0:
            raise ValueError('Custom SWATSwin arch: mlp_ratio must be > 0, '
                             f'got {out["mlp_ratio"]}')
        tok = out['tokenizer']
        bad = set(tok) - cls._tokenizer_keys
        if bad:
            raise ValueError(f'Custom SWATSwin arch: unknown tokenizer keys '
                             f'{sorted(bad)}; allowed: '
                             f'{sorted(cls._tokenizer_keys)}')
        out['tokenizer'] = dict(_SWIN_T_TABLES['tokenizer'], **tok)
        n = len(out['depths'])
        lengths = {k: len(out[k]) for k in ('depths', 'num_heads',
                                            'window_size', 'shift',
                                            'attn_conv', 'mlp_dw_kernel')}
        if len(set(lengths.values())) != 1 or len(out['merge_conv']) != n - 1:
            raise ValueError(
                'Custom SWATSwin arch: per-stage lists differ in length '
                f'(merge_conv needs one entry fewer): {lengths}, merge_conv '
                f'{len(out["merge_conv"])}; unspecified lists default to the '
                'four Swin-T stages')
        tok = out['tokenizer']
        dim = tok['out_channels'] * tok['sub_patch']**2
        for i in range(n):
            if dim % out['num_heads'][i]:
                raise ValueError(f'Custom SWATSwin arch: stage {i} width '
                                 f'{dim} is not divisible by num_heads '
                                 f'{out["num_heads"][i]}')
            views = [('attn_conv', out['attn_conv'][i])]
            if i < n - 1:
                views.append(('merge_conv', out['merge_conv'][i]))
            for name, view in views:
                if len(view) != 4 or math.prod(view[:3]) != dim or \
                        view[3] % 2 == 0:
                    raise ValueError(
                        f'Custom SWATSwin arch: {name}[{i}] = {tuple(view)} '
                        f'must be (c, h, w, k) with c*h*w = stage width '
                        f'{dim} and an odd k')
            if i < n - 1 and out['merge_conv'][i][0] % 2:
                raise ValueError(f'Custom SWATSwin arch: merge_conv[{i}] '
                                 'needs an even c (merging halves it)')
            if out['mlp_dw_kernel'][i] % 2 == 0:
                raise ValueError(f'Custom SWATSwin arch: mlp_dw_kernel[{i}] '
                                 'must be odd')
            dim *= 2
        return out

    @staticmethod
    def _copy(settings: dict) -> dict:
        """A copy with lists for sequences and tuples for (c, h, w, k)."""
        out = {}
        for k, v in settings.items():
            if isinstance(v, dict):
                out[k] = dict(v)
            elif isinstance(v, (list, tuple)):
                out[k] = [tuple(e) if isinstance(e, (list, tuple)) else e
                          for e in v]
            else:
                out[k] = v
        return out

    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
        for i in range(max(self.frozen_stages, 0)):
            frozen.append(self.layers[i])
            if i in self.out_indices:
                frozen.append(getattr(self, self._norm_name(i)))
        freeze(frozen)

    def _layer_depth_groups(self) -> List[Tuple[str, ...]]:
        """The tokenizer, every block (a stage's last with the stage's
        output norm and the patch merging after it), and the final norm."""
        groups: List[Tuple[str, ...]] = [('patch_embed', )]
        last = self.num_stages - 1
        for i, layer in enumerate(self.layers):
            for j in range(len(layer.blocks)):
                groups.append((f'layers.{i}.blocks.{j}', ))
            if i < last:
                groups[-1] += (f'layers.{i}.downsample', self._norm_name(i))
        return groups + [(self._norm_name(last), )]

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is not None:
            return
        # The official (timm ViT) init: linear layers truncated normal
        # (std .02) with zero bias, LayerNorm (1, 0), convs PyTorch's default;
        # relative position tables are drawn at construction.
        init_official(
            self, linear=lambda m: nn.init.trunc_normal_(m.weight, std=.02))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, in_channels, H, W) -> tuple of (B, C_i, H_i, W_i)."""
        check_input(x, self.in_channels, 'SWATSwin')
        x = self.pos_drop(self.patch_embed(x))  # (B, H, W, C)
        outs = []
        last = max(self.out_indices)
        for i, layer in enumerate(self.layers):
            for blk in layer.blocks:
                x = self._run_block(blk, x)
            if i in self.out_indices:
                out = getattr(self, self._norm_name(i))(x)
                outs.append(out.permute(0, 3, 1, 2).contiguous())
            if i == last:
                # later stages would only cost time (and leave DDP with
                # parameters that get no gradient)
                break
            x = layer.downsample(x)
        return tuple(outs)
