"""Train STViT-S + UperNet on the toy ADE20K and show what it learnt.

    python tools/toy_demo.py                          # ~5 minutes on 2 CPU cores
    python tools/toy_demo.py --smoke                  # ~1 minute, for tests
    python tools/toy_demo.py --work-dir work_dirs/x --iters 500 --data-root data/toy

Steps, all through the real OpenMMLab machinery:

1. generate the toy data (``swat_mm.testing.toy_data``) under ``--data-root`` unless
   it is there already;
2. build an mmengine ``Runner`` from ``configs/toy/stvit-small_upernet_toy-ade20k.py``
   (STViT-S + UperNet, mmseg's ``ADE20KDataset`` pipelines and ``IoUMetric``);
3. evaluate the freshly initialised model (the "untrained" mIoU), train for
   ``--iters`` iterations (default 200, peak lr 3e-3: :data:`DEMO_ITERS`,
   :data:`DEMO_LR`), evaluate again with the same metric;
4. write one PNG per validation image to ``<work-dir>/vis/``: image | ground
   truth | prediction, in the ADE20K palette, with a legend; and
   ``<work-dir>/toy_demo_summary.json`` with both metrics and per-class IoUs.

``--smoke`` trains 40 iterations on smaller crops (and writes no checkpoint):
enough to beat the untrained model clearly, for a test under 90 s.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

# OpenMP's default busy-waiting makes every torch op wait for a thread the
# kernel has descheduled whenever the cores are shared (another job, a data
# worker): STViT-S steps measured 5-10x slower on 2 busy cores. Waiting
# passively has to be chosen before torch (libgomp) loads.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import numpy as np  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'toy',
                          'stvit-small_upernet_toy-ade20k.py')
# The demo's schedule, applied on top of the toy config (batch 8, 64x64 crops
# of images resized to 64 px, AdamW, 10% warm-up then poly decay). Measured on
# 2 shared CPU cores (load 1.5-3): 200 iterations take 250-290 s; peak lr 1e-3
# reached 35 mIoU, 3e-3 61-65, 6e-3 56. The initialised model scores 0.
DEMO_ITERS = 200
DEMO_LR = 3e-3
# Smoke mode: fewer iterations on smaller crops, ~1 minute in all; measured
# 26-27 mIoU (wall and floor learnt, objects not yet) against 0 untrained.
SMOKE_ITERS = 40
SMOKE_CROP = (48, 48)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Train STViT-S + UperNet on the toy ADE20K, report the '
        'untrained and trained mIoU and draw the predictions.')
    parser.add_argument('--work-dir', default='work_dirs/toy_demo')
    parser.add_argument('--iters', type=int, default=None,
                        help=f'training iterations (default {DEMO_ITERS}; '
                        f'{SMOKE_ITERS} with --smoke)')
    parser.add_argument('--lr', type=float, default=DEMO_LR,
                        help=f'peak AdamW learning rate (default {DEMO_LR})')
    parser.add_argument('--data-root', default='data/toy',
                        help='toy data root; ade20k/ is generated there if '
                        'missing')
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--smoke', action='store_true',
                        help=f'{SMOKE_ITERS} iterations on {SMOKE_CROP} crops, '
                        'no checkpoint')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-checkpoint', action='store_true',
                        help='do not save the trained weights')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------
def _rescale_schedule(cfg, iters: int) -> None:
    """Set the schedule length to ``iters``, stretching warm-up and decay.

    Scheduler boundaries given in iterations are scaled by ``iters / old``, so
    a 10% warm-up stays 10% of the run.
    """
    old = int(cfg.train_cfg.max_iters)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters  # one evaluation, at the end
    for sched in cfg.get('param_scheduler', None) or []:
        for key in ('begin', 'end'):
            if key in sched and sched[key] is not None:
                sched[key] = min(iters, max(0, round(sched[key] * iters / old)))
    ckpt = cfg.default_hooks.get('checkpoint', None)
    if ckpt is not None:
        ckpt.interval = iters
    logger = cfg.default_hooks.get('logger', None)
    if logger is not None:
        logger.interval = max(1, min(int(logger.get('interval', 50)), iters // 5))


def _set_crop(cfg, crop: Tuple[int, int]) -> None:
    """Change the training crop everywhere the config names it."""
    cfg.crop_size = crop
    cfg.model.data_preprocessor.size = crop
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'RandomCrop':
            t['crop_size'] = crop


def build_cfg(args: argparse.Namespace, ade_root: str):
    """The toy config with the demo's data root, schedule and work dir."""
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    cfg.launcher = 'none'
    cfg.randomness = dict(seed=args.seed)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = ade_root
    _rescale_schedule(
        cfg, args.iters or (SMOKE_ITERS if args.smoke else DEMO_ITERS))
    cfg.optim_wrapper.optimizer.lr = args.lr
    if args.smoke:
        _set_crop(cfg, SMOKE_CROP)
    if args.cfg_options:  # last, so that they win
        cfg.merge_from_dict(args.cfg_options)
    if args.smoke or args.no_checkpoint:
        # no weights on disk: interval beyond the run, and no final save
        cfg.default_hooks.checkpoint = dict(
            type='CheckpointHook', by_epoch=False,
            interval=cfg.train_cfg.max_iters + 1, save_last=False)
    else:
        # the weights are what a user wants to keep; the optimizer state
        # would triple the file
        cfg.default_hooks.checkpoint.save_optimizer = False
    return cfg


# ---------------------------------------------------------------------------
# evaluation hooks
# ---------------------------------------------------------------------------
def _metrics_hook(evaluate_first: bool):
    """A hook that evaluates the initialised model before the first iteration
    (same ``ValLoop`` and metric as the final evaluation) and records every
    evaluation's metrics as ``(iteration, metrics)`` in ``hook.records``."""
    from mmengine.hooks import Hook

    class ToyDemoMetricsHook(Hook):
        # after the other hooks' before_train: weights are initialised and
        # loaded, the message hub knows max_iters
        priority = 'VERY_LOW'

        def __init__(self) -> None:
            self.records: List[Tuple[int, Dict[str, float]]] = []

        def before_train(self, runner) -> None:
            if evaluate_first:
                runner.val_loop.run()

        def after_val_epoch(self, runner, metrics=None) -> None:
            self.records.append((runner.iter, dict(metrics or {})))

    return ToyDemoMetricsHook()


# ---------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------
_IGNORE_RGB = (40, 40, 40)
_PANEL_SCALE = 2


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _colourise(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class indices (255 = ignored) -> (H, W, 3) uint8."""
    rgb = np.empty(label.shape + (3, ), np.uint8)
    rgb[:] = _IGNORE_RGB
    valid = label < len(palette)
    rgb[valid] = palette[label[valid]]
    return rgb


def draw_triptych(image: np.ndarray, gt: np.ndarray, pred: np.ndarray,
                  classes: Sequence[str], palette: np.ndarray,
                  title: str):
    """image | ground truth | prediction side by side, titles above, a legend
    of the classes that occur in either map below.

    Args:
        image: (H, W, 3) uint8 RGB.
        gt, pred: (H, W) class indices; 255 in ``gt`` is "ignored".
        classes, palette: the dataset's class names and (N, 3) colours.
        title: text for the image panel (e.g. the file name).

    Returns:
        A ``PIL.Image`` of width ``3 * 2W`` and height ``2H`` plus the title
        row and the legend rows.
    """
    from PIL import Image, ImageDraw
    h, w = gt.shape
    ph, pw = h * _PANEL_SCALE, w * _PANEL_SCALE
    panels = [image, _colourise(gt, palette), _colourise(pred, palette)]
    present = sorted(set(np.unique(gt).tolist()) | set(np.unique(pred).tolist()))
    present = [c for c in present if c < len(classes)]
    font = _font(11)
    head, row = 16, 16
    # legend entries: colour box + name, wrapped into rows of the full width
    entries, x, rows = [], 4, 1
    for c in present + [255]:
        name = classes[c] if c != 255 else 'ignored'
        width = 14 + int(font.getlength(name)) + 10
        if x + width > 3 * pw:
            x, rows = 4, rows + 1
        entries.append((x, rows - 1, c, name))
        x += width
    canvas = Image.new('RGB', (3 * pw, head + ph + rows * row), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (panel, text) in enumerate(zip(
            panels, (title, 'ground truth', 'prediction'))):
        canvas.paste(Image.fromarray(panel).resize((pw, ph), Image.NEAREST),
                     (i * pw, head))
        draw.text((i * pw + 4, 2), text, fill=(0, 0, 0), font=font)
    for x, r, c, name in entries:
        y = head + ph + r * row + 3
        colour = tuple(int(v) for v in palette[c]) if c != 255 else _IGNORE_RGB
        draw.rectangle((x, y, x + 10, y + 10), fill=colour, outline=(0, 0, 0))
        draw.text((x + 14, y - 1), name, fill=(0, 0, 0), font=font)
    return canvas


def visualise(runner, out_dir: str) -> Dict[str, object]:
    """Predict every validation image, draw it, and count per-class IoU.

    Returns the per-class IoU (over classes present in the ground truth or
    the prediction, pixels ignored by the ground truth excluded, as
    ``IoUMetric`` does) and the number of PNGs written.
    """
    import torch
    from PIL import Image
    os.makedirs(out_dir, exist_ok=True)
    meta = runner.val_dataloader.dataset.metainfo
    classes, palette = meta['classes'], np.asarray(meta['palette'], np.uint8)
    n = len(classes)
    inter, union = np.zeros(n), np.zeros(n)
    written = 0
    model = runner.model
    model.eval()
    with torch.no_grad():
        for batch in runner.val_dataloader:
            for sample in model.test_step(batch):
                gt = sample.gt_sem_seg.data[0].cpu().numpy().astype(np.int64)
                pred = sample.pred_sem_seg.data[0].cpu().numpy().astype(np.int64)
                image = np.asarray(Image.open(sample.img_path).convert('RGB'))
                valid = gt != 255
                g, p = gt[valid], pred[valid]
                inter += np.bincount(g[g == p], minlength=n)[:n]
                union += (np.bincount(g, minlength=n) + np.bincount(p, minlength=n)
                          - np.bincount(g[g == p], minlength=n))[:n]
                name = osp.splitext(osp.basename(sample.img_path))[0]
                draw_triptych(image, gt, pred, classes, palette, name).save(
                    osp.join(out_dir, name + '.png'))
                written += 1
    per_class = {classes[c]: round(float(100 * inter[c] / union[c]), 2)
                 for c in range(n) if union[c] > 0}
    return dict(per_class_iou=per_class, images=written)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
def run_demo(args: argparse.Namespace) -> Dict[str, object]:
    """Run the whole demo; returns the summary also written as JSON."""
    from mmengine.runner import Runner
    sys.path.insert(0, REPO)  # a checkout without `pip install -e .` works too
    from swat_mm.testing.toy_data import make_toy_data

    start = time.time()
    ade_root = make_toy_data(args.data_root, which=('ade20k', ))['ade20k']
    cfg = build_cfg(args, ade_root)
    runner = Runner.from_cfg(cfg)
    hook = _metrics_hook(evaluate_first=True)
    runner.register_hook(hook)
    t_train = time.time()
    runner.train()
    train_s = time.time() - t_train
    # metric values come as numpy scalars; JSON wants plain floats
    (untrained, trained) = ({k: float(v) for k, v in rec[1].items()}
                            for rec in (hook.records[0], hook.records[-1]))
    vis_dir = osp.join(osp.abspath(cfg.work_dir), 'vis')
    vis = visualise(runner, vis_dir)
    summary = dict(
        config=osp.abspath(args.config),
        iters=int(cfg.train_cfg.max_iters),
        lr=float(cfg.optim_wrapper.optimizer.lr),
        crop_size=list(cfg.model.data_preprocessor.size),
        batch_size=int(cfg.train_dataloader.batch_size),
        untrained=untrained, trained=trained,
        untrained_mIoU=float(untrained['mIoU']),
        trained_mIoU=float(trained['mIoU']),
        per_class_iou=vis['per_class_iou'],
        vis_dir=vis_dir, vis_images=vis['images'],
        train_seconds=round(train_s, 1),
        total_seconds=round(time.time() - start, 1))
    with open(osp.join(cfg.work_dir, 'toy_demo_summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    return summary


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    s = run_demo(args)
    print(f'\ntoy demo: {s["iters"]} iterations, lr {s["lr"]:g}, '
          f'batch {s["batch_size"]}, '
          f'crop {tuple(s["crop_size"])}, training {s["train_seconds"]:.0f} s, '
          f'total {s["total_seconds"]:.0f} s')
    print(f'mIoU untrained: {s["untrained_mIoU"]:.2f}')
    print(f'mIoU trained:   {s["trained_mIoU"]:.2f}')
    print('per-class IoU:  ' + ', '.join(
        f'{k} {v:.1f}' for k, v in s['per_class_iou'].items()))
    print(f'visualisations ({s["vis_images"]} PNGs): {s["vis_dir"]}')


if __name__ == '__main__':
    main()
