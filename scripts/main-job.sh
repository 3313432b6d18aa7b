#!/usr/bin/env bash
# The main job: set up what is missing (scripts/setup.sh, idempotent), run the reference solvers
# on the default suite under the `default` and `reference` rulesets, then build the leaderboard.
# Budgets are work (oracle cost, iterations), so the same seed stops at the same point on every
# machine and the oracle-clock views do not depend on the CPU or its load.
# Environment knobs: MAIN_JOB_SUITE (default core), MAIN_JOB_SEEDS (3), MAIN_JOB_WORKERS (2),
# MAIN_JOB_RULESETS ("default reference"), MAIN_JOB_BUDGET_SCALE (0.1: the default ruleset runs
# at a tenth of each instance's own work budget), MAIN_JOB_REFERENCE_BUDGET_SCALE (0.4: the
# reference ruleset, the point of comparison, at 0.4 of it; the official result set uses the
# same scales, so this job reproduces its records), MAIN_JOB_BUDGET_SECONDS / MAIN_JOB_REFERENCE_BUDGET_SECONDS
# (unset; a CPU-seconds budget on top, for a quick smoke or the time-clock views of this
# machine's hardware class), MAIN_JOB_RESULTS (results),
# MAIN_JOB_SITE ("$RESULTS/site": the job's own site, never the official leaderboard/site), VENV (.venv),
# MAIN_JOB_SETUP=0 to use an environment you set up yourself (bilevel-bench on the PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ "${MAIN_JOB_SETUP:-1}" = 0 ] || bash scripts/setup.sh "$VENV"
BB="$VENV/bin/bilevel-bench"
[ -x "$BB" ] || BB=bilevel-bench
SUITE=${MAIN_JOB_SUITE:-core}
RESULTS=${MAIN_JOB_RESULTS:-results}
args=(run --suite "$SUITE" --seeds "${MAIN_JOB_SEEDS:-3}" --workers "${MAIN_JOB_WORKERS:-2}"
      --results "$RESULTS")
for ruleset in ${MAIN_JOB_RULESETS:-default reference}; do
  scale=${MAIN_JOB_BUDGET_SCALE:-0.1}
  seconds=${MAIN_JOB_BUDGET_SECONDS:-}
  if [ "$ruleset" = reference ]; then
    scale=${MAIN_JOB_REFERENCE_BUDGET_SCALE:-0.4}
    seconds=${MAIN_JOB_REFERENCE_BUDGET_SECONDS:-}
  fi
  extra=(--budget-scale "$scale")
  label="$scale x the instances' work budgets"
  if [ -n "$seconds" ]; then
    extra+=(--budget-seconds "$seconds")
    label="$label, at most $seconds CPU s"
  fi
  echo "== ruleset $ruleset ($label)"
  "$BB" "${args[@]}" "${extra[@]}" --ruleset "$ruleset"
done
# ... and ends by building the job's own static leaderboard from those records (prints its
# index path); the official site is built from leaderboard/submissions (docs/maintainers.md).
"$BB" leaderboard "$RESULTS" -o "${MAIN_JOB_SITE:-$RESULTS/site}"
