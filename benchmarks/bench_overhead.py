"""Overhead of oracle counting and of the harness, measured side by side in one run (ratios).

1. Counting: the same AID-CG steps with counting on vs off, interleaved.
2. Harness: "runner + counting / bare uncounted step loop". The runner side is the real,
   isolated path (``LocalPool``: a worker process, a fresh solver process forked from its
   template per run, evaluation in the worker), an iteration budget, default checkpoints; the
   bare side is ``init`` + the same number of ``step`` calls on an uncounted ``Oracles`` of the
   same instance in this process, CPU time. Runs alternate with bare loops. Two ratios per run:

   * ``recorded / bare``: the solver time the record reports (``summary.solver_time``: the
     solver clock, counting on) over the bare loop: what the harness adds to the published
     figure;
   * ``process / bare``: the solver process's whole CPU after start-up, measured outside it
     (``summary.solver_cpu_external``: counting, clock, ``solution()``, checkpoint streaming,
     waiting for verdicts) over the bare loop: what the harness costs.

   Rows: AID-CG on quadratic-benchopt (full-batch passes of several ms: the ">= 1 ms oracle"
   goal, 1.02x) and SOBA on quadratic-benchopt (mini-batch passes of ~0.25 ms: the "0.3 ms
   oracle" goal, 1.10x). Per-pass time = bare step time / passes per step. The first run of the
   worker is reported apart. Each solver process is a fresh fork: the runner warms the
   problem's oracles up before the solver clock starts (``runner.warm_up``), as the bare loop
   does with its untimed warm-up run; without it a fresh process paid ~0.3 s of one-time
   autograd initialisation on its clock (recorded / bare 1.07 for AID-CG, 1.16 for SOBA).

Usage:  python benchmarks/bench_overhead.py [--repeats 5] [--skip-counting]
Threads are pinned to 1 so that the figures are not distorted by oversubscription.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import sys  # noqa: E402

import torch  # noqa: E402

from bilevel_bench.executors import LocalPool  # noqa: E402
from bilevel_bench.oracles import Oracles  # noqa: E402
from bilevel_bench.problem import Budget  # noqa: E402
from bilevel_bench.registry import get_problem, get_solver  # noqa: E402
from bilevel_bench.runner import RunTask  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "baselines"))

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


#: (solver, problem, iterations): per-pass time well above 1 ms, and about 0.3 ms
HARNESS_ROWS = (("aid-cg", "quadratic-benchopt", 10), ("soba", "quadratic-benchopt", 2000))


def bare_loop(problem_name: str, solver_name: str, iterations: int) -> float:
    """CPU seconds of init + ``iterations`` steps, counting off, after an untimed warm-up run
    of a few steps (first kernels), as a bare benchmark loop would."""
    seconds = float("nan")
    for steps in (3, iterations):  # warm-up, then the timed loop
        problem = get_problem(problem_name).make(seed=0)
        oracles = Oracles(problem)
        oracles.counter.active = False
        generator = torch.Generator().manual_seed(0)
        x0, y0 = problem.init(generator)
        solver = get_solver(solver_name)()
        start = time.process_time()
        solver.init(oracles, x0.clone(), y0.clone(), generator)
        for _ in range(steps):
            solver.step()
        seconds = time.process_time() - start
    return seconds


def passes_per_step(problem_name: str, solver_name: str) -> int:
    """Oracle passes one step makes (values, gradients, products), counted eagerly."""
    from bilevel_bench_baselines.compiled import record_passes

    solver, oracles = make(problem_name, solver_name)
    solver.step()
    with record_passes(oracles) as log:
        solver.step()
    return len(log.log)


def harness_overhead(repeats: int) -> None:
    print(f"\n{'solver / problem':32s} {'pass ms':>8s} {'iters':>6s} {'bare s':>7s} "
          f"{'recorded / bare':>16s} {'process / bare':>15s} {'first run rec/proc':>19s}")
    for solver, problem, iterations in HARNESS_ROWS:
        bare: list[float] = []
        records: list[dict] = []
        task = RunTask(problem=problem, solver=solver,
                       budget=Budget(seconds=None, oracle_cost=None, iterations=iterations))

        def tasks(task=task, problem=problem, solver=solver, iterations=iterations, bare=bare):
            for _ in range(repeats + 1):  # the first run is reported apart
                bare.append(bare_loop(problem, solver, iterations))
                yield task

        LocalPool(workers=1, threads=1).map(tasks(), records.append)
        recorded = [r["summary"]["solver_time"] / b for r, b in zip(records, bare, strict=True)]
        process = [(r["summary"].get("solver_cpu_external") or float("nan")) / b
                   for r, b in zip(records, bare, strict=True)]
        b = statistics.median(bare[1:])
        per_pass = b / iterations / passes_per_step(problem, solver) * 1e3
        print(f"{solver + ' / ' + problem:32s} {per_pass:8.3f} {iterations:6d} {b:7.2f} "
              f"{statistics.median(recorded[1:]):9.3f} ({min(recorded[1:]):.2f}-"
              f"{max(recorded[1:]):.2f}) {statistics.median(process[1:]):8.3f} "
              f"({min(process[1:]):.2f}-{max(process[1:]):.2f}) "
              f"{recorded[0]:9.3f} / {process[0]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-counting", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, 1 thread, median of {args.repeats} interleaved repeats\n")
    if not args.skip_counting:
        print(f"{'problem':28s} {'AID-CG step time, counting on / off':>36s}")
        for problem, steps in (("quadratic-benchopt", 20), ("quadratic-small", 200)):
            print(f"{problem:28s} {counting_overhead(problem, steps, args.repeats):36.3f}")
    harness_overhead(args.repeats)


if __name__ == "__main__":
    main()
