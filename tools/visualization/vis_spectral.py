"""Draw what SVT's spectral (DTCWT) mixing learnt and does to an image.

For every spectral layer (``SpectralChannelMixing``, the ``attn`` of the
blocks of SVT's scatter stages) and image, one PNG of three rows:

1. the image, and the magnitude of the learned low-pass filter
   (``complex_weight_ll``, |w| at its training size, averaged over the
   channels of each channel group: the ``num_blocks`` blocks of the complex
   maps, or ``--groups``);
2. the energy |z|^2 of the six high-pass DTCWT orientations (15 ... 165
   degrees), summed over channels, for the image, before the learned
   complex mixing;
3. the same after the mixing (what the inverse transform receives).

Each orientation's title gives its share of the row's total energy; rows 2
and 3 share one colour scale per row (log10 of the energy).

    python tools/visualization/vis_spectral.py CONFIG IMAGE [IMAGE ...] \\
        [--checkpoint CKPT] [--size 224] [--out-dir DIR] \\
        [--layers block1.0.attn ...] [--groups 4]

CONFIG: any config whose ``model.backbone`` is an SVT (classification,
Mask R-CNN, UperNet). Without ``--checkpoint`` the weights are random.
One PNG per image and layer, named ``<image>_<layer>.png``; their paths are
printed.
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

PANEL_PX = 128  # each panel's side in the PNG (1.6 in at 80 dpi)
DPI = 80


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('images', nargs='+')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--size', type=int, default=224,
                        help='shorter image side fed to the model')
    parser.add_argument('--layers', nargs='+', default=None,
                        help='spectral layers to draw, by module name '
                        '(default: all, e.g. block1.0.attn block1.1.attn)')
    parser.add_argument('--groups', type=int, default=None,
                        help='channel groups of the low-pass filter panel '
                        "(default: the layer's num_blocks)")
    parser.add_argument('--out-dir', default='work_dirs/vis_spectral')
    return parser.parse_args(argv)


def lowpass_groups(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """(C, h, w) learned low-pass filter -> (groups, h, w): its magnitude
    averaged over each group of C / groups consecutive channels."""
    C = weight.shape[0]
    if groups < 1 or C % groups:
        raise ValueError(f'--groups {groups} does not divide the layer\'s '
                         f'{C} channels; pick a divisor of {C}')
    return weight.abs().reshape(groups, C // groups,
                                *weight.shape[1:]).mean(1)


def draw(img: np.ndarray, lowpass: np.ndarray, before: np.ndarray,
         after: np.ndarray, path: str, title: str) -> None:
    """One figure: image and low-pass groups; energies before; after.
    ``lowpass`` (G, h, w), ``before`` / ``after`` (6, h', w')."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from swat_mm.models.layers import ORIENTATIONS
    cols = max(len(ORIENTATIONS), 1 + len(lowpass))
    fig, axes = plt.subplots(3, cols, squeeze=False, dpi=DPI,
                             figsize=(cols * PANEL_PX / DPI,
                                      3 * PANEL_PX / DPI))
    for ax in axes.flat:
        ax.axis('off')
    axes[0, 0].imshow(img)
    axes[0, 0].set_title(title, fontsize=7)
    vmax = float(lowpass.max())
    for g, mag in enumerate(lowpass):
        ax = axes[0, 1 + g]
        ax.imshow(mag, vmin=0, vmax=vmax, cmap='magma')
        ax.set_title(f'low-pass |w|, group {g}', fontsize=7)
    for row, (energy, name) in enumerate(((before, 'before'),
                                          (after, 'after')), start=1):
        total = float(energy.sum()) or 1.
        log = np.log10(energy + 1e-12 * max(float(energy.max()), 1e-30))
        lo, hi = float(np.percentile(log, 1)), float(log.max())
        for k, deg in enumerate(ORIENTATIONS):
            ax = axes[row, k]
            ax.imshow(log[k], vmin=lo, vmax=hi, cmap='viridis')
            ax.set_title(f'{name} {deg}\N{DEGREE SIGN}: '
                         f'{100 * energy[k].sum() / total:.0f}%',
                         fontsize=7)
    fig.subplots_adjust(0.01, 0.01, 0.99, 0.92, 0.05, 0.25)
    fig.savefig(path)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    from swat_mm.models.layers import (SpectralChannelMixing,
                                       collect_spectra, orientation_energy)
    backbone, mean, std = common.build_backbone(
        args.config, args.checkpoint, ['SVT'],
        'the spectral mixing exists in SVT only (configs/*/svt*)')
    # the stages after the spectral ones would only cost time
    backbone.out_indices = (max(backbone.num_scatter_stages - 1, 0), )
    layers = {name: m for name, m in backbone.named_modules()
              if isinstance(m, SpectralChannelMixing)}
    if not layers:
        raise ValueError(f'{args.config}: this SVT has no spectral layers '
                         '(num_scatter_stages=0)')
    names = list(layers) if args.layers is None else args.layers
    for name in names:
        if name not in layers:
            raise ValueError(f'{name!r} is not a spectral layer of this SVT;'
                             f' its spectral layers: {", ".join(layers)}')
    lowpass = {}
    for name in names:
        layer = layers[name]
        groups = args.groups or layer.num_blocks
        lowpass[name] = lowpass_groups(layer.complex_weight_ll.detach(),
                                       groups).numpy()
    # images are checked before any is drawn: nothing half-written
    images = [(path, common.load_image(path, args.size))
              for path in args.images]
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for path, img in images:
        x = torch.from_numpy((img - mean) / std).permute(2, 0, 1)[None]
        with torch.no_grad(), collect_spectra(backbone) as spectra:
            backbone(x.float())
        seen = {s['name']: s for s in spectra}
        stem = osp.splitext(osp.basename(path))[0]
        for name in names:
            s = seen[name]
            before = orientation_energy(s['before'])[0].numpy()
            after = orientation_energy(s['after'])[0].numpy()
            out = osp.join(args.out_dir, f'{stem}_{name}.png')
            C = s['before'].shape[1]
            draw(img, lowpass[name], before, after, out,
                 f'{name} ({C} channels)')
            print(out)
            written.append(out)
    return written


if __name__ == '__main__':
    common.cli(main)
