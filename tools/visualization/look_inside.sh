#!/usr/bin/env bash
# The README's "Look inside" pictures, from scratch: the main demo job
# (tools/toy_demo.py: STViT-S + UperNet on the toy ADE20K) and the same
# job with SVT-H-S and SWAT-Swin-T, a short classifier fine-tuning on the
# toy ImageNet from the demo's STViT-S backbone (for Grad-CAM), then every
# visualization tool on one toy ADE20K validation image. About 15 minutes
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
#    from the demo's (5 epochs, no mixup/cutmix, EMA that follows the
#    weights: its official momentum keeps them at the start for thousands
#    of steps)
CLS=$WORK/stvit_cls
if [[ ! -f $CLS/epoch_5.pth ]]; then
  "$PY" tools/train.py configs/toy/stvit-small_toy-in1k.py --work-dir "$CLS" \
    --overwrite-checkpoints --cfg-options \
    model.backbone.init_cfg.type=Pretrained \
    model.backbone.init_cfg.checkpoint="$WORK/stvit_demo/iter_200.pth" \
    model.backbone.init_cfg.prefix=backbone. \
    train_cfg.max_epochs=5 train_cfg.val_interval=5 \
    param_scheduler.1.T_max=4 param_scheduler.1.end=5 \
    model.train_cfg=None custom_hooks.0.momentum=0.05 \
    train_dataloader.num_workers=0 val_dataloader.num_workers=0
fi

# 3. the pictures
IMG=$DATA/ade20k/images/validation/ADE_toy_val_00000000.jpg
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" tools/visualization/vis_super_tokens.py \
  configs/toy/stvit-small_upernet_toy-ade20k.py "$IMG" \
  --checkpoint "$WORK/stvit_demo/iter_200.pth" --size 128 --stage 0 \
  --out-dir "$TMP"
"$PY" tools/visualization/vis_spectral.py \
  configs/toy/svt-h-small_upernet_toy-ade20k.py "$IMG" \
  --checkpoint "$WORK/svt_demo/iter_200.pth" --size 128 \
  --layers block1.2.attn --out-dir "$TMP"
"$PY" tools/visualization/vis_tokens.py \
  configs/toy/swat-swin-tiny_upernet_toy-ade20k.py "$IMG" \
  --checkpoint "$WORK/swat_demo/iter_200.pth" --size 128 --token 9 9 \
  --out-dir "$TMP"
VIS_CAM=$("$PY" -c "import mmpretrain, os.path as p; print(p.join(p.dirname(mmpretrain.__file__), '.mim/tools/visualization/vis_cam.py'))")
"$PY" "$VIS_CAM" "$IMG" configs/toy/stvit-small_toy-in1k.py "$CLS/epoch_5.pth" \
  --target-layers backbone.layers.3.blocks.2 --save-path "$TMP/cam.png" \
  --cfg-options test_dataloader.dataset.pipeline.1.scale=128 \
  test_dataloader.dataset.pipeline.2.crop_size=128

stem=$(basename "$IMG" .jpg)
cp "$TMP/${stem}_stage0.png" "$OUT/look_inside_super_tokens.png"
cp "$TMP/${stem}_block1.2.attn.png" "$OUT/look_inside_spectral.png"
cp "$TMP/${stem}_token_r9_c9.png" "$OUT/look_inside_tokens.png"
cp "$TMP/kernels_layers.0.blocks.0.attn.png" "$OUT/look_inside_token_kernels.png"
cp "$TMP/cam.png" "$OUT/look_inside_cam.png"
ls -l "$OUT"/look_inside_*.png
