# Toy run of configs/cls/svt/svt-h-small_8xb128_in1k-tl.py (token labelling)
# on the generated toy ImageNet and its dense labels (token_label/, written
# by the toy generator as a stand-in teacher): SVT-H-S with the auxiliary
# token head trained on dense targets, MixToken, token-label RandAugment,
# random interpolation and random erasing, as the full config. At 64x64 the
# last stage is a 2x2 grid, so the labels are pooled to 2x2 (MixToken boxes
# are drawn on it).
_base_ = ['../cls/svt/svt-h-small_8xb128_in1k-tl.py',
          './_base_/toy_imagenet.py']

model = dict(
    backbone=dict(drop_path_rate=0.0),
    head=dict(num_classes=5))
data_preprocessor = dict(num_classes=5)
data_root = '{{$SWAT_MM_TOY_DATA:data/toy}}' + '/imagenet'
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(
        type={{_base_.toy_dataset_type}},
        data_root=data_root,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='swat_mm.LoadTokenLabel',
                 label_root=data_root + '/token_label'),
            dict(type='swat_mm.TokenLabelRandAugment',
                 policies='timm_increasing', num_policies=2, total_level=10,
                 magnitude_level=9, magnitude_std=0.5,
                 hparams=dict(pad_val=[104, 116, 124],
                              interpolation='random')),
            dict(type='swat_mm.TokenLabelRandomResizedCrop', scale=64,
                 crop_ratio_range=(0.5, 1.), backend='pillow',
                 interpolation='random'),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='swat_mm.MakeTokenLabel', num_classes=5, label_size=2,
                 smoothing=0.1),
            dict(type='RandomErasing', erase_prob=0.25, mode='rand',
                 min_area_ratio=0.02, max_area_ratio=1 / 3,
                 fill_color=[103.53, 116.28, 123.675],
                 fill_std=[57.375, 57.12, 58.395]),
            dict(type='PackInputs', algorithm_keys=['token_label']),
        ]))
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_evaluator}}
test_evaluator = val_evaluator
param_scheduler = {{_base_.toy_param_scheduler}}
train_cfg = {{_base_.toy_train_cfg}}
default_hooks = {{_base_.toy_default_hooks}}
