#!/usr/bin/env bash
# Prepare the environment (tools/setup_env.sh, idempotent) and run the test
# suite. Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k stvit`.
# At the end it prints what the setup did and how long each part took.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
report=$(mktemp)
trap 'rm -f "$report"' EXIT
PY=$(SWAT_MM_SETUP_REPORT=$report bash tools/setup_env.sh | tail -n 1)
t0=$SECONDS
rc=0
"$PY" -m pytest tests -q -n "${SWAT_MM_TEST_WORKERS:-auto}" --dist loadgroup --durations=25 "$@" || rc=$?
{
  echo "[run_tests] done, pytest exit status $rc; what each step took:"
  sed 's/^/  /' "$report"
  printf '  %-28s %6ss\n' "test suite" $((SECONDS - t0))
} >&2
exit $rc
