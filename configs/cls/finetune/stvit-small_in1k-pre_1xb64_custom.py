# Fine-tune an ImageNet-1k STViT-S classifier on your own images: a folder
# dataset (mmpretrain CustomDataset) with one sub-folder per class,
#
#   data/custom/train/<class>/*.jpg      (any image format mmcv reads)
#   data/custom/val/<class>/*.jpg        (the same class folders)
#
# starting from the official weights converted with
#   python tools/model_converters/stvit_to_mmpretrain.py stvit-s.pth \
#       checkpoints/stvit-small_in1k.pth
# `load_from` loads the whole classifier (backbone and neck); the ImageNet
# head's 1000 classes do not fit and stay newly initialised
# (swat_mm.CheckpointFitHook allows exactly that, and logs it).
#
# Layer-wise learning-rate decay (mmpretrain's
# LearningRateDecayOptimWrapperConstructor, every swat_mm backbone has
# get_layer_depth): the head and neck train at lr, block k of STViT-S's 20 at
# lr * 0.85 ** (20 - k), the stem at lr * 0.85 ** 21 (0.033 lr). A starting
# point for a small dataset, not a tuned recipe: AdamW lr 2.5e-4 for 64
# images per step (--auto-scale-lr rescales it), wd 0.05, 30 epochs with 2
# warm-up epochs, label smoothing 0.1, the pre-training's RandAugment and
# random erasing without Mixup/CutMix.
#
# Your data: a config of your own, e.g.
#   _base_ = ['<swat_mm>/configs/cls/finetune/stvit-small_in1k-pre_1xb64_custom.py']
#   data_root = 'data/flowers'
#   train_dataloader = dict(dataset=dict(data_root=data_root))
#   val_dataloader = dict(dataset=dict(data_root=data_root))
#   test_dataloader = val_dataloader
#   model = dict(head=dict(num_classes=102))   # the number of class folders
# (tests/test_finetune.py runs such a config).
_base_ = ['../stvit/stvit-small_8xb128_in1k.py']

data_root = 'data/custom'
num_classes = 10  # the number of class folders under train/
load_from = 'checkpoints/stvit-small_in1k.pth'

# ---- model ------------------------------------------------------------------
model = dict(
    backbone=dict(drop_path_rate=0.1),
    head=dict(num_classes=num_classes),
    # no Mixup/CutMix: one label per image
    train_cfg=dict(_delete_=True))
# only batch augments (none here) need the class count in the preprocessor
data_preprocessor = dict(num_classes=None)

# ---- data -------------------------------------------------------------------
dataset_type = 'CustomDataset'
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root,
                 data_prefix='train',
                 pipeline={{_base_.train_pipeline}}),
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root,
                 data_prefix='val', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
# top-5 needs at least 5 classes
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# ---- schedule ---------------------------------------------------------------
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=2.5e-4, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999)),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.85, norm_decay_mult=0.0,
                       bias_decay_mult=0.0, flat_decay_mult=0.0))
max_epochs = 30
warmup_epochs = 2
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=1e-6, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=64)

# no EMA: swat_mm's safety hooks only
custom_hooks = [
    dict(type='swat_mm.RandomStateHook'),
    dict(type='swat_mm.CheckpointFitHook')
]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1,
                                     max_keep_ckpts=2, save_best='auto'))
