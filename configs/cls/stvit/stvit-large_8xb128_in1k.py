# STViT-L on ImageNet-1k at 224: the STViT-S recipe with drop path 0.6
# (REFERENCE.md section 1). The official model checkpoints blocks to fit
# memory; set model.backbone.with_cp=True if needed.
_base_ = ['./stvit-small_8xb128_in1k.py']

model = dict(backbone=dict(arch='large', drop_path_rate=0.6),
             neck=dict(in_channels=640))
