"""STViT: Vision Transformer with Super Token Sampling (Huang et al., CVPR 2023).

Paper: https://arxiv.org/abs/2211.11167. Official code: ``hhb072/STViT``
(``models/stvit.py``), classification only.

This backbone gives the official outputs for the official weights and keeps the
official state-dict names (``patch_embed.proj.N``, ``layers.i.blocks.j.*``,
``layers.i.downsample.proj.N``); the classifier tail (``proj``, ``norm``,
``head``) lives in :class:`~swat_mm.models.necks.STViTClsNeck` and mmpretrain's
``LinearClsHead``. ``tools/model_converters/stvit_to_mmpretrain.py`` maps the
names.

Deviations from the official code, none of which changes an output beyond
float rounding:

* The official model unfolds and folds 3x3 super-token neighbourhoods with
  convolutions by a frozen identity kernel, stored in the checkpoints as
  ``attn.unfold.weights`` / ``attn.fold.weights``. Here the same gathering
  and scattering is done without parameters (nine shifted windows of the
  zero-padded map, see below);
  :meth:`StokenAttention._load_from_state_dict` drops those two keys from
  official checkpoints after checking they hold the identity kernel.
* Attention runs through ``F.scaled_dot_product_attention``: the same
  softmax(q k^T * scale) v with no N x N map kept for backward on the fused
  kernels.
* The classifier's memory-efficient Swish is ``nn.SiLU`` (same function and
  gradient).
* Dense prediction: ``out_indices`` returns the stage maps taken before each
  stage's down-sampling; any input size works (the super-token attention pads
  to a multiple of the super-token size and crops back, as the official code).
* Speed (docs/benchmarks.md): the backbone runs channels-last inside (outputs
  are NCHW); 1x1 convolutions are GEMMs over the (B, H, W, C) view
  (:class:`PointwiseConv`, oneDNN with fused bias/GELU on CPU in fp32);
  ``x + dwconv(x)`` is one convolution with 1 added to the kernel centre
  (:class:`~swat_mm.models.layers.ResDWConv`);
  without autograd, residual sums and layer scales are written into the
  branch's fresh output (forward hooks that keep a block's attention or
  MLP output in inference see it with the residual added). Further
  speed-only paths, each tested against the official formulation for
  outputs and gradients (``tests/test_stvit.py``):

  - super tokens: the 3x3 neighbourhood gather and its adjoint scatter
    read/write nine shifted windows of the padded (B, h, w, C) map
    (``F.unfold``/``F.fold`` walk the map channel by channel); in training
    they are autograd functions that are each other's backward, instead of
    autograd through nine windows (nine zero-filled full-size gradients);
  - the affinities are kept as (B, cells, 9, pixels), the transpose of the
    official layout, so the softmax over the 9 super tokens is vectorised
    over the pixels (some 15x faster than along a contiguous axis of 9);
  - attention splits q, k, v on their own axis of the projection, so the
    backward's stack of the three gradients is already the projection's
    contiguous gradient (no further copy);
  - the weight gradient of a 1x1 convolution is computed in the faster of
    the two GEMM orientations for long inputs (stage 1-2 MLPs);
  - training: stochastic depth (a per-sample factor, same random draws as
    ``DropPath``) and the layer scale form one factor, and the residual is
    one ``addcmul`` pass instead of up to three;
  - training on CPU: the attention and MLP branches run only on the
    samples the drop path keeps (the official code computes them for the
    dropped samples as well and multiplies by zero); the draws, outputs
    and gradients are those of the plain formulation, the batch norm before
    the MLP still sees the whole batch. It saves the drop rate's share of
    the branch work (measured on an STViT-L forward and backward: about
    5 % at the default rate 0.1, 16 % at the recipe's 0.6). Not used under
    dropout inside the branch, tracing, compilation, autocast, or on CUDA
    (:mod:`swat_mm.models.layers.drop_path`, shared with SVT and SWAT);
  - training on CPU (fp32), on maps at least 8x the size of the MLP's fc1
    weight (stages 1-2 at 224): the batch norm before the MLP is folded
    into fc1 (:mod:`swat_mm.models.layers.bn_linear`). The statistics are
    those of the whole batch and the running statistics are updated as
    ``norm2(x)`` does, but the normalised map is never written: fc1 runs on
    ``x`` with per-channel scaled weights, and the backward takes the
    norm's reductions from fc1's weight and bias gradients. Not used where
    a channel's ``|mean| / std`` exceeds 8 (the un-centred GEMM would lose
    precision), for SyncBN, or in eval mode. Forward hooks on ``norm2``
    and ``mlp2`` are not called on this path (those on ``mlp2``'s
    submodules after fc1 are);
  - inference on CPU (fp32): the stem's convolutions apply GELU in
    oneDNN's epilogue (hooks on those GELU modules are not called there);
  - inference on CPU runs the stem and the high-resolution stages a few
    images at a time (at most ~8 MiB of MLP hidden map per chunk), so a
    chunk's maps stay in the CPU caches between consecutive layers; the
    outputs are those of the whole batch (every layer is per-image in
    eval mode);
  - inference on CPU runs the conv-MLP of a large map (dense prediction)
    in bands of rows, each with the halo rows of its 3x3 conv (at most
    ~16 MiB of hidden map per band, :attr:`ConvMlp.band_bytes`): same
    outputs, and the hidden map, 4x the block's width, never exists whole
    (STViT-B at 1024x1024: 582 -> 388 MB of working memory, 3 % faster).
"""
from functools import partial
from typing import (Callable, Dict, List, Optional, Sequence, Tuple,
                    Union)

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from swat_mm.registry import MODELS
from ..layers import LayerNorm2d, ResDWConv
from ..layers.bn_linear import (batch_norm_linear, batch_norm_linear_ok,
                                batch_norm_stats)
from ..layers.drop_path import DropPath, add_branch, has_dropout
from ..layers.fast_paths import cpu_fast_path
from ..layers.onednn import OneDNNLinear, onednn_ok
from .base import (IntPair, StagedBackboneMixin, check_heads, check_input,
                   check_stage_lengths, freeze, init_official, parse_arch,
                   per_stage)
from .base import pair as _pair

def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W, C) view; free for a channels-last map."""
    return x.permute(0, 2, 3, 1)


def _nchw(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, C, H, W) view, channels-last in memory."""
    return x.permute(0, 3, 1, 2)


class PointwiseConv(nn.Conv2d):
    """A 1x1 convolution computed as one GEMM over the channels.

    Same parameters and state-dict keys as ``nn.Conv2d(in, out, 1)``. On a
    channels-last map the (B, H, W, C) view is contiguous, so the product
    needs no copy and its output is channels-last again; CPU convolution
    kernels, by contrast, run 1x1 kernels per image (single thread, batch
    < 16) and copy the bias in a separate pass.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W), channels-last; with
        ``gelu`` the (exact, erf) GELU of that."""
        weight = self.weight.flatten(1)
        if onednn_ok(x):
            out = torch.ops.mkldnn._linear_pointwise(
                _nhwc(x), weight, self.bias, 'gelu' if gelu else 'none', [],
                'none' if gelu else '')
            return _nchw(out)
        if onednn_ok(x, train=True):
            out = OneDNNLinear.apply(_nhwc(x).contiguous(), weight,
                                      self.bias)
        else:
            out = F.linear(_nhwc(x), weight, self.bias)
        # GELU on the plain (B, H, W, C) tensor: on the channels-last
        # (B, C, H, W) view of the same memory PyTorch's kernel is slower
        return _nchw(F.gelu(out) if gelu else out)


class ConvMlp(nn.Module):
    """1x1 conv, GELU, residual 3x3 depth-wise conv, 1x1 conv on NCHW maps.

    CPU inference on a large map runs in bands of rows, each with the one
    row above and below that the 3x3 conv needs, so that at most about
    :attr:`band_bytes` of the (4x wider) hidden map exist at once; the
    output is the whole map's (every step is per pixel but the 3x3 conv,
    whose zero padding only the first and last band see).

    Args:
        in_channels: C.
        hidden_channels: width after ``fc1``.
        drop: dropout after the activation and after ``fc2``.
    """

    #: bytes of hidden map per band in CPU inference (None: never banded)
    band_bytes: Optional[int] = 16 << 20

    def __init__(self, in_channels: int, hidden_channels: int,
                 drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = PointwiseConv(in_channels, hidden_channels)
        self.act1 = nn.GELU()
        self.conv = ResDWConv(hidden_channels, 3)
        self.fc2 = PointwiseConv(hidden_channels, in_channels)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        rows = self._band_rows(x)
        if rows:
            return self._forward_bands(x, rows)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if type(self.act1) is nn.GELU and self.act1.approximate == 'none':
            return self._after_act(self.fc1(x, gelu=True))
        return self.forward_hidden(self.fc1(x))

    def forward_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP after ``fc1``: (B, hidden, H, W) -> (B, C, H, W)."""
        if type(self.act1) is nn.GELU:
            # on the plain (B, H, W, C) tensor, as in PointwiseConv
            x = _nchw(F.gelu(_nhwc(x), approximate=self.act1.approximate))
        else:
            x = self.act1(x)
        return self._after_act(x)

    def _after_act(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.conv(self.drop(x))))

    def _band_rows(self, x: torch.Tensor) -> int:
        """Rows per band, or 0 for the whole map at once (training,
        autograd, GPU, tracing, compilation, or a map within the budget).
        """
        if self.training or self.band_bytes is None or \
                torch.is_grad_enabled() or not cpu_fast_path(x) or \
                torch.jit.is_tracing() or torch.compiler.is_compiling():
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
            # with the neighbouring rows (inside the map) for the 3x3 conv
            lo, hi = max(0, top - 1), min(H, bottom + 1)
            band = x[:, :, lo:hi].contiguous(
                memory_format=torch.channels_last)
            y = self._forward(band)
            out[:, :, top:bottom] = y[:, :, top - lo:top - lo + bottom - top]
        return out


class Attention(nn.Module):
    """Multi-head self-attention over all positions of an NCHW map.

    ``qkv`` is a 1x1 conv whose output channels are ordered head by head,
    each head holding its q, k and v (the official layout).

    Args:
        dim: C.
        num_heads: heads; ``dim`` must be divisible by it.
        qkv_bias: bias in ``qkv``.
        qk_scale: overrides ``head_dim ** -0.5``.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after ``proj``.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False,
                 qk_scale: Optional[float] = None, attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads '
                             f'{num_heads}')
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads)**-0.5
        self.qkv = PointwiseConv(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = PointwiseConv(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        B, C, H, W = x.shape
        heads = self.num_heads
        # (B, H, W, 3C) -> 3 x (B, heads, N, head_dim), views only. Split
        # on the q/k/v axis in place: the backward of unbind stacks the
        # three gradients along that axis, which is then directly the
        # contiguous (B, N, heads, 3, head_dim) gradient of the projection
        # (splitting a permuted view would need one more copy).
        qkv = _nhwc(self.qkv(x)).reshape(B, H * W, heads, 3, C // heads)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(3))
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)
        # (B, heads, N, hd) -> (B, H, W, C): the fused kernels already
        # return (B, N, heads, hd) memory, so this is a view there.
        x = _nchw(x.transpose(1, 2).reshape(B, H, W, C))
        return self.proj_drop(self.proj(x))


def _gather3x3(x: torch.Tensor) -> torch.Tensor:
    """(B, h, w, C) -> (B, h*w, 9, C): each position's zero-padded 3x3
    neighbourhood, row-major (``F.unfold``'s order), as nine shifted
    windows of the padded map."""
    B, h, w, C = x.shape
    padded = F.pad(x, (0, 0, 1, 1, 1, 1))
    return torch.stack([padded[:, i:i + h, j:j + w]
                        for i in range(3) for j in range(3)],
                       3).reshape(B, h * w, 9, C)


def _scatter3x3(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, h*w, 9, C) -> (B, h, w, C): the adjoint of :func:`_gather3x3`,
    each neighbour's value added back to the position it came from."""
    B, _, _, C = x.shape
    x = x.reshape(B, h, w, 9, C)
    out = x.new_zeros(B, h + 2, w + 2, C)
    for k in range(9):
        i, j = divmod(k, 3)
        out[:, i:i + h, j:j + w] += x[:, :, :, k]
    return out[:, 1:h + 1, 1:w + 1]


class _Gather3x3(torch.autograd.Function):
    """:func:`_gather3x3` whose backward is :func:`_scatter3x3` (its
    adjoint): autograd through the windows and the stack would build nine
    zero-filled full-size gradients and add them up."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.size = x.shape[1:3]
        return _gather3x3(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _Scatter3x3.apply(grad, *ctx.size)


class _Scatter3x3(torch.autograd.Function):
    """:func:`_scatter3x3` whose backward is :func:`_gather3x3`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return _scatter3x3(x, h, w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _Gather3x3.apply(grad), None, None


def _neighbours3x3(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) channels-last map -> (B, h*w, 9, C): each position's
    zero-padded 3x3 neighbourhood, row-major (``F.unfold``'s order), read
    as nine shifted windows of the (B, h, w, C) view; ``F.unfold`` would
    walk the map channel by channel (slower, and in the transposed
    layout)."""
    if _plain_autograd(x):
        return _gather3x3(_nhwc(x))
    return _Gather3x3.apply(_nhwc(x))


def _fold_neighbours3x3(x: torch.Tensor, size: Tuple[int, int]
                        ) -> torch.Tensor:
    """(B, h*w, 9, C) -> (B, h, w, C): adjoint of :func:`_neighbours3x3`,
    each neighbour's value added back to the position it came from
    (``F.fold``'s sum, in (B, h, w, C) memory)."""
    if _plain_autograd(x):
        return _scatter3x3(x, *size)
    return _Scatter3x3.apply(x, *size)


def _plain_autograd(x: torch.Tensor) -> bool:
    # no gradient to record, or the jit tracer (FLOP counting), which does
    # not record custom autograd functions
    return not (torch.is_grad_enabled() and x.requires_grad) \
        or torch.jit.is_tracing()


class StokenAttention(nn.Module):
    """Super-token attention (STA).

    Pixels are softly assigned to the 3x3 neighbouring super tokens of their
    grid cell (super-token sampling, ``n_iter`` rounds, without gradient
    through the assignment), the super tokens attend to each other (``refine``
    multi-head self-attention), and the refined tokens are mapped back to
    pixels with the same assignment (token upsampling). With a super-token size
    of 1 the block is plain global self-attention over all pixels.

    Args:
        dim: C.
        stoken_size: (h, w) pixels per super token.
        n_iter: rounds of super-token sampling.
        num_heads, qkv_bias, qk_scale, attn_drop, proj_drop: of the refining
            :class:`Attention`.
    """

    def __init__(self, dim: int, stoken_size: IntPair, n_iter: int = 1,
                 num_heads: int = 8, qkv_bias: bool = False,
                 qk_scale: Optional[float] = None, attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        if n_iter < 1:
            raise ValueError(f'n_iter must be >= 1, got {n_iter}')
        self.stoken_size = _pair(stoken_size)
        if min(self.stoken_size) < 1:
            raise ValueError(
                f'stoken_size must be >= 1, got {self.stoken_size}')
        self.n_iter = n_iter
        self.scale = dim**-0.5
        self.stoken_refine = Attention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
            attn_drop=attn_drop, proj_drop=proj_drop)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Official checkpoints store the identity kernels of their conv-based
        # unfold/fold; they carry no learned information, so drop them, but
        # only when they really are that kernel.
        eye = torch.eye(9).reshape(9, 1, 3, 3)
        for name in ('unfold.weights', 'fold.weights'):
            key = prefix + name
            if key in state_dict:
                value = state_dict.pop(key)
                if value.shape != eye.shape or not torch.equal(
                        value.detach().cpu().float(), eye):
                    raise ValueError(
                        f'{key}: expected the frozen 3x3 identity kernel of '
                        'the official STViT, got other values; this is not an '
                        'STViT checkpoint')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), any H and W."""
        if max(self.stoken_size) == 1:
            return self.stoken_refine(x)
        return self._stoken_forward(x)

    def _stoken_forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H0, W0 = x.shape
        h, w = self.stoken_size
        pad_r, pad_b = (w - W0 % w) % w, (h - H0 % h) % h
        if pad_r or pad_b:
            x = F.pad(x, (0, pad_r, 0, pad_b))
        H, W = x.shape[-2:]
        hh, ww = H // h, W // w

        # Zero padding takes part in the initial super tokens, as officially.
        stokens = F.avg_pool2d(x, (h, w))  # (B, C, hh, ww)
        # (B, hh*ww, h*w, C): one gather, reading whole pixels (C
        # contiguous) from a channels-last map.
        pixels = _nhwc(x).reshape(B, hh, h, ww, w, C).transpose(2, 3)
        pixels = pixels.reshape(B, hh * ww, h * w, C)

        # The affinities are kept as (B, hh*ww, 9, h*w), the transpose of
        # the official (..., h*w, 9): the softmax over the 9 super tokens
        # then runs along a strided axis, vectorised over the pixels, which
        # is some 15x faster than a softmax along a contiguous axis of 9.
        with torch.no_grad():
            for idx in range(self.n_iter):
                affinity = (_neighbours3x3(stokens)
                            @ pixels.transpose(-1, -2)) * self.scale
                affinity = affinity.softmax(-2)
                # (B, hh, ww, 1): total affinity gathered by each token
                affinity_sum = _fold_neighbours3x3(
                    affinity.sum(-1, keepdim=True), (hh, ww))
                if idx < self.n_iter - 1:
                    stokens = _nchw(
                        _fold_neighbours3x3(affinity @ pixels, (hh, ww))
                        / (affinity_sum + 1e-12))

        stokens = _nchw(
            _fold_neighbours3x3(affinity @ pixels, (hh, ww))
            / (affinity_sum + 1e-12))
        stokens = self.stoken_refine(stokens)
        # (B, hh*ww, h*w, C): token upsampling with the same affinities,
        # written back as a channels-last map.
        pixels = affinity.transpose(-1, -2) @ _neighbours3x3(stokens)
        pixels = pixels.reshape(B, hh, ww, h, w, C).transpose(2, 3)
        pixels = _nchw(pixels.reshape(B, H, W, C))
        if pad_r or pad_b:
            pixels = pixels[:, :, :H0, :W0]
        return pixels


class StokenAttentionLayer(nn.Module):
    """One STViT block: conditional position encoding (residual 3x3
    depth-wise conv), LayerNorm + super-token attention, BatchNorm + conv-MLP,
    each with a residual and optional layer scale.

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
    """

    def __init__(self, dim: int, stoken_size: IntPair, n_iter: int = 1,
                 num_heads: int = 1, mlp_ratio: float = 4.,
                 qkv_bias: bool = False, qk_scale: Optional[float] = None,
                 drop: float = 0., attn_drop: float = 0.,
                 drop_path: float = 0., layer_scale: bool = False,
                 layer_scale_init_value: float = 1e-5,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')
        self.pos_embed = ResDWConv(dim, 3)
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.attn = StokenAttention(
            dim, stoken_size=stoken_size, n_iter=n_iter, num_heads=num_heads,
            qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
            proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0. \
            else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.mlp2 = ConvMlp(dim, int(dim * mlp_ratio), drop=drop)
        self.layer_scale = layer_scale
        if layer_scale:
            self.gamma_1 = nn.Parameter(
                torch.full((1, dim, 1, 1), float(layer_scale_init_value)))
            self.gamma_2 = nn.Parameter(
                torch.full((1, dim, 1, 1), float(layer_scale_init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        x = self.pos_embed(x)
        x = self._add_branch(x, x, self._attn_branch,
                             self.gamma_1 if self.layer_scale else None)
        gamma_2 = self.gamma_2 if self.layer_scale else None
        if batch_norm_linear_ok(x, self.norm2, self.mlp2.fc1):
            # the batch norm folded into fc1 (CPU training)
            stats = batch_norm_stats(x, self.norm2)
            return self._add_branch(
                x, x, partial(self._folded_mlp_branch, stats), gamma_2,
                branch_takes_rows=True)
        # the batch norm sees the whole batch (its statistics), only the
        # MLP after it is per-sample
        return self._add_branch(x, self.norm2(x), self.mlp2, gamma_2)

    def _attn_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.norm1(x))

    def _folded_mlp_branch(self, stats: Tuple[torch.Tensor, torch.Tensor],
                           x: torch.Tensor,
                           rows: Optional[torch.Tensor]) -> torch.Tensor:
        """``mlp2(norm2(x)[rows])`` with the batch statistics ``stats`` of
        the whole batch (:mod:`~swat_mm.models.layers.bn_linear`)."""
        return self.mlp2.forward_hidden(batch_norm_linear(
            x, self.norm2, self.mlp2.fc1, stats, rows))

    def _branch_is_deterministic(self) -> bool:
        return not has_dropout(self.attn, self.mlp2)

    def _add_branch(self, x: torch.Tensor, inp: torch.Tensor,
                    branch: Callable[..., torch.Tensor],
                    gamma: Optional[torch.Tensor],
                    branch_takes_rows: bool = False) -> torch.Tensor:
        """``x + drop_path(gamma * branch(inp))`` for a per-sample
        ``branch``, which runs on the samples the drop path keeps only in
        CPU training (:func:`~swat_mm.models.layers.drop_path.add_branch`).
        """
        return add_branch(x, inp, branch, self.drop_path, gamma,
                          per_sample=self._branch_is_deterministic,
                          branch_is_fresh=True,
                          branch_takes_rows=branch_takes_rows)


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
        if not onednn_ok(x):
            return self.proj(x)
        # Inference: each convolution with its GELU in oneDNN's epilogue
        # (one pass over the map fewer; the stem's maps are the largest).
        layers = list(self.proj)
        for conv, act, norm in zip(layers[0::3], layers[1::3],
                                   layers[2::3]):
            if type(act) is nn.GELU and act.approximate == 'none':
                x = torch.ops.mkldnn._convolution_pointwise(
                    x, conv.weight, conv.bias, conv.padding, conv.stride,
                    conv.dilation, conv.groups, 'gelu', [], 'none')
            else:
                x = act(conv(x))
            x = norm(x)
        return x


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
                    layer_scale_init_value=ls_init, norm_cfg=norm_cfg)
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

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is not None:
            return
        # The official init: LayerNorm to (1, 0), convs and BatchNorm keep
        # PyTorch's defaults.
        init_official(self)

    # Inference runs the stem and the early, high-resolution stages on a few
    # images at a time, so that one chunk's widest map (the MLP's hidden
    # layer) stays in the CPU caches between the 1x1 convolution, the
    # depth-wise convolution and the next 1x1 convolution instead of
    # making a round trip through memory for each of them.
    _CHUNK_BYTES = 8 << 20  # bytes of the hidden map per chunk

    def _inference_chunks(self, x: torch.Tensor) -> List[Optional[int]]:
        """Images per chunk for each stage (None: the whole batch)."""
        if self.training or torch.is_grad_enabled() or \
                not cpu_fast_path(x):
            return [None] * self.num_stages
        B, _, H, W = x.shape
        # stride-2 3x3 convolutions with padding 1: twice in the stem,
        # once per down-sampling
        H, W = -(-H // 4), -(-W // 4)
        chunks: List[Optional[int]] = []
        for layer in self.layers:
            hidden = layer.blocks[0].mlp2.fc1.out_channels if len(
                layer.blocks) else 0
            per_image = H * W * hidden * x.element_size()
            chunk = max(1, self._CHUNK_BYTES // max(per_image, 1))
            # as many chunks as needed, evened out (8 images by at most 5
            # per chunk: 4 + 4, not 5 + 3)
            num = -(-B // chunk)
            chunks.append(-(-B // num) if num > 1 else None)
            H, W = -(-H // 2), -(-W // 2)
        return chunks

    def _run_stages(self, x: torch.Tensor, start: int, stop: int,
                    last: int) -> Tuple[Optional[torch.Tensor],
                                        List[torch.Tensor]]:
        """Stages ``start`` to ``stop - 1`` (the stem first when ``start``
        is 0); returns the input of stage ``stop`` (None after ``last``)
        and the requested stage maps."""
        outs = []
        if start == 0:
            x = self.pos_drop(self.patch_embed(x))
        for i in range(start, stop):
            layer = self.layers[i]
            for blk in layer.blocks:
                x = self._run_block(blk, x)
            if i in self.out_indices:
                # the usual NCHW layout for necks and heads
                outs.append(x.contiguous())
            if i == last:
                # Later stages would only cost time (and leave DDP with
                # parameters that get no gradient).
                return None, outs
            x = layer.downsample(x)
        return x, outs

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, in_channels, H, W) -> tuple of (B, C_i, H_i, W_i)."""
        check_input(x, self.in_channels, 'STViT')
        # Channels-last throughout: LayerNorm over C and the 1x1 convs work
        # on the contiguous (B, H, W, C) view, and CPU depth-wise
        # convolutions are faster in it.
        x = x.contiguous(memory_format=torch.channels_last)
        chunks = self._inference_chunks(x)
        last = max(self.out_indices)
        outs: List[torch.Tensor] = []
        start = 0
        while start <= last:
            # consecutive stages with the same chunking run chunk by chunk
            stop = start + 1
            while stop <= last and chunks[stop] == chunks[start]:
                stop += 1
            if chunks[start] is None:
                x, stage_outs = self._run_stages(x, start, stop, last)
            else:
                pieces = [self._run_stages(part, start, stop, last)
                          for part in x.split(chunks[start])]
                x = None if pieces[0][0] is None else torch.cat(
                    [p[0] for p in pieces])
                stage_outs = [torch.cat(o)
                              for o in zip(*(p[1] for p in pieces))]
            outs += stage_outs
            start = stop
        return tuple(outs)
