# SWAT-Mixer-B/32 on ImageNet-1k at 224 (paper: 77.1 top-1, read off its
# figure; plain Mixer-B/32 75.5, mmpretrain's closest config:
# mmpretrain::mlp_mixer/mlp-mixer-base-p16_64xb64_in1k.py): the recipe of
# swat-mixer-tiny_8xb256_in1k.py.
_base_ = ['./swat-mixer-tiny_8xb256_in1k.py']

model = dict(backbone=dict(arch='mixer-base-p32'), head=dict(in_channels=768))
