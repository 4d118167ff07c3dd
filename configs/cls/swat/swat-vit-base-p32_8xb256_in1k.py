# SWAT-ViT-B/32 on ImageNet-1k at 224 (paper: 76.2 top-1, read off its
# figure; plain DeiT-B/32 75.5, trained with the DeiT recipe; mmpretrain's
# closest config: mmpretrain::vision_transformer/vit-base-p32_64xb64_in1k.py):
# the SWAT recipe of swat-deit-tiny_8xb256_in1k.py.
_base_ = ['./swat-deit-tiny_8xb256_in1k.py']

model = dict(backbone=dict(arch='vit-base-p32'), head=dict(in_channels=768))
