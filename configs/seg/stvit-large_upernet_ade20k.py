# STViT-L + UperNet on ADE20K (paper: 52.4 / 53.2 mIoU single / multi-scale).
# Protocol and super-token sizes as in stvit_upernet_ade20k.py.
_base_ = ['./stvit_upernet_ade20k.py']

pretrained = 'checkpoints/stvit-large_in1k_backbone.pth'
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.4,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 448, 640]),
    auxiliary_head=dict(in_channels=448))
