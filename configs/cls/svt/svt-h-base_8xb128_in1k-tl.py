# SVT-H-B on ImageNet-1k at 224 with token labelling (paper: 85.2 top-1, the
# * row; badripatro/svt main.sh's svt_b run): the token-labelling recipe of
# svt-h-small_8xb128_in1k-tl.py with configs/svt/svt_b.py (drop path 0.1, no
# gradient clipping). The config to evaluate official SVT-H-B weights with.
_base_ = ['./svt-h-small_8xb128_in1k-tl.py']

model = dict(
    backbone=dict(arch='h-base', drop_path_rate=0.1),
    head=dict(in_channels=512, num_heads=16))
