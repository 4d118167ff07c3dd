"""Convert an official STViT checkpoint to an mmpretrain checkpoint.

    python tools/model_converters/stvit_to_mmpretrain.py SRC DST [--arch small]
    python tools/model_converters/stvit_to_mmpretrain.py SRC DST --backbone-only

SRC is the authors' file (a bare state dict or one wrapped under 'model' /
'state_dict'). DST loads with ``tools/test.py`` and
``mmpretrain.apis.init_model`` for the matching configs/cls/stvit config; with
``--backbone-only`` it holds only the backbone (no prefix), for a detector's or
segmentor's ``backbone.init_cfg=dict(type='Pretrained', checkpoint=DST)``.
DST is a file path: an existing directory is refused before any work, and
the file is written through DST.tmp, removed whatever stops the write.
Every missing, unexpected or mis-shaped key is named and nothing is written
unless the checkpoint matches the model exactly.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from swat_mm.converters import convert_stvit  # noqa: E402
from swat_mm.converters.common import (converter_parser,  # noqa: E402
                                       run_converter)


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--arch', choices=['small', 'base', 'large'],
                        help='inferred from the weights when omitted')


def main() -> int:
    args = converter_parser(__doc__, 'STViT', _add_args).parse_args()
    return run_converter(
        args,
        lambda state: convert_stvit(state, args.arch, args.backbone_only))


if __name__ == '__main__':
    sys.exit(main())
