# SWAT-Swin-T + UperNet on ADE20K, 512x512 crops, 160k iterations: the Swin
# protocol, inherited from mmseg's own Swin-T config (the plain baseline,
# mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py,
# 44.4 mIoU in mmseg's model zoo): AdamW lr 6e-5, wd 0.01, no decay on norms
# and relative position bias tables, 1500 warm-up iterations then poly decay,
# drop path 0.3, 16 images per batch (8 GPUs x 2). The paper reports
# SWAT-Swin-T on ADE20K, but its table could not be found (REFERENCE.md
# section 3).
#
# Pretrained backbone: convert an official ImageNet checkpoint with
#   python tools/model_converters/swat_to_mmpretrain.py SRC \
#       checkpoints/swat-swin-tiny_in1k_backbone.pth --family swin \
#       --backbone-only
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'  # noqa
]

custom_imports = dict(imports=['swat_mm'], allow_failed_imports=False)

pretrained = 'checkpoints/swat-swin-tiny_in1k_backbone.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='swat_mm.SWATSwin',
        arch='tiny',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
# swat_mm's safety hooks: every rank's random state in each checkpoint
# (exact --resume) and checkpoints checked against the model before loading
custom_hooks = [
    dict(type='swat_mm.RandomStateHook'),
    dict(type='swat_mm.CheckpointFitHook')
]
