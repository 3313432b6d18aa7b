#!/usr/bin/env bash
# The official result set of the leaderboard, reproducibly: every reference solver on the `core`
# and `papers` suites, under the `default` and `reference` rulesets (plus `tuned` when
# OFFICIAL_TUNED=1, with OFFICIAL_TRIALS trials x OFFICIAL_TUNING_SEEDS seeds per instance),
# OFFICIAL_SEEDS seeds (>= 3), the instances' own work budgets (the default ruleset at
# OFFICIAL_BUDGET_SCALE, 0.1 of them, the reference ruleset at OFFICIAL_REFERENCE_BUDGET_SCALE,
# 0.4, as scripts/main-job.sh: the main job on any machine makes
# the same oracle-clock records), one worker thread per run,
# on one declared hardware class. The records are then compacted (at most
# OFFICIAL_MAX_ROWS trace rows per run: first and last checkpoints, every ladder rung's first
# hit, the rest log-spaced, numbers rounded to 6 digits, zero oracle counts dropped; summaries,
# ladder hits and final metrics are untouched, so scores are those of the full records) into leaderboard/submissions/reference/, and the site is built.
#
# Knobs (environment): OFFICIAL_SUITES ("core papers"), OFFICIAL_PROBLEMS (instead of suites:
# a space-separated list of instances, for a quick trial), OFFICIAL_SOLVERS (default: all
# registered), OFFICIAL_SEEDS (3), OFFICIAL_RULESETS ("default reference"), OFFICIAL_TUNED (0),
# OFFICIAL_TRIALS (8), OFFICIAL_TUNING_SEEDS (2), OFFICIAL_BUDGET_SECONDS (unset: the
# instances' budgets; not applied to the reference ruleset, which has
# OFFICIAL_REFERENCE_BUDGET_SECONDS), OFFICIAL_WORKERS (2), OFFICIAL_HARDWARE (the hardware class the runs must
# carry; default: the one this machine reports; the script stops if a record disagrees),
# OFFICIAL_OUT (leaderboard/submissions/reference), OFFICIAL_SITE (leaderboard/site),
# OFFICIAL_MAX_ROWS (40), OFFICIAL_MAX_MB (30), VENV (.venv).
# Resumable: runs already recorded under OFFICIAL_OUT are skipped (run ids are deterministic).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
BB="$VENV/bin/bilevel-bench"
OUT=${OFFICIAL_OUT:-leaderboard/submissions/reference}
SITE=${OFFICIAL_SITE:-leaderboard/site}
SEEDS=${OFFICIAL_SEEDS:-3}
WORKERS=${OFFICIAL_WORKERS:-2}
MAX_MB=${OFFICIAL_MAX_MB:-30}
if [ "$SEEDS" -lt 3 ] && [ -z "${OFFICIAL_PROBLEMS:-}" ]; then
  echo "official results need at least 3 seeds (OFFICIAL_SEEDS=$SEEDS)" >&2; exit 2
fi
export PYTHONHASHSEED=0 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
HARDWARE=$("$PY" -c 'from bilevel_bench.provenance import hardware; print(hardware("cpu", 1)["class"])')
DECLARED=${OFFICIAL_HARDWARE:-$HARDWARE}
if [ "$DECLARED" != "$HARDWARE" ]; then
  echo "this machine is '$HARDWARE', not the declared hardware class '$DECLARED'" >&2; exit 2
fi
echo "== official result set: hardware class $DECLARED, $SEEDS seeds, into $OUT"
mkdir -p "$OUT"

targets=()
if [ -n "${OFFICIAL_PROBLEMS:-}" ]; then
  for p in $OFFICIAL_PROBLEMS; do targets+=("--problem $p"); done
else
  for s in ${OFFICIAL_SUITES:-core papers}; do targets+=("--suite $s"); done
fi
common=(--seeds "$SEEDS" --workers "$WORKERS" --threads 1 --results "$OUT")
for s in ${OFFICIAL_SOLVERS:-}; do common+=(--solver "$s"); done
rulesets=${OFFICIAL_RULESETS:-default reference}
[ "${OFFICIAL_TUNED:-0}" = 1 ] && rulesets="$rulesets tuned"
for target in "${targets[@]}"; do
  for ruleset in $rulesets; do
    echo "== $target, ruleset $ruleset"
    extra=()
    # the reference ruleset is the point of comparison: the instances' own budgets unless
    # OFFICIAL_REFERENCE_BUDGET_SECONDS says otherwise (as scripts/main-job.sh)
    budget=${OFFICIAL_BUDGET_SECONDS:-}
    scale=${OFFICIAL_BUDGET_SCALE:-0.1}
    if [ "$ruleset" = reference ]; then
      budget=${OFFICIAL_REFERENCE_BUDGET_SECONDS:-}
      scale=${OFFICIAL_REFERENCE_BUDGET_SCALE:-0.4}
    fi
    extra+=(--budget-scale "$scale")
    [ -n "$budget" ] && extra+=(--budget-seconds "$budget")
    [ "$ruleset" = tuned ] && extra+=(--trials "${OFFICIAL_TRIALS:-8}"
                                      --tuning-seeds "${OFFICIAL_TUNING_SEEDS:-2}")
    # shellcheck disable=SC2086  # $target is "--suite NAME" or "--problem NAME"
    "$BB" run $target "${common[@]}" --ruleset "$ruleset" "${extra[@]}" || {
      rc=$?; echo "bilevel-bench run exited with $rc (records written so far are kept)" >&2; }
  done
done

"$PY" -m bilevel_bench.leaderboard.compact "$OUT" --max-rows "${OFFICIAL_MAX_ROWS:-40}"
"$PY" - "$OUT" "$DECLARED" <<'EOF'
import json, sys
from pathlib import Path
from bilevel_bench.results import iter_records
out, declared = Path(sys.argv[1]), sys.argv[2]
other = {r["hardware"].get("class") for _, r, _ in iter_records(out) if r} - {declared}
if other:
    sys.exit(f"records of other hardware classes under {out}: {sorted(other)}")
(out / "MANIFEST.txt").write_text(
    "Official result set of bilevel_bench, produced by scripts/official-results.sh.\n"
    f"hardware class: {declared}\n", encoding="utf-8")
EOF
SIZE=$(du -sm "$OUT" | cut -f1)
echo "== $(find "$OUT" -name '*.json' | wc -l) records, ${SIZE} MiB under $OUT"
if [ "$SIZE" -gt "$MAX_MB" ]; then
  echo "the result set is over ${MAX_MB} MiB: lower OFFICIAL_MAX_ROWS" >&2; exit 1
fi
start=$EPOCHREALTIME
"$BB" leaderboard "$(dirname "$OUT")" -o "$SITE"
echo "== site built in $(awk "BEGIN {printf \"%.1f\", $EPOCHREALTIME - $start}") s"
