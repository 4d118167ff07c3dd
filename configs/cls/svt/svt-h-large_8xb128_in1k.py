# SVT-H-L on ImageNet-1k at 224 (paper, with token labelling: 85.7 top-1):
# the recipe of svt-h-small_8xb128_in1k.py with configs/svt/svt_l.py's drop
# path 0.3 and gradient clipping at norm 1.0.
_base_ = ['./svt-h-small_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='h-large', drop_path_rate=0.3),
    head=dict(in_channels=512, num_heads=16))
optim_wrapper = dict(clip_grad=dict(max_norm=1.0, norm_type=2))
