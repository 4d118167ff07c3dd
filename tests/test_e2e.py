"""Toy end-to-end runs through the real tools, Runner, datasets and metrics:
a few training iterations, then evaluation."""
import glob
import json
import os
import os.path as osp

import pytest
import torch

from tests.forked_tools import run_python

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_tool(args, toy_root, timeout=600):
    env = dict(os.environ, SWAT_MM_TOY_DATA=toy_root)
    proc = run_python(args, cwd=ROOT, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def scalars(work_dir):
    """The json log mmengine writes: one dict per logged step/evaluation."""
    path = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert path, f'no scalars.json under {work_dir}'
    with open(path[0]) as f:
        return [json.loads(line) for line in f]


CLS_CONFIGS = ['configs/toy/stvit-small_toy-in1k.py',
               'configs/toy/svt-h-small_toy-in1k.py',
               'configs/toy/swat-deit-tiny_toy-in1k.py']
DET_CONFIGS = ['configs/toy/mask-rcnn_stvit-small_toy-coco.py',
               'configs/toy/mask-rcnn_svt-h-small_toy-coco.py',
               'configs/toy/mask-rcnn_swat-swin-tiny_toy-coco.py']
SEG_CONFIGS = ['configs/toy/stvit-small_upernet_toy-ade20k.py',
               'configs/toy/svt-h-small_upernet_toy-ade20k.py',
               'configs/toy/swat-swin-tiny_upernet_toy-ade20k.py']


def short(path):
    return osp.splitext(osp.basename(path))[0]


@pytest.mark.parametrize('config', CLS_CONFIGS, ids=short)
def test_classification_toy(config, toy_root, tmp_path):
    work = str(tmp_path / 'cls')
    run_tool(['tools/train.py', config,
              '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1',
              'train_cfg.val_interval=1', 'default_hooks.logger.interval=2',
              'train_dataloader.dataset.indices=64'], toy_root)
    logs = scalars(work)
    losses = [r['loss'] for r in logs if 'loss' in r]
    assert len(losses) >= 2 and all(torch.isfinite(torch.tensor(losses)))
    acc = [r['accuracy/top1'] for r in logs if 'accuracy/top1' in r]
    assert len(acc) == 1 and 0.0 <= acc[0] <= 100.0
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    # the checkpoint evaluates again through tools/test.py, with the same
    # accuracy (EMA weights are swapped in by the EMAHook in both runs)
    out = run_tool(['tools/test.py', config, ckpt, '--work-dir', str(tmp_path / 'cls_test')],
                   toy_root)
    assert f'accuracy/top1: {acc[0]:.4f}' in out.stdout + out.stderr


def test_svt_token_labelling_toy(toy_root, tmp_path):
    """SVT's token-labelling option on the toy ImageNet's dense labels: the
    data pipeline builds (num_classes, 1 + 2*2) targets, the head trains on
    them, and the checkpoint evaluates through tools/test.py."""
    label = torch.load(osp.join(toy_root, 'imagenet', 'token_label', 'disc',
                                'disc_0000.pt'), weights_only=True)
    assert label.shape == (2, 2, 8, 8)
    assert (label[1, 0] == 1).all()  # 'disc' is class 1
    config = 'configs/toy/svt-h-small_toy-in1k-tl.py'
    work = str(tmp_path / 'tl')
    run_tool(['tools/train.py', config, '--work-dir', work, '--cfg-options',
              'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
              'default_hooks.logger.interval=2',
              'train_dataloader.dataset.indices=64'], toy_root)
    logs = scalars(work)
    losses = [r['loss'] for r in logs if 'loss' in r]
    assert len(losses) >= 2 and all(torch.isfinite(torch.tensor(losses)))
    acc = [r['accuracy/top1'] for r in logs if 'accuracy/top1' in r]
    assert len(acc) == 1 and 0.0 <= acc[0] <= 100.0
    from swat_mm.utils.checkpoint import safe_load
    state = safe_load(osp.join(work, 'epoch_1.pth'))['state_dict']
    assert 'head.aux_head.weight' in state


@pytest.mark.parametrize('config', DET_CONFIGS, ids=short)
def test_mask_rcnn_toy(config, toy_root, tmp_path):
    work = str(tmp_path / 'det')
    run_tool(['tools/train.py', config,
              '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1',
              'train_cfg.val_interval=1', 'default_hooks.logger.interval=2',
              'train_dataloader.dataset.indices=16',
              'val_dataloader.dataset.indices=8'], toy_root)
    logs = scalars(work)
    losses = [r for r in logs if 'loss_mask' in r]
    assert losses and all(0 < r['loss_mask'] < 20 for r in losses)
    evals = [r for r in logs if 'coco/bbox_mAP' in r]
    assert len(evals) == 1
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50',
                'coco/segm_mAP_50'):
        assert 0.0 <= evals[0][key] <= 1.0
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


@pytest.mark.parametrize('config', SEG_CONFIGS, ids=short)
def test_upernet_toy_with_packaged_mmseg_tool(config, toy_root, tmp_path):
    """The train.py shipped inside the installed mmseg package runs our
    config: custom_imports alone brings swat_mm in."""
    import mmseg
    tool = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')
    assert osp.isfile(tool)
    work = str(tmp_path / 'seg')
    run_tool([tool, config,
              '--work-dir', work, '--cfg-options', 'train_cfg.max_iters=6',
              'train_cfg.val_interval=6', 'default_hooks.logger.interval=2',
              'default_hooks.checkpoint.interval=6',
              'param_scheduler.0.end=3', 'param_scheduler.1.begin=3',
              'param_scheduler.1.end=6',
              'val_dataloader.dataset.indices=8'], toy_root)
    logs = scalars(work)
    assert [r['iter'] for r in logs if 'loss' in r] == [2, 4, 6]
    miou = [r['mIoU'] for r in logs if 'mIoU' in r]
    assert len(miou) == 1 and 0.0 <= miou[0] <= 100.0
    assert osp.isfile(osp.join(work, 'iter_6.pth'))
