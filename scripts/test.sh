#!/usr/bin/env bash
# Set up what is missing (scripts/setup.sh, idempotent), then run the tests.
# Usage: bash scripts/test.sh [pytest arguments]   e.g. -m "" to include the slow tests.
# VENV (default .venv). Tests that need an optional dataset that is absent skip with one line
# naming the file and where to put it (BILEVEL_BENCH_REQUIRE_DATA=1 makes that a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
bash scripts/setup.sh "$VENV"
echo "tests: $VENV/bin/python -m pytest -q${*:+ $(printf '%q ' "$@")}"
exec "$VENV/bin/python" -m pytest -q "$@"
