# Toy run of configs/det/swat/mask-rcnn_swat-swin-tiny_fpn_1x_coco.py on the generated
# toy COCO: the real Mask R-CNN, FPN, SWAT-Swin-T, pipelines and CocoMetric
# (bbox + segm); only the data root, image sizes, schedule and head widths
# change (configs/toy/_base_/toy_coco.py), and the backbone starts from
# scratch.
_base_ = ['../det/swat/mask-rcnn_swat-swin-tiny_fpn_1x_coco.py',
          './_base_/toy_coco.py']

model = {{_base_.toy_model}}
train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_evaluator}}
test_evaluator = val_evaluator
train_cfg = {{_base_.toy_train_cfg}}
optim_wrapper = {{_base_.toy_optim_wrapper}}
param_scheduler = {{_base_.toy_param_scheduler}}
default_hooks = {{_base_.toy_default_hooks}}
