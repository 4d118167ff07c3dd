# SVT-H-B + UperNet on ADE20K (not in the paper); protocol as
# svt-h-small_upernet_ade20k.py.
_base_ = ['./svt-h-small_upernet_ade20k.py']

pretrained = 'checkpoints/svt-h-base_in1k_backbone.pth'
model = dict(
    backbone=dict(arch='h-base', drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
