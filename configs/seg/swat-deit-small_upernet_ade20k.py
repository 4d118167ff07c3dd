# SWAT-DeiT-S + UperNet on ADE20K, 512x512 crops, 160k iterations: mmseg's
# ViT recipe, inherited from its DeiT-S config with the multi-level neck (the
# plain baseline,
# mmseg::vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py): the
# outputs of blocks 3, 6, 9 and 12 as 32x32 maps (at 512 input), rescaled 4x,
# 2x, 1x and 0.5x by MultiLevelNeck into a pyramid for UperNet; AdamW lr 6e-5,
# wd 0.01, no decay on position embeddings, class token and norms, 1500
# warm-up iterations then poly decay, drop path 0.1, 16 images per batch
# (8 GPUs x 2).
#
# SWATViT interpolates its position embeddings (bicubic) and tiles its
# tokenizer's position map to the 32x32 grid of a 512 input.
#
# Pretrained backbone: convert an official ImageNet checkpoint with
#   python tools/model_converters/swat_to_mmpretrain.py SRC \
#       checkpoints/swat-deit-small_in1k_backbone.pth --family vit \
#       --backbone-only
_base_ = ['mmseg::vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py']

custom_imports = dict(imports=['swat_mm'], allow_failed_imports=False)

pretrained = 'checkpoints/swat-deit-small_in1k_backbone.pth'
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='swat_mm.SWATViT',
        arch='deit-small',
        drop_path_rate=0.1,
        out_indices=(2, 5, 8, 11),
        out_type='featmap',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[384, 384, 384, 384], out_channels=384),
    decode_head=dict(in_channels=[384, 384, 384, 384], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
# swat_mm's safety hooks: every rank's random state in each checkpoint
# (exact --resume) and checkpoints checked against the model before loading
custom_hooks = [
    dict(type='swat_mm.RandomStateHook'),
    dict(type='swat_mm.CheckpointFitHook')
]
