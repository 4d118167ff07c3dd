# SVT-H-S + UperNet on ADE20K, 512x512 crops, 160k iterations. Not in the
# paper: the official code cannot run at any size but 224. swat_mm's SVT
# resizes the learned low-pass filters to the actual feature map (see
# swat_mm/models/backbones/svt.py), so the backbone runs on 512 crops and on
# whole test images scaled to 2048x512.
#
# Protocol: the one hierarchical backbones of the period share (Swin/PVTv2,
# as configs/seg/stvit_upernet_ade20k.py): AdamW lr 6e-5, wd 0.01, 1500
# linear warm-up iterations then poly decay, 16 images per batch (8 GPUs x 2),
# 160k iterations, SyncBN in the heads and the stem; multi-scale test with --tta.
#
# Pretrained backbone: convert an official ImageNet checkpoint with
#   python tools/model_converters/svt_to_mmpretrain.py SRC \
#       checkpoints/svt-h-small_in1k_backbone.pth --backbone-only
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]

custom_imports = dict(imports=['swat_mm'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
pretrained = 'checkpoints/svt-h-small_in1k_backbone.pth'
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='swat_mm.SVT',
        arch='h-small',
        drop_path_rate=0.1,
        # the stem's BatchNorms
        norm_cfg=norm_cfg,
        out_indices=(0, 1, 2, 3),
        # the last stage's official norm (norm4) on the last map too
        final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 320, 448], num_classes=150,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=320, num_classes=150, norm_cfg=norm_cfg))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999),
                   weight_decay=0.01),
    # no decay on norms and biases (as timm's optimizer factory in the
    # official ImageNet training)
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000,
         by_epoch=False),
]
# 8 GPUs x 2 images
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
# swat_mm's safety hooks: every rank's random state in each checkpoint
# (exact --resume) and checkpoints checked against the model before loading
custom_hooks = [
    dict(type='swat_mm.RandomStateHook'),
    dict(type='swat_mm.CheckpointFitHook')
]
