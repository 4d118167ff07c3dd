"""Draw SWAT's structure-aware tokens and its per-token conv kernels.

SWAT's tokenizer (``SWATTokenizer``) turns every p x p cell of a c-channel
map (the stem's output) into one token of c*p*p channels ordered
(c, p1, p2): channel ``ci * p*p + i * p + j`` holds sub-pixel (i, j) of map
``ci``. Seen as the official code flattens it, a token is a vector of c
segments of p*p channels each; seen as SWAT's (c, p, p) layout it is c
small images of the patch, on which the structure-aware layers run k x k
convolutions.

Per image, ``<image>_token_r<row>_c<col>.png``:

1. the image with the chosen token's patch outlined, the patch itself, and
   the colour code of the p x p sub-pixel positions;
2. the token as the official flat vector: its c*p*p values, and under them
   each channel's sub-pixel position in that colour code, the c segments
   marked;
3. the same token in SWAT's (c, p, p) layout: its c maps.

Once, ``kernels_<module>.png`` per chosen module: the learned per-token
conv kernels, those that run over each token's (c, p, p) layout (SWAT ViT
and Swin attention: ``qkv`` (3c, c, k, k) and ``proj`` (c, c, k, k);
Mixer's token MLP ``fc3`` and ResMLP's ``linear_tokens2``, depth-wise
k x k over each sub-patch), as an (out, in) grid of k x k kernels (at most
``--max-kernels`` rows and columns).

    python tools/visualization/vis_tokens.py CONFIG IMAGE [IMAGE ...] \\
        [--checkpoint CKPT] [--size 224] [--out-dir DIR] \\
        [--token ROW COL] [--modules blocks.0.attn ...] [--max-kernels 12]

CONFIG: any config whose ``model.backbone`` is a SWAT backbone (SWATViT,
SWATSwin, SWATMixer, SWATResMLP). Without ``--checkpoint`` the weights are
random. The paths of the PNGs are printed.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from anywhere, as the other tools
    sys.path.insert(0, _ROOT)

from tools.visualization import common  # noqa: E402

FAMILIES = ['SWATViT', 'SWATSwin', 'SWATMixer', 'SWATResMLP']
PANEL_PX = 128  # each panel's side in the PNG (1.6 in at 80 dpi)
DPI = 80
MAX_MAPS = 8  # token maps drawn in row 3 (Swin's first tokens have 24)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('images', nargs='+')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--size', type=int, default=224,
                        help='shorter image side fed to the tokenizer')
    parser.add_argument('--token', type=int, nargs=2, default=None,
                        metavar=('ROW', 'COL'),
                        help='the token drawn, on the token grid (default: '
                        'the centre one)')
    parser.add_argument('--modules', nargs='+', default=None,
                        help='modules whose per-token conv kernels are '
                        'drawn, by name (default: the first one)')
    parser.add_argument('--max-kernels', type=int, default=12,
                        help='kernel rows and columns drawn at most')
    parser.add_argument('--out-dir', default='work_dirs/vis_tokens')
    return parser.parse_args(argv)


def token_convs(model: nn.Module) -> Dict[str, Dict[str, torch.Tensor]]:
    """Every module of ``model`` with convs over each token's layout ->
    ``{module name: {conv name: weight (out, in, k, k)}}``."""
    from swat_mm.models.backbones.swat_mlp import SWATResMLPBlock
    from swat_mm.models.layers import SWATAttention, SWATTokenConvMlp
    found: Dict[str, Dict[str, torch.Tensor]] = {}
    for name, m in model.named_modules():
        if isinstance(m, SWATAttention):
            found[name] = dict(qkv=m.qkv.weight, proj=m.proj.weight)
        elif isinstance(m, SWATTokenConvMlp):
            found[name] = dict(fc3=m.fc3.weight)
        elif isinstance(m, SWATResMLPBlock):
            found[name] = dict(linear_tokens2=m.linear_tokens2.weight)
    return {k: {n: w.detach() for n, w in v.items()}
            for k, v in found.items()}


def tokenize(model: nn.Module, x: torch.Tensor
             ) -> Tuple[torch.Tensor, Tuple[int, int], nn.Module]:
    """(1, 3, H, W) -> the tokenizer's tokens (1, N, c*p*p), their grid and
    the tokenizer (the backbone's first ``SWATTokenizer``)."""
    from swat_mm.models.layers import SWATTokenizer
    tokenizer = next(m for m in model.modules()
                     if isinstance(m, SWATTokenizer))
    # the structure-aware tokens themselves: SWAT-Swin's patch embedding
    # adds a LayerNorm over each token and returns a grid, after this
    tokens, grid = SWATTokenizer.forward(tokenizer, x)
    return tokens, grid, tokenizer


def position_colours(p: int) -> np.ndarray:
    """(p, p, 3) RGB colour code of the sub-pixel positions: hue along the
    rows, brightness along the columns."""
    import matplotlib.colors as mcolors
    i, j = np.meshgrid(np.arange(p), np.arange(p), indexing='ij')
    hsv = np.stack([i / p, np.full((p, p), 0.8),
                    0.45 + 0.55 * (j + 1) / p], -1)
    return mcolors.hsv_to_rgb(hsv)


def draw_token(img: np.ndarray, token: np.ndarray, box: Tuple[int, int, int],
               path: str, title: str) -> None:
    """``token`` (c, p, p); ``box`` (top, left, side) of its patch in
    ``img`` (H, W, 3)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    c, p, _ = token.shape
    shown = min(c, MAX_MAPS)
    cols = max(4, shown)
    fig = plt.figure(dpi=DPI, figsize=(cols * PANEL_PX / DPI,
                                       3 * PANEL_PX / DPI))
    grid = fig.add_gridspec(3, cols, left=0.07, right=0.98, bottom=0.02,
                            top=0.92, hspace=0.6, wspace=0.15)
    top, left, side = box
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(img)
    ax.add_patch(Rectangle((left - .5, top - .5), side, side, fill=False,
                           edgecolor='white', linewidth=1.5))
    ax.set_title(title, fontsize=7)
    patch = np.zeros((side, side, 3), np.uint8)  # zero-padded as the model
    crop = img[top:top + side, left:left + side]
    patch[:crop.shape[0], :crop.shape[1]] = crop
    fig.add_subplot(grid[0, 1]).imshow(patch)
    fig.axes[-1].set_title(f'the patch, {side}x{side} px', fontsize=7)
    colours = position_colours(p)
    fig.add_subplot(grid[0, 2]).imshow(colours)
    fig.axes[-1].set_title(f'sub-pixel (i, j) of {p}x{p}', fontsize=7)

    ax = fig.add_subplot(grid[1, :])
    flat = token.reshape(-1)
    lo, hi = float(flat.min()), float(flat.max())
    values = matplotlib.colormaps['gray']((flat - lo) / (hi - lo or 1.))
    strip = np.stack([values[:, :3], np.tile(colours.reshape(-1, 3),
                                             (c, 1))])
    ax.imshow(strip, aspect='auto', interpolation='nearest')
    for ci in range(1, c):
        ax.axvline(ci * p * p - .5, color='red', linewidth=1)
    ax.set_yticks([0, 1], ['value', '(i,j)'], fontsize=6)
    step = max(1, c // 12)
    ax.set_xticks([ci * p * p + (p * p - 1) / 2 for ci in range(0, c, step)],
                  [f'map {ci}' for ci in range(0, c, step)], fontsize=7)
    ax.set_title(f'official flattening: {c}*{p}*{p} = {c * p * p} channels;'
                 f'\nchannel ci*{p * p} + i*{p} + j = sub-pixel (i, j) of '
                 'map ci', fontsize=7)

    for ci in range(shown):
        ax = fig.add_subplot(grid[2, ci])
        ax.imshow(token[ci], cmap='gray', vmin=lo, vmax=hi)
        ax.set_title(f'map {ci} of ({c}, {p}, {p})', fontsize=7)
    for ax in fig.axes:
        if ax is not fig.axes[3]:
            ax.axis('off')
    fig.savefig(path)
    plt.close(fig)


def draw_kernels(convs: Dict[str, torch.Tensor], limit: int, path: str,
                 title: str) -> None:
    """One (out, in) grid of k x k kernels per conv, side by side, each
    cut to ``limit`` rows and columns; one symmetric colour scale per
    conv."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = []
    for name, w in convs.items():
        out_c, in_c, k, _ = w.shape
        rows, cols = min(out_c, limit), min(in_c, limit)
        # kernels with a one-pixel gap, NaN (blank) in between
        mosaic = np.full((rows * (k + 1) - 1, cols * (k + 1) - 1), np.nan)
        for o in range(rows):
            for i in range(cols):
                mosaic[o * (k + 1):o * (k + 1) + k,
                       i * (k + 1):i * (k + 1) + k] = w[o, i].numpy()
        shown = f'{rows} of {out_c} x {cols} of {in_c}' if (
            rows, cols) != (out_c, in_c) else f'{out_c} x {in_c}'
        panels.append((name, mosaic, float(w.abs().max()),
                       f'{name}: {shown} kernels of {k}x{k}'))
    fig, axes = plt.subplots(1, len(panels), squeeze=False, dpi=DPI,
                             figsize=(2 * len(panels) * PANEL_PX / DPI,
                                      2 * PANEL_PX / DPI))
    for ax, (name, mosaic, vmax, label) in zip(axes[0], panels):
        ax.imshow(mosaic, cmap='RdBu_r', vmin=-vmax, vmax=vmax,
                  interpolation='nearest')
        ax.set_title(label, fontsize=7)
        ax.axis('off')
    fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(0.02, 0.02, 0.98, 0.86, 0.1)
    fig.savefig(path)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    backbone, mean, std = common.build_backbone(
        args.config, args.checkpoint, FAMILIES,
        'structure-aware tokens exist in the SWAT backbones only '
        '(configs/cls/swat/*, configs/*/*swat*)')
    convs = token_convs(backbone)
    names = list(convs)[:1] if args.modules is None else args.modules
    for name in names:
        if name not in convs:
            raise ValueError(
                f'{name!r} has no per-token convs; the modules that have: '
                f'{", ".join(convs)}')
    if args.max_kernels < 1:
        raise ValueError(f'--max-kernels must be >= 1, got '
                         f'{args.max_kernels}')
    # images and tokens are checked before any is drawn: nothing
    # half-written
    images = [(path, common.load_image(path, args.size))
              for path in args.images]
    from swat_mm.models.layers import SWATTokenizer
    tokenizer = next(m for m in backbone.modules()
                     if isinstance(m, SWATTokenizer))
    for path, img in images:
        hg, wg = tokenizer.grid_size(img.shape[:2])
        row, col = (hg // 2, wg // 2) if args.token is None else args.token
        if not (0 <= row < hg and 0 <= col < wg):
            raise ValueError(
                f'--token {row} {col} is outside the {hg}x{wg} token grid '
                f'of {path!r} at --size {args.size}')
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for path, img in images:
        x = torch.from_numpy((img - mean) / std).permute(2, 0, 1)[None]
        with torch.no_grad():
            tokens, (hg, wg), tokenizer = tokenize(backbone, x.float())
        row, col = (hg // 2, wg // 2) if args.token is None else args.token
        c, p = tokenizer.out_channels, tokenizer.sub_patch
        token = tokens[0, row * wg + col].reshape(c, p, p).numpy()
        s = tokenizer.token_stride
        stem = osp.splitext(osp.basename(path))[0]
        out = osp.join(args.out_dir, f'{stem}_token_r{row}_c{col}.png')
        draw_token(img, token, (row * s, col * s, s), out,
                   f'token ({row}, {col}) of {hg}x{wg}')
        print(out)
        written.append(out)
    for name in names:
        out = osp.join(args.out_dir, f'kernels_{name}.png')
        draw_kernels(convs[name], args.max_kernels, out,
                     f'{name}: per-token conv kernels')
        print(out)
        written.append(out)
    return written


if __name__ == '__main__':
    common.cli(main)
