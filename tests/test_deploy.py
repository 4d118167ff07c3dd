"""Whole models through mmdeploy's ONNX Runtime backend with
``tools/deployment/export.py``, as a user runs it: a classifier (SWAT-DeiT),
the UperNet segmentor (STViT) and Mask R-CNN (SWAT-Swin), each from its toy
config with the backbone at its unit-test size and a random-init
checkpoint, exported from a toy image and checked by the tool against
PyTorch (its exit status and ``verify.json``).

At random init every Mask R-CNN score is low, so the comparison with
mmdet's own inference (detections with score >= 0.3) has nothing to
compare; the export check (onnxruntime against the traced PyTorch model, all
100 detections, at two sizes) carries that case.
"""
import glob
import json
import os
import os.path as osp
import subprocess

import pytest
import torch

from tests.forked_tools import run_python
from tests.tiny_archs import (STVIT_TINY, SWAT_SWIN_TINY, SWAT_VIT_TINY)

pytest.importorskip(
    'mmdeploy', reason='mmdeploy is not installed (tools/setup_env.sh '
    'installs it: pip install --no-deps mmdeploy==1.3.1; pip install aenum==3.1.17)')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEPLOY = osp.join(ROOT, 'tools', 'deployment', 'configs')

# task: deploy config, toy config, model overrides (tiny backbone and the
# widths that follow it), toy image
CASES = {
    'classification': (
        'classification_onnxruntime_dynamic.py',
        'configs/toy/swat-deit-tiny_toy-in1k.py',
        dict(backbone=dict(arch=dict(SWAT_VIT_TINY, _delete_=True),
                           img_size=64),
             head=dict(in_channels=SWAT_VIT_TINY['embed_dims'])),
        'imagenet/val/*.JPEG'),
    'segmentation': (
        'segmentation_onnxruntime_dynamic.py',
        'configs/toy/stvit-small_upernet_toy-ade20k.py',
        dict(backbone=dict(arch=dict(STVIT_TINY, _delete_=True),
                           stoken_size=(4, 2, 1, 1)),
             decode_head=dict(in_channels=STVIT_TINY['embed_dims']),
             auxiliary_head=dict(in_channels=STVIT_TINY['embed_dims'][2])),
        'ade20k/images/validation/*.jpg'),
    'instance-seg': (
        'instance-seg_onnxruntime_dynamic.py',
        'configs/toy/mask-rcnn_swat-swin-tiny_toy-coco.py',
        dict(backbone=dict(arch=dict(SWAT_SWIN_TINY, _delete_=True)),
             neck=dict(in_channels=[16, 32, 64, 128])),
        'coco/val2017/*.jpg'),
}


def tiny_config(task: str, tmp_path) -> str:
    """A config inheriting the toy one, with the tiny backbone."""
    _, toy, model, _ = CASES[task]
    path = tmp_path / f'{task}_tiny.py'
    path.write_text(f'_base_ = [{osp.join(ROOT, toy)!r}]\n'
                    f'model = {model!r}\n')
    return str(path)


def random_checkpoint(config: str, tmp_path) -> str:
    """The model of ``config`` at init, saved as a training run saves it."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import swat_mm  # noqa: F401
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    # weights initialised to zero (the SWAT ViT head, as timm's) would make
    # the output constant, which a wrong graph reproduces as well
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1 and not param.any():
                param.normal_(std=0.02)
    path = str(tmp_path / 'random.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def run_tool(task: str, toy_root: str, tmp_path, monkeypatch,
             *extra: str, deploy: str = None) -> subprocess.CompletedProcess:
    """``tools/deployment/export.py`` on the tiny model of ``task``, a
    random-init checkpoint and the first toy image, into tmp_path/work."""
    deploy = deploy or osp.join(DEPLOY, CASES[task][0])
    config = tiny_config(task, tmp_path)
    env = dict(os.environ, SWAT_MM_TOY_DATA=toy_root)
    monkeypatch.setenv('SWAT_MM_TOY_DATA', toy_root)  # for the config
    ckpt = random_checkpoint(config, tmp_path)
    img = sorted(glob.glob(osp.join(toy_root, CASES[task][3])))[0]
    return run_python(
        ['tools/deployment/export.py', deploy, config, ckpt, img,
         '--work-dir', str(tmp_path / 'work'), *extra], cwd=ROOT, env=env,
        timeout=600)


def export(task: str, toy_root: str, tmp_path, monkeypatch,
           *extra: str) -> dict:
    proc = run_tool(task, toy_root, tmp_path, monkeypatch, *extra)
    work = tmp_path / 'work'
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'OK: ' in proc.stdout
    assert (work / 'end2end.onnx').is_file()
    report = json.loads((work / 'verify.json').read_text())
    print(json.dumps(report))  # the numbers, with -s
    # standard ONNX operators only: plain onnxruntime runs the graph
    assert report['custom_ops'] == []
    assert report['ok'] and report['export']['ok']
    # the dynamic graph was run at a second, padded size too
    second = report['export_second_size']
    assert second['ok'] and second['input_shape'][2:] != \
        report['input_shape'][2:]
    return report


def test_classifier_through_mmdeploy(toy_root, tmp_path, monkeypatch):
    report = export('classification', toy_root, tmp_path, monkeypatch)
    # the scores are not constant (the check can fail)
    assert 0 < report['export']['output_rel_err']
    assert report['export']['output_rel_err'] <= 1e-4
    assert report['export_second_size']['output_rel_err'] <= 1e-4
    top1 = report['deployed']['top1']
    assert top1[0] == top1[1]
    assert report['deployed']['score_max_abs_err'] <= 1e-4


def test_upernet_through_mmdeploy(toy_root, tmp_path, monkeypatch):
    report = export('segmentation', toy_root, tmp_path, monkeypatch)
    assert report['export']['output_rel_err'] <= 1e-4
    # UperNet's pyramid pooling at a size its bins do not divide
    assert report['export_second_size']['output_rel_err'] <= 1e-4
    assert report['deployed']['map_agreement'] >= 0.999


def test_mask_rcnn_through_mmdeploy(toy_root, tmp_path, monkeypatch):
    # every detection the model keeps (score >= 0.05), not only the
    # confident ones, which a random-init model does not have
    report = export('instance-seg', toy_root, tmp_path, monkeypatch,
                    '--score-thr', '0.05')
    for key in ('export', 'export_second_size'):
        check = report[key]
        assert check['num_dets'][0] > 0
        assert check['compared'] >= sum(check['num_dets']) // 2
        assert check['unmatched'] == 0
        assert check['box_max_abs_err'] <= 0.05
        assert check['score_max_abs_err'] <= 1e-3
        assert check['mask_prob_max_abs_err'] <= 1e-3
    deployed = report['deployed']
    assert deployed['confident']['pytorch'] > 0
    assert deployed['matched'] == deployed['confident']


def test_export_exits_1_on_a_mismatch(toy_root, tmp_path, monkeypatch):
    """No tolerance at all: float rounding is a mismatch, said and written,
    with exit status 1."""
    proc = run_tool('classification', toy_root, tmp_path, monkeypatch,
                    '--rtol', '0')
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'MISMATCH' in proc.stderr
    report = json.loads((tmp_path / 'work' / 'verify.json').read_text())
    assert not report['ok'] and not report['export']['ok']
    assert report['export']['output_rel_err'] > 0


def test_export_refuses_an_argmax_segmentation_config(toy_root, tmp_path,
                                                      monkeypatch):
    """An arg-max map cannot be compared with mmseg's at the image size:
    exit 2 with the fix, before anything is exported."""
    src = open(osp.join(DEPLOY, CASES['segmentation'][0])).read()
    assert 'with_argmax=False' in src
    deploy = tmp_path / 'argmax.py'
    deploy.write_text(src.replace('with_argmax=False', 'with_argmax=True'))
    proc = run_tool('segmentation', toy_root, tmp_path, monkeypatch,
                    deploy=str(deploy))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'set with_argmax=False' in proc.stderr
    assert not (tmp_path / 'work').exists()
