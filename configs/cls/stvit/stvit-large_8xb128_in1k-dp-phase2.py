# STViT-L on ImageNet-1k at 224, phase 2 of 2 of the official README's
# two-phase drop path (hhb072/STViT README.md, "Training STViT-large": drop
# path 0.4 for the first 260 epochs, 0.6 for the last 40): resumes the
# phase-1 run (stvit-large_8xb128_in1k-dp-phase1.py) from its epoch_260.pth,
# with its optimizer state, lr schedule, EMA and random state, and trains
# epochs 260-300 with drop path 0.6. Change load_from if phase 1 used
# another work directory. If phase 2 itself is interrupted, continue it with
# tools/train.py ... --resume (its own latest checkpoint).
_base_ = ['./stvit-large_8xb128_in1k.py']

model = dict(backbone=dict(drop_path_rate=0.6))
resume = True
load_from = 'work_dirs/stvit-large_8xb128_in1k-dp-phase1/epoch_260.pth'
train_cfg = dict(max_epochs=300)
