#!/usr/bin/env bash
# Prepare the environment (tools/setup_env.sh, idempotent) and run the test
# suite. Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k stvit`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=$(bash tools/setup_env.sh | tail -n 1)
exec "$PY" -m pytest tests -q "$@"
