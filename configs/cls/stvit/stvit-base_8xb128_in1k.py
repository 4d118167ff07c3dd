# STViT-B on ImageNet-1k at 224: the STViT-S recipe with drop path 0.4
# (REFERENCE.md section 1).
_base_ = ['./stvit-small_8xb128_in1k.py']

model = dict(backbone=dict(arch='base', drop_path_rate=0.4))
