"""Does the tuned ruleset beat the defaults? ECDF areas of `default` and `tuned` on eval seeds.

    OMP_NUM_THREADS=1 BILEVEL_BENCH_DATA=/work/shared/data python benchmarks/bench_tuning.py \\
        [--problem lvhba-toy --problem svm-ho-diabetes] [--solver lv-hba --solver blocc] \\
        [--trials 16] [--tuning-seeds 1] [--seeds 3] [--budget-seconds 5] [--workers 1] \\
        [--results /tmp/bench-tuning]

Runs ``bilevel-bench run --ruleset default`` and ``--ruleset tuned --trials N`` (the tuned
ruleset: trial 0 the defaults, then N-1 scrambled-Sobol points of the log-scaled search space,
each on the tuning seeds 10000.., selected on the mean ECDF area of the oracle clock) with the
same budget, then prints per (instance, solver, ruleset), on the evaluation seeds 0..S-1: the
mean area under the target-ladder ECDF on the oracle clock (the score the leaderboard ranks and
tuning selects on), the runs reaching the final target, the median final primary metric, and
the configuration tuning chose. Records land in ``RESULTS/default`` and ``RESULTS/tuned``
(``tuned/tuning`` holds the tuning runs), so a rerun resumes. Not a test: a benchmark of the
tuning scheme; the budget is the same for both rulesets (``--budget-seconds`` of CPU time per
run, instead of the instances' 5-30 s, to keep it short).
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

from bilevel_bench.cli import main as cli
from bilevel_bench.metrics import ECDF_RANGE, area_scores
from bilevel_bench.results import iter_records


def area(record: dict) -> float:
    low, high = ECDF_RANGE["oracles"]
    costs = [h["oracle_cost"] if isinstance(h, dict) and h.get("oracle_cost") is not None
             else math.inf for h in record["summary"].get("ladder_hits") or []]
    return area_scores(costs, low, high)


def summarise(directory: Path) -> dict[tuple[str, str], dict]:
    runs: dict[tuple[str, str], list[dict]] = {}
    for _path, record, _ in iter_records(directory):
        if record is None or record["ruleset"] not in ("default", "tuned"):
            continue
        runs.setdefault((record["problem"]["name"], record["solver"]["name"]), []).append(record)
    out = {}
    for key, records in runs.items():
        metric = records[0]["problem"]["primary_metric"]
        finals = [r["summary"].get("final", {}).get(metric, math.nan) for r in records]
        out[key] = {
            "area": statistics.fmean(area(r) for r in records),
            "reached": sum(bool(r["summary"].get("converged")) for r in records),
            "runs": len(records),
            "statuses": sorted({r["status"] for r in records}),
            "final": statistics.median(finals) if finals else math.nan,
            "config": records[0]["solver"]["hyperparameters"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problem", action="append", default=None)
    parser.add_argument("--solver", action="append", default=None)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--tuning-seeds", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--results", default="/tmp/bench-tuning")
    args = parser.parse_args()
    problems = args.problem or ["lvhba-toy", "svm-ho-diabetes"]
    solvers = args.solver or ["lv-hba", "blocc"]
    root = Path(args.results)
    common = [a for p in problems for a in ("--problem", p)] \
        + [a for s in solvers for a in ("--solver", s)] \
        + ["--seeds", str(args.seeds), "--budget-seconds", str(args.budget_seconds),
           "--workers", str(args.workers)]
    cli(["run", *common, "--ruleset", "default", "--results", str(root / "default")])
    cli(["run", *common, "--ruleset", "tuned", "--trials", str(args.trials),
         "--tuning-seeds", str(args.tuning_seeds), "--results", str(root / "tuned")])
    default, tuned = summarise(root / "default"), summarise(root / "tuned")
    print(f"\nECDF area (oracle clock, mean over {args.seeds} evaluation seeds), "
          f"{args.budget_seconds} CPU s per run, tuned with {args.trials} trials x "
          f"{args.tuning_seeds} tuning seed(s)")
    print(f"{'instance':18s} {'solver':8s} {'default':>8s} {'tuned':>8s}  reached d/t  "
          f"final d / t")
    for key in sorted(set(default) | set(tuned)):
        d, t = default.get(key), tuned.get(key)
        if d is None or t is None:
            print(f"{key[0]:18s} {key[1]:8s} missing a ruleset")
            continue
        print(f"{key[0]:18s} {key[1]:8s} {d['area']:8.3f} {t['area']:8.3f}  "
              f"{d['reached']}/{d['runs']}  {t['reached']}/{t['runs']}     "
              f"{d['final']:.4g} / {t['final']:.4g}   {'better' if t['area'] > d['area'] else ''}")
        chosen = {k: (round(v, 5) if isinstance(v, float) else v)
                  for k, v in t["config"].items()}
        print(f"{'':27s} tuned configuration: {chosen}")


if __name__ == "__main__":
    main()
