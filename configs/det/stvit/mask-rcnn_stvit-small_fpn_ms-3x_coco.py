# Mask R-CNN + FPN with STViT-S on COCO, 3x with multi-scale training
# (paper: 49.2 box AP / 44.2 mask AP).
# Assumed protocol (REFERENCE.md section 1): the 1x config's optimizer, 36
# epochs with lr steps at 27 and 33, and mmdet's Swin ms-crop-3x
# augmentation (multi-scale training plus the DETR-style random crop).
_base_ = ['./mask-rcnn_stvit-small_fpn_1x_coco.py', '../_base_/ms_crop_3x.py']

train_pipeline = {{_base_.ms_crop_3x_train_pipeline}}
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

train_cfg = dict(max_epochs={{_base_.ms_crop_3x_max_epochs}})
param_scheduler = {{_base_.ms_crop_3x_param_scheduler}}
