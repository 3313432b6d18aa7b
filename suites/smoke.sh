#!/usr/bin/env bash
# asv smoke test: every benchmark in suites/ runs once (--quick) on the current Python
# environment, so that the asv suites never rot. Exits non-zero if any benchmark fails (asv run
# returns 2 then); skipped combinations (a solver that cannot handle a problem) are not failures.
# --quick results are not saved. Usage: bash suites/smoke.sh [VENV_DIR] [extra asv run arguments]
# The Python is VENV_DIR/bin/python when given, else $PYTHON (default python); it must have
# bilevel_bench and asv installed. BILEVEL_BENCH_ASV_SECONDS (solve budget, default 0.3 here),
# BILEVEL_BENCH_ASV_SUITE (default toys), BILEVEL_BENCH_ASV_SOLVERS (default all registered).
set -euo pipefail
# relative plugin specs in BILEVEL_BENCH_ASV_SOLVERS are read from the folder this was run from
export BILEVEL_BENCH_ASV_CWD=${BILEVEL_BENCH_ASV_CWD:-$PWD}
PYTHON=${PYTHON:-python}
if [ $# -gt 0 ] && [ -x "$1/bin/python" ]; then
  PYTHON="$(cd "$1" && pwd)/bin/python"
  shift
fi
cd "$(dirname "$0")/.."
export BILEVEL_BENCH_ASV_SECONDS=${BILEVEL_BENCH_ASV_SECONDS:-0.3}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

"$PYTHON" -m asv machine --yes --machine ci >/dev/null
"$PYTHON" -m asv run --quick --machine ci --environment existing:same --show-stderr "$@"
