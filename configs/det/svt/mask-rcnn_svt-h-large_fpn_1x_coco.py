# Mask R-CNN + FPN with SVT-H-L on COCO, 1x schedule (not in the paper).
# Protocol as mask-rcnn_svt-h-small_fpn_1x_coco.py; drop path 0.3 as the
# ImageNet recipe of H-L.
_base_ = ['./mask-rcnn_svt-h-small_fpn_1x_coco.py']

pretrained = 'checkpoints/svt-h-large_in1k_backbone.pth'
model = dict(
    backbone=dict(arch='h-large', drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 512]))
