# Mask R-CNN + FPN with STViT-B on COCO, 1x (paper: 49.7 box AP /
# 44.8 mask AP).
# Protocol and super-token sizes as in mask-rcnn_stvit-small_fpn_1x_coco.py.
_base_ = ['./mask-rcnn_stvit-small_fpn_1x_coco.py']

pretrained = 'checkpoints/stvit-base_in1k_backbone.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 512]))
