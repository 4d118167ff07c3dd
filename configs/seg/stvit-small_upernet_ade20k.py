# STViT-S + UperNet on ADE20K (paper: 48.6 / 49.0 mIoU single / multi-scale).
# Protocol and super-token sizes as in stvit_upernet_ade20k.py.
_base_ = ['./stvit_upernet_ade20k.py']

pretrained = 'checkpoints/stvit-small_in1k_backbone.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
