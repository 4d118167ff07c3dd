#!/usr/bin/env bash
# Prepares the Python environment swat_mm runs in, idempotently.
#
#   bash tools/setup_env.sh            # prepare (or check) the environment, print its python
#
# What it does, in order, skipping every step whose result is already there:
#   1. a virtual environment at $SWAT_MM_VENV (default ~/.cache/swat_mm/venv),
#      or the existing interpreter named by $SWAT_MM_PYTHON (a user's own env:
#      its working torch/torchvision/mmcv are kept);
#   2. torch 2.13.0 + torchvision 0.28.0, unless a working pair is there;
#   3. mmcv 2.1.0 with its compiled ops, built once from the PyPI sdist into
#      $SWAT_MM_CACHE/wheels/<torch>-<ops> (about 20 minutes on 2 cores) and
#      installed from that wheel afterwards;
#   4. mmengine, mmpretrain, mmdet, mmsegmentation, pytorch_wavelets and what they
#      import without declaring it, then swat_mm itself (editable).
# It stops with a message that names the problem at the first thing it cannot do.
set -euo pipefail

CACHE=${SWAT_MM_CACHE:-$HOME/.cache/swat_mm}
VENV=${SWAT_MM_VENV:-$CACHE/venv}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

TORCH_SPEC="torch==2.13.0"
TORCHVISION_SPEC="torchvision==0.28.0"
MMCV_VERSION="2.1.0"
# Everything below torch/mmcv, pinned; the stamp makes a second run skip pip.
REQS=(
  "mmengine==0.10.7"
  "mmpretrain==1.2.0"
  "mmdet==3.3.0"
  "mmsegmentation==1.2.2"
  "pytorch_wavelets==1.3.0"
  "PyWavelets"
  "ftfy"
  "regex"
  "setuptools<81"
  "pytest"
  "matplotlib"
)

say() { printf '[setup_env] %s\n' "$*" >&2; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE"
# Concurrent runs (a test and a demo started together) must not build twice.
exec 9>"$CACHE/.setup.lock"
flock 9

# 1. interpreter -------------------------------------------------------------
if [[ -n "${SWAT_MM_PYTHON:-}" ]]; then
  PY=$SWAT_MM_PYTHON
  [[ -x "$PY" ]] || die "SWAT_MM_PYTHON=$PY is not an executable python"
  say "using the existing interpreter $PY"
else
  PY=$VENV/bin/python
  if [[ ! -x "$PY" ]]; then
    BASE_PY=$(command -v python3 || true)
    [[ -n "$BASE_PY" ]] || die "python3 not found; install Python >= 3.8 with venv"
    say "creating the virtual environment $VENV"
    "$BASE_PY" -m venv "$VENV" || die "python3 -m venv failed; install the venv module (Debian: python3-venv)"
  fi
fi
"$PY" - <<'EOF' || die "Python >= 3.8 and < 3.13 is needed (mmcv 2.1.0 / torch 2.13 wheels)"
import sys
sys.exit(0 if (3, 8) <= sys.version_info[:2] < (3, 13) else 1)
EOF
PIP=(pip_quiet "$PY" -m pip --disable-pip-version-check)
# Every install goes through this constraints file, given on the command line
# because --isolated (the torch step) ignores pip's config and environment:
# torch 2.13 asks for setuptools>=77.0.3, and an unconstrained upgrade takes
# setuptools 81+, which no longer ships pkg_resources (mmcv's setup.py, mmengine
# and pytorch_wavelets import it).
CONSTRAINTS=$REPO/tools/pip-constraints.txt
[[ -f "$CONSTRAINTS" ]] || die "$CONSTRAINTS is missing; restore it from the repository"
# pip warns once per package about find-links/index folders this machine's
# pip config names but lacks; keep its real messages only.
pip_quiet() {
  "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

# pkg_resources is imported at run time by mmengine and pytorch_wavelets and at
# build time by mmcv: setuptools 81+ no longer ships it.
if ! "$PY" -c "import pkg_resources" >/dev/null 2>&1; then
  say "installing setuptools<81 (pkg_resources), wheel, ninja"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" "setuptools<81" wheel ninja
fi

# 2. torch + torchvision --------------------------------------------------------
torch_ok() {
  "$PY" - <<'EOF' >/dev/null 2>&1
import torch, torchvision
from torchvision.ops import nms
nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
EOF
}
if torch_ok; then
  say "torch $("$PY" -c 'import torch; print(torch.__version__)') with a working torchvision: kept"
else
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    say "torch $("$PY" -c 'import torch; print(torch.__version__)') is there but torchvision is missing or cannot run against it"
    [[ -z "${SWAT_MM_PYTHON:-}" ]] || die "fix torch/torchvision in $PY yourself (a matching pair such as $TORCH_SPEC $TORCHVISION_SPEC), or unset SWAT_MM_PYTHON to let this script make its own environment"
  fi
  # --isolated: a find-links folder holding a CPU-only torch wheel must not be
  # picked, since no CPU torchvision build matches it.
  cert=()
  [[ -n "${PIP_CERT:-}" ]] && cert=(--cert "$PIP_CERT")
  say "installing $TORCH_SPEC $TORCHVISION_SPEC (several GB on the first run)"
  "${PIP[@]}" install --isolated "${cert[@]}" -q -c "$CONSTRAINTS" "$TORCH_SPEC" "$TORCHVISION_SPEC" \
    || die "pip could not install $TORCH_SPEC $TORCHVISION_SPEC"
  torch_ok || die "torch/torchvision installed but torchvision.ops.nms does not run"
fi

# 3. mmcv with compiled ops ------------------------------------------------------
mmcv_ok() {
  "$PY" - <<EOF >/dev/null 2>&1
import mmcv, torch
from mmcv.ops import nms, RoIAlign
assert mmcv.__version__ == "$MMCV_VERSION", mmcv.__version__
nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
EOF
}
if mmcv_ok; then
  say "mmcv $MMCV_VERSION with compiled ops: kept"
else
  read -r TORCH_TAG OPS_TAG TORCH_MINOR < <("$PY" -c "
import torch
print(torch.__version__.replace('+', '_'), 'cuda' if torch.cuda.is_available() else 'cpu',
      '%d%02d' % tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2]))")
  WHEEL_DIR=$CACHE/wheels/torch${TORCH_TAG}-${OPS_TAG}
  wheel=$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  if [[ -z "$wheel" ]]; then
    (( TORCH_MINOR < 214 )) || die "mmcv $MMCV_VERSION does not build against torch >= 2.14 (its headers need C++20); use $TORCH_SPEC"
    command -v gcc >/dev/null && command -v g++ >/dev/null \
      || die "gcc/g++ not found: mmcv's ops are compiled from source (Debian: apt-get install build-essential)"
    "$PY" -c "import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
      || die "Python.h not found: install the Python development headers (Debian: python3-dev)"
    # What mmcv's setup.py needs, checked here rather than 20 minutes in.
    "$PY" -c "import pkg_resources" >/dev/null 2>&1 \
      || die "pkg_resources is not importable in $PY (setuptools >= 81 dropped it), so mmcv's setup.py cannot run; fix: $PY -m pip install -c $CONSTRAINTS 'setuptools<81'"
    "$PY" -c "
import os, sys, torch.utils.cpp_extension as e
sys.exit(not all(os.path.exists(os.path.join(d, 'torch', 'extension.h')) for d in e.include_paths()[:1]))" >/dev/null 2>&1 \
      || die "torch's C++ headers (torch/extension.h) are missing from $PY's torch, so mmcv's ops cannot compile; fix: reinstall a full torch wheel ($TORCH_SPEC)"
    say "building mmcv $MMCV_VERSION with $OPS_TAG ops against torch $TORCH_TAG (about 20 minutes on 2 cores, once)"
    tmp=$(mktemp -d "$CACHE/mmcv-build.XXXXXX")
    # No build isolation: the build must see the installed torch, or mmcv
    # silently skips its ops.
    if ! MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$tmp" "mmcv==$MMCV_VERSION" >"$tmp/build.log" 2>&1; then
      tail -n 30 "$tmp/build.log" >&2
      die "building mmcv failed; the full log is $tmp/build.log"
    fi
    mkdir -p "$WHEEL_DIR"
    mv "$tmp"/mmcv-*.whl "$WHEEL_DIR"/ && rm -rf "$tmp"
    wheel=$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
  else
    say "installing mmcv from the cached wheel $wheel"
  fi
  "${PIP[@]}" install -q -c "$CONSTRAINTS" --no-deps --force-reinstall "$wheel"
  # then what mmcv itself needs (mmengine, addict, yapf, opencv...)
  "${PIP[@]}" install -q -c "$CONSTRAINTS" "$wheel" "${REQS[0]}" || die "pip could not install mmcv's dependencies"
  if ! mmcv_ok; then
    "$PY" -c "from mmcv.ops import nms" 2>&1 | tail -n 3 >&2 || true
    die "mmcv installed from $wheel but its ops do not run (above); delete $WHEEL_DIR and run again"
  fi
fi

# 4. the OpenMMLab stack and swat_mm -------------------------------------------
STAMP=$("$PY" -c "import sys, hashlib; print(hashlib.sha1(' '.join(sys.argv[1:]).encode()).hexdigest())" "${REQS[@]}")
STAMP_FILE=$("$PY" -c "import sys; print(sys.prefix)")/.swat_mm_requirements
if [[ "$(cat "$STAMP_FILE" 2>/dev/null || true)" != "$STAMP" ]] \
    || ! "$PY" -c "import mmdet, mmseg, mmpretrain, pytorch_wavelets, ftfy, regex" >/dev/null 2>&1; then
  say "installing ${REQS[*]}"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" "${REQS[@]}" || die "pip could not install the OpenMMLab stack"
  mmcv_ok || die "installing the OpenMMLab stack replaced mmcv; report this"
  echo "$STAMP" >"$STAMP_FILE"
else
  say "OpenMMLab stack: kept"
fi
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$REPO" >/dev/null \
  || die "pip install -e $REPO failed"
"$PY" -c "import swat_mm, mmdet, mmseg, mmpretrain" || die "the environment is incomplete: import of swat_mm/mmdet/mmseg/mmpretrain failed"
say "ready: $PY"
echo "$PY"
