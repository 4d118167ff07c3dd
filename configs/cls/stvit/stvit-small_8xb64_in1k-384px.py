# STViT-S fine-tuned at 384 from the 224 model (official finetune.sh;
# REFERENCE.md section 1): 30 epochs, 8 GPUs x 64, AdamW lr 5e-6 constant
# (min lr = lr, no warm-up), wd 1e-8, the 224 augmentation at 384. The
# super-token sizes stay (8, 4, 1, 1), as in the official 384 models.
# The official finetune.sh passes --epoch 50; the paper/README recipe says 30.
#
# Eval-mode training: the official fine-tune trains the model in eval mode
# (main.py: train_one_epoch(..., set_training_mode=args.finetune == ''),
# "keep in eval mode during finetuning"): every BatchNorm (stem, down-
# sampling, blocks and the classifier neck's) normalises with its running
# statistics and keeps them, drop path and dropout are off, the parameters
# are all trained. EvalModeTrainingHook (custom_hooks below) does the same:
# it puts the whole model in eval mode before every training iteration. The
# drop path rate stays the official command's (--drop-path 0.1/0.4/0.6) and
# is inert in eval mode; the backbone's norm_eval would not suffice (the
# neck's BatchNorm is outside the backbone).
#
# Starting point: the official run loads the raw 224 model (--finetune
# best.pth, its 'model'). A converted official checkpoint is that; a
# checkpoint of our 224 config starts the fine-tune from its EMA weights
# (mmengine stores them as `state_dict`, and mmpretrain's EMAHook copies the
# EMA into the model when load_from has one).
_base_ = ['./stvit-small_8xb128_in1k.py']

img_size = 384
# the 224 model to start from (an mmpretrain checkpoint, e.g. converted)
load_from = None

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean],
                      interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3, fill_color=bgr_mean,
         fill_std=bgr_std),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # the official eval above 224: short side to 384, centre crop 384
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=5e-6, weight_decay=1e-8))
max_epochs = 30
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
# the 224 config's hooks (raw and EMA both evaluated) plus eval-mode training
custom_hooks = [
    dict(type='EMAHook', momentum=4e-5, evaluate_on_ema=True,
         evaluate_on_origin=True, priority='ABOVE_NORMAL'),
    dict(type='swat_mm.EvalModeTrainingHook'),
    dict(type='swat_mm.RandomStateHook'),
    dict(type='swat_mm.CheckpointFitHook')
]
