#!/usr/bin/env bash
# The test command (README; .ci/run calls exactly this): setup, lint, then the test suite.
#
#   bash scripts/test.sh [extra pytest args...]
#
# Writes test-artifacts/junit.xml. Exits non-zero on any failure, including
# "pytest collected no tests" (pytest exit code 5).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
export PATH="$ROOT/.venv/bin:$PATH"

echo "[test] ruff check ."
ruff check .

mkdir -p test-artifacts
echo "[test] pytest tests/"
start=$SECONDS
set +e
python -m pytest -q -p no:cacheprovider --junitxml=test-artifacts/junit.xml tests/ "$@"
status=$?
set -e
echo "[test] pytest finished in $((SECONDS - start)) s with exit code $status"
if [ "$status" -eq 5 ]; then
    echo "[test] FAILED: pytest collected no tests (exit 5)" >&2
    exit 1
fi
exit "$status"
