# SWAT-ResMLP-S12 on ImageNet-1k at 224 (paper: 77.5 top-1, read off its
# figure; plain ResMLP-S12 76.6, trained with DeiT's recipe; mmpretrain has no
# ResMLP config): the recipe of swat-mixer-tiny_8xb256_in1k.py.
#
# The token-mixing convs act on a fixed number of tokens: the model accepts
# 224x224 inputs only (it says so with a clear error otherwise).
#
# Weight decay as timm 0.4.13 applies it to the official model (MlpMixer
# lists no no_weight_decay names): the 1-D layer scales ls1/ls2 are NOT
# decayed, the (1, 1, C) Affine norms' alpha/beta ARE.
_base_ = ['./swat-mixer-tiny_8xb256_in1k.py']

model = dict(
    backbone=dict(_delete_=True, type='swat_mm.SWATResMLP', arch='s12',
                  drop_path_rate=0.0),
    head=dict(in_channels=384))
