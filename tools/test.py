"""Test (and evaluate) a checkpoint with an mmpretrain, mmdet or mmseg config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--show] [--show-dir DIR] [--tta] [--cfg-options k=v ...]
        [--launcher pytorch]

The toolbox comes from the config's ``default_scope``; ``--out``,
``--show-dir`` and ``--tta`` follow that toolbox's ``tools/test.py``. The
checkpoint is read by swat_mm's safe loader (``weights_only=True`` with
mmengine's own types allowed), so full training checkpoints load on
torch >= 2.6 and files pickling anything else are refused.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

# Run from a checkout without installing: the repository root first.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmengine  # noqa: E402

import swat_mm  # noqa: E402,F401  (registers modules, safe checkpoint loader)
from swat_mm.engine import runner_utils as ru  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a model (mmpretrain, mmdet or mmseg '
        'config)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir',
                        help='the directory for the metrics file and logs')
    parser.add_argument(
        '--out',
        help='dump predictions: mmdet a .pkl file, mmseg a directory of '
        'prediction images, mmpretrain a .pkl file (see --out-item)')
    parser.add_argument(
        '--out-item', choices=['metrics', 'pred'],
        help='mmpretrain only: dump predictions (default) or the metrics')
    parser.add_argument('--show', action='store_true',
                        help='show prediction results in a window')
    parser.add_argument(
        '--show-dir',
        help='save painted predictions to this directory; a relative path '
        'goes under work_dir/timestamp/ (mmdet) or work_dir/ (mmseg, '
        'mmpretrain)')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each --show window stays open')
    parser.add_argument('--interval', type=int, default=1,
                        help='mmpretrain only: visualize every N-th sample')
    parser.add_argument(
        '--tta', action='store_true',
        help='test-time augmentation: the config\'s tta_model/tta_pipeline, '
        'or (mmdet, mmpretrain) horizontal flip when the config has none')
    ru.add_cfg_options_argument(parser)
    parser.add_argument('--launcher', choices=list(ru.LAUNCHERS),
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank (older); torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = ru.load_config(args.config, args.cfg_options, args.launcher)
    toolbox = ru.get_toolbox(cfg)
    ru.register_toolbox(toolbox)
    ru.set_work_dir(cfg, args.work_dir, args.config)
    ru.add_safety_hooks(cfg)
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        ru.trigger_visualization_hook(cfg, toolbox, args.show, args.show_dir,
                                      args.wait_time, args.interval)
    if args.tta:
        ru.apply_tta(cfg, toolbox)
    ru.apply_out(cfg, toolbox, args.out)
    ru.apply_dataloader_options(cfg, toolbox, ('test_dataloader', ))
    ru.apply_device_fixes(cfg, args.launcher)
    ru.init_distributed(cfg, args.launcher)

    runner = ru.build_runner(cfg)
    ru.add_dump_metric(runner, toolbox, args.out, args.out_item)
    metrics = runner.test()
    if toolbox == 'mmpretrain' and args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    main()
