# SVT-H-B on ImageNet-1k at 224 without token labelling: the recipe of
# svt-h-small_8xb128_in1k.py with configs/svt/svt_b.py (drop path 0.1, no
# gradient clipping). The paper reports SVT-H-B only with token labelling
# (85.2 top-1): that run, and the config for official weights (they carry
# head.aux_head.*), is svt-h-base_8xb128_in1k-tl.py.
_base_ = ['./svt-h-small_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='h-base', drop_path_rate=0.1),
    head=dict(in_channels=512, num_heads=16))
