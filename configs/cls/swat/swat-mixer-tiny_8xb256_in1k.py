# SWAT-Mixer-Ti on ImageNet-1k at 224 (paper: 72.3 top-1, read off its
# figure; plain Mixer-Ti/16 68.3, mmpretrain has no Mixer-Ti config, its
# Mixer family: mmpretrain::mlp_mixer/mlp-mixer-base-p16_64xb64_in1k.py):
# the SWAT recipe of swat-deit-tiny_8xb256_in1k.py
# (config/mixer_i1k_scratch.yaml is the same recipe).
#
# The token-mixing MLPs act on a fixed number of tokens: the model accepts
# 224x224 inputs only (it says so with a clear error otherwise).
_base_ = ['./swat-deit-tiny_8xb256_in1k.py']

model = dict(
    backbone=dict(_delete_=True, type='swat_mm.SWATMixer', arch='mixer-tiny',
                  drop_path_rate=0.0),
    neck=dict(_delete_=True, type='GlobalAveragePooling'),
    head=dict(_delete_=True,
              type='LinearClsHead',
              num_classes=1000,
              in_channels=256,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                        mode='original'),
              # timm 0.4 initialises Mixer heads with zeros
              init_cfg=dict(type='Constant', layer='Linear', val=0)))
# timm 0.4.13's decay rule with no names: the official MlpMixer has no
# no_weight_decay(), so only the 1-D parameters are not decayed
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(_delete_=True)))
