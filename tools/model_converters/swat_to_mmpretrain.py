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
"""
import argparse
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from swat_mm.converters import (ConversionError, convert_swat,  # noqa: E402
                                load_official_state_dict)
from swat_mm.converters.swat import FAMILIES  # noqa: E402
from swat_mm.utils.checkpoint import UnsafeCheckpointError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official SWAT checkpoint')
    parser.add_argument('dst', help='output mmpretrain checkpoint')
    parser.add_argument('--family', choices=sorted(FAMILIES),
                        help='detected from the keys when omitted')
    parser.add_argument('--arch',
                        help='an arch name of the family (e.g. deit-tiny, '
                        'mixer-small, s12); inferred from the weights when '
                        'omitted')
    parser.add_argument('--use-ema', action='store_true',
                        help="convert the checkpoint's EMA weights "
                        '(model_ema / state_dict_ema)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='keep only the backbone, without prefix')
    args = parser.parse_args()
    try:
        state = load_official_state_dict(args.src, args.use_ema)
        converted, cfg = convert_swat(state, args.arch, args.backbone_only,
                                      args.family)
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
    backbone = cfg.get('backbone', cfg)
    print(f'{args.dst}: {len(converted)} tensors for {cfg["type"]} '
          f'({backbone["type"]}, arch {backbone.get("arch")!r})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
