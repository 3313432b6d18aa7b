#!/usr/bin/env bash
# The GPU checks of issue 17, as one prepared script for a lent CUDA machine (about 8 minutes):
#   1. synchronised timing and the GPU/CPU per-iteration ratio on quadratic-benchopt, SOBA's
#      compiled fast path on CUDA, and SOBA against a jit-compiled JAX SOBA on the same GPU
#      (benchmarks/gpu_check.py);
#   2. the llm-tiny suite on CUDA (1 seed, 20 s budgets; every run must end with a status);
#   3. the same timing check on llm-safety-tiny, and the LLM step times and peak memory
#      (benchmarks/bench_llm.py).
# Each step has its own time limit and the later steps run even if an earlier one fails.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (default: $OUT or ./gpu-check)
# Environment: PYTHON (default .venv/bin/python, else python3), GPU_CHECK_WORKERS (default 11).
# The solver libraries torchopt and higher are left out of step 2 (optional extras that a bare
# CUDA image may not have); every other registered solver runs.
# On a bare CUDA image with torch, scikit-learn, pandas and transformers but without this
# package (the lent H200 of 2026-12-01), build the missing wheels here first:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#     -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pyrit==1.1.0 garak==0.17.1
#   pip wheel --no-deps --no-build-isolation -w .whl .
# and there: pip install --no-index --no-deps --target /tmp/site .whl/*.whl;
#   PYTHONPATH=$PWD:/tmp/site PYTHON=python3 bash benchmarks/gpu_check.sh $OUT
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu-check}}
mkdir -p "$OUT"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
BB=("$PY" -m bilevel_bench.cli)
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device here; nothing to check"
  exit 0
fi
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit} s)"
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$OUT/$name.txt"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || { echo "== $name: exit status $rc"; status=1; }
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, 'threads', torch.get_num_threads())"
  nproc
  "$PY" -c "import datasets, pyarrow, transformers; print('datasets', datasets.__version__, 'pyarrow', pyarrow.__version__, 'transformers', transformers.__version__)"
} 2>&1 | tee "$OUT/env.txt"

step timing 130 "$PY" benchmarks/gpu_check.py --problem quadratic-benchopt \
  --solvers soba,stocbio,aid-cg --iterations 300 --cpu-iterations 20 --compiled --jax

solvers=()
for s in $("${BB[@]}" list solvers | awk '{print $1}'); do
  case $s in torchopt-*|higher-*) ;; *) solvers+=(--solver "$s") ;; esac
done
step llm-tiny 200 "${BB[@]}" run --suite llm-tiny "${solvers[@]}" --device cuda --seeds 1 \
  --budget-seconds 20 --workers "${GPU_CHECK_WORKERS:-11}" --results "$OUT/llm-tiny"
"${BB[@]}" show "$OUT/llm-tiny" >"$OUT/llm-tiny-show.txt" 2>&1
tar czf "$OUT/llm-tiny-records.tgz" -C "$OUT" llm-tiny && rm -rf "${OUT:?}/llm-tiny"

step timing 70 "$PY" benchmarks/gpu_check.py --problem llm-safety-tiny \
  --solvers soba,direct-mixing --iterations 20 --cpu-iterations 3
step bench-llm 45 "$PY" benchmarks/bench_llm.py --tiers tiny --device cuda
exit $status
