# SVT-H-S on ImageNet-1k at 224 with token labelling (paper: 84.2 top-1, the
# * row; main.sh: --token-label --token-label-size 7 with a teacher's dense
# score maps): the recipe of svt-h-small_8xb128_in1k.py plus the auxiliary
# token head trained on dense targets (loss = 1.0 x class + 0.5 x dense).
# Also the config to evaluate official token-labelled weights with
# (prediction = cls + 0.5 * max over tokens of aux, as the official model).
#
# Dense labels: one `.pt` file per training image holding a (2, k, h, w)
# tensor of the teacher's top-k scores and class indices over the whole
# image (the format of the token-labelling repository's released NFNet-F6
# ImageNet labels), at <label_root>/<class folder>/<image stem>.pt; see
# swat_mm/datasets/token_label.py.
#
# Differences from the official training, which the data pipeline here
# cannot reproduce: the official model's in-network MixToken (cutmix of the
# stem tokens, undone on the token outputs) is not applied, and RandAugment
# is left out because its geometric operations would move the image under
# a label map that does not follow them; crops and flips do follow.
_base_ = ['./svt-h-small_8xb128_in1k.py']

label_root = 'data/imagenet/label_top5_train_nfnet'
model = dict(
    head=dict(with_aux=True, cls_weight=1.0, dense_weight=0.5,
              aux_scale=0.5),
    # dense targets cannot go through mixup/cutmix batch augments
    train_cfg=dict(_delete_=True))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='swat_mm.LoadTokenLabel', label_root=label_root),
    dict(type='swat_mm.TokenLabelRandomResizedCrop', scale=224,
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='swat_mm.MakeTokenLabel', num_classes=1000, label_size=7,
         smoothing=0.1),
    dict(type='PackInputs', algorithm_keys=['token_label']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
