"""Train a model from an mmpretrain, mmdet or mmseg config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
        [--overwrite-checkpoints] [--amp] [--auto-scale-lr]
        [--cfg-options k=v ...] [--launcher pytorch]

The toolbox comes from the config's ``default_scope``. Behaves as that
toolbox's ``tools/train.py``, plus the CPU fixes of
``swat_mm.engine.runner_utils`` (SyncBN -> BN, gloo, DDP without device ids),
each announced by a ``[swat_mm]`` log line. Unlike those tools it refuses
a work directory that holds another run's checkpoints unless told to
resume or overwrite, resumes from the newest *complete* checkpoint, and
adds swat_mm's safety hooks (``ru.SAFETY_HOOKS``: exact resume, checkpoint
fit).
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

# Run from a checkout without installing: the repository root first.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


import swat_mm  # noqa: E402,F401  (registers modules, safe checkpoint loader)
from swat_mm.engine import runner_utils as ru  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train a model (mmpretrain, mmdet or mmseg config)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a path, from the latest '
        'checkpoint in the work directory')
    parser.add_argument(
        '--overwrite-checkpoints', action='store_true',
        help='delete the checkpoints a work directory already holds before '
        'a new (not resumed) run; without it such a work directory is '
        'refused')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the LR by the actual over the config\'s '
                        'auto_scale_lr.base_batch_size')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='disable pin_memory in the dataloaders')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='disable persistent_workers in the dataloaders')
    ru.add_cfg_options_argument(parser)
    parser.add_argument('--launcher', choices=list(ru.LAUNCHERS),
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank (older); torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    cfg = ru.load_config(args.config, args.cfg_options, args.launcher)
    toolbox = ru.get_toolbox(cfg)
    ru.register_toolbox(toolbox)
    ru.set_work_dir(cfg, args.work_dir, args.config)
    ru.add_safety_hooks(cfg)

    ru.check_amp(cfg, args.amp)
    if args.auto_scale_lr:
        ru.apply_auto_scale_lr(cfg)
    if args.no_validate:
        ru.disable_validation(cfg)
    ru.check_work_dir(cfg, args.resume, args.overwrite_checkpoints)
    ru.apply_resume(cfg, args.resume)
    ru.apply_dataloader_options(
        cfg, toolbox, ('train_dataloader', 'val_dataloader',
                       'test_dataloader'),
        args.no_pin_memory, args.no_persistent_workers)
    ru.apply_device_fixes(cfg, args.launcher)
    ru.init_distributed(cfg, args.launcher)

    runner = ru.build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
