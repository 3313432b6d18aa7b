"""Overhead of oracle counting, measured side by side in one run (ratios, not times).

The same AID-CG steps with counting on vs off (hooks not installed), interleaved. The runner's
own overhead is a pytest-benchmark (benchmarks/test_bench_runner.py, see README "Timing").

Usage:  python benchmarks/bench_overhead.py [--repeats 7]
Threads are pinned to 1 so that the figures are not distorted by oversubscription.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import torch  # noqa: E402

from bilevel_bench.oracles import Oracles  # noqa: E402
from bilevel_bench.registry import get_problem, get_solver  # noqa: E402

torch.set_num_threads(1)


def make(problem_name: str, solver_name: str, seed: int = 0):
    problem = get_problem(problem_name).make(seed=seed)
    oracles = Oracles(problem)
    generator = torch.Generator().manual_seed(seed)
    x0, y0 = problem.init(generator)
    solver = get_solver(solver_name)()
    solver.init(oracles, x0, y0, generator)
    return solver, oracles


def time_steps(solver, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        solver.step()
    return time.perf_counter() - start


def counting_overhead(problem: str, steps: int, repeats: int) -> float:
    ratios = []
    for _ in range(repeats):  # interleaved, so drifts in machine load hit both sides
        counted, _ = make(problem, "aid-cg")
        plain, oracles = make(problem, "aid-cg")
        oracles.counter.active = False
        ratios.append(time_steps(counted, steps) / time_steps(plain, steps))
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, 1 thread, median of {args.repeats} interleaved repeats\n")
    print(f"{'problem':28s} {'AID-CG step time, counting on / off':>36s}")
    for problem, steps in (("quadratic-benchopt", 20), ("quadratic-small", 200)):
        print(f"{problem:28s} {counting_overhead(problem, steps, args.repeats):36.3f}")


if __name__ == "__main__":
    main()
