"""STViT recipes: the shipped configs against their sources (issue 19).

* official checkpoints give the official logits through the shipped
  classification configs (the ones README names) and the shipped converter;
* the 384 fine-tunes train in eval mode, as the official fine-tune;
* raw and EMA models are both evaluated (the official reports the raw one);
* STViT-L's two-phase drop path (official README);
* the 3x detection recipes carry mmdet's Swin ms-crop-3x augmentation.
"""
import copy
import functools
import importlib.util
import os.path as osp
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope

import swat_mm  # noqa: F401
from swat_mm.testing.toy_data import IMAGENET_CLASSES, make_toy_data
from tests.golden.cases import (assert_official_logits, load_fixture,
                                stvit_arch)
from tests.tiny_archs import STVIT_TINY

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLS = osp.join(ROOT, 'configs', 'cls', 'stvit')
DET = osp.join(ROOT, 'configs', 'det', 'stvit')


def cls_config(name):
    return Config.fromfile(osp.join(CLS, name))


# ---------------------------------------------------------------------------
# Official checkpoints -> official logits, through the shipped configs

def _run_converter_tool(src, dst):
    """tools/model_converters/stvit_to_mmpretrain.py SRC DST, in process."""
    path = osp.join(ROOT, 'tools', 'model_converters',
                    'stvit_to_mmpretrain.py')
    spec = importlib.util.spec_from_file_location('stvit_to_mmpretrain',
                                                  path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = sys.argv
    sys.argv = [path, str(src), str(dst)]
    try:
        assert tool.main() in (0, None)
    finally:
        sys.argv = argv


def _eval_through_config(cfg, ckpt, fixture):
    from mmpretrain.apis import init_model
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = init_model(cfg, ckpt, device='cpu')
    assert not model.training
    state = torch.load(ckpt, weights_only=True)['state_dict']
    # everything in the file is used and everything the model has is loaded
    assert set(state) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert_official_logits(model, fixture)


# README: stvit-<arch>-224.pth with the 8xb128 config, -384.pth with the
# 8xb64 ...-384px config (the same network; only data and schedule differ)
ZOO_CASES = [('stvit_small', 'stvit-small_8xb128_in1k.py'),
             ('stvit_small', 'stvit-small_8xb64_in1k-384px.py'),
             ('stvit_base', 'stvit-base_8xb128_in1k.py'),
             ('stvit_base', 'stvit-base_8xb64_in1k-384px.py')]


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """name -> (fixture, file written by the shipped converter tool from
    the official state dict wrapped as the authors' files are)."""
    cache = {}

    def get(name):
        if name not in cache:
            fixture = load_fixture(name)
            tmp = tmp_path_factory.mktemp(name)
            src, dst = tmp / 'official.pth', tmp / 'converted.pth'
            torch.save({'model': fixture['state_dict']}, src)
            _run_converter_tool(src, dst)
            cache[name] = fixture, str(dst)
        return cache[name]
    return get


@pytest.mark.parametrize('name, config', ZOO_CASES)
def test_official_weights_give_official_logits_with_shipped_config(
        name, config, converted):
    """The authors' weights (small/base; golden fixtures written by the
    official code), converted by the shipped tool, loaded by mmpretrain's
    init_model into the model of the shipped config exactly as shipped,
    give the official logits."""
    fixture, dst = converted(name)
    cfg = cls_config(config)
    arch, extra = stvit_arch(fixture['official_kwargs'])
    assert cfg.model.backbone.arch == name.split('_')[1]
    assert list(cfg.model.backbone.stoken_size) == extra['stoken_size']
    _eval_through_config(cfg, dst, fixture)


@pytest.mark.parametrize('config', ['stvit-large_8xb128_in1k.py',
                                    'stvit-large_8xb64_in1k-384px.py',
                                    'stvit-large_8xb128_in1k-dp-phase1.py'])
@pytest.mark.parametrize('name', ['stvit_tiny_a', 'stvit_tiny_b'])
def test_official_tiny_weights_through_large_configs(name, config, tmp_path):
    """No STViT-L fixture exists: the tiny official models (other widths,
    super-token sizes, iterations and layer scales) through the STViT-L
    configs with only the architecture overridden (backbone arch, super
    tokens, neck/head widths); everything else as shipped."""
    from swat_mm.converters import convert_stvit
    fixture = load_fixture(name)
    arch, extra = stvit_arch(fixture['official_kwargs'])
    state, conv_cfg = convert_stvit(fixture['state_dict'], arch=arch)
    ckpt = str(tmp_path / 'converted.pth')
    torch.save({'state_dict': state}, ckpt)
    cfg = cls_config(config)
    cfg.model.backbone.update(arch=arch, **extra)
    cfg.model.neck.update(conv_cfg['neck'])
    cfg.model.head.update(num_classes=conv_cfg['head']['num_classes'],
                          in_channels=conv_cfg['head']['in_channels'])
    _eval_through_config(cfg, ckpt, fixture)


@pytest.mark.parametrize('config', ['stvit-small_8xb128_in1k.py',
                                    'stvit-small_8xb64_in1k-384px.py'])
def test_data_preprocessor_is_the_official_normalisation(config):
    """Images reach the model as the official eval transform gives them:
    RGB, ToTensor (/255), Normalize(timm IMAGENET_DEFAULT_MEAN/STD)."""
    from mmpretrain.registry import MODELS
    cfg = cls_config(config)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pre = MODELS.build(dict(cfg.data_preprocessor,
                                type='ClsDataPreprocessor'))
    rng = np.random.RandomState(0)
    bgr = torch.from_numpy(rng.randint(0, 256, (3, 20, 24), np.uint8))
    out = pre(dict(inputs=[bgr]), False)['inputs'][0]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    official = (bgr.flip(0).float() / 255 - mean) / std
    assert torch.allclose(out, official, atol=1e-5)


# ---------------------------------------------------------------------------
# 384 fine-tune in eval mode; raw and EMA evaluation (a real Runner)

@pytest.fixture(scope='module')
def toy_imagenet(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('stvit_recipe_toy'))
    return make_toy_data(root, which=['imagenet'])['imagenet']


def _toy_runner_cfg(config, data_root, work_dir):
    """The shipped config with a tiny STViT, 64-pixel toy images and a
    short schedule; hooks, optimizer, model type and pipelines as
    shipped."""
    cfg = cls_config(config)
    cfg.model.backbone.arch = STVIT_TINY
    cfg.model.neck.update(in_channels=64, out_channels=32)
    cfg.model.head.update(num_classes=5, in_channels=32)
    cfg.data_preprocessor.num_classes = 5
    for loader, n in (('train_dataloader', 8), ('val_dataloader', 4),
                      ('test_dataloader', 4)):
        dl = cfg[loader]
        dl.update(batch_size=4, num_workers=0, persistent_workers=False)
        dl.dataset.update(data_root=data_root, indices=n,
                          metainfo=dict(classes=IMAGENET_CLASSES))
        for t in dl.dataset.pipeline:
            if t['type'] == 'RandomResizedCrop':
                t['scale'] = 64
            elif t['type'] in ('ResizeEdge', 'CenterCrop'):
                t['scale' if 'scale' in t else 'crop_size'] = 64
    cfg.val_evaluator = cfg.test_evaluator = dict(type='Accuracy',
                                                  topk=(1, ))
    cfg.train_cfg.update(max_epochs=1, val_interval=1)
    cfg.default_hooks.checkpoint.update(save_best=None)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.load_from = None
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    return cfg


def _unhooked_copy(module):
    copied = copy.deepcopy(module)
    copied._forward_hooks.clear()
    return copied


def test_384_finetune_trains_in_eval_mode_and_reports_raw_and_ema(
        toy_imagenet, tmp_path):
    """A real Runner on the STViT-L 384 config (drop path 0.6): every
    training step runs the whole model in eval mode, so the backbone's
    maps are those of the eval-mode (official fine-tune) forward, no
    BatchNorm statistic moves, while every parameter (BatchNorm weights
    included) is trained. Validation reports the EMA model
    (accuracy/top1) and the raw one (accuracy/top1_origin)."""
    from mmengine.runner import Runner
    cfg = _toy_runner_cfg('stvit-large_8xb64_in1k-384px.py', toy_imagenet,
                          str(tmp_path / 'work'))
    assert cfg.model.backbone.drop_path_rate == 0.6
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        runner = Runner.from_cfg(cfg)
    model = runner.model
    backbone = model.backbone
    before = copy.deepcopy(model.state_dict())
    bn_keys = [k for k, m in model.named_modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert any(k.startswith('neck.') for k in bn_keys)
    seen = dict(train=0, val=[])

    def spy(module, inputs, outputs):
        x = inputs[0]
        if not torch.is_grad_enabled():  # validation
            seen['val'].append(module.patch_embed.proj[0].weight.sum())
            return
        seen['train'] += 1
        assert not any(m.training for m in model.modules())
        with torch.no_grad():
            ref_eval = _unhooked_copy(module).eval()(x)
            ref_train = _unhooked_copy(module).train()(x)
        for out, ref, other in zip(outputs, ref_eval, ref_train):
            assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5), \
                (out - ref).abs().max()
            # what the train-mode forward would have given instead
            assert not torch.allclose(out, other, rtol=1e-3, atol=1e-3)

    backbone.register_forward_hook(spy)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        runner.train()
    assert seen['train'] >= 2
    after = model.state_dict()
    for key, value in before.items():
        if key.rsplit('.', 1)[-1] in ('running_mean', 'running_var',
                                      'num_batches_tracked'):
            assert torch.equal(after[key], value), key
    trained = [k for k, p in model.named_parameters()
               if not torch.equal(p, before[k])]
    assert len(trained) == len(list(model.parameters()))

    # the EMA model, then the raw model, evaluated after the epoch
    hub = runner.message_hub
    ema, raw = (hub.get_scalar(f'val/accuracy/top1{s}').current()
                for s in ('', '_origin'))
    assert 0 <= ema <= 100 and 0 <= raw <= 100
    sums = torch.stack(seen['val'])
    assert len(sums) == 2 and not torch.equal(sums[0], sums[1])
    ema_hook = next(h for h in runner.hooks if type(h).__name__ ==
                    'EMAHook')
    ema_w = ema_hook.ema_model.module.backbone.patch_embed.proj[0].weight
    assert torch.equal(sums[0], ema_w.sum())
    assert torch.equal(sums[1], backbone.patch_embed.proj[0].weight.sum())


@pytest.mark.parametrize('config', ['stvit-small_8xb128_in1k.py',
                                    'stvit-base_8xb64_in1k-384px.py'])
def test_ema_and_eval_mode_hooks_in_configs(config):
    cfg = cls_config(config)
    hooks = {h['type']: h for h in cfg.custom_hooks}
    ema = hooks['EMAHook']
    # timm ModelEma(decay=0.99996): mmengine's momentum is 1 - decay
    assert ema['momentum'] == pytest.approx(4e-5)
    assert ema['evaluate_on_ema'] and ema['evaluate_on_origin']
    assert ('swat_mm.EvalModeTrainingHook' in hooks) == ('384' in config)
    assert {'swat_mm.RandomStateHook', 'swat_mm.CheckpointFitHook'} <= \
        set(hooks)


# ---------------------------------------------------------------------------
# STViT-L two-phase drop path

def test_large_two_phase_drop_path_configs():
    """README: drop path 0.4 for epochs 0-260, 0.6 for 260-300; phase 2
    resumes phase 1's epoch_260.pth (tools/train.py's default work dir)
    on the same 300-epoch schedule."""
    full = cls_config('stvit-large_8xb128_in1k.py')
    one = cls_config('stvit-large_8xb128_in1k-dp-phase1.py')
    two = cls_config('stvit-large_8xb128_in1k-dp-phase2.py')
    assert full.model.backbone.drop_path_rate == 0.6
    assert one.model.backbone.drop_path_rate == 0.4
    assert two.model.backbone.drop_path_rate == 0.6
    assert one.train_cfg.max_epochs == 260
    assert two.train_cfg.max_epochs == full.train_cfg.max_epochs == 300
    for cfg in (one, two):
        assert cfg.param_scheduler == full.param_scheduler
        assert cfg.optim_wrapper == full.optim_wrapper
        assert cfg.train_dataloader == full.train_dataloader
        assert cfg.custom_hooks == full.custom_hooks
        assert cfg.model.backbone.arch == 'large'
    cosine = full.param_scheduler[1]
    assert (cosine.type, cosine.T_max, cosine.end) == \
        ('CosineAnnealingLR', 295, 300)
    assert two.resume is True
    assert two.load_from == osp.join(
        'work_dirs', 'stvit-large_8xb128_in1k-dp-phase1', 'epoch_260.pth')
    assert not one.get('resume', False) and one.load_from is None


# ---------------------------------------------------------------------------
# 3x detection: mmdet's Swin ms-crop-3x augmentation

# the installed mmdet 3.3.0's config (mmdet::swin/...)
SWIN_MS_CROP_3X = osp.join('swin',
                           'mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py')
DET_3X = ['mask-rcnn_stvit-small_fpn_ms-3x_coco.py',
          'mask-rcnn_stvit-base_fpn_ms-3x_coco.py',
          'mask-rcnn_stvit-large_fpn_ms-3x_coco.py',
          'cascade-mask-rcnn_stvit-base_fpn_ms-3x_coco.py']


def _plain(obj):
    """Config values as plain lists/dicts, dropping backend_args=None."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()
                if not (k == 'backend_args' and v is None)}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


@functools.lru_cache()
def _swin_ms_crop_3x():
    import mmdet
    return Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim',
                                    'configs', SWIN_MS_CROP_3X))


@pytest.mark.parametrize('config', DET_3X)
def test_3x_pipeline_is_mmdet_swin_ms_crop_3x(config):
    ours = Config.fromfile(osp.join(DET, config))
    swin = _swin_ms_crop_3x()
    assert _plain(ours.train_dataloader.dataset.pipeline) == \
        _plain(swin.train_dataloader.dataset.pipeline)
    assert ours.train_cfg.max_epochs == swin.train_cfg.max_epochs == 36
    assert _plain(ours.param_scheduler) == _plain(swin.param_scheduler)
    assert ours.train_dataloader.batch_size == 2


def test_3x_pipeline_runs_both_branches():
    """mmdet's real transforms from the shipped config: about half the
    samples keep the aspect ratio (multi-scale resize), the others are
    cropped (resize, crop, resize) and change it."""
    import mmdet.datasets  # noqa: F401  (registers the transforms)
    from mmdet.registry import TRANSFORMS
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.dataset import Compose
    cfg = Config.fromfile(osp.join(DET, DET_3X[0]))
    steps = cfg.train_dataloader.dataset.pipeline[2:-1]  # flip, choice
    with DefaultScope.overwrite_default_scope('mmdet'):
        pipeline = Compose([TRANSFORMS.build(t) for t in steps])
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (400, 600, 3), np.uint8)
    np.random.seed(0)
    kinds = []
    for _ in range(24):
        out = pipeline(dict(
            img=img.copy(), img_shape=img.shape[:2], ori_shape=img.shape[:2],
            gt_bboxes=HorizontalBoxes(torch.tensor([[10., 20., 590., 380.]])),
            gt_bboxes_labels=np.array([0]),
            gt_ignore_flags=np.array([False])))
        h, w = out['img'].shape[:2]
        assert min(h, w) in range(480, 801, 32) and max(h, w) <= 1333
        kinds.append(abs(w / h - 1.5) < 0.01)
    assert 4 <= sum(kinds) <= 20, kinds
