# SWAT-DeiT-S on ImageNet-1k at 224 (paper: 80.5 top-1, read off its figure;
# plain DeiT-S 79.8, mmpretrain::deit/deit-small_4xb256_in1k.py): the SWAT
# recipe of swat-deit-tiny_8xb256_in1k.py.
_base_ = ['./swat-deit-tiny_8xb256_in1k.py']

model = dict(backbone=dict(arch='deit-small'), head=dict(in_channels=384))
