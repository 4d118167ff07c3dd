# Toy run of configs/cls/svt/svt-h-small_8xb128_in1k.py on the generated toy
# ImageNet: the real ImageClassifier, SVT-H-S with SVTClsHead, pipelines
# (RandAugment, random erasing, mixup/cutmix, repeated augmentation) and
# Accuracy metric; only the data root, image sizes (64: the scatter stage's
# 56x56 low-pass filters are resized to its 16x16 map), schedule and head
# width change (configs/toy/_base_/toy_imagenet.py).
_base_ = ['../cls/svt/svt-h-small_8xb128_in1k.py',
          './_base_/toy_imagenet.py']

model = dict(
    backbone=dict(drop_path_rate=0.0),
    head=dict(num_classes=5))
data_preprocessor = dict(num_classes=5)
train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_evaluator}}
test_evaluator = val_evaluator
param_scheduler = {{_base_.toy_param_scheduler}}
train_cfg = {{_base_.toy_train_cfg}}
default_hooks = {{_base_.toy_default_hooks}}
