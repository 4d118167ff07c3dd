#!/usr/bin/env bash
# The README's "Look inside" pictures, from scratch: the main demo job
# (tools/toy_demo.py: STViT-S + UperNet on the toy ADE20K) and the same
# job with SVT-H-S and SWAT-Swin-T, a short classifier fine-tuning on the
# toy ImageNet from the demo's STViT-S backbone (for Grad-CAM), then every
# visualization tool on one toy ADE20K validation image (Grad-CAM: on a toy
# ImageNet one). About 15 minutes
# of one CPU core.
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
"$PY" tools/make_toy_data.py --root "$DATA" --which imagenet ade20k

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

# 2. an STViT-S classifier on the toy ImageNet, its backbone initialised
#    from the demo's: the toy config with light augmentation (a short run
#    learns nothing under RandAugment, erasing and mixup/cutmix) and no EMA
#    (its official momentum keeps the weights at the start for thousands of
#    steps), 15 epochs of batches of 8
CLS=$WORK/stvit_cls
if [[ ! -f $CLS/epoch_15.pth ]]; then
  cat >"$WORK/stvit_cls.py" <<PYCFG
_base_ = ['$REPO/configs/toy/stvit-small_toy-in1k.py']
model = dict(
    backbone=dict(drop_path_rate=0.,
                  init_cfg=dict(type='Pretrained', prefix='backbone.',
                                checkpoint='$WORK/stvit_demo/iter_200.pth')),
    train_cfg=None)
train_dataloader = dict(
    batch_size=8, num_workers=0,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.6, 1.)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs')]))
val_dataloader = dict(num_workers=0)
custom_hooks = [dict(type='swat_mm.RandomStateHook')]
train_cfg = dict(max_epochs=15, val_interval=15)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=14, eta_min=1e-5, by_epoch=True,
         begin=1, end=15)]
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
IMG_CLS=$DATA/imagenet/val/toy_val_00000003.JPEG  # a 'square'
PYTHONPATH=$REPO "$PY" "$VIS_CAM" "$IMG_CLS" "$WORK/stvit_cls.py" "$CLS/epoch_15.pth" \
  --target-layers backbone.layers.3.blocks.2 --save-path "$TMP/cam.png" \
  --cfg-options test_dataloader.dataset.pipeline.1.scale=128 \
  test_dataloader.dataset.pipeline.2.crop_size=128

stem=$(basename "$IMG" .jpg)
cp "$TMP/${stem}_stage1.png" "$OUT/look_inside_super_tokens.png"
cp "$TMP/${stem}_block1.2.attn.png" "$OUT/look_inside_spectral.png"
cp "$TMP/${stem}_token_r9_c9.png" "$OUT/look_inside_tokens.png"
cp "$TMP/kernels_layers.2.blocks.0.attn.png" "$OUT/look_inside_token_kernels.png"
cp "$TMP/cam.png" "$OUT/look_inside_cam.png"
ls -l "$OUT"/look_inside_*.png
