"""Parameters and FLOPs of a config's model (mmpretrain, mmdet or mmseg).

    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]]
        [--backbone-only] [--show-table] [--cfg-options k=v ...]

FLOPs are multiply-adds (the OpenMMLab/fvcore convention), counted on the
model's whole inference path by default (classifier: backbone, neck, head;
segmentor: ``_forward``, i.e. with the decode head, without the auxiliary
head; detector: backbone, neck, heads, with a two-stage detector's RoI heads
on a fixed 1000 proposals as mmdet 2.x counted them) or on the backbone
alone with ``--backbone-only``; parameters of the whole model (auxiliary
heads included) or of the backbone. Default shapes: 224x224 (mmpretrain),
1280x800 (mmdet, H x W), 512x512 (mmseg; papers quote UperNet at
``--shape 512 2048``). No weights are loaded or downloaded.

Two ops the counter would skip silently are counted by handles in
``swat_mm.utils.flops``: ``scaled_dot_product_attention`` (STViT, SVT,
SWAT), and SVT's DTCWT. pytorch_wavelets runs the DTCWT as autograd
functions that cannot be traced, so while tracing SVT runs each level-1
forward / inverse transform as one opaque op, counted analytically (its
separable filters as depth-wise 1D convolutions: 96 multiply-adds per
element each way with near_sym_b / qshift_b).
See ``swat_mm.utils.complexity`` for the details.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# Run from a checkout without installing: the repository root first.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.config import Config, DictAction  # noqa: E402

import swat_mm  # noqa: E402,F401  (registers swat_mm modules)
from swat_mm.utils.complexity import count_complexity  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Count the parameters and FLOPs of a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape', type=int, nargs='+',
        help='input size H W (or S for S x S); default 224 224 (cls), '
        '1280 800 (det), 512 512 (seg)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='count the backbone only')
    parser.add_argument('--show-table', action='store_true',
                        help='print the per-module table as well')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs')
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error('--shape takes H W or one size S')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    result = count_complexity(cfg, args.shape, args.backbone_only,
                              show_table=args.show_table)
    if result['table']:
        print(result['table'])
    part = 'backbone' if args.backbone_only else 'whole model'
    _, _, height, width = result['input_shape']
    rows = [('config', osp.basename(args.config)),
            ('toolbox', result['toolbox']),
            ('counted', part),
            ('input shape', f'1x3x{height}x{width}'),
            ('params (M)', f'{result["params"] / 1e6:.2f}'),
            ('FLOPs (G, multiply-adds)', f'{result["flops"] / 1e9:.2f}')]
    key_width = max(len(k) for k, _ in rows)
    value_width = max(len(v) for _, v in rows)
    line = f'+-{"-" * key_width}-+-{"-" * value_width}-+'
    print(line)
    for key, value in rows:
        print(f'| {key:<{key_width}} | {value:>{value_width}} |')
    print(line)
    return result


if __name__ == '__main__':
    main()
