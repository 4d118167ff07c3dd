# Toy COCO settings shared by the configs/toy/mask-rcnn_*_toy-coco.py
# configs, as `toy_*` variables that a toy config assigns over its real
# config's keys (see toy_imagenet.py). Thinner FPN and heads for 4 classes;
# the backbone starts from scratch. Generated data:
# python tools/make_toy_data.py ($SWAT_MM_TOY_DATA, default data/toy).
# swat_mm.ToyCocoDataset is mmdet's CocoDataset with the generator's classes
# (swat_mm/testing/toy_data.py); toy_num_classes follows them.
toy_data_root = '{{$SWAT_MM_TOY_DATA:data/toy}}' + '/coco/'
toy_dataset_type = 'swat_mm.ToyCocoDataset'
toy_num_classes = 4
toy_scale = (128, 128)

toy_model = dict(
    backbone=dict(init_cfg=None, drop_path_rate=0.0),
    neck=dict(out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=128,
                       num_classes=toy_num_classes),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64,
                       num_classes=toy_num_classes)))

toy_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=toy_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
toy_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=toy_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
toy_train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(type=toy_dataset_type, data_root=toy_data_root,
                 pipeline=toy_train_pipeline))
toy_val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(type=toy_dataset_type, data_root=toy_data_root,
                 pipeline=toy_test_pipeline))
toy_evaluator = dict(
    ann_file=toy_data_root + 'annotations/instances_val2017.json')

toy_max_epochs = 2
toy_train_cfg = dict(max_epochs=toy_max_epochs, val_interval=toy_max_epochs)
toy_optim_wrapper = dict(optimizer=dict(lr=3e-4))
toy_param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=20),
    dict(type='MultiStepLR', begin=0, end=toy_max_epochs, by_epoch=True,
         milestones=[toy_max_epochs], gamma=0.1),
]
toy_default_hooks = dict(logger=dict(type='LoggerHook', interval=10),
                         checkpoint=dict(interval=toy_max_epochs,
                                         max_keep_ckpts=2))
