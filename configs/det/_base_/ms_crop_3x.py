# The 3x schedule and augmentation of mmdet's Swin 3x recipe, shared by the
# configs/det/*/*ms-3x* configs as `ms_crop_3x_*` variables that a config
# assigns (`train_pipeline = {{_base_.ms_crop_3x_train_pipeline}}`), so that
# it can inherit its 1x config for everything else.
# The augmentation, value by value
# (mmdet 3.3.0 configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py,
# also configs/convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-
# giou_amp-ms-crop-3x_coco.py; Swin's own 3x runs use it): flip, then with
# probability 1/2 each either a multi-scale resize (short side 480-800,
# step 32, long side at most 1333) or a resize (short side 400/500/600),
# a random crop of 384-600 pixels per side, and the multi-scale resize.
ms_crop_3x_scales = [(s, 1333) for s in range(480, 801, 32)]
ms_crop_3x_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=ms_crop_3x_scales,
              keep_ratio=True)],
        [dict(type='RandomChoiceResize',
              scales=[(400, 1333), (500, 1333), (600, 1333)],
              keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range',
              crop_size=(384, 600), allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=ms_crop_3x_scales,
              keep_ratio=True)],
    ]),
    dict(type='PackDetInputs'),
]
ms_crop_3x_max_epochs = 36
ms_crop_3x_param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=1000),
    dict(type='MultiStepLR', begin=0, end=ms_crop_3x_max_epochs,
         by_epoch=True, milestones=[27, 33], gamma=0.1),
]
