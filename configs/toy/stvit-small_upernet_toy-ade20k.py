# Toy run of configs/seg/stvit-small_upernet_ade20k.py on the generated toy
# ADE20K (python tools/make_toy_data.py; $SWAT_MM_TOY_DATA, default data/toy):
# the real UperNet, STViT-S, pipelines and IoUMetric; only the data root,
# image sizes, schedule and head widths change, and the backbone starts
# from scratch (no ImageNet checkpoint).
_base_ = ['../seg/stvit-small_upernet_ade20k.py']

data_root = '{{$SWAT_MM_TOY_DATA:data/toy}}' + '/ade20k'
crop_size = (64, 64)
scale = (128, 64)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None, drop_path_rate=0.0),
    decode_head=dict(channels=64),
    auxiliary_head=dict(channels=32))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=scale, ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# measured on 2 CPU cores: 200 iterations at lr 3e-3 reach ~65 mIoU from 0
# (1e-3: ~35, 6e-3: ~56)
max_iters = 200
optim_wrapper = dict(optimizer=dict(lr=3e-3, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=20),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=20, end=max_iters,
         by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters))
