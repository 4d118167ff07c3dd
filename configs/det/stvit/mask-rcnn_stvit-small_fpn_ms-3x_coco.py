# Mask R-CNN + FPN with STViT-s on COCO, 3x with multi-scale training
# (paper: 49.2 box AP / 44.2 mask AP).
# Assumed protocol (REFERENCE.md section 1): the 1x config's optimizer, 36
# epochs with lr steps at 27 and 33, and multi-scale training: the short side
# drawn from 480-800 (step 32), long side at most 1333.
_base_ = ['./mask-rcnn_stvit-small_fpn_1x_coco.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, s) for s in range(480, 801, 32)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[27, 33], gamma=0.1),
]
