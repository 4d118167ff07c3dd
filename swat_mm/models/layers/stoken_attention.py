"""Super-token attention (STA) of STViT (Huang et al., CVPR 2023), as a
layer of its own: on NCHW maps, or on (B, N, C) tokens given their
(H, W) grid.

Official code: ``hhb072/STViT``, ``models/stvit.py`` (``StokenAttention``,
``Attention``); state-dict names kept (``stoken_refine.qkv``,
``stoken_refine.proj``). See :mod:`swat_mm.models.backbones.stvit` for the
deviations (no identity-kernel convolutions, SDPA, channels-last).

The association map. Every sampling round assigns each pixel softly to the
nine super tokens around its grid cell. The layer keeps it as
(B, cells, 9, pixels per cell) and shows it, per round, to forward hooks on
its ``affinity_tap``; :func:`affinity_map` turns it into a (B, 9, H, W)
map over the (padded) pixels, and :func:`collect_affinities` gathers those
maps for every super-token layer of a model while a block of code runs.
"""
import contextlib
from typing import Iterator, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import use_fast_layers
from .neighbours import neighbourhood_ops, pop_identity_kernels
from .pointwise import PointwiseConv, nchw, nhwc
from .shape import ceil_to

__all__ = ['StokenAttention', 'AffinityTap', 'affinity_map',
           'collect_affinities']


IntPair = Union[int, Tuple[int, int]]


def _pair(v: IntPair) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class AffinityTap(nn.Module):
    """Identity on a sampling round's association map, for forward hooks:
    ``forward(affinity, grid)`` returns ``affinity`` (B, hh*ww, 9, h*w)
    unchanged; ``grid`` is (hh, ww), the super-token grid."""

    def forward(self, affinity: torch.Tensor,
                grid: Tuple[int, int]) -> torch.Tensor:
        return affinity


def affinity_map(affinity: torch.Tensor, grid: Tuple[int, int],
                 stoken_size: Tuple[int, int]) -> torch.Tensor:
    """(B, hh*ww, 9, h*w) association of a round -> (B, 9, hh*h, ww*w): for
    every pixel of the padded map, its weights on the 3x3 super tokens
    around its cell (row-major, the centre is index 4); they sum to 1."""
    B = affinity.shape[0]
    hh, ww = grid
    h, w = stoken_size
    a = affinity.reshape(B, hh, ww, 9, h, w).permute(0, 3, 1, 4, 2, 5)
    return a.reshape(B, 9, hh * h, ww * w)


@contextlib.contextmanager
def collect_affinities(model: nn.Module) -> Iterator[List[dict]]:
    """Inside the block, every super-token layer of ``model`` appends, per
    forward and sampling round, ``dict(name=..., map=(B, 9, H, W),
    grid=(hh, ww), stoken_size=(h, w))`` to the yielded list (maps detached;
    H, W the padded map). The hooks are removed on exit."""
    found: List[dict] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, StokenAttention):
            def hook(tap, inputs, output, name=name, layer=module):
                grid = tuple(int(g) for g in inputs[1])
                found.append(dict(
                    name=name, grid=grid, stoken_size=layer.stoken_size,
                    map=affinity_map(output.detach(), grid,
                                     layer.stoken_size)))
            handles.append(module.affinity_tap.register_forward_hook(hook))
    try:
        yield found
    finally:
        for handle in handles:
            handle.remove()


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
        # q, k, v split on their own axis of the (B, N, heads, 3, hd)
        # projection: the backward's stack of the three gradients is then
        # the projection's contiguous gradient, with no further copy.
        qkv = nhwc(self.qkv(x)).reshape(B, H * W, heads, 3, C // heads)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(3))
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)
        x = nchw(x.transpose(1, 2).reshape(B, H, W, C))
        return self.proj_drop(self.proj(x))


class StokenAttention(nn.Module):
    """Super-token attention (STA) on an NCHW map.

    The map is cut into cells of ``stoken_size`` pixels; each cell's mean is
    its initial super token. Every pixel is softly assigned to the 3x3
    super tokens around its cell (``n_iter`` rounds of sampling, without
    gradient through the assignment), the super tokens are refined by
    multi-head self-attention, and mapped back to pixels with the same
    assignment. With a super-token size of 1 the layer is plain global
    self-attention over all pixels.

    Each round's assignment passes through ``affinity_tap`` (an identity):
    a forward hook there sees it, at no cost to a model without hooks (see
    :func:`collect_affinities`).

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
        self.fast = use_fast_layers()
        self.gather, self.scatter = neighbourhood_ops(self.fast)
        self.stoken_refine = Attention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
            attn_drop=attn_drop, proj_drop=proj_drop)
        self.affinity_tap = AffinityTap()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        pop_identity_kernels(state_dict, prefix, ('unfold', 'fold'))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), any H and W; or tokens (B, H*W, C)
        -> (B, H*W, C) given ``hw_shape`` = (H, W) (the same computation on
        the map the tokens form, row by row)."""
        if x.dim() == 3:
            if hw_shape is None:
                raise ValueError('StokenAttention on (B, N, C) tokens needs '
                                 'hw_shape=(H, W) with H * W = N')
            B, N, C = x.shape
            H, W = hw_shape
            if H * W != N:
                raise ValueError(f'{N} tokens do not form a {H}x{W} map')
            out = self(nchw(x.reshape(B, H, W, C)))
            return nhwc(out).reshape(B, N, C)
        if max(self.stoken_size) == 1:
            return self.stoken_refine(x)
        B, C, H0, W0 = x.shape
        h, w = self.stoken_size
        # padded always (by zero rows where none are missing): a traced or
        # exported graph then pads at every input size; the padded side
        # written as a multiple of the cell, with no %, keeps torch.export's
        # reasoning about the shapes short
        H, W = ceil_to(H0, h), ceil_to(W0, w)
        hh, ww = H // h, W // w
        x = F.pad(x, (0, W - W0, 0, H - H0))

        # The zero padding takes part in the initial super tokens, as
        # officially.
        stokens = F.avg_pool2d(x, (h, w))  # (B, C, hh, ww)
        # (B, hh*ww, h*w, C): the pixels of each cell
        pixels = nhwc(x).reshape(B, hh, h, ww, w, C).transpose(2, 3)
        pixels = pixels.reshape(B, hh * ww, h * w, C)

        # affinity: (B, hh*ww, 9, h*w), each pixel's soft assignment to the
        # nine super tokens around its cell
        with torch.no_grad():
            for idx in range(self.n_iter):
                affinity = (self.gather(stokens)
                            @ pixels.transpose(-1, -2)) * self.scale
                affinity = self.affinity_tap(affinity.softmax(-2), (hh, ww))
                # (B, hh, ww, 1): total affinity gathered by each token
                affinity_sum = self.scatter(
                    affinity.sum(-1, keepdim=True), (hh, ww))
                if idx < self.n_iter - 1:
                    stokens = nchw(self.scatter(affinity @ pixels, (hh, ww))
                                    / (affinity_sum + 1e-12))

        stokens = nchw(self.scatter(affinity @ pixels, (hh, ww),
                                    self.training) / (affinity_sum + 1e-12))
        stokens = self.stoken_refine(stokens)
        # token upsampling with the same affinities
        pixels = affinity.transpose(-1, -2) @ self.gather(stokens,
                                                          self.training)
        pixels = pixels.reshape(B, hh, ww, h, w, C).transpose(2, 3)
        # cropped by a negative pad: torch.export cannot prove a slice's
        # H0 <= H for symbolic sizes
        return F.pad(nchw(pixels.reshape(B, H, W, C)), (0, W0 - W, 0, H0 - H))
