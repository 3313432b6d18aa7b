#!/usr/bin/env bash
# Set up everything bilevel_bench needs on a fresh Debian machine, into a virtual environment.
# Usage: bash scripts/setup.sh [VENV_DIR]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}

# System packages (root on Debian; skipped elsewhere). Keep this list in one place.
APT_PACKAGES=()
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
$PIP install -q -e ".[dev]"
echo "bilevel_bench is installed in $VENV (activate with: source $VENV/bin/activate)"
