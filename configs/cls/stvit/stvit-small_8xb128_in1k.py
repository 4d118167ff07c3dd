# STViT-S on ImageNet-1k at 224, the official recipe (hhb072/STViT, DeiT-style
# main.py; REFERENCE.md section 1): 300 epochs, 8 GPUs x 128, AdamW lr 1e-3
# (5e-4 x 1024 / 512), wd 0.05, 5 linear warm-up epochs from 1e-6, cosine to
# 1e-5, RandAugment m9 mstd0.5, mixup 0.8 / cutmix 1.0, label smoothing 0.1,
# random erasing 0.25, repeated augmentation, EMA 0.99996 (raw and EMA
# both evaluated; see custom_hooks).
# Official weights (stvit-small-224.pth): converted with
# tools/model_converters/stvit_to_mmpretrain.py, they give the official
# logits with this config (tests/test_stvit_recipe.py).
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['swat_mm'], allow_failed_imports=False)

# ---- model ------------------------------------------------------------------
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='swat_mm.STViT',
        arch='small',
        stoken_size=(8, 4, 1, 1),
        drop_path_rate=0.1,
        out_indices=(3, )),
    neck=dict(type='swat_mm.STViTClsNeck', in_channels=512, out_channels=1024),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1024,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                  mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)),
    # timm's Mixup(mixup 0.8, cutmix 1.0, switch prob 0.5)
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

# ---- data -------------------------------------------------------------------
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
bgr_mean = data_preprocessor['mean'][::-1]
bgr_std = data_preprocessor['std'][::-1]
img_size = 224
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean],
                      interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3, fill_color=bgr_mean,
         fill_std=bgr_std),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # DeiT's eval crop ratio 0.875: short side 256 for a 224 crop
    dict(type='ResizeEdge', scale=int(img_size / 0.875), edge='short',
         backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
    # the official repeated augmentation (3 repeats)
    sampler=dict(type='RepeatAugSampler', shuffle=True, num_repeats=3),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# ---- schedule ---------------------------------------------------------------
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999)),
    # timm excludes biases and norm weights (all 1-D parameters) from decay
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
max_epochs = 300
warmup_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=1e-5, by_epoch=True, begin=warmup_epochs, end=max_epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr above is for 8 x 128; --auto-scale-lr rescales it to the actual batch.
auto_scale_lr = dict(base_batch_size=1024)

# EMA 0.99996 as the official (timm ModelEma, updated every iteration). The
# official run evaluates and reports the raw model (main.py: evaluate(...,
# model, ...); best.pth by the raw top-1) and keeps the EMA aside. mmpretrain's
# EMAHook evaluates both: `accuracy/top1` is the EMA model's (the one
# save_best='auto' follows), `accuracy/top1_origin` the raw model's, the
# number comparable with the official top-1. Checkpoints hold the EMA weights
# under `state_dict` (the raw ones under `ema_state_dict`; mmengine's swap).
# swat_mm's safety hooks: every rank's random state in each checkpoint
# (exact --resume) and checkpoints checked against the model before loading
custom_hooks = [
    dict(type='EMAHook', momentum=4e-5, evaluate_on_ema=True,
         evaluate_on_origin=True, priority='ABOVE_NORMAL'),
    dict(type='swat_mm.RandomStateHook'),
    dict(type='swat_mm.CheckpointFitHook')
]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1,
                                     max_keep_ckpts=3, save_best='auto'))
