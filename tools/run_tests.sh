#!/usr/bin/env bash
# Prepare the environment (tools/setup_env.sh, idempotent) and run the test
# suite: without arguments on every core (pytest-xdist), with arguments in
# one process with the arguments passed to pytest, e.g.
# `bash tools/run_tests.sh -k stvit`.
# At the end it prints what the setup did and how long each part took.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
report=$(mktemp)
setup_log=$(mktemp)
setup_pid=
kill_tree() {  # a process and everything it started (setup_env.sh, pip)
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
cleanup() {
  if [[ -n $setup_pid ]]; then kill_tree "$setup_pid"; fi
  rm -f "$report" "$setup_log"
}
trap cleanup EXIT
# Ctrl-C stops everything (the setup's tests run in the background, where
# SIGINT does not reach them); bash acts on it once pytest has returned
trap 'exit 130' INT
trap 'exit 143' TERM
PY=$(SWAT_MM_SETUP_REPORT=$report bash tools/setup_env.sh | tail -n 1)
t0=$SECONDS
rc=0
if (( $# == 0 )); then
  # The first-run setup's tests share one new venv and each starts from the
  # state the one before left, so they run in one process, in file order;
  # they start first and run beside the rest, which runs on every core.
  "$PY" -m pytest tests/test_setup_env.py -q -p no:xdist --durations=8 \
    >"$setup_log" 2>&1 &
  setup_pid=$!
  "$PY" -m pytest tests -q -n "${SWAT_MM_TEST_WORKERS:-auto}" --dist loadgroup \
    --ignore tests/test_setup_env.py --durations=25 || rc=$?
  setup_rc=0
  wait "$setup_pid" || setup_rc=$?
  setup_pid=
  echo "[run_tests] tests/test_setup_env.py, run beside the rest:"
  cat "$setup_log"
  (( rc )) || rc=$setup_rc
else
  "$PY" -m pytest tests -q "$@" || rc=$?
fi
{
  echo "[run_tests] done, pytest exit status $rc; what each step took:"
  sed 's/^/  /' "$report"
  printf '  %-28s %6ss\n' "test suite" $((SECONDS - t0))
} >&2
exit $rc
