# Toy ADE20K settings shared by the configs/toy/*_upernet_toy-ade20k.py
# configs, as `toy_*` variables that a toy config assigns over its real
# config's keys (see toy_imagenet.py). Thinner heads; the backbone starts
# from scratch. Generated data: python tools/make_toy_data.py
# ($SWAT_MM_TOY_DATA, default data/toy).
toy_data_root = '{{$SWAT_MM_TOY_DATA:data/toy}}' + '/ade20k'
toy_crop_size = (64, 64)
toy_scale = (128, 64)

toy_model = dict(
    data_preprocessor=dict(size=toy_crop_size),
    backbone=dict(init_cfg=None, drop_path_rate=0.0),
    decode_head=dict(channels=64),
    auxiliary_head=dict(channels=32))

toy_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=toy_scale, ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=toy_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
toy_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=toy_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
toy_train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=toy_data_root, pipeline=toy_train_pipeline))
toy_val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=toy_data_root, pipeline=toy_test_pipeline))

# measured on 2 CPU cores with STViT-S: 200 iterations at lr 3e-3 reach ~65
# mIoU from 0 (1e-3: ~35, 6e-3: ~56)
toy_max_iters = 200
toy_optim_wrapper = dict(optimizer=dict(lr=3e-3, weight_decay=0.01))
toy_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=20),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=20, end=toy_max_iters,
         by_epoch=False),
]
toy_train_cfg = dict(type='IterBasedTrainLoop', max_iters=toy_max_iters,
                     val_interval=toy_max_iters)
toy_default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=toy_max_iters, max_keep_ckpts=2))
