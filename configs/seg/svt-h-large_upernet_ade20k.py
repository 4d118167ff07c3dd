# SVT-H-L + UperNet on ADE20K (not in the paper); protocol as
# svt-h-small_upernet_ade20k.py.
_base_ = ['./svt-h-small_upernet_ade20k.py']

pretrained = 'checkpoints/svt-h-large_in1k_backbone.pth'
model = dict(
    backbone=dict(arch='h-large', drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 512]),
    auxiliary_head=dict(in_channels=384))
