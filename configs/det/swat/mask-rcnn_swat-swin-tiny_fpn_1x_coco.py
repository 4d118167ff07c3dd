# Mask R-CNN + FPN with SWAT-Swin-T on COCO, 1x schedule. Not in the paper
# (the official code is classification only, fixed to 224): the protocol is
# mmdet's own Swin-T 1x config, which it inherits
# (mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py, the plain baseline:
# 42.7 box AP / 39.3 mask AP in mmdet's model zoo): AdamW lr 1e-4, wd 0.05,
# no decay on norms and relative position bias tables, drop path 0.2,
# 16 images per batch (8 GPUs x 2), 12 epochs, lr steps at 8 and 11.
#
# SWATSwin runs at any input size: windows are padded as in Swin and the
# structure-aware tokenizer's grid follows the input.
#
# Pretrained backbone: convert an official ImageNet checkpoint with
#   python tools/model_converters/swat_to_mmpretrain.py SRC \
#       checkpoints/swat-swin-tiny_in1k_backbone.pth --family swin \
#       --backbone-only
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py']

custom_imports = dict(imports=['swat_mm'], allow_failed_imports=False)

pretrained = 'checkpoints/swat-swin-tiny_in1k_backbone.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='swat_mm.SWATSwin',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
# 8 GPUs x 2 images
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
# swat_mm's safety hooks: every rank's random state in each checkpoint
# (exact --resume) and checkpoints checked against the model before loading
custom_hooks = [
    dict(type='swat_mm.RandomStateHook'),
    dict(type='swat_mm.CheckpointFitHook')
]
