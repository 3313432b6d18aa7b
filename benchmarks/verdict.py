"""How decisive a results folder's verdict is (the figures of issues 12 and 14).

    python benchmarks/verdict.py RESULTS [--boot 1000]

Prints, per view (the core suite and each practitioner task, x ruleset x budget, oracle clock):
the number of solvers and of distinct rank groups of the ECDF-area ranking (95% bootstrap
intervals); per instance and ruleset: how many solvers reach the final target on more than
half their seeds; and the total solver CPU time against the total (untimed) evaluation time.
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd

from bilevel_bench import load_results
from bilevel_bench.metrics import ladder_ranking
from bilevel_bench.results import iter_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results")
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    frame = load_results(args.results, warn=False)
    frame = frame[frame["ruleset"] != "tuning"]
    tasks = {rec["problem"]["name"]: rec["problem"].get("task", "other")
             for _, rec, _ in iter_records(args.results) if rec}
    frame = frame.assign(task=frame["problem"].map(tasks))
    print(f"{len(frame)} runs; solver CPU time {frame['solver_time'].sum():.1f} s, evaluation "
          f"time {frame['evaluation_time'].sum():.1f} s (ratio "
          f"{frame['evaluation_time'].sum() / max(frame['solver_time'].sum(), 1e-9):.2f})\n")
    print(f"{'view':44s} {'ruleset':10s} {'budget':>7s} {'solvers':>7s} {'groups':>6s}")
    for (ruleset, budget), part in frame.groupby(["ruleset", "budget_seconds"], dropna=False):
        scopes = [("all recorded", part)] + [(task, p) for task, p in part.groupby("task")]
        for name, sub in scopes:
            table, _ = ladder_ranking(sub, "oracles", n_boot=args.boot, seed=0)
            print(f"{name[:44]:44s} {ruleset:10s} {budget!s:>7s} {len(table):7d} "
                  f"{table['rank'].nunique():6d}")
    print("\ninstances: solvers reaching the final target on > half their seeds")
    wins = (frame.groupby(["ruleset", "problem", "solver"])["converged"].mean() > 0.5)
    table = wins.groupby(["problem", "ruleset"]).sum().unstack("ruleset").fillna(0).astype(int)
    with pd.option_context("display.width", 160):
        print(table.to_string())


if __name__ == "__main__":
    main()
