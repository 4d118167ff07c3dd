# Cascade Mask R-CNN + FPN with STViT-B on COCO, 3x with multi-scale training
# (paper: 53.9 box AP / 46.8 mask AP, the abstract's headline result).
#
# Assumed protocol (REFERENCE.md section 1; mmdet's Swin/ConvNeXt cascade
# recipe): AdamW lr 1e-4, wd 0.05, 16 images per batch (8 GPUs x 2), 36 epochs
# with lr steps at 27 and 33, multi-scale training plus the DETR-style random
# crop (mmdet's Swin/ConvNeXt ms-crop-3x pipeline,
# configs/det/_base_/ms_crop_3x.py), three
# cascade stages of 4conv1fc box heads with SyncBN and GIoU loss on decoded
# boxes. Super-token sizes (16, 8, 2, 1) as in the Mask R-CNN configs.
#
# Pretrained backbone: convert the authors' ImageNet checkpoint with
#   python tools/model_converters/stvit_to_mmpretrain.py SRC \
#       checkpoints/stvit-base_in1k_backbone.pth --backbone-only
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/ms_crop_3x.py',
]

custom_imports = dict(imports=['swat_mm'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
pretrained = 'checkpoints/stvit-base_in1k_backbone.pth'


def _bbox_head(stds):
    return dict(
        type='ConvFCBBoxHead',
        num_shared_convs=4,
        num_shared_fcs=1,
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                        target_means=[0., 0., 0., 0.], target_stds=stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=norm_cfg,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                      loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))


model = dict(
    backbone=dict(
        _delete_=True,
        type='swat_mm.STViT',
        arch='base',
        stoken_size=(16, 8, 2, 1),
        drop_path_rate=0.3,
        norm_cfg=norm_cfg,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 512]),
    roi_head=dict(bbox_head=[
        _bbox_head([0.1, 0.1, 0.2, 0.2]),
        _bbox_head([0.05, 0.05, 0.1, 0.1]),
        _bbox_head([0.033, 0.033, 0.067, 0.067]),
    ]))
del _bbox_head

train_pipeline = {{_base_.ms_crop_3x_train_pipeline}}
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'gamma_': dict(decay_mult=0.0)}))
train_cfg = dict(max_epochs={{_base_.ms_crop_3x_max_epochs}})
param_scheduler = {{_base_.ms_crop_3x_param_scheduler}}
auto_scale_lr = dict(enable=False, base_batch_size=16)
# swat_mm's safety hooks: every rank's random state in each checkpoint
# (exact --resume) and checkpoints checked against the model before loading
custom_hooks = [
    dict(type='swat_mm.RandomStateHook'),
    dict(type='swat_mm.CheckpointFitHook')
]
