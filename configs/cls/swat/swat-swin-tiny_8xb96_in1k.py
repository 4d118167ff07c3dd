# SWAT-Swin-T on ImageNet-1k at 224 (paper: 81.7 top-1, read off its figure;
# plain Swin-T 81.3, mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py):
# the SWAT recipe of swat-deit-tiny_8xb256_in1k.py with the official Swin
# batch and lr (config/swin_i1k_scratch.yaml): 8 GPUs x 96, lr 0.5625e-3.
# Weight decay as timm 0.4.13 applies it to the official Swin: no decay for
# 1-D parameters (norms, biases) only. Swin's no_weight_decay() names
# absolute_pos_embed (absent here); the relative position bias tables are in
# no_weight_decay_keywords(), which timm 0.4.13's optimizer factory never
# reads, so they ARE decayed (unlike Swin's own and mmpretrain's recipes).
_base_ = ['./swat-deit-tiny_8xb256_in1k.py']

model = dict(
    backbone=dict(_delete_=True, type='swat_mm.SWATSwin', arch='tiny',
                  drop_path_rate=0.0),
    neck=dict(_delete_=True, type='GlobalAveragePooling'),
    head=dict(_delete_=True,
              type='LinearClsHead',
              num_classes=1000,
              in_channels=768,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                        mode='original'),
              init_cfg=dict(type='TruncNormal', layer='Linear', std=.02,
                            bias=0.)))
train_dataloader = dict(batch_size=96)
val_dataloader = dict(batch_size=96)
test_dataloader = val_dataloader
optim_wrapper = dict(
    optimizer=dict(lr=0.5625e-3),
    paramwise_cfg=dict(custom_keys=dict(_delete_=True)))
warmup_epochs = 8
cosine_epochs = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 0.5625e-3, by_epoch=True,
         begin=0, end=warmup_epochs),
    dict(type='CosineAnnealingLR', T_max=cosine_epochs - warmup_epochs,
         eta_min=1e-5, by_epoch=True, begin=warmup_epochs,
         end=cosine_epochs),
]
auto_scale_lr = dict(base_batch_size=768)
