#!/usr/bin/env bash
# The main job: set up what is missing (scripts/setup.sh, idempotent), run the reference solvers
# on the default suite under the `default` and `reference` rulesets, then build the leaderboard.
# Environment knobs: MAIN_JOB_SUITE (default core), MAIN_JOB_SEEDS (3), MAIN_JOB_WORKERS (2),
# MAIN_JOB_RULESETS ("default reference"; the reference ruleset runs with the instances' own
# budgets unless MAIN_JOB_REFERENCE_BUDGET_SECONDS is set: it is the point of comparison),
# MAIN_JOB_BUDGET_SECONDS (2 s of solver time per run; "default": the instances' budgets),
# MAIN_JOB_RESULTS (results), MAIN_JOB_SITE ($RESULTS/site: this job's own site, never the
# official one in leaderboard/site; never read as records), VENV (.venv),
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
  budget=${MAIN_JOB_BUDGET_SECONDS:-2}
  [ "$ruleset" = reference ] && budget=${MAIN_JOB_REFERENCE_BUDGET_SECONDS:-default}
  extra=()
  [ "$budget" != default ] && extra+=(--budget-seconds "$budget")
  label="$budget CPU s per run"
  [ "$budget" = default ] && label="the instances' own budgets"
  echo "== ruleset $ruleset ($label)"
  "$BB" "${args[@]}" "${extra[@]}" --ruleset "$ruleset"
done
# ... and ends by building the static leaderboard from those records (prints its index path).
"$BB" leaderboard "$RESULTS" -o "${MAIN_JOB_SITE:-$RESULTS/site}"
