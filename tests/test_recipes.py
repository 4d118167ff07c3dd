"""Recipe fidelity: every shipped cls/det/seg config, fully resolved, has the
recipe values of its source, row by row.

:data:`RECIPES` is the specification: one row per config, each citing where
its values come from (the paper, an official file and line, or the
reference config it follows; ``REFERENCE.md`` is ``../shared/REFERENCE.md``,
which collects them). A config edit that changes a recipe value fails here
until the row changes too, with its source; a new config fails until it has
a row.

Fields (``None``: the config has none):

* ``optim``: optimizer type, lr, weight decay, betas, eps; ``clip``: grad
  clipping max norm;
* ``batch``: (GPUs, images per GPU); GPUs from the config name's ``NxbM``
  (det/seg: 8, the protocol's 16 images);
* ``schedule``: epochs (cls, det) or iterations (seg); ``warmup``: the
  first scheduler's (type, end) and ``main``: the main scheduler's type;
* ``aug``: classification: (RandAugment magnitude, its std, policies per
  image), random-erasing probability, Mixup alpha, CutMix alpha, label
  smoothing, sampler, training interpolation; detection: the multi-scale
  short sides (min, max) or ``None``, whether the DETR-style crop branch is
  there; segmentation: crop size, resize ratio range;
* ``drop_path``, ``ema`` (EMAHook momentum, ``None`` without EMA);
* ``test``: classification (resize short side, crop); det/seg the test
  resize scale; ``metric``: the evaluator types.
"""
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'

REF1 = 'REFERENCE.md s1 (STViT recipe; hhb072/STViT main.py, datasets.py:101)'
REF2 = 'REFERENCE.md s2 (SVT recipe; badripatro/svt main.py)'
REF3 = ('REFERENCE.md s3 (SWAT recipe; kkahatapitiya/SWAT '
        'config/*_i1k_scratch.yaml, timm 0.4.13 train.py)')
SWIN_DET = ('REFERENCE.md s1 dense protocol; mmdet 3.3.0 configs/swin/'
            'mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py')
SWIN_DET_3X = ('REFERENCE.md s1 dense protocol; mmdet 3.3.0 configs/swin/'
               'mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py')
PVT_DET = ('REFERENCE.md s1 dense protocol (SVT: PVTv2-B2 baseline); '
           'whai362/PVT detection/configs/mask_rcnn_pvt_v2_b2_fpn_1x_coco.py')
UPERNET = ('REFERENCE.md s1 dense protocol; mmseg 1.2.2 configs/swin/'
           'swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-'
           '512x512.py')

ADAMW = ('AdamW', (0.9, 0.999))


def _cls(lr: float, wd: float, eps: float, clip: Optional[float],
         batch: Tuple[int, int], epochs: int, warmup: int,
         aug: tuple, drop_path: float, ema: Optional[float],
         test: Tuple[int, int], source: str) -> Dict[str, Any]:
    return dict(optim=(ADAMW[0], lr, wd, ADAMW[1], eps), clip=clip,
                batch=batch, schedule=epochs,
                warmup=('LinearLR', warmup) if warmup else None,
                main='CosineAnnealingLR' if warmup else 'ConstantLR',
                aug=aug, drop_path=drop_path, ema=ema, test=test,
                metric=('Accuracy', ), source=source)


# (RandAugment m, mstd, n), erasing, mixup, cutmix, smoothing, sampler,
# train interpolation
STVIT_AUG = ((9, 0.5, 2), 0.25, 0.8, 1.0, 0.1, 'RepeatAugSampler',
             'bicubic')
# kkahatapitiya/SWAT config/{vit,mixer,swin}_i1k_scratch.yaml: aa
# rand-m15-n2-mstd1.0, reprob 0, mixup 0.5, cutmix 1.0, smoothing 0.1,
# train_interpolation random; timm 0.4.13 train.py builds no repeated-
# augmentation sampler
SWAT_AUG = ((15, 1.0, 2), None, 0.5, 1.0, 0.1, 'DefaultSampler', 'random')
SVT_AUG = STVIT_AUG
# token labelling: no Mixup/CutMix (MixToken inside the model), no repeated
# augmentation, random interpolation
SVT_TL_AUG = ((9, 0.5, 2), 0.25, None, None, 0.1, 'DefaultSampler',
              'random')

RECIPES: Dict[str, Dict[str, Any]] = {}


def _add(path: str, **row: Any) -> None:
    RECIPES[path] = row


for size, dp in (('small', 0.1), ('base', 0.4), ('large', 0.6)):
    _add(f'cls/stvit/stvit-{size}_8xb128_in1k.py',
         **_cls(1e-3, 0.05, 1e-8, None, (8, 128), 300, 5, STVIT_AUG, dp,
                4e-5, (256, 224), REF1))
# 384 fine-tunes: 30 epochs, 8 x 64, lr 5e-6 constant, no warm-up, wd 1e-8,
# the official --drop-path values (inert: the fine-tune trains in eval mode,
# swat_mm.EvalModeTrainingHook); datasets.py:101 resizes to 384 for > 224
for size, dp in (('small', 0.1), ('base', 0.4), ('large', 0.6)):
    _add(f'cls/stvit/stvit-{size}_8xb64_in1k-384px.py',
         **_cls(5e-6, 1e-8, 1e-8, None, (8, 64), 30, 0, STVIT_AUG, dp,
                4e-5, (384, 384), REF1 + '; README fine-tune commands'))
# the README's two-phase drop path for STViT-L: 0.4, then 0.6 (phase 1 runs
# the 300-epoch schedule up to epoch 260, phase 2 resumes it to 300)
_add('cls/stvit/stvit-large_8xb128_in1k-dp-phase1.py',
     **dict(RECIPES['cls/stvit/stvit-large_8xb128_in1k.py'], drop_path=0.4,
            schedule=260,
            source=REF1 + '; README (STViT-L drop path 0.4 then 0.6)'))
_add('cls/stvit/stvit-large_8xb128_in1k-dp-phase2.py',
     **dict(RECIPES['cls/stvit/stvit-large_8xb128_in1k.py'], drop_path=0.6,
            source=REF1 + '; README (STViT-L drop path 0.4 then 0.6)'))
for size, dp in (('h-small', 0.1), ('h-base', 0.1), ('h-large', 0.3)):
    clip = 1.0 if size == 'h-large' else None
    _add(f'cls/svt/svt-{size}_8xb128_in1k.py',
         **_cls(1e-3, 0.05, 1e-8, clip, (8, 128), 310, 5, SVT_AUG, dp,
                None, (233, 224), REF2))
    _add(f'cls/svt/svt-{size}_8xb128_in1k-tl.py',
         **_cls(1e-3, 0.05, 1e-8, clip, (8, 128), 310, 5, SVT_TL_AUG, dp,
                None, (233, 224), REF2 + '; main.py build_token_label, '
                'main.sh --token-label'))
for name, batch, lr in (('deit-tiny', 256, 7.5e-4), ('deit-small', 256,
                                                     7.5e-4),
                        ('vit-base-p32', 256, 7.5e-4),
                        ('mixer-tiny', 256, 7.5e-4),
                        ('mixer-small', 256, 7.5e-4),
                        ('mixer-base-p32', 256, 7.5e-4),
                        ('resmlp-s12', 256, 7.5e-4),
                        ('swin-tiny', 96, 5.625e-4),
                        # no Swin-S yaml in the SWAT repo: its Swin yaml
                        ('swin-small', 96, 5.625e-4)):
    _add(f'cls/swat/swat-{name}_8xb{batch}_in1k.py',
         **_cls(lr, 0.3, 1e-6, 1.0, (8, batch), 310, 8, SWAT_AUG, 0.0,
                8e-5, (248, 224), REF3))

# fine-tuning an ImageNet STViT-S on a folder dataset: swat_mm's starting
# point (README "Fine-tune on your own images"), not a published recipe;
# STViT's pre-training augmentation without Mixup/CutMix or repeated
# augmentation, no EMA
_add('cls/finetune/stvit-small_in1k-pre_1xb64_custom.py',
     **_cls(2.5e-4, 0.05, 1e-8, None, (1, 64), 30, 2,
            ((9, 0.5, 2), 0.25, None, None, 0.1, 'DefaultSampler',
             'bicubic'), 0.1, None, (256, 224),
            'swat_mm fine-tuning starting point (configs/cls/finetune/*, '
            'README); layer decay: mmpretrain '
            'LearningRateDecayOptimWrapperConstructor'))

DET_DP = {'stvit-small': 0.1, 'stvit-base': 0.3, 'stvit-large': 0.4,
          'svt-h-small': 0.1, 'svt-h-base': 0.1, 'svt-h-large': 0.3,
          'swat-swin-tiny': 0.2}
for model in DET_DP:
    family = model.split('-')[0]
    schedules = (('1x', 12), ('ms-3x', 36)) if family == 'stvit' \
        else (('1x', 12), )
    # SVT compares itself with PVTv2-B2, whose own Mask R-CNN 1x uses AdamW
    # lr 2e-4, wd 1e-4 and mmdet 2.x's 500 warm-up iterations (whai362/PVT
    # mask_rcnn_pvt_v2_b2_fpn_1x_coco.py)
    lr, wd = (2e-4, 1e-4) if family == 'svt' else (1e-4, 0.05)
    for sched, epochs in schedules:
        _add(f'det/{family}/mask-rcnn_{model}_fpn_{sched}_coco.py',
             optim=(ADAMW[0], lr, wd, ADAMW[1], None), clip=None,
             batch=(8, 2), schedule=epochs,
             warmup=('LinearLR', 500 if family == 'svt' else 1000),
             main='MultiStepLR',
             aug=((480, 800), True) if sched == 'ms-3x' else (None, False),
             drop_path=DET_DP[model], ema=None, test=(1333, 800),
             metric=('CocoMetric', ),
             source=SWIN_DET_3X if sched == 'ms-3x' else (
                 PVT_DET if family == 'svt' else SWIN_DET))
_add('det/stvit/cascade-mask-rcnn_stvit-base_fpn_ms-3x_coco.py',
     **dict(RECIPES['det/stvit/mask-rcnn_stvit-base_fpn_ms-3x_coco.py'],
            source=SWIN_DET_3X + '; mmdet configs/swin cascade heads'))

SEG_DP = {'stvit': 0.3, 'stvit-small': 0.1, 'stvit-large': 0.4,
          'svt-h-small': 0.1, 'svt-h-base': 0.1, 'svt-h-large': 0.3,
          'swat-deit-small': 0.1, 'swat-swin-tiny': 0.3}
for model, dp in SEG_DP.items():
    _add(f'seg/{model}_upernet_ade20k.py',
         optim=(ADAMW[0], 6e-5, 0.01, ADAMW[1], None), clip=None,
         batch=(8, 2), schedule=160000, warmup=('LinearLR', 1500),
         main='PolyLR', aug=((512, 512), (0.5, 2.0)), drop_path=dp,
         ema=None, test=(2048, 512), metric=('IoUMetric', ),
         source=UPERNET)


# ---------------------------------------------------------------------------
# reading a resolved config
# ---------------------------------------------------------------------------


def _innermost(dataset: dict) -> dict:
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset


def _find(pipeline: List[dict], kind: str) -> List[dict]:
    """Every transform of type ``kind``, inside RandomChoice branches
    too."""
    found = []
    for t in pipeline:
        if t.get('type') == kind:
            found.append(t)
        for branch in t.get('transforms', []) or []:
            found += _find(branch if isinstance(branch, list) else [branch],
                           kind)
    return found


def _cls_aug(cfg: Config) -> tuple:
    loader = cfg.train_dataloader
    pipeline = _innermost(loader['dataset'])['pipeline']
    ra = [t for t in pipeline if str(t['type']).endswith('RandAugment')
          or str(t['type']).endswith('RandAugmentAndInterpolation')]
    ra = (ra[0]['magnitude_level'], ra[0].get('magnitude_std', 0.),
          ra[0]['num_policies']) if ra else None
    er = _find(pipeline, 'RandomErasing')
    erasing = er[0]['erase_prob'] if er else None
    augments = (cfg.model.get('train_cfg') or {}).get('augments', [])
    alpha = {a['type']: a['alpha'] for a in augments}
    loss = cfg.model.head.get('loss', {})
    smoothing = loss.get('label_smooth_val', None)
    crop = [t for t in pipeline if 'RandomResizedCrop' in str(t['type'])]
    interpolation = crop[0].get('interpolation') if crop else None
    sampler = loader.get('sampler', {}).get('type', 'DefaultSampler')
    return (ra, erasing, alpha.get('Mixup'), alpha.get('CutMix'), smoothing,
            sampler.rsplit('.', 1)[-1], interpolation)


def _det_aug(cfg: Config) -> tuple:
    pipeline = _innermost(cfg.train_dataloader['dataset'])['pipeline']
    # the multi-scale resize is the one with the most scales (the crop
    # branch's resize before its crop has three)
    scale_lists = [t['scales'] for t in _find(pipeline, 'RandomChoiceResize')]
    crop = bool(_find(pipeline, 'RandomCrop'))
    if not scale_lists:
        return (None, crop)
    shorts = [min(s) for s in max(scale_lists, key=len)]
    return ((min(shorts), max(shorts)), crop)


def _seg_aug(cfg: Config) -> tuple:
    pipeline = _innermost(cfg.train_dataloader['dataset'])['pipeline']
    crop = _find(pipeline, 'RandomCrop')[0]['crop_size']
    ratio = _find(pipeline, 'RandomResize')[0]['ratio_range']
    return (tuple(crop), tuple(ratio))


def _test(cfg: Config, task: str) -> tuple:
    pipeline = _innermost(cfg.test_dataloader['dataset'])['pipeline']
    if task == 'cls':
        edge = _find(pipeline, 'ResizeEdge')
        crop = _find(pipeline, 'CenterCrop')
        return (edge[0]['scale'] if edge else None,
                crop[0]['crop_size'] if crop else None)
    resize = _find(pipeline, 'Resize')[0]
    return tuple(resize['scale'])


def read_recipe(path: Path) -> Dict[str, Any]:
    """The fields of :data:`RECIPES` from the resolved config at ``path``."""
    cfg = Config.fromfile(str(path))
    task = path.relative_to(CONFIGS).parts[0]
    wrapper = cfg.optim_wrapper
    opt = wrapper['optimizer']
    clip = (wrapper.get('clip_grad') or {}).get('max_norm')
    m = re.search(r'_(\d+)xb(\d+)_', path.name)
    gpus = int(m.group(1)) if m else 8
    schedulers = cfg.param_scheduler
    schedulers = schedulers if isinstance(schedulers, list) \
        else [schedulers]
    warmup = None
    if len(schedulers) > 1:
        warmup = (schedulers[0]['type'], schedulers[0]['end'])
    train = cfg.train_cfg
    aug = {'cls': _cls_aug, 'det': _det_aug, 'seg': _seg_aug}[task](cfg)
    hooks = cfg.get('custom_hooks', None) or []
    ema = [h.get('momentum') for h in hooks if h['type'] == 'EMAHook']
    evaluators = cfg.test_evaluator
    evaluators = evaluators if isinstance(evaluators, list) \
        else [evaluators]
    return dict(
        optim=(opt['type'], opt['lr'], opt.get('weight_decay'),
               tuple(opt.get('betas', (0.9, 0.999))), opt.get('eps')),
        clip=clip,
        batch=(gpus, cfg.train_dataloader['batch_size']),
        schedule=train.get('max_epochs') or train.get('max_iters'),
        warmup=warmup, main=schedulers[-1]['type'], aug=aug,
        drop_path=cfg.model.backbone.get('drop_path_rate'),
        ema=ema[0] if ema else None, test=_test(cfg, task),
        metric=tuple(e['type'] for e in evaluators))


def _shipped() -> List[str]:
    return sorted(str(p.relative_to(CONFIGS)) for task in ('cls', 'det',
                                                           'seg')
                  for p in (CONFIGS / task).rglob('*.py')
                  if '_base_' not in p.parts)


def test_every_shipped_config_has_a_recipe_row():
    shipped = set(_shipped())
    assert not shipped - set(RECIPES), \
        f'configs without a row in RECIPES: {sorted(shipped - set(RECIPES))}'
    assert not set(RECIPES) - shipped, \
        f'rows for configs that do not exist: {sorted(set(RECIPES) - shipped)}'


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_config_follows_its_recipe(name: str):
    expected = {k: v for k, v in RECIPES[name].items() if k != 'source'}
    got = read_recipe(CONFIGS / name)
    wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
    assert not wrong, (
        f'{name} departs from its recipe ({RECIPES[name]["source"]}): ' +
        '; '.join(f'{k}: config {g!r}, recipe {e!r}'
                  for k, (g, e) in wrong.items()))
