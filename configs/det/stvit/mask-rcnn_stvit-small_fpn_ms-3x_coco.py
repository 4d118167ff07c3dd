# Mask R-CNN + FPN with STViT-S on COCO, 3x with multi-scale training
# (paper: 49.2 box AP / 44.2 mask AP).
# Assumed protocol (REFERENCE.md section 1): the 1x config's optimizer, 36
# epochs with lr steps at 27 and 33, and mmdet's Swin ms-crop-3x
# augmentation (multi-scale training plus the DETR-style random crop).
_base_ = ['./mask-rcnn_stvit-small_fpn_1x_coco.py']

# The DETR-style augmentation of mmdet's Swin 3x recipe, value by value
# (mmdet 3.3.0 configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py,
# also configs/convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-
# giou_amp-ms-crop-3x_coco.py; Swin's own 3x runs use it): flip, then with
# probability 1/2 each either a multi-scale resize (short side 480-800,
# step 32, long side at most 1333) or a resize (short side 400/500/600),
# a random crop of 384-600 pixels per side, and the multi-scale resize.
ms_scales = [(s, 1333) for s in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=ms_scales, keep_ratio=True)],
        [dict(type='RandomChoiceResize',
              scales=[(400, 1333), (500, 1333), (600, 1333)],
              keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range',
              crop_size=(384, 600), allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=ms_scales, keep_ratio=True)],
    ]),
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
