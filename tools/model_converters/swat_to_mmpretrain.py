"""Convert an official SWAT checkpoint to an mmpretrain checkpoint.

    python tools/model_converters/swat_to_mmpretrain.py SRC DST [--family vit] [--arch deit-tiny]
    python tools/model_converters/swat_to_mmpretrain.py SRC DST --backbone-only

SRC is a checkpoint of the authors' code (``kkahatapitiya/SWAT``, timm 0.4's
train.py: a bare state dict or a training checkpoint with 'state_dict' and,
with ``--use-ema``, the EMA weights 'state_dict_ema' the paper reports).
The family (vit, mixer, resmlp, ...) and the arch are found from the keys and
shapes when not given, and checked when given. DST loads with
``tools/test.py`` and ``mmpretrain.apis.init_model`` for the matching
configs/cls/swat config; with ``--backbone-only`` it holds only the backbone
(no prefix), for a detector's or segmentor's
``backbone.init_cfg=dict(type='Pretrained', checkpoint=DST)``. Every missing,
unexpected or mis-shaped key is named and nothing is written unless the
checkpoint matches the model exactly.

The file is loaded with ``weights_only=True``; the argparse arguments the
training script stores beside the weights are allowed as plain data.
DST is a file path: an existing directory is refused before any work, and
the file is written through DST.tmp, removed whatever stops the write.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from swat_mm.converters import convert_swat  # noqa: E402
from swat_mm.converters.common import (converter_parser,  # noqa: E402
                                       run_converter)
from swat_mm.converters.swat import FAMILIES  # noqa: E402


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--family', choices=sorted(FAMILIES),
                        help='detected from the keys when omitted')
    parser.add_argument('--arch',
                        help='an arch name of the family (e.g. deit-tiny, '
                        'mixer-small, s12); inferred from the weights when '
                        'omitted')


def _describe(cfg: dict) -> str:
    backbone = cfg.get('backbone', cfg)
    return f'{backbone["type"]}, arch {backbone.get("arch")!r}'


def main() -> int:
    args = converter_parser(__doc__, 'SWAT', _add_args).parse_args()
    return run_converter(
        args, lambda state: convert_swat(state, args.arch,
                                         args.backbone_only, args.family),
        _describe)


if __name__ == '__main__':
    sys.exit(main())
