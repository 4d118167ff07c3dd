# Mask R-CNN + FPN with STViT-L on COCO, 1x (paper: 50.8 box AP /
# 45.5 mask AP).
# Protocol and super-token sizes as in mask-rcnn_stvit-small_fpn_1x_coco.py.
_base_ = ['./mask-rcnn_stvit-small_fpn_1x_coco.py']

pretrained = 'checkpoints/stvit-large_in1k_backbone.pth'
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.4,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 448, 640]))
