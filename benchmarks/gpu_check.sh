#!/usr/bin/env bash
# The GPU checks of issue 17, as one prepared script for a lent CUDA machine:
#   1. the llm-tiny suite on CUDA (1 seed, 20 CPU-s budgets): every run ends with a status;
#   2. synchronised timing and the GPU/CPU per-iteration ratio on quadratic-benchopt
#      (benchmarks/gpu_check.py).
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (default: $OUT or ./gpu-check)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu-check}}
mkdir -p "$OUT"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
BB=("$PY" -m bilevel_bench.cli)
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device here; nothing to check"
  exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"${BB[@]}" run --suite llm-tiny --device cuda --seeds 1 --budget-seconds 20 --workers 1 \
  --results "$OUT/llm-tiny" 2>&1 | tail -40 | tee "$OUT/llm-tiny.txt"
"$PY" benchmarks/gpu_check.py --iterations 300 2>&1 | tee "$OUT/timing.txt"
