"""Draw STViT's super tokens over images (the paper's Figure 4).

For every stage whose super tokens are larger than a pixel, the image is
shown with each pixel coloured by the super token it is assigned to most
(arg-max of the last sampling round's association map of the stage's first
block), the boundaries between super tokens drawn, and beside it a heat
map of that assignment's confidence (its largest weight, 1/9 to 1).

    python tools/visualization/vis_super_tokens.py CONFIG IMAGE [IMAGE ...] \\
        [--checkpoint CKPT] [--size 224] [--out-dir DIR] [--stage 0 1]

CONFIG: any config whose ``model.backbone`` is an STViT (classification,
Mask R-CNN, UperNet). Without ``--checkpoint`` the weights are random: the
super tokens then follow colour and position only. One PNG per image and
stage; their paths are printed.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

import numpy as np
import torch

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from anywhere, as the other tools
    sys.path.insert(0, _ROOT)

from tools.visualization import common  # noqa: E402
from tools.visualization.common import load_image  # noqa: E402, F401


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('images', nargs='+')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--size', type=int, default=224,
                        help='shorter image side fed to the model')
    parser.add_argument('--stage', type=int, nargs='+', default=None,
                        help='stages to draw (default: every stage with '
                        'super tokens)')
    parser.add_argument('--out-dir', default='work_dirs/vis_super_tokens')
    return parser.parse_args(argv)


def build_backbone(config: str, checkpoint: Optional[str]) -> tuple:
    """The config's backbone (an STViT, else a ValueError naming what it
    is) in eval mode, and the data preprocessor's mean and std."""
    return common.build_backbone(
        config, checkpoint, ['STViT'],
        'super tokens exist in STViT only (configs/*/stvit*)')


def token_labels(amap: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """(9, H, W) association of one image -> (H, W) id of each pixel's
    arg-max super token on the (hh, ww) grid."""
    _, H, W = amap.shape
    hh, ww = grid
    h, w = H // hh, W // ww
    k = amap.argmax(0)
    rows = torch.arange(H)[:, None] // h + k // 3 - 1
    cols = torch.arange(W)[None, :] // w + k % 3 - 1
    return rows.clamp(0, hh - 1) * ww + cols.clamp(0, ww - 1)


def draw(img: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
         path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    H, W = img.shape[:2]
    # nearest-neighbour up-sampling of the stage map to the image
    rows = np.arange(H) * labels.shape[0] // H
    cols = np.arange(W) * labels.shape[1] // W
    labels = labels[rows][:, cols]
    confidence = confidence[rows][:, cols]
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (labels.max() + 1, 3))
    overlay = (0.55 * img + 0.45 * palette[labels]).astype(np.uint8)
    edge = np.zeros((H, W), bool)
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    overlay[edge] = 255
    fig, axes = plt.subplots(1, 2, figsize=(2 * W / 80, H / 80 + 0.4),
                             dpi=80)
    axes[0].imshow(overlay)
    axes[0].set_title(title, fontsize=8)
    im = axes[1].imshow(confidence, vmin=1 / 9, vmax=1, cmap='viridis')
    axes[1].set_title('assignment confidence', fontsize=8)
    for ax in axes:
        ax.axis('off')
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    fig.savefig(path)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    from swat_mm.models.layers import collect_affinities
    backbone, mean, std = build_backbone(args.config, args.checkpoint)
    with_tokens = [i for i, s in enumerate(backbone.stoken_size)
                   if max(s) > 1]
    stages = with_tokens if args.stage is None else args.stage
    for s in stages:
        if s not in with_tokens:
            raise ValueError(
                f'stage {s} has no super tokens (stoken_size per stage: '
                f'{backbone.stoken_size}); stages with super tokens: '
                f'{with_tokens}')
    # images are checked before any is drawn: nothing half-written
    images = [(path, load_image(path, args.size)) for path in args.images]
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for path, img in images:
        x = torch.from_numpy((img - mean) / std).permute(2, 0, 1)[None]
        with torch.no_grad(), collect_affinities(backbone) as maps:
            backbone(x.float())
        for s in stages:
            first = [m for m in maps
                     if m['name'].startswith(f'layers.{s}.blocks.0.')][-1]
            amap = first['map'][0]
            # the map's real pixels (it is padded to whole super tokens)
            stride = 2**(s + 2)
            h, w = -(-img.shape[0] // stride), -(-img.shape[1] // stride)
            labels = token_labels(amap, first['grid']).numpy()[:h, :w]
            confidence = amap.max(0).values.numpy()[:h, :w]
            stem = osp.splitext(osp.basename(path))[0]
            out = osp.join(args.out_dir, f'{stem}_stage{s}.png')
            draw(img, labels, confidence, out,
                 f'stage {s}: {first["grid"][0]}x{first["grid"][1]} super '
                 f'tokens of {first["stoken_size"][0]}x'
                 f'{first["stoken_size"][1]}')
            print(out)
            written.append(out)
    return written


if __name__ == '__main__':
    common.cli(main)
