#!/usr/bin/env bash
# The README's "Look inside" pictures, from scratch: the main demo job
# (tools/toy_demo.py: STViT-S + UperNet on the toy ADE20K) and the same
# job with SVT-H-S and SWAT-Swin-T, a short classifier fine-tuning on the
# toy ImageNet from the demo's STViT-S backbone (for Grad-CAM), then every
# visualization tool on one toy ADE20K validation image (Grad-CAM: on five
# toy ImageNet ones). About 45 minutes on 2 CPU cores, 30 of them the
# classifier (measured 2026-12-06).
#
#   bash tools/visualization/look_inside.sh [OUT_DIR]   # default docs/images
#
# PYTHON picks the interpreter (default: the one tools/setup_env.sh made);
# WORK the work folder (default work_dirs/look_inside; what is trained
# there already is reused).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
OUT=${1:-docs/images}
PY=${PYTHON:-$HOME/.cache/swat_mm/venv/bin/python}
WORK=${WORK:-work_dirs/look_inside}
DATA=$WORK/toy_data
export SWAT_MM_TOY_DATA=$DATA OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
"$PY" tools/make_toy_data.py --root "$DATA" --which imagenet ade20k \
  --imagenet-train-per-class 800

# 1. the main demo job and the same job for SVT and SWAT (200 iterations
#    each; its iter_200.pth holds the trained segmentor)
demo() {  # NAME CONFIG
  [[ -f $WORK/$1/iter_200.pth ]] && return
  "$PY" tools/toy_demo.py --work-dir "$WORK/$1" --data-root "$DATA" \
    --config "$2"
}
demo stvit_demo configs/toy/stvit-small_upernet_toy-ade20k.py
demo svt_demo configs/toy/svt-h-small_upernet_toy-ade20k.py
demo swat_demo configs/toy/swat-swin-tiny_upernet_toy-ade20k.py

# 2. an STViT-S classifier on the toy ImageNet with 800 training images per
#    class (toy_data.py: a superset of the default 40), its backbone
#    initialised from the demo's: flips as the only augmentation (a short
#    run learns nothing under RandAugment, erasing and mixup/cutmix), no EMA
#    (its official momentum keeps the weights at the start for thousands of
#    steps), super tokens of 2x2 at stage 1 and plain attention after (the
#    64x64 images give maps of 16x16 to 2x2; the default 8x8 and 4x4 super
#    tokens leave only 2x2 of them per map), AdamW 5e-4, batches of 32, 1500
#    iterations (12 epochs): 86 % top-1 on the 50 validation images
#    (2026-12-06; the recipe before, 40 images per class, the default super
#    tokens and 15 epochs of batches of 8: 26 %)
CLS=$WORK/stvit_cls
if [[ ! -f $CLS/epoch_12.pth ]]; then
  cat >"$WORK/stvit_cls.py" <<PYCFG
_base_ = ['$REPO/configs/toy/stvit-small_toy-in1k.py']
model = dict(
    backbone=dict(drop_path_rate=0., stoken_size=(2, 1, 1, 1),
                  init_cfg=dict(type='Pretrained', prefix='backbone.',
                                checkpoint='$WORK/stvit_demo/iter_200.pth')),
    train_cfg=None)
train_dataloader = dict(
    batch_size=32, num_workers=0,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs')]))
val_dataloader = dict(num_workers=0)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
custom_hooks = [dict(type='swat_mm.RandomStateHook')]
train_cfg = dict(max_epochs=12, val_interval=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=25),
    dict(type='CosineAnnealingLR', T_max=1475, eta_min=1e-5, by_epoch=False,
         begin=25, end=1500)]
PYCFG
  "$PY" tools/train.py "$WORK/stvit_cls.py" --work-dir "$CLS" \
    --overwrite-checkpoints
fi

# 3. the pictures
IMG=$DATA/ade20k/images/validation/ADE_toy_val_00000000.jpg
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" tools/visualization/vis_super_tokens.py \
  configs/toy/stvit-small_upernet_toy-ade20k.py "$IMG" \
  --checkpoint "$WORK/stvit_demo/iter_200.pth" --size 256 --stage 1 \
  --out-dir "$TMP"
"$PY" tools/visualization/vis_spectral.py \
  configs/toy/svt-h-small_upernet_toy-ade20k.py "$IMG" \
  --checkpoint "$WORK/svt_demo/iter_200.pth" --size 128 \
  --layers block1.2.attn --out-dir "$TMP"
"$PY" tools/visualization/vis_tokens.py \
  configs/toy/swat-swin-tiny_upernet_toy-ade20k.py "$IMG" \
  --checkpoint "$WORK/swat_demo/iter_200.pth" --size 128 --token 9 9 \
  --modules layers.2.blocks.0.attn --out-dir "$TMP"
VIS_CAM=$("$PY" -c "import mmpretrain, os.path as p; print(p.join(p.dirname(mmpretrain.__file__), '.mim/tools/visualization/vis_cam.py'))")
# Grad-CAM of the predicted class on the first validation image of each
# class (cross, disc, ring, square, triangle), at the last block of stage 4
# (the layer Look inside names) and of stage 3: one row per layer, drawn at
# the 64x64 the classifier was trained at (at 128 it is at chance) and
# enlarged to 128
for i in 0 1 2 3 4; do
  IMG_CLS=$DATA/imagenet/val/toy_val_0000000$i.JPEG
  for layer in backbone.layers.3.blocks.2 backbone.layers.2.blocks.8; do
    PYTHONPATH=$REPO "$PY" "$VIS_CAM" "$IMG_CLS" "$WORK/stvit_cls.py" "$CLS/epoch_12.pth" \
      --target-layers $layer --save-path "$TMP/cam_${layer}_$i.png"
  done
done
"$PY" - "$TMP" <<'PYSTRIP'
import sys
from PIL import Image, ImageDraw
tmp = sys.argv[1]
rows = ['backbone.layers.3.blocks.2', 'backbone.layers.2.blocks.8']
out = Image.new('RGB', (5 * 128, len(rows) * 142), 'white')
for r, layer in enumerate(rows):
    ImageDraw.Draw(out).text((4, r * 142 + 1), layer, fill='black')
    for i in range(5):
        cam = Image.open(f'{tmp}/cam_{layer}_{i}.png').convert('RGB')
        out.paste(cam.resize((128, 128), Image.BICUBIC), (i * 128, r * 142 + 14))
out.save(f'{tmp}/cam.png')
PYSTRIP

stem=$(basename "$IMG" .jpg)
cp "$TMP/${stem}_stage1.png" "$OUT/look_inside_super_tokens.png"
cp "$TMP/${stem}_block1.2.attn.png" "$OUT/look_inside_spectral.png"
cp "$TMP/${stem}_token_r9_c9.png" "$OUT/look_inside_tokens.png"
cp "$TMP/kernels_layers.2.blocks.0.attn.png" "$OUT/look_inside_token_kernels.png"
cp "$TMP/cam.png" "$OUT/look_inside_cam.png"
ls -l "$OUT"/look_inside_*.png
