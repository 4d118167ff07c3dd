#!/usr/bin/env bash
# The GPU checks of swat_mm in one prepared run (tools/analysis_tools/gpu_check.py
# says what is checked), for a bare machine that has python, torch and CUDA
# but none of the OpenMMLab stack and no network.
#
# Here, with network, once: the wheels of the stack for the machine's Python
# (mmcv built without compiled ops), into an ignored folder:
#   bash tools/gpu_check.sh --download [--python-version 3.12] [--wheels .gpu/wheels]
# There (the folder carried along), installing them into a fresh --target
# folder and running every check:
#   bash tools/gpu_check.sh OUT_DIR [--wheels .gpu/wheels] [--target /tmp/swat_mm_gpu]
#        [--python python3] [any option of gpu_check.py: --device cpu --small
#         --official .gpu/official --only correctness,amp]
# Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.log; exits non-zero when
# a check fails.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHEELS=$REPO/.gpu/wheels
TARGET=${TMPDIR:-/tmp}/swat_mm_gpu_site
PY=python3
PYVER=3.12
DOWNLOAD=0
ARGS=()
while (($#)); do
  case $1 in
    --download) DOWNLOAD=1 ;;
    --wheels) WHEELS=$2; shift ;;
    --target) TARGET=$2; shift ;;
    --python) PY=$2; shift ;;
    --python-version) PYVER=$2; shift ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
say() { printf '[gpu_check] %s\n' "$*" >&2; }
die() { printf '[gpu_check] ERROR: %s\n' "$*" >&2; exit 1; }

# What the stack needs beyond a CUDA image with torch, torchvision, numpy,
# scipy, matplotlib, opencv, pyyaml, rich, click, markdown, tqdm, six,
# packaging and zipp (the H200 image; check with pip list there).
WHEEL_SPECS=(
  mmengine==0.10.7 mmpretrain==1.2.0 mmdet==3.3.0 mmsegmentation==1.2.2
  pytorch_wavelets==1.3.0 PyWavelets addict yapf platformdirs termcolor ftfy
  wcwidth terminaltables pycocotools shapely modelindex model-index
  ordered-set mat4py prettytable importlib-metadata==8.7.0
)
MMCV_VERSION=2.1.0

if ((DOWNLOAD)); then
  mkdir -p "$WHEELS"
  plat=()
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
           manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    plat+=(--platform "$p")
  done
  say "downloading ${#WHEEL_SPECS[@]} wheels for CPython $PYVER into $WHEELS"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp "${plat[@]}" -d "$WHEELS" "${WHEEL_SPECS[@]}" \
    || die "pip download failed"
  if ! ls "$WHEELS"/mmcv*-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    # mmcv without its compiled ops is pure Python (it names itself mmcv-lite)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$PY" -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install -q -c "$REPO/tools/pip-constraints.txt" "setuptools<81" wheel
    "$tmp/venv/bin/pip" download -q --no-deps --no-binary=:all: --no-build-isolation \
      -d "$tmp/src" "mmcv==$MMCV_VERSION" || die "could not download the mmcv sdist"
    MMCV_WITH_OPS=0 "$tmp/venv/bin/pip" wheel -q --no-deps --no-build-isolation \
      -w "$tmp/whl" "$tmp/src/mmcv-$MMCV_VERSION.tar.gz" || die "building mmcv-lite failed"
    mv "$tmp"/whl/*.whl "$WHEELS"/
  fi
  # the official STViT imports fvcore (a source-only release on PyPI)
  if ! ls "$WHEELS"/fvcore-*.whl >/dev/null 2>&1; then
    "$PY" -m pip wheel -q --no-deps -w "$WHEELS" fvcore==0.1.5.post20221221 \
      iopath==0.1.10 yacs==0.1.8 || die "building the fvcore wheels failed"
  fi
  say "$(ls "$WHEELS" | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1) in $WHEELS"
  exit 0
fi

((${#ARGS[@]})) || die "give an output folder: bash tools/gpu_check.sh OUT_DIR [options]"
[[ -d "$WHEELS" ]] || die "$WHEELS not found: run 'bash tools/gpu_check.sh --download' where pip reaches PyPI, and carry that folder"
start=$(date +%s)
rm -rf "$TARGET"
say "installing $(ls "$WHEELS"/*.whl | wc -l) wheels into $TARGET"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --target "$TARGET" "$WHEELS"/*.whl || die "installing the wheels failed"
# the checkout first: a wheel (modelindex) installs a top-level `tests` package
export PYTHONPATH=$REPO:$TARGET${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
# mmpretrain 1.2.0 imports its multimodal models whenever transformers>=4.28 is
# installed, and they do not import with transformers 5 (seen on the H200 image)
if ! err=$("$PY" -c "import mmpretrain.models" 2>&1 >/dev/null); then
  printf '%s\n' "$err" | tail -n 3 >&2
  if "$PY" -c "import transformers" >/dev/null 2>&1; then
    die "mmpretrain 1.2.0 does not import next to transformers $("$PY" -c 'import transformers; print(transformers.__version__)') (its multimodal models need transformers 4); on a throwaway machine: $PY -m pip uninstall -y transformers"
  fi
  die "mmpretrain does not import with these wheels (above)"
fi
say "installed in $(( $(date +%s) - start )) s; running the checks"
exec "$PY" "$REPO/tools/analysis_tools/gpu_check.py" "${ARGS[@]}"
