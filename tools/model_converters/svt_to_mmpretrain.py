"""Convert an official SVT checkpoint to an mmpretrain checkpoint.

    python tools/model_converters/svt_to_mmpretrain.py SRC DST [--arch h-small]
    python tools/model_converters/svt_to_mmpretrain.py SRC DST --backbone-only

SRC is the authors' file (a bare state dict or one wrapped under 'model' /
'state_dict'). DST loads with ``tools/test.py`` and
``mmpretrain.apis.init_model`` for the matching configs/cls/svt config; with
``--backbone-only`` it holds only the backbone (no prefix), for a detector's or
segmentor's ``backbone.init_cfg=dict(type='Pretrained', checkpoint=DST)``
(it includes the final norm: set ``final_norm=True`` in that backbone).
Every missing, unexpected or mis-shaped key is named and nothing is written
unless the checkpoint matches the model exactly.
"""
import argparse
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from swat_mm.converters import (ConversionError, convert_svt,  # noqa: E402
                                load_official_state_dict)
from swat_mm.utils.checkpoint import UnsafeCheckpointError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official SVT checkpoint')
    parser.add_argument('dst', help='output mmpretrain checkpoint')
    parser.add_argument('--arch', choices=['h-small', 'h-base', 'h-large'],
                        help='inferred from the weights when omitted')
    parser.add_argument('--use-ema', action='store_true',
                        help="convert the checkpoint's EMA weights "
                        '(model_ema / state_dict_ema)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='keep only the backbone, without prefix')
    args = parser.parse_args()
    try:
        state = load_official_state_dict(args.src, args.use_ema)
        converted, cfg = convert_svt(state, args.arch, args.backbone_only)
    except (ConversionError, FileNotFoundError,
            UnsafeCheckpointError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    tmp = args.dst + '.tmp'
    torch.save({'state_dict': converted,
                'meta': {'converted_from': osp.basename(args.src),
                         'model': repr(cfg)}}, tmp)
    os.replace(tmp, args.dst)
    print(f'{args.dst}: {len(converted)} tensors for {cfg["type"]} '
          f'({cfg.get("backbone", cfg).get("arch")})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
