# Mask R-CNN + FPN with SVT-H-S on COCO, 1x schedule (paper: 46.0 box AP /
# 41.9 mask AP; REFERENCE.md section 2).
#
# The official repository has no detection code. Assumed protocol (the one
# the paper's hierarchical-backbone baselines share, PVTv2/Swin 1x): AdamW
# lr 1e-4, wd 0.05, 16 images per batch (8 GPUs x 2), 12 epochs at
# 1333x800, lr steps at epochs 8 and 11, 1000 linear warm-up iterations.
# The stem's BatchNorms become SyncBN.
#
# Any input size works: the scatter blocks' low-pass filters, learned for the
# 56x56 stage-1 map of a 224 input, are resized to the actual feature map
# (see swat_mm/models/backbones/svt.py).
#
# Pretrained backbone: convert an official ImageNet checkpoint with
#   python tools/model_converters/svt_to_mmpretrain.py SRC \
#       checkpoints/svt-h-small_in1k_backbone.pth --backbone-only
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

custom_imports = dict(imports=['swat_mm'], allow_failed_imports=False)

pretrained = 'checkpoints/svt-h-small_in1k_backbone.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='swat_mm.SVT',
        arch='h-small',
        drop_path_rate=0.1,
        # the stem's BatchNorms
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        out_indices=(0, 1, 2, 3),
        # the last stage's official norm (norm4) on the last map too
        final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 320, 448]))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    # no decay on norms and biases (as timm's optimizer factory in the
    # official ImageNet training)
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[8, 11], gamma=0.1),
]
# 8 GPUs x 2 images
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
# swat_mm's safety hooks: every rank's random state in each checkpoint
# (exact --resume) and checkpoints checked against the model before loading
custom_hooks = [
    dict(type='swat_mm.RandomStateHook'),
    dict(type='swat_mm.CheckpointFitHook')
]
