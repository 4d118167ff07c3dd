# Toy run of configs/cls/stvit/stvit-small_8xb128_in1k.py on the generated toy
# ImageNet (python tools/make_toy_data.py; $SWAT_MM_TOY_DATA, default
# data/toy): the real ImageClassifier, STViT-S, pipelines (RandAugment,
# random erasing, mixup/cutmix, repeated augmentation, EMA) and Accuracy
# metric; only the data root, image sizes, schedule and head width change.
_base_ = ['../cls/stvit/stvit-small_8xb128_in1k.py']

data_root = '{{$SWAT_MM_TOY_DATA:data/toy}}' + '/imagenet'
classes = ('cross', 'disc', 'ring', 'square', 'triangle')  # folder order
img_size = 64

model = dict(
    backbone=dict(drop_path_rate=0.0),
    head=dict(num_classes=len(classes)))
data_preprocessor = dict(num_classes=len(classes))

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean],
                      interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3, fill_color=bgr_mean,
         fill_std=bgr_std),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=25,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
# top-5 of 5 classes is always 100%
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 2
warmup_epochs = 1
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=1e-5, by_epoch=True, begin=warmup_epochs, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(type='LoggerHook', interval=10),
                     checkpoint=dict(interval=max_epochs, save_best=None))
