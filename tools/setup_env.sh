#!/usr/bin/env bash
# Prepares the Python environment swat_mm runs in, idempotently.
#
#   bash tools/setup_env.sh            # prepare (or check) the environment, print its python
#
# What it does, in order, skipping every step whose result is already there:
#   1. a virtual environment at $SWAT_MM_VENV (default ~/.cache/swat_mm/venv)
#      made with the first python3 on PATH, or the existing interpreter named by
#      $SWAT_MM_PYTHON (a user's own env: its working torch/torchvision/mmcv are
#      kept);
#   2. torch 2.15.0 + torchvision 0.29.2 (2.13.0 + 0.28.0 on Python 3.10;
#      $SWAT_MM_TORCH=2.13.0 picks that pair anywhere), unless a working
#      pair is there;
#   3. mmcv 2.1.0 with its compiled ops, built once from the PyPI sdist into
#      $SWAT_MM_CACHE/wheels/<torch>-<ops> (about 20 minutes on 2 cores) and
#      installed from that wheel afterwards;
#   4. mmengine, mmpretrain, mmdet, mmsegmentation, pytorch_wavelets and what they
#      import without declaring it, then swat_mm itself (editable).
# It stops with a message that names the problem at the first thing it cannot
# do, and leaves nothing behind that would make a later run skip a step: a
# failed build leaves no wheel, a failed pip step no stamp, a failed venv no venv.
# At the end it prints what each step did and how long it took (also written to
# $SWAT_MM_SETUP_REPORT when that is set: tools/run_demo.sh and run_tests.sh
# print it again after their own output).
set -euo pipefail

CACHE=${SWAT_MM_CACHE:-$HOME/.cache/swat_mm}
VENV=${SWAT_MM_VENV:-$CACHE/venv}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# torch/torchvision pairs this script installs, newest first; the first one
# whose wheels exist for the interpreter is the default (README: "Python and torch").
declare -A TORCHVISION_FOR=([2.15.0]=0.29.2 [2.13.0]=0.28.0)
declare -A TORCH_PYTHONS=([2.15.0]="3.11 3.12 3.13" [2.13.0]="3.10 3.11 3.12 3.13")
TORCH_ORDER=(2.15.0 2.13.0)
# Python versions measured from nothing (venv, torch, mmcv compile, test suite).
TESTED_PYTHONS="3.10 3.11 3.12 3.13"
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
  # pytest 9.2 ids tests in a way pytest-xdist 3.8 cannot extend, and its
  # --dist loadgroup then spreads a module's tests over the workers
  # (pytest-dev/pytest-xdist#1386; tests/test_run_tests.py)
  "pytest==9.1.1"
  # the suite runs on every core (tools/run_tests.sh: pytest -n)
  "pytest-xdist==3.8.0"
  "matplotlib"
  "onnx==1.23.2"
  # 1.32 computes LayerNormalization's variance stably; 1.23.2, the newest
  # with Python 3.10 wheels, does not (tests/test_onnx_export.py)
  "onnxruntime==1.32.0; python_version >= '3.11'"
  "onnxruntime==1.23.2; python_version < '3.11'"
  # for mmpretrain's tools/visualization/vis_cam.py, which passes use_cuda=
  # to the CAM classes: grad-cam 1.5 removed it (tests/test_vis_cam.py)
  "grad-cam==1.4.8"
  # mmdeploy's one other requirement its ONNX Runtime export imports
  "aenum==3.1.17"
  # torch.onnx.export(..., dynamo=True) (torch's default exporter)
  "onnxscript==0.7.2"
)
# Installed after REQS with --no-deps: mmdeploy 1.3.1 requires
# protobuf<=3.20.2, which onnx 1.23.2 (protobuf>=6.31.1) rules out, so pip
# cannot resolve it with its requirements; of those the ONNX Runtime export
# (tools/deployment/) needs only aenum, in REQS.
NODEPS_REQS=("mmdeploy==1.3.1")

say() { printf '[setup_env] %s\n' "$*" >&2; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

# What each step did and took, for the report at the end.
REPORT=()
T_START=$SECONDS
step_start() { T_STEP=$SECONDS; }
step_end() { REPORT+=("$(printf '%-28s %6ss  %s' "$1" $((SECONDS - T_STEP)) "$2")"); }
report() {
  {
    echo "[setup_env] what was done ($((SECONDS - T_START)) s in all):"
    printf '  %s\n' "${REPORT[@]}"
  } >&2
  if [[ -n "${SWAT_MM_SETUP_REPORT:-}" ]]; then
    { printf '%s\n' "${REPORT[@]}"; echo "setup total: $((SECONDS - T_START)) s"; } >"$SWAT_MM_SETUP_REPORT"
  fi
}

# An interrupted build leaves neither its monitor nor its half-built tree.
MONITOR= BUILD_TMP=
cleanup() {
  [[ -z "$MONITOR" ]] || kill "$MONITOR" 2>/dev/null || true
  [[ -z "$BUILD_TMP" ]] || rm -rf "$BUILD_TMP"
}
trap cleanup EXIT

mkdir -p "$CACHE"
# Concurrent runs (a test and a demo started together) must not build twice.
exec 9>"$CACHE/.setup.lock"
flock 9
# The lock is ours, so a build folder left here is from a run that was killed.
rm -rf "$CACHE"/mmcv-build.*

# 1. interpreter -------------------------------------------------------------
# Checked before anything is created, so a Python that cannot work leaves nothing.
python_gate() {  # $1: a python executable
  local v
  v=$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$1 does not run"
  case " $TESTED_PYTHONS " in
    *" $v "*) return 0 ;;
  esac
  case $v in
    2.*|3.[0-9]) die "Python $v ($1) cannot work: torch 2.13, the oldest torch this stack runs with, has wheels for Python 3.10-3.14 only. Use Python ${TESTED_PYTHONS// /, } (put it first on PATH, or name it with SWAT_MM_PYTHON)" ;;
    *) [[ -n "${SWAT_MM_UNTESTED_PYTHON:-}" ]] \
         || die "Python $v ($1) is untested here (tested: ${TESTED_PYTHONS// /, }): mmcv $MMCV_VERSION's ops and the OpenMMLab stack have not been built and tested with it. Use a tested Python, or set SWAT_MM_UNTESTED_PYTHON=1 to try anyway"
       say "Python $v is untested (SWAT_MM_UNTESTED_PYTHON is set): going on" ;;
  esac
}

step_start
if [[ -n "${SWAT_MM_PYTHON:-}" ]]; then
  PY=$SWAT_MM_PYTHON
  [[ -x "$PY" ]] || die "SWAT_MM_PYTHON=$PY is not an executable python"
  # absolute (links kept: a venv's python is one), as checks run from /
  [[ $PY == /* ]] || PY=$PWD/$PY
  python_gate "$PY"
  say "using the existing interpreter $PY"
  step_end "interpreter" "kept $PY"
else
  PY=$VENV/bin/python
  if [[ -x "$PY" ]] && ! "$PY" -m pip --version >/dev/null 2>&1; then
    say "the virtual environment $VENV has no working pip (an interrupted creation?): removing it"
    rm -rf "$VENV"
  fi
  if [[ ! -x "$PY" ]]; then
    BASE_PY=$(command -v python3 || true)
    [[ -n "$BASE_PY" ]] || die "python3 not found; install Python ${TESTED_PYTHONS// /, } with venv"
    python_gate "$BASE_PY"
    say "creating the virtual environment $VENV with $BASE_PY"
    if ! "$BASE_PY" -m venv "$VENV" || ! "$PY" -m pip --version >/dev/null 2>&1; then
      rm -rf "$VENV"
      die "$BASE_PY -m venv failed; install the venv module (Debian: python3-venv)"
    fi
    step_end "virtual environment" "created $VENV ($("$PY" -V 2>&1))"
  else
    python_gate "$PY"
    step_end "virtual environment" "kept $VENV ($("$PY" -V 2>&1))"
  fi
fi
read -r PYV PYTAG < <("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2], "cp%d%d" % sys.version_info[:2])')

# pip warns once per package about find-links/index folders this machine's
# pip config names but lacks; keep its real messages only.
pip_quiet() {
  "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
PIP=(pip_quiet "$PY" -m pip --disable-pip-version-check)
# Every install goes through this constraints file, given on the command line
# because --isolated (the torch step) ignores pip's config and environment:
# torch asks for setuptools>=77.0.3, and an unconstrained upgrade takes
# setuptools 81+, which no longer ships pkg_resources (mmcv's setup.py, mmengine
# and pytorch_wavelets import it).
CONSTRAINTS=$REPO/tools/pip-constraints.txt
[[ -f "$CONSTRAINTS" ]] || die "$CONSTRAINTS is missing; restore it from the repository"

# pkg_resources is imported at run time by mmengine and pytorch_wavelets and at
# build time by mmcv: setuptools 81+ no longer ships it.
if ! "$PY" -c "import pkg_resources" >/dev/null 2>&1; then
  say "installing setuptools<81 (pkg_resources), wheel, ninja"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" "setuptools<81" wheel ninja \
    || die "pip could not install setuptools<81 wheel ninja"
fi

# What steps 2-4 check, each a Python snippet: a working torch/torchvision
# pair, mmcv with its ops, the stack's imports (what its stamp vouches for).
TORCH_CHECK='import torch, torchvision
from torchvision.ops import nms
nms(torch.zeros(1, 4), torch.zeros(1), 0.5)'
MMCV_CHECK="import mmcv, torch
from mmcv.ops import nms, RoIAlign
assert mmcv.__version__ == '$MMCV_VERSION', mmcv.__version__
nms(torch.zeros(1, 4), torch.zeros(1), 0.5)"
STACK_CHECK="import mmdet, mmseg, mmpretrain, pytorch_wavelets, ftfy, regex, onnx, onnxruntime, pytorch_grad_cam, mmdeploy.apis, onnxscript"
STAMP=$("$PY" -c "import sys, hashlib; print(hashlib.sha1(' '.join(sys.argv[1:]).encode()).hexdigest())" "${REQS[@]}" "${NODEPS_REQS[@]}")
PREFIX=$("$PY" -c "import sys; print(sys.prefix)")
STAMP_FILE=$PREFIX/.swat_mm_requirements
# The editable install of this checkout: redone when setup.py (what it
# installs, swat_mm/.mim's links) or the checkout's place changes.
EDITABLE_STAMP=$( { echo "$REPO"; cat "$REPO/setup.py"; } | sha1sum | cut -d' ' -f1)
EDITABLE_STAMP_FILE=$PREFIX/.swat_mm_editable

finish() {
  say "ready: $PY"
  report
  echo "$PY"
  exit 0
}

# The usual run (again, or the test command on a built environment) finds
# everything in place: one interpreter checks what steps 2-4 check one by
# one, in a third of the time. Run from / so that a checkout in the working
# directory cannot stand in for the installed swat_mm.
step_start
if [[ "$(cat "$STAMP_FILE" 2>/dev/null || true)" == "$STAMP" \
      && "$(cat "$EDITABLE_STAMP_FILE" 2>/dev/null || true)" == "$EDITABLE_STAMP" ]] \
    && TORCH_NOW=$(cd / && "$PY" - "$REPO" <<EOF 2>/dev/null
import os, sys
import pkg_resources
$TORCH_CHECK
$MMCV_CHECK
$STACK_CHECK
import swat_mm
pkg = os.path.join(sys.argv[1], 'swat_mm')
assert os.path.samefile(os.path.dirname(swat_mm.__file__), pkg)
mim = os.path.join(pkg, '.mim')
assert os.listdir(mim) and all(os.path.exists(os.path.join(mim, name))
                               for name in os.listdir(mim))
print(torch.__version__)
EOF
    ); then
  say "torch $TORCH_NOW, mmcv $MMCV_VERSION with compiled ops, the OpenMMLab stack and swat_mm (editable, $REPO): kept"
  step_end "torch + torchvision" "kept torch $TORCH_NOW (one check for these four steps)"
  step_start
  step_end "mmcv with ops" "kept mmcv $MMCV_VERSION"
  step_end "OpenMMLab stack" "kept"
  step_end "swat_mm (editable)" "kept $REPO"
  finish
fi

# 2. torch + torchvision --------------------------------------------------------
torch_ok() { "$PY" -c "$TORCH_CHECK" >/dev/null 2>&1; }
step_start
if torch_ok; then
  TORCH_NOW=$("$PY" -c 'import torch; print(torch.__version__)')
  say "torch $TORCH_NOW with a working torchvision: kept"
  step_end "torch + torchvision" "kept torch $TORCH_NOW"
else
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    say "torch $("$PY" -c 'import torch; print(torch.__version__)') is there but torchvision is missing or cannot run against it"
    [[ -z "${SWAT_MM_PYTHON:-}" ]] || die "fix torch/torchvision in $PY yourself (a matching pair such as torch==2.13.0 torchvision==0.28.0), or unset SWAT_MM_PYTHON to let this script make its own environment"
  fi
  # Candidates, newest first: the user's choice alone, or every pair with wheels
  # for this Python. A pair that pip's own configuration refuses (a managed
  # machine's constraints file capping torch) gives way to the next one, said
  # and reported; any other pip failure stops here.
  if [[ -n "${SWAT_MM_TORCH:-}" ]]; then
    CANDIDATES=("$SWAT_MM_TORCH")
    [[ -n "${TORCHVISION_FOR[$SWAT_MM_TORCH]:-}" ]] \
      || die "SWAT_MM_TORCH=$SWAT_MM_TORCH is not a pair this script knows; use one of: ${TORCH_ORDER[*]}"
    case " ${TORCH_PYTHONS[$SWAT_MM_TORCH]} " in
      *" $PYV "*) ;;
      *) die "torch $SWAT_MM_TORCH is not installed here with Python $PYV (it goes with Python ${TORCH_PYTHONS[$SWAT_MM_TORCH]// /, }); unset SWAT_MM_TORCH or pick another pair" ;;
    esac
  else
    CANDIDATES=()
    for t in "${TORCH_ORDER[@]}"; do
      case " ${TORCH_PYTHONS[$t]} " in *" $PYV "*) CANDIDATES+=("$t") ;; esac
    done
  fi
  # --isolated: a find-links folder holding a CPU-only torch wheel must not be
  # picked, since no CPU torchvision build matches it.
  cert=()
  [[ -n "${PIP_CERT:-}" ]] && cert=(--cert "$PIP_CERT")
  TORCH= REFUSED=
  for i in "${!CANDIDATES[@]}"; do
    t=${CANDIDATES[$i]}
    TORCH_SPEC="torch==$t"
    TORCHVISION_SPEC="torchvision==${TORCHVISION_FOR[$t]}"
    say "installing $TORCH_SPEC $TORCHVISION_SPEC (several GB on the first run)"
    if "${PIP[@]}" install --isolated "${cert[@]}" -q -c "$CONSTRAINTS" "$TORCH_SPEC" "$TORCHVISION_SPEC"; then
      TORCH=$t
      break
    fi
    # -q hides the cause; a dry run of the pin alone names a configured cap
    # ("The user requested (constraint) torch<=...") without downloading.
    cap=$("${PIP[@]}" install --isolated "${cert[@]}" --dry-run --no-deps -c "$CONSTRAINTS" "$TORCH_SPEC" 2>&1 \
            | grep -o "(constraint) torch[^ ]*" | head -1 | sed 's/(constraint) //' || true)
    [[ -n "$cap" ]] || die "pip could not install $TORCH_SPEC $TORCHVISION_SPEC (above)"
    REFUSED="$REFUSED torch $t refused by pip's configuration (constraint $cap);"
    if (( i + 1 < ${#CANDIDATES[@]} )); then
      say "pip's configuration on this machine refuses $TORCH_SPEC (constraint $cap); trying the next pair, torch ${CANDIDATES[$((i + 1))]}"
      continue
    fi
    die "pip's configuration on this machine refuses $TORCH_SPEC (constraint $cap) and no other pair is left: lift the cap (\`$PY -m pip config debug\` shows which file sets it) or pick a pair it allows with SWAT_MM_TORCH (${TORCH_ORDER[*]})"
  done
  torch_ok || die "torch/torchvision installed but torchvision.ops.nms does not run"
  step_end "torch + torchvision" "${REFUSED:+$REFUSED }installed $TORCH_SPEC $TORCHVISION_SPEC (download + install)"
fi
# torch's own requirement must not have moved setuptools past pkg_resources.
"$PY" -c "import pkg_resources" >/dev/null 2>&1 \
  || die "pkg_resources is not importable in $PY after the torch step (setuptools >= 81 dropped it); fix: $PY -m pip install -c $CONSTRAINTS 'setuptools<81'"

# 3. mmcv with compiled ops ------------------------------------------------------
mmcv_ok() { "$PY" -c "$MMCV_CHECK" >/dev/null 2>&1; }

# Builds the mmcv wheel into $WHEEL_DIR; on any failure nothing lands there.
build_mmcv() {
  local tmp src total log_keep
  tmp=$(mktemp -d "$CACHE/mmcv-build.XXXXXX")
  BUILD_TMP=$tmp
  log_keep=$CACHE/mmcv-build-failed.log
  # Fetched from the index itself, not with `pip download`, which runs the
  # sdist's setup.py to read its metadata and so fails on Python 3.13 before
  # the patch below can be applied.
  "$PY" - "$tmp" "mmcv" "$MMCV_VERSION" <<'PYEOF' >"$tmp/build.log" 2>&1 \
    || { mv "$tmp/build.log" "$log_keep"; rm -rf "$tmp"; die "could not download the mmcv $MMCV_VERSION sdist; the log is $log_keep"; }
import hashlib, os, re, ssl, subprocess, sys, urllib.parse, urllib.request
dest, name, version = sys.argv[1:4]
index = os.environ.get('PIP_INDEX_URL') or subprocess.run(
    [sys.executable, '-m', 'pip', 'config', 'get', 'global.index-url'],
    capture_output=True, text=True).stdout.strip() or 'https://pypi.org/simple'
ctx = ssl.create_default_context(cafile=os.environ.get('PIP_CERT') or None)
page_url = index.rstrip('/') + '/' + name + '/'
page = urllib.request.urlopen(page_url, context=ctx, timeout=180).read().decode()
fname = '%s-%s.tar.gz' % (name, version)
m = re.search(r'href="([^"#]*/%s)(?:#sha256=([0-9a-f]{64}))?"' % re.escape(fname), page)
if m is None:
    sys.exit('%s is not listed at %s' % (fname, page_url))
url = urllib.parse.urljoin(page_url, m.group(1).replace('&amp;', '&'))
print('downloading', url)
data = urllib.request.urlopen(url, context=ctx, timeout=600).read()
if m.group(2) and hashlib.sha256(data).hexdigest() != m.group(2):
    sys.exit('the sha256 of %s does not match the index' % url)
with open(os.path.join(dest, fname), 'wb') as f:
    f.write(data)
PYEOF
  tar xzf "$tmp"/mmcv-"$MMCV_VERSION".tar.gz -C "$tmp"
  src=$tmp/mmcv-$MMCV_VERSION
  # Python 3.13 (PEP 667): exec() in a function no longer writes into what a
  # later locals() returns, so setup.py's get_version() raises KeyError.
  sed -i -e "s/exec(compile(f.read(), version_file, 'exec'))/exec(compile(f.read(), version_file, 'exec'), globals())/" \
    -e "s/return locals()\['__version__'\]/return globals()['__version__']/" "$src/setup.py"
  grep -q "return globals()\['__version__'\]" "$src/setup.py" || die "could not patch mmcv's setup.py (get_version)"
  if (( TORCH_MINOR >= 214 )); then
    # torch >= 2.14's headers need C++20; mmcv's setup.py asks for C++17.
    sed -i "s/'-std=c++17'/'-std=c++20'/g" "$src/setup.py"
    grep -q "'-std=c++20'" "$src/setup.py" || die "could not patch mmcv's setup.py for C++20"
    say "patched mmcv's setup.py: -std=c++17 -> -std=c++20 (torch $TORCH_TAG's headers need C++20)"
  fi
  total=$(( $(ls "$src"/mmcv/ops/csrc/pytorch/*.cpp "$src"/mmcv/ops/csrc/pytorch/cpu/*.cpp | wc -l) ))
  [[ $OPS_TAG == cuda ]] && total=$(( total + $(ls "$src"/mmcv/ops/csrc/pytorch/cuda/*.cu | wc -l) ))
  say "building mmcv $MMCV_VERSION with $OPS_TAG ops against torch $TORCH_TAG for $PYTAG: about 20 minutes on 2 cores, once; a progress line every minute"
  # A line a minute, so that a 20-minute compile does not look like a hang.
  (
    t0=$SECONDS
    while sleep 60; do
      say "  compiling mmcv: $(find "$src" -name '*.o' 2>/dev/null | wc -l) of about $total objects, $(( (SECONDS - t0) / 60 )) min"
    done
  ) &
  MONITOR=$!
  # No build isolation: the build must see the installed torch, or mmcv
  # silently skips its ops.
  if ! MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$tmp/dist" "$src" >>"$tmp/build.log" 2>&1; then
    kill "$MONITOR" 2>/dev/null || true
    tail -n 30 "$tmp/build.log" >&2
    mv "$tmp/build.log" "$log_keep"
    rm -rf "$tmp"
    die "building mmcv failed (above); the full log is $log_keep"
  fi
  kill "$MONITOR" 2>/dev/null || true
  mkdir -p "$WHEEL_DIR"
  local built
  built=$(ls "$tmp"/dist/mmcv-*.whl)
  # Renamed into place only once complete: a run killed here leaves no wheel.
  cp "$built" "$WHEEL_DIR/.partial-$(basename "$built")"
  mv "$WHEEL_DIR/.partial-$(basename "$built")" "$WHEEL_DIR/$(basename "$built")"
  rm -rf "$tmp" "$log_keep"
}

step_start
if mmcv_ok; then
  say "mmcv $MMCV_VERSION with compiled ops: kept"
  step_end "mmcv with ops" "kept mmcv $MMCV_VERSION"
else
  read -r TORCH_TAG OPS_TAG TORCH_MINOR < <("$PY" -c "
import torch
print(torch.__version__.replace('+', '_'), 'cuda' if torch.cuda.is_available() else 'cpu',
      '%d%02d' % tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2]))")
  WHEEL_DIR=$CACHE/wheels/torch${TORCH_TAG}-${OPS_TAG}
  wheel=$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-"$PYTAG"-*.whl 2>/dev/null | head -n 1 || true)
  if [[ -z "$wheel" ]]; then
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
      || die "torch's C++ headers (torch/extension.h) are missing from $PY's torch, so mmcv's ops cannot compile; fix: reinstall a full torch wheel (torch==${TORCH_TAG%%_*}, not a stripped build)"
    build_mmcv
    wheel=$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-"$PYTAG"-*.whl | head -n 1)
    what="compiled from the sdist into $wheel"
  else
    say "installing mmcv from the cached wheel $wheel"
    what="installed from the cached wheel $wheel"
  fi
  "${PIP[@]}" install -q -c "$CONSTRAINTS" --no-deps --force-reinstall "$wheel" \
    || die "pip could not install $wheel"
  # then what mmcv itself needs (mmengine, addict, yapf, opencv...)
  "${PIP[@]}" install -q -c "$CONSTRAINTS" "$wheel" "${REQS[0]}" || die "pip could not install mmcv's dependencies"
  if ! mmcv_ok; then
    "$PY" -c "from mmcv.ops import nms" 2>&1 | tail -n 3 >&2 || true
    die "mmcv installed from $wheel but its ops do not run (above); delete $WHEEL_DIR and run again"
  fi
  step_end "mmcv with ops" "$what"
fi

# 4. the OpenMMLab stack and swat_mm -------------------------------------------
step_start
if [[ "$(cat "$STAMP_FILE" 2>/dev/null || true)" != "$STAMP" ]] \
    || ! "$PY" -c "$STACK_CHECK" >/dev/null 2>&1; then
  rm -f "$STAMP_FILE"
  say "installing ${REQS[*]}"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" "${REQS[@]}" || die "pip could not install the OpenMMLab stack"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" --no-deps "${NODEPS_REQS[@]}" || die "pip could not install ${NODEPS_REQS[*]}"
  mmcv_ok || die "installing the OpenMMLab stack replaced mmcv; report this"
  echo "$STAMP" >"$STAMP_FILE.tmp" && mv "$STAMP_FILE.tmp" "$STAMP_FILE"
  step_end "OpenMMLab stack" "installed mmengine, mmpretrain, mmdet, mmseg, pytorch_wavelets, ..."
else
  say "OpenMMLab stack: kept"
  step_end "OpenMMLab stack" "kept"
fi
step_start
rm -f "$EDITABLE_STAMP_FILE"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$REPO" >/dev/null \
  || die "pip install -e $REPO failed"
"$PY" -c "import swat_mm, mmdet, mmseg, mmpretrain" || die "the environment is incomplete: import of swat_mm/mmdet/mmseg/mmpretrain failed"
echo "$EDITABLE_STAMP" >"$EDITABLE_STAMP_FILE.tmp" && mv "$EDITABLE_STAMP_FILE.tmp" "$EDITABLE_STAMP_FILE"
step_end "swat_mm (editable)" "installed $REPO"
finish
