"""Which (solver, instance, seed) of a ruleset produce a NaN/inf: a quick divergence sweep.

    OMP_NUM_THREADS=1 BILEVEL_BENCH_DATA=/work/shared/data \\
        python benchmarks/bench_default_divergence.py [--suite core --suite papers] [--seeds 3]
        [--seconds 1] [--workers 2] [--solver NAME ...] [--problem NAME ...] [--ruleset default]
        [--as-given]

Drives every compatible (instance, solver, seed) of the suites directly (the runner is tested
elsewhere): the solver starts as in a run (:func:`bilevel_bench.runner.start_solver`), steps
until ``--seconds`` of CPU time or the instance's iteration budget, checks that its iterate is
finite after **every** step, and evaluates the instance's primary metric at iterations 1, 10,
100, ... and at the end (a non-finite metric, e.g. an infeasible SVM lower level, is a
divergence as in the runner). A run stops early at the instance's final target. Prints one line
per diverged (solver, instance, seed) with the iteration and the cause as they come, and a
count per solver. ``--as-given`` turns the scale-aware step rule off (``safe_steps=False`` for
the solvers that have it): the defaults before that rule (version 1 of those solvers).
Shorter than a real run (which has 5-120 s budgets), so a slow drift to NaN could be missed; a
divergence from steps that are too large shows within the first iterations.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import torch

from bilevel_bench import registry
from bilevel_bench.matrix import plan
from bilevel_bench.problem import reached
from bilevel_bench.runner import start_solver


def sweep_one(problem: str, solver: str, seed: int, seconds: float, ruleset: str,
              iterations: int | None = None, as_given: bool = False) -> dict:
    """Status of one (instance, solver, seed): diverged (iteration, cause), converged or
    budget, with the final primary metric."""
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", FutureWarning)  # torchopt's functorch notice
    entry = registry.get_problem(problem)
    cls = registry.get_solver(solver)
    hp: dict = {}
    if ruleset == "reference":
        ref = cls.reference_for(entry.family.name, problem)
        if ref is None:
            return {"status": "no reference"}
        hp = dict(ref.hyperparameters)
    if as_given and "safe_steps" in cls.hyperparameters:
        hp["safe_steps"] = False
    instance = entry.make(seed=seed)
    limit = iterations or entry.instance.budget.iterations or 10**6
    marks = {10**k for k in range(12)} | {limit}
    start = time.process_time()
    try:
        algo, _ = start_solver(instance, cls, hp, seed)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"status": "error", "cause": f"{type(exc).__name__}: {exc}"}
    value, k = math.nan, 0
    for k in range(1, limit + 1):
        try:
            algo.step()
        except Exception as exc:  # noqa: BLE001
            return {"status": "error", "iteration": k, "cause": f"{type(exc).__name__}: {exc}"}
        x, y = algo.solution()
        if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
            return {"status": "diverged", "iteration": k, "cause": "non-finite iterate"}
        out_of_time = time.process_time() - start >= seconds
        if k in marks or out_of_time:
            value = instance.evaluate(x, y)[instance.primary_metric]
            if not math.isfinite(value):
                return {"status": "diverged", "iteration": k,
                        "cause": f"non-finite {instance.primary_metric}"}
            if reached(value, entry.instance.target, instance.higher_is_better):
                return {"status": "converged", "iteration": k, "final": value}
        if out_of_time:
            break
    return {"status": "budget", "iteration": k, "final": value}


def _job(args: tuple) -> tuple:
    return args[:3], sweep_one(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", action="append", default=None)
    parser.add_argument("--problem", action="append", default=None)
    parser.add_argument("--solver", action="append", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per run")
    parser.add_argument("--iterations", type=int, default=None,
                        help="iteration cap (default: the instance's budget)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ruleset", choices=("default", "reference"), default="default")
    parser.add_argument("--as-given", action="store_true",
                        help="safe_steps=False: the step defaults before the scale-aware rule")
    parser.add_argument("--verbose", action="store_true", help="print every run")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    problems = args.problem or [p for s in (args.suite or ["core", "papers"])
                                for p in registry.get_suite(s)]
    solvers = args.solver or sorted(registry.solvers())
    tasks = plan(problems, solvers, range(args.seeds)).tasks
    jobs = [(t.problem, t.solver, t.seed, args.seconds, args.ruleset, args.iterations,
             args.as_given) for t in tasks]
    started = time.perf_counter()
    diverged: dict[str, int] = {}
    statuses: dict[str, int] = {}
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for (problem, solver, seed), res in pool.map(_job, jobs):
            results.append(res)
            statuses[res["status"]] = statuses.get(res["status"], 0) + 1
            if res["status"] in ("diverged", "error"):
                diverged[solver] = diverged.get(solver, 0) + 1
                print(f"{res['status']:9s} {solver:18s} {problem:28s} seed {seed}  "
                      f"iteration {res.get('iteration', 0)}: {res['cause']}", flush=True)
            elif args.verbose:
                print(f"{res['status']:9s} {solver:18s} {problem:28s} seed {seed}  "
                      f"iteration {res.get('iteration')}: final {res.get('final')}", flush=True)
    print(f"\n{len(results)} runs ({args.ruleset}{', as given' if args.as_given else ''}, "
          f"{args.seconds} CPU s each) in "
          f"{time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    for solver, count in sorted(diverged.items()):
        print(f"  {solver}: {count} diverged/error")


if __name__ == "__main__":
    main()
