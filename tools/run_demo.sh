#!/usr/bin/env bash
# The main demo in one command: prepare the environment (once; compiling mmcv
# takes about 20 minutes the first time), then train STViT-S + UperNet on the
# toy ADE20K and draw its predictions. At the end it prints what the setup did
# and how long each part took.
#
#   bash tools/run_demo.sh                      # work_dirs/toy_demo, ~4 min on 2 cores
#   bash tools/run_demo.sh --smoke              # ~1 min
#   bash tools/run_demo.sh --work-dir work_dirs/x --iters 400 --data-root data/toy
#
# Arguments go to tools/toy_demo.py (see --help there).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
# setup_env.sh logs to stderr and prints the interpreter on its last line.
PY=$(SWAT_MM_SETUP_REPORT=$report bash tools/setup_env.sh | tail -n 1)
[[ -x "$PY" ]] || { echo "run_demo: setup_env.sh gave no python ($PY)" >&2; exit 1; }
# Passive OpenMP waiting: busy-waiting threads slow every step several times
# over when the cores are shared (also set by toy_demo.py itself).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
t0=$SECONDS
rc=0
"$PY" tools/toy_demo.py "$@" || rc=$?
{
  echo "[run_demo] done, demo exit status $rc; what each step took:"
  sed 's/^/  /' "$report"
  printf '  %-28s %6ss\n' "demo (train + evaluate)" $((SECONDS - t0))
} >&2
exit $rc
