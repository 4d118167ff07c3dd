"""SWAT structure-aware mixing (Kahatapitiya & Ryoo, IJCAI 2023).

Official code: ``kkahatapitiya/SWAT`` (``timm/models/layers/mlp.py``:
``ConvMlpGeneral``; ``vision_transformer.py`` / ``swin_transformer.py``:
``ConvAttention`` / ``WindowAttention``; ``mlp_mixer.py``:
``MixerBlockConv``, ``ResBlockConv``).

A token of ``c * h * w`` channels holds a c x h x w map (see
:class:`~swat_mm.models.layers.SWATTokenizer`); its channels are ordered
``(c, h, w)``. Every layer here takes its layout as explicit ``(c, h, w)``
and kernel ``k`` arguments; nothing is looked up by channel count or
resolution.

Layout helpers (pure reshapes, no parameters):

* :func:`tokens_to_layout` / :func:`layout_to_tokens`: each token as its own
  (c, h, w) map, ``(B, N, c*h*w) <-> (B*N, c, h, w)``;
* :func:`tokens_to_subpatches` / :func:`subpatches_to_tokens`: the tokens as
  channels of c sub-patch maps, ``(B, N, c*h*w) <-> (B*c, N, h, w)`` (the
  token mixing of Mixer / ResMLP);
* :func:`tokens_to_map` / :func:`map_to_tokens`: the token grid as an NCHW
  map, ``(B, N, C) <-> (B, C, H, W)`` (the conv MLPs' k x k conv).

Fast formulations (same parameters and state-dict keys), chosen by the one
switch (:mod:`swat_mm.models.layers.config`) when a layer is built and kept
as ``self.fast``; ``fast_layers(False)`` builds the reference (official)
formulation, on which the model-zoo FLOPs are counted:

* **Per-token conv as a matrix.** A k x k conv over a token's (c, h, w) map
  is a linear map of the token, ``R^{c*h*w} -> R^{c_out*h*w}``;
  :func:`token_conv_matrix` builds its matrix from the conv weight (each
  entry is one kernel weight or zero, so the matrix is exact), and
  :class:`SWATAttention` then computes ``(linear(x) + conv(x)) / 2`` as one
  GEMM with the averaged matrix and bias: no per-token convolutions (which
  run at a few GFLOP/s: 64-pixel images with 3-12 channels), no layout
  copies, no separate sum. Not bit-for-bit: the sum over the input channels
  is taken in another order and the halving happens before it. Tested
  against the two-branch formulation (``tests/test_swat.py``): the matrix
  reproduces the conv to atol 1e-12 at float64; projections and their
  gradients agree to rtol / atol 1e-10 at float64 and 1e-5 at float32.
  In inference (no autograd) the matrix is cached until a weight changes
  (by version counter and storage); under autograd it is rebuilt each
  forward (one pass over the matrix), and gradients reach ``qkv`` /
  ``proj`` through it as through the conv.
* **Conv MLP on channels-last maps.** When the (B, C, H, W) input is a
  channels-last view (what the token grids are), ``fc1`` / ``fc2`` run as
  one GEMM over the (B*H*W, C) rows, the depth-wise conv gets the
  channels-last map and GELU runs on the contiguous (B, H, W, C) memory,
  in place when no autograd runs (same values). Equal to the NCHW conv
  path up to the GEMM's summation order (rtol / atol 1e-5 at fp32,
  outputs and gradients).

Whole backbones (ViT, Mixer, ResMLP, Swin) are tested against the
reference formulation: outputs to 1e-10
(fp64) / 1e-5 (fp32), gradients to 1e-9 / 1e-3 of the largest gradient
(``test_fast_paths_match_reference_formulation``); the golden logits of the
official code still match at rtol 1e-4 / atol 1e-5.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer

from .config import use_fast_layers


def _no_autograd() -> bool:
    return not torch.is_grad_enabled() and \
        not torch.compiler.is_compiling()


def act_(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(x)``; without autograd an exact GELU is applied in place (same
    values): ``x`` must then be a fresh tensor nobody else holds."""
    if _no_autograd() and type(act) is nn.GELU and \
            act.approximate == 'none':
        return torch.ops.aten.gelu_(x)
    return act(x)


def token_conv_matrix(weight: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The matrix of a k x k conv (stride 1, zero padding k // 2, no bias)
    applied to every token viewed as a (c, h, w) map.

    Args:
        weight: (c_out, c, k, k) conv weight.
        h, w: the token's map size.

    Returns:
        (c_out*h*w, c*h*w) matrix M with ``M @ token`` = the flattened
        (c_out, h, w) conv output; rows and columns ordered (channel, y, x)
        like the tokens. Entry ((o, y, x), (i, y', x')) is
        ``weight[o, i, y' - y + k//2, x' - x + k//2]`` or 0 outside the
        kernel, so M holds the weights exactly (every product below has one
        nonzero term).
    """
    c_out, c, kh, kw = weight.shape
    dev, dt = weight.device, weight.dtype

    def shifts(k: int, n: int) -> torch.Tensor:
        # (k, n, n): S[a, y, y'] = 1 where y' = y + a - k // 2
        a = torch.arange(k, device=dev).view(k, 1, 1)
        y = torch.arange(n, device=dev).view(1, n, 1)
        y2 = torch.arange(n, device=dev).view(1, 1, n)
        return (y2 == y + a - k // 2).to(dt)

    with torch.autocast(dev.type, enabled=False):
        m = torch.einsum('oiab,ayY,bxX->oyxiYX', weight, shifts(kh, h),
                         shifts(kw, w))
    return m.reshape(c_out * h * w, c * h * w)


class _FusedProjection:
    """Mixin: ``(linear(x) + conv(x)) / 2`` of :class:`SWATAttention` as one
    averaged matrix and bias (see the module docstring), cached while no
    autograd runs."""

    def _fused_weight(self, name: str, linear_mod: nn.Linear,
                      conv: nn.Conv2d) -> Tuple[torch.Tensor,
                                                Optional[torch.Tensor]]:
        tensors = [t for t in (linear_mod.weight, linear_mod.bias,
                               conv.weight, conv.bias) if t is not None]
        # only without autograd: a cached (possibly inference-mode) matrix
        # must never be saved for a backward
        key = None if torch.is_grad_enabled() or \
            torch.compiler.is_compiling() else tuple(
                (t.data_ptr(), t._version, t.dtype, t.device)
                for t in tensors)
        cache = self.__dict__.setdefault('_fused_cache', {})
        if key is not None and name in cache and cache[name][0] == key:
            return cache[name][1]
        _, h, w = self.layout
        weight = (linear_mod.weight + token_conv_matrix(conv.weight, h, w)
                  ) * 0.5
        bias = None
        if linear_mod.bias is not None or conv.bias is not None:
            bias = 0.
            if linear_mod.bias is not None:
                bias = bias + linear_mod.bias
            if conv.bias is not None:
                bias = bias + conv.bias.repeat_interleave(h * w)
            bias = bias * 0.5
        if key is not None:
            cache[name] = (key, (weight.detach(), None if bias is None
                                 else bias.detach()))
        return weight, bias


def tokens_to_layout(x: torch.Tensor, c: int, h: int, w: int
                     ) -> torch.Tensor:
    """(B, N, c*h*w) -> (B*N, c, h, w): every token as its own map
    (einops ``'b n (c h w) -> (b n) c h w'``)."""
    B, N, C = x.shape
    if C != c * h * w:
        raise ValueError(f'tokens of {C} channels do not hold a '
                         f'(c, h, w) = ({c}, {h}, {w}) layout')
    return x.reshape(B * N, c, h, w)


def layout_to_tokens(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*N, c, h, w) -> (B, N, c*h*w) (``'(b n) c h w -> b n (c h w)'``)."""
    return x.reshape(batch, -1, x.shape[1] * x.shape[2] * x.shape[3])


def tokens_to_subpatches(x: torch.Tensor, c: int, h: int, w: int
                         ) -> torch.Tensor:
    """(B, N, c*h*w) -> (B*c, N, h, w): the N tokens become the channels of
    c maps of h x w (``'b n (c h w) -> (b c) n h w'``)."""
    B, N, C = x.shape
    if C != c * h * w:
        raise ValueError(f'tokens of {C} channels do not hold a '
                         f'(c, h, w) = ({c}, {h}, {w}) layout')
    return x.reshape(B, N, c, h, w).transpose(1, 2).reshape(B * c, N, h, w)


def subpatches_to_tokens(x: torch.Tensor, c: int) -> torch.Tensor:
    """(B*c, N, h, w) -> (B, N, c*h*w) (``'(b c) n h w -> b n (c h w)'``)."""
    Bc, N, h, w = x.shape
    return x.reshape(Bc // c, c, N, h, w).transpose(1, 2).reshape(
        Bc // c, N, c * h * w)


def tokens_to_map(x: torch.Tensor, hw_shape: Tuple[int, int]
                  ) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W) (``'b (h w) c -> b c h w'``)."""
    B, N, C = x.shape
    H, W = hw_shape
    if N != H * W:
        raise ValueError(f'{N} tokens do not form a {H}x{W} grid')
    return x.transpose(1, 2).reshape(B, C, H, W)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


class SWATConvMlp(nn.Module):
    """Conv MLP: 1x1 conv, act, k x k grouped conv, act, dropout, 1x1 conv.

    The official ``ConvMlpGeneral('2d')``: ``fc1`` (1x1, in -> hidden),
    activation, ``fc3`` (k x k, padding k // 2, ``groups`` groups; depth-wise
    when ``groups == hidden``, the official use), activation, dropout, ``fc2``
    (1x1, hidden -> out). Its (parameter-free, unused) ``norm`` is omitted.
    Where the k x k conv runs depends on what the caller puts on the spatial
    axes: the token grid (channel MLPs of ViT, Swin, Mixer, ResMLP) or each
    token's sub-patch (:class:`SWATTokenConvMlp`).

    Args:
        in_channels: input channels.
        hidden_channels: width of ``fc1`` / ``fc3``.
        out_channels: output channels (default ``in_channels``).
        kernel_size: k of ``fc3``.
        groups: groups of ``fc3``; None means ``hidden_channels``
            (depth-wise).
        act_cfg: the activation (GELU in every SWAT model).
        drop: dropout before ``fc2`` (the official position; there is none
            after ``fc2``).
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: int,
                 out_channels: Optional[int] = None,
                 kernel_size: int = 3,
                 groups: Optional[int] = None,
                 act_cfg: dict = dict(type='GELU'),
                 drop: float = 0.) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        groups = hidden_channels if groups is None else groups
        if hidden_channels % groups:
            raise ValueError(f'hidden_channels {hidden_channels} is not '
                             f'divisible by groups {groups}')
        self.fc1 = nn.Conv2d(in_channels, hidden_channels, 1)
        self.fc3 = nn.Conv2d(hidden_channels, hidden_channels, kernel_size,
                             padding=kernel_size // 2, groups=groups)
        self.fc2 = nn.Conv2d(hidden_channels, out_channels, 1)
        self.act = build_activation_layer(act_cfg)
        self.drop = nn.Dropout(drop)
        self.fast = use_fast_layers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) -> (B, out, H, W); a channels-last view in gives a
        channels-last view out (the fast path, see the module docstring)."""
        if self.fast and x.dim() == 4 and \
                x.permute(0, 2, 3, 1).is_contiguous():
            return self.forward_nhwc(x.permute(0, 2, 3, 1)).permute(
                0, 3, 1, 2)
        x = self.act(self.fc1(x))
        x = self.act(self.fc3(x))
        return self.fc2(self.drop(x))

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, in) contiguous -> (B, H, W, out) contiguous: ``fc1`` and
        ``fc2`` as GEMMs over the rows, ``fc3`` on the channels-last map."""
        x = act_(self.act, F.linear(x, self.fc1.weight.flatten(1),
                                    self.fc1.bias))
        x = self.fc3(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        # the activation on the plain (B, H, W, C) tensor: PyTorch's GELU is
        # several times slower on the channels-last (B, C, H, W) view of the
        # same memory
        x = act_(self.act, x if x.is_contiguous() else x.contiguous())
        return F.linear(self.drop(x), self.fc2.weight.flatten(1),
                        self.fc2.bias)


class SWATTokenConvMlp(SWATConvMlp):
    """Mixer token mixing as a conv MLP over sub-patches.

    The tokens (N of them) are the channels; the k x k depth-wise ``fc3``
    runs over each token's h x w sub-patch, separately for each of the c
    sub-patch channels (official ``MixerBlockConv.mlp_tokens`` with its
    rearranges). Parameter names are those of :class:`SWATConvMlp`.

    Args:
        num_tokens: N, fixed: the token count the model is built for.
        hidden_channels: token-mixing width (Mixer: ``0.5 * embed_dims``).
        c, h, w: the token layout (``c * h * w`` = token channels).
        kernel_size: k of ``fc3``.
        groups, act_cfg, drop: see :class:`SWATConvMlp`.
    """

    def __init__(self,
                 num_tokens: int,
                 hidden_channels: int,
                 c: int,
                 h: int,
                 w: int,
                 kernel_size: int = 3,
                 groups: Optional[int] = None,
                 act_cfg: dict = dict(type='GELU'),
                 drop: float = 0.) -> None:
        super().__init__(num_tokens, hidden_channels, num_tokens,
                         kernel_size, groups, act_cfg, drop)
        self.num_tokens = num_tokens
        self.layout = (c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, c*h*w) -> (B, N, c*h*w)."""
        if x.shape[1] != self.num_tokens:
            raise ValueError(f'token mixing is built for {self.num_tokens} '
                             f'tokens, got {x.shape[1]}')
        c = self.layout[0]
        x = super().forward(tokens_to_subpatches(x, *self.layout))
        return subpatches_to_tokens(x, c)


class SWATAttention(_FusedProjection, nn.Module):
    """Multi-head self-attention with structure-aware projections.

    The q/k/v projection and the output projection each average a linear
    map over the whole token with a k x k conv over the token's (c, h, w)
    layout: ``qkv = (qkv_linear(x) + conv(qkv, x)) / 2``, ``out =
    (proj_linear(a) + conv(proj, a)) / 2``. The conv ``qkv`` gives 3c
    channels ordered (q, k, v), each a (c, h, w) map flattened like the
    linear's output; heads then split every C-channel q/k/v into
    ``num_heads`` equal parts, as a plain ViT. With ``num_heads == c`` (DeiT)
    head i is channel i's h x w map, as in the official ViT ``ConvAttention``;
    with ``num_heads != c`` this is the official Swin ``WindowAttention``
    layout.

    State-dict names are the official ones: ``qkv_linear`` (Linear),
    ``qkv`` (Conv2d, bias = ``qkv_bias``), ``proj`` (Conv2d, bias =
    ``qkv_bias`` as officially), ``proj_linear`` (Linear with bias).

    Args:
        c, h, w: the token layout; the token width is ``c * h * w``.
        kernel_size: k of the two convs (padding k // 2).
        num_heads: attention heads; ``c * h * w`` must be divisible by it.
        qkv_bias: bias of ``qkv_linear``, ``qkv`` and ``proj``.
        qk_scale: overrides ``head_dim ** -0.5``.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after the output projection.
    """

    def __init__(self,
                 c: int,
                 h: int,
                 w: int,
                 kernel_size: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        dim = c * h * w
        if dim % num_heads:
            raise ValueError(f'token width c*h*w = {c}*{h}*{w} = {dim} is '
                             f'not divisible by num_heads {num_heads}')
        self.layout = (c, h, w)
        self.dim = dim
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads)**-0.5
        self.attn_drop = attn_drop
        pad = kernel_size // 2
        self.qkv_linear = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.qkv = nn.Conv2d(c, c * 3, kernel_size, padding=pad,
                             bias=qkv_bias)
        self.proj = nn.Conv2d(c, c, kernel_size, padding=pad, bias=qkv_bias)
        self.proj_linear = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.fast = use_fast_layers()

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (3, B, num_heads, N, C // num_heads) (a view)."""
        B, N, C = x.shape
        if self.fast:
            weight, bias = self._fused_weight('qkv', self.qkv_linear,
                                              self.qkv)
            qkv = F.linear(x, weight, bias)
        else:  # the reference (official) formulation
            conv = layout_to_tokens(
                self.qkv(tokens_to_layout(x, *self.layout)),
                B)  # (B, N, 3C): (3, c, h, w) per token
            qkv = (self.qkv_linear(x) + conv) * 0.5
        return qkv.reshape(B, N, 3, self.num_heads,
                           C // self.num_heads).permute(2, 0, 3, 1, 4)

    def project_out(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_heads, N, head_dim) attention output -> (B, N, C)."""
        B, _, N, _ = x.shape
        # a view when the attention kernel wrote (B, N, heads, head_dim)
        x = x.transpose(1, 2).reshape(B, N, self.dim)
        if self.fast:
            weight, bias = self._fused_weight('proj', self.proj_linear,
                                              self.proj)
            out = F.linear(x, weight, bias)
        else:
            conv = layout_to_tokens(
                self.proj(tokens_to_layout(x, *self.layout)), B)
            out = (conv + self.proj_linear(x)) * 0.5
        return self.proj_drop(out)

    def forward(self, x: torch.Tensor,
                attn_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, N, C) -> (B, N, C).

        Args:
            x: tokens (windows for Swin: B = batch * windows).
            attn_bias: optional additive bias on the attention logits,
                broadcastable to (B, num_heads, N, N) (Swin's relative
                position bias plus its shift mask).
        """
        q, k, v = self.project_qkv(x)
        if attn_bias is not None:
            attn_bias = attn_bias.to(q.dtype)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias,
            dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)
        return self.project_out(x)
