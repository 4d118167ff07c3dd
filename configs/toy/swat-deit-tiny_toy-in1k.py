# Toy run of configs/cls/swat/swat-deit-tiny_8xb256_in1k.py on the generated
# toy ImageNet: the real ImageClassifier, SWAT-DeiT-Ti and the SWAT recipe
# (mixup/cutmix, gradient clipping, EMA) with the Accuracy metric; only the
# data root, image sizes (64: a 4x4 token grid, the position embedding
# interpolated), schedule and head width change
# (configs/toy/_base_/toy_imagenet.py).
_base_ = ['../cls/swat/swat-deit-tiny_8xb256_in1k.py',
          './_base_/toy_imagenet.py']

model = dict(head=dict(num_classes=5))
data_preprocessor = dict(num_classes=5)
train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_evaluator}}
test_evaluator = val_evaluator
param_scheduler = {{_base_.toy_param_scheduler}}
train_cfg = {{_base_.toy_train_cfg}}
default_hooks = {{_base_.toy_default_hooks}}
