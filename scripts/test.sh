#!/usr/bin/env bash
# The test command (README; .ci/run calls exactly this): setup, lint, then the test suite.
#
#   bash scripts/test.sh [extra pytest args...]
#
# Runs the tests in CONVGRADE_TEST_WORKERS pytest-xdist workers (default 2; 0 runs them in
# this process), each test module whole in one worker (--dist loadfile: module fixtures such
# as the PostgreSQL server start once). Most tests wait on servers, browsers and nbgrader's
# kernels, so two workers halve the wall time on two cores. Writes test-artifacts/junit.xml. Exits non-zero on any failure, including
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
workers="${CONVGRADE_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != 0 ]; then
    parallel=(-n "$workers" --dist loadfile)
fi
python -m pytest -q -p no:cacheprovider "${parallel[@]}" --junitxml=test-artifacts/junit.xml \
    tests/ "$@"
status=$?
set -e
echo "[test] pytest finished in $((SECONDS - start)) s with exit code $status"
if [ "$status" -eq 5 ]; then
    echo "[test] FAILED: pytest collected no tests (exit 5)" >&2
    exit 1
fi
exit "$status"
