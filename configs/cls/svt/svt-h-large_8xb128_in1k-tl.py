# SVT-H-L on ImageNet-1k at 224 with token labelling (paper: 85.7 top-1, the
# * row; badripatro/svt main.sh's svt_l run): the token-labelling recipe of
# svt-h-small_8xb128_in1k-tl.py with configs/svt/svt_l.py (drop path 0.3,
# gradient clipping at norm 1.0). The config to evaluate official SVT-H-L
# weights with.
_base_ = ['./svt-h-small_8xb128_in1k-tl.py']

model = dict(
    backbone=dict(arch='h-large', drop_path_rate=0.3),
    head=dict(in_channels=512, num_heads=16))
optim_wrapper = dict(clip_grad=dict(max_norm=1.0, norm_type=2))
