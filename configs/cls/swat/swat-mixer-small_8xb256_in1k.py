# SWAT-Mixer-S on ImageNet-1k at 224 (paper: 77.9 top-1, read off its
# figure; plain Mixer-S/16 75.7): the recipe of swat-mixer-tiny_8xb256_in1k.py.
_base_ = ['./swat-mixer-tiny_8xb256_in1k.py']

model = dict(backbone=dict(arch='mixer-small'), head=dict(in_channels=512))
