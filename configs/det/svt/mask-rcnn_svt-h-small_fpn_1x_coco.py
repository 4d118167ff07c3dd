# Mask R-CNN + FPN with SVT-H-S on COCO, 1x schedule (paper: 46.0 box AP /
# 41.9 mask AP; REFERENCE.md section 2).
#
# The official repository has no detection code, and the paper's
# dense-prediction training paragraph could not be read. SVT's detection
# table compares SVT-S with PVTv2-B2 (45.3 box AP), so this follows the
# comparison baseline's own Mask R-CNN 1x (whai362/PVT detection/configs/
# mask_rcnn_pvt_v2_b2_fpn_1x_coco.py: `optimizer = dict(type='AdamW',
# lr=0.0002, weight_decay=0.0001)`, no paramwise rules, no gradient clip, on
# mmdet 2.x's schedule_1x): AdamW lr 2e-4, wd 1e-4 on every parameter,
# 16 images per batch (8 GPUs x 2), 12 epochs at 1333x800 with flip, 500
# linear warm-up iterations from 0.001, lr x 0.1 at epochs 8 and 11. Not
# Swin's 1e-4 / 0.05 with 1000 warm-up iterations (mmdet configs/swin/):
# the 46.0 is set against PVTv2's numbers, so PVTv2's recipe is the
# like-for-like reading.
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

# PVTv2-B2's Mask R-CNN 1x optimizer (see the top): weight decay on every
# parameter, norms and biases included (mmdet 2.x without paramwise_cfg)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                   weight_decay=1e-4))
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
# mmdet 2.x schedule_1x (PVTv2's): warmup='linear', warmup_iters=500,
# warmup_ratio=0.001, step=[8, 11]
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
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
