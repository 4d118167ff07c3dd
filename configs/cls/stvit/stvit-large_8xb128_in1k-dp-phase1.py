# STViT-L on ImageNet-1k at 224, the two-phase drop path the official README
# recommends for STViT-L (hhb072/STViT README.md, "Training STViT-large":
# "we find that setting drop-path to be 0.4 and 0.6 respectively for the
# first 260 epochs and last 40 epochs would obtain better results"; its
# command line itself passes --drop-path 0.6 for all 300 epochs, which is
# stvit-large_8xb128_in1k.py).
#
# Phase 1 of 2: epochs 0-260 with drop path 0.4, on the 300-epoch recipe of
# stvit-large_8xb128_in1k.py (warm-up, and the cosine over 300 epochs; the
# run stops after epoch 260 and writes epoch_260.pth). Then train
# stvit-large_8xb128_in1k-dp-phase2.py, which resumes from that checkpoint
# (optimizer, schedule, EMA, random state) with drop path 0.6.
_base_ = ['./stvit-large_8xb128_in1k.py']

model = dict(backbone=dict(drop_path_rate=0.4))
# the schedule above stays the 300-epoch one (param_scheduler is inherited
# with its 300-epoch values); only the loop stops at 260
phase1_epochs = 260
train_cfg = dict(max_epochs=phase1_epochs)
