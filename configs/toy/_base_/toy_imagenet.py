# Toy ImageNet settings shared by the configs/toy/*-in1k.py configs, as
# `toy_*` variables that a toy config assigns over its real config's keys
# (e.g. `train_dataloader = {{_base_.toy_train_dataloader}}`), so the real
# recipe stays in force for everything else. Generated data:
# python tools/make_toy_data.py ($SWAT_MM_TOY_DATA, default data/toy).
# swat_mm.ToyImageNet is mmpretrain's ImageNet with the generator's 5 classes
# (swat_mm/testing/toy_data.py); the heads' num_classes=5 follow them.
toy_data_root = '{{$SWAT_MM_TOY_DATA:data/toy}}' + '/imagenet'
toy_dataset_type = 'swat_mm.ToyImageNet'
toy_img_size = 64

toy_bgr_mean = [103.53, 116.28, 123.675]
toy_bgr_std = [57.375, 57.12, 58.395]
toy_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=toy_img_size,
         crop_ratio_range=(0.5, 1.), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in toy_bgr_mean],
                      interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3, fill_color=toy_bgr_mean,
         fill_std=toy_bgr_std),
    dict(type='PackInputs'),
]
toy_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=toy_img_size, edge='short',
         backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=toy_img_size),
    dict(type='PackInputs'),
]
toy_train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(type=toy_dataset_type, data_root=toy_data_root,
                 pipeline=toy_train_pipeline))
toy_val_dataloader = dict(
    batch_size=25,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(type=toy_dataset_type, data_root=toy_data_root,
                 pipeline=toy_test_pipeline))
# top-5 of 5 classes is always 100%
toy_evaluator = dict(type='Accuracy', topk=(1, ))

toy_max_epochs = 2
toy_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=toy_max_epochs - 1, eta_min=1e-5,
         by_epoch=True, begin=1, end=toy_max_epochs),
]
toy_train_cfg = dict(max_epochs=toy_max_epochs, val_interval=toy_max_epochs)
toy_default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(interval=toy_max_epochs, save_best=None,
                    max_keep_ckpts=2))
