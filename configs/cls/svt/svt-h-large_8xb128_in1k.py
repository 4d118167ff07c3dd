# SVT-H-L on ImageNet-1k at 224 without token labelling: the recipe of
# svt-h-small_8xb128_in1k.py with configs/svt/svt_l.py (drop path 0.3,
# gradient clipping at norm 1.0). The paper reports SVT-H-L only with
# token labelling (85.7 top-1): that run, and the config for official
# weights (they carry head.aux_head.*), is
# svt-h-large_8xb128_in1k-tl.py.
_base_ = ['./svt-h-small_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='h-large', drop_path_rate=0.3),
    head=dict(in_channels=512, num_heads=16))
optim_wrapper = dict(clip_grad=dict(max_norm=1.0, norm_type=2))
