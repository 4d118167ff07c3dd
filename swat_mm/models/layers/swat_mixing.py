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
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) -> (B, out, H, W)."""
        x = self.act(self.fc1(x))
        x = self.act(self.fc3(x))
        return self.fc2(self.drop(x))


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


class SWATAttention(nn.Module):
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

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (3, B, num_heads, N, C // num_heads)."""
        B, N, C = x.shape
        conv = layout_to_tokens(self.qkv(tokens_to_layout(x, *self.layout)),
                                B)  # (B, N, 3C): (3, c, h, w) per token
        qkv = (self.qkv_linear(x) + conv) * 0.5
        return qkv.reshape(B, N, 3, self.num_heads,
                           C // self.num_heads).permute(2, 0, 3, 1, 4)

    def project_out(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_heads, N, head_dim) attention output -> (B, N, C)."""
        B, _, N, _ = x.shape
        x = x.transpose(1, 2).reshape(B, N, self.dim)
        conv = layout_to_tokens(self.proj(tokens_to_layout(x, *self.layout)),
                                B)
        return self.proj_drop((conv + self.proj_linear(x)) * 0.5)

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
