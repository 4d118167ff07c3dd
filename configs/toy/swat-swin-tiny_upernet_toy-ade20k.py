# Toy run of configs/seg/swat-swin-tiny_upernet_ade20k.py on the generated toy ADE20K:
# the real UperNet, SWAT-Swin-T, pipelines and IoUMetric; only the data
# root, image sizes, schedule and head widths change
# (configs/toy/_base_/toy_ade20k.py), and the backbone starts from scratch.
_base_ = ['../seg/swat-swin-tiny_upernet_ade20k.py', './_base_/toy_ade20k.py']

model = {{_base_.toy_model}}
train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
train_cfg = {{_base_.toy_train_cfg}}
optim_wrapper = {{_base_.toy_optim_wrapper}}
param_scheduler = {{_base_.toy_param_scheduler}}
default_hooks = {{_base_.toy_default_hooks}}
