#!/usr/bin/env bash
# Prepare the environment (tools/setup_env.sh, idempotent) and run the test
# suite: without arguments on every core (pytest-xdist), with arguments in
# one process with the arguments passed to pytest, e.g.
# `bash tools/run_tests.sh -k stvit`.
# At the end it prints what the setup did and how long each part took.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
report=$(mktemp)
trap 'rm -f "$report"' EXIT
PY=$(SWAT_MM_SETUP_REPORT=$report bash tools/setup_env.sh | tail -n 1)
t0=$SECONDS
rc=0
if (( $# == 0 )); then
  # Everything but the first-run setup on every core; then the setup's
  # tests in file order in one process: they share one new venv and each
  # starts from the state the one before left.
  "$PY" -m pytest tests -q -n "${SWAT_MM_TEST_WORKERS:-auto}" --dist loadgroup \
    --ignore tests/test_setup_env.py --durations=25 || rc=$?
  "$PY" -m pytest tests/test_setup_env.py -q -p no:xdist --durations=8 || rc=$(( rc ? rc : $? ))
else
  "$PY" -m pytest tests -q "$@" || rc=$?
fi
{
  echo "[run_tests] done, pytest exit status $rc; what each step took:"
  sed 's/^/  /' "$report"
  printf '  %-28s %6ss\n' "test suite" $((SECONDS - t0))
} >&2
exit $rc
