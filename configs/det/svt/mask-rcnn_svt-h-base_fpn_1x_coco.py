# Mask R-CNN + FPN with SVT-H-B on COCO, 1x schedule (not in the paper).
# Protocol as mask-rcnn_svt-h-small_fpn_1x_coco.py; drop path 0.1 as the
# ImageNet recipe of H-B.
_base_ = ['./mask-rcnn_svt-h-small_fpn_1x_coco.py']

pretrained = 'checkpoints/svt-h-base_in1k_backbone.pth'
model = dict(
    backbone=dict(arch='h-base', drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 320, 512]))
