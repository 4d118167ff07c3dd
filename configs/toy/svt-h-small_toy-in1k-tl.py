# Toy run of configs/cls/svt/svt-h-small_8xb128_in1k-tl.py (token labelling)
# on the generated toy ImageNet and its dense labels (token_label/, written
# by the toy generator as a stand-in teacher): SVT-H-S with the auxiliary
# token head trained on dense targets. At 64x64 the last stage is a 2x2
# grid, so the labels are pooled to 2x2.
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
        data_root=data_root,
        metainfo=dict(classes={{_base_.toy_classes}}),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='swat_mm.LoadTokenLabel',
                 label_root=data_root + '/token_label'),
            dict(type='swat_mm.TokenLabelRandomResizedCrop', scale=64,
                 crop_ratio_range=(0.5, 1.), backend='pillow',
                 interpolation='bicubic'),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='swat_mm.MakeTokenLabel', num_classes=5, label_size=2,
                 smoothing=0.1),
            dict(type='PackInputs', algorithm_keys=['token_label']),
        ]))
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_evaluator}}
test_evaluator = val_evaluator
param_scheduler = {{_base_.toy_param_scheduler}}
train_cfg = {{_base_.toy_train_cfg}}
default_hooks = {{_base_.toy_default_hooks}}
