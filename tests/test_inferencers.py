"""The four OpenMMLab inferencers of README "Use a model" run on swat_mm
configs and checkpoints, called as the README calls them (a config path and
a checkpoint path).

The checkpoints come from the toy configs trained for one iteration by the
real mmengine ``Runner`` (so they carry the ``dataset_meta`` a Runner
saves); the images are the toy datasets' validation images. Each test
checks the output's keys, shapes and the number of classes against the
toy dataset's.
"""
import glob
import os
import os.path as osp
from contextlib import contextmanager
from typing import Callable, Dict, Iterator

import numpy as np
import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(
    cls='configs/toy/stvit-small_toy-in1k.py',
    seg='configs/toy/stvit-small_upernet_toy-ade20k.py',
    det='configs/toy/mask-rcnn_stvit-small_toy-coco.py')
IMAGES = dict(cls='imagenet/val/*.JPEG', seg='ade20k/images/validation/*',
              det='coco/val2017/*.jpg')


@pytest.fixture(scope='module')
def toy_env(toy_root) -> Iterator[str]:
    """The toy configs read ``$SWAT_MM_TOY_DATA`` when parsed, by the tests
    and by the inferencers."""
    before = os.environ.get('SWAT_MM_TOY_DATA')
    os.environ['SWAT_MM_TOY_DATA'] = toy_root
    yield toy_root
    if before is None:
        del os.environ['SWAT_MM_TOY_DATA']
    else:
        os.environ['SWAT_MM_TOY_DATA'] = before


def train_one_iteration(task: str, work_dir: str) -> str:
    """Train the toy config of ``task`` for one iteration (batch 2, no
    validation) with the real Runner; the checkpoint's path."""
    from mmengine.runner import Runner
    import swat_mm  # noqa: F401
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[task]))
    cfg.work_dir = work_dir
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.num_workers = 0
    cfg.param_scheduler = []
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.interval = 1
    if 'max_iters' in cfg.train_cfg:
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    else:
        cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
        cfg.train_dataloader.dataset.indices = 2
    Runner.from_cfg(cfg).train()
    ckpts = glob.glob(osp.join(work_dir, '*_1.pth'))
    assert len(ckpts) == 1, ckpts
    return ckpts[0]


@pytest.fixture(scope='module')
def trained(toy_env, tmp_path_factory) -> Callable[[str], str]:
    """The checkpoint of a task, trained when first asked for."""
    root = tmp_path_factory.mktemp('inferencers')
    done: Dict[str, str] = {}

    def get(task: str) -> str:
        if task not in done:
            done[task] = train_one_iteration(task, str(root / task))
        return done[task]
    return get


@contextmanager
def mmpretrain_scope() -> Iterator[None]:
    """mmpretrain's inferencers build their pipelines in the current default
    scope (only ``get_model`` switches to mmpretrain's); a Runner of another
    toolbox earlier in this process leaves its scope current."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def image(toy_root: str, task: str) -> str:
    return sorted(glob.glob(osp.join(toy_root, IMAGES[task])))[0]


def config(task: str) -> str:
    return osp.join(ROOT, CONFIGS[task])


def test_image_classification_inferencer(trained, toy_env, tmp_path):
    from mmpretrain import ImageClassificationInferencer

    from swat_mm.testing.toy_datasets import ToyImageNet
    from swat_mm.utils import safe_load
    classes = ToyImageNet.METAINFO['classes']
    assert len(classes) == 5
    with mmpretrain_scope():
        inferencer = ImageClassificationInferencer(
            config('cls'), pretrained=trained('cls'), device='cpu')
        result = inferencer(image(toy_env, 'cls'))[0]
    assert set(result) == {'pred_scores', 'pred_label', 'pred_score',
                           'pred_class'}
    assert result['pred_scores'].shape == (len(classes), )
    assert float(np.sum(result['pred_scores'])) == pytest.approx(1, abs=1e-5)
    assert result['pred_class'] == classes[result['pred_label']]
    # a checkpoint with weights only: the classes come from the config's
    # test dataset
    bare = tmp_path / 'weights_only.pth'
    torch.save({'state_dict': safe_load(trained('cls'))['state_dict']},
               bare)
    with mmpretrain_scope():
        inferencer = ImageClassificationInferencer(
            config('cls'), pretrained=str(bare), device='cpu')
        again = inferencer(image(toy_env, 'cls'))[0]
    assert again['pred_class'] == classes[again['pred_label']]
    assert np.allclose(again['pred_scores'], result['pred_scores'],
                       atol=1e-6)


def test_feature_extractor_per_stage(trained, toy_env):
    """Feature maps of every stage: the config with all ``out_indices``;
    the toy images are 64 x 64, so strides 4..32 give 16..2."""
    from mmpretrain import FeatureExtractor
    cfg = Config.fromfile(config('cls'))
    cfg.model.backbone.out_indices = (0, 1, 2, 3)
    with mmpretrain_scope():
        extractor = FeatureExtractor(cfg, pretrained=trained('cls'),
                                     device='cpu')
        feats = extractor(image(toy_env, 'cls'), stage='backbone')[0]
        pooled = extractor(image(toy_env, 'cls'), stage='neck')[0]
    assert [tuple(f.shape) for f in feats] == [
        (64, 16, 16), (128, 8, 8), (320, 4, 4), (512, 2, 2)]
    assert all(torch.isfinite(f).all() for f in feats)
    # the whole path to the head's input: STViT's neck, 1024 channels
    assert [tuple(f.shape) for f in pooled] == [(1024, )]


def test_mmseg_inferencer(trained, toy_env):
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(config('seg'), weights=trained('seg'),
                                 device='cpu')
    # the toy ADE20K uses mmseg's ADE20KDataset: its 150 classes, saved in
    # the checkpoint by the Runner
    assert len(inferencer.model.dataset_meta['classes']) == 150
    assert len(inferencer.model.dataset_meta['palette']) == 150
    result = inferencer(image(toy_env, 'seg'))
    assert set(result) == {'predictions', 'visualization'}
    seg = np.asarray(result['predictions'])
    assert seg.shape == (128, 128)
    assert seg.min() >= 0 and seg.max() < 150


def test_det_inferencer(trained, toy_env):
    from mmdet.apis import DetInferencer

    from swat_mm.testing.toy_datasets import ToyCocoDataset
    classes = ToyCocoDataset.METAINFO['classes']
    inferencer = DetInferencer(config('det'), weights=trained('det'),
                               device='cpu')
    assert tuple(inferencer.model.dataset_meta['classes']) == \
        tuple(classes)
    result = inferencer(image(toy_env, 'det'), no_save_pred=True)
    assert set(result) == {'predictions', 'visualization'}
    pred = result['predictions'][0]
    assert set(pred) == {'labels', 'scores', 'bboxes', 'masks'}
    n = len(pred['labels'])
    assert 0 < n <= 100  # the test_cfg's max_per_img
    assert len(pred['scores']) == len(pred['bboxes']) == \
        len(pred['masks']) == n
    assert all(0 <= label < len(classes) for label in pred['labels'])
    boxes = np.asarray(pred['bboxes'])
    assert boxes.shape == (n, 4)
    assert (boxes[:, 2:] >= boxes[:, :2]).all()
    assert (boxes >= 0).all() and (boxes <= 128).all()
    # masks as COCO RLE of the 128 x 128 image
    assert all(m['size'] == [128, 128] for m in pred['masks'])
