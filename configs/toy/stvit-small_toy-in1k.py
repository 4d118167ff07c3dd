# Toy run of configs/cls/stvit/stvit-small_8xb128_in1k.py on the generated toy
# ImageNet (python tools/make_toy_data.py; $SWAT_MM_TOY_DATA, default
# data/toy): the real ImageClassifier, STViT-S, pipelines (RandAugment,
# random erasing, mixup/cutmix, repeated augmentation, EMA) and Accuracy
# metric; only the data root, image sizes, schedule and head width change
# (configs/toy/_base_/toy_imagenet.py).
_base_ = ['../cls/stvit/stvit-small_8xb128_in1k.py',
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
