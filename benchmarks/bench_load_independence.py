"""Load independence of the solver-time budget: the same run, alone and beside busy loops.

    OMP_NUM_THREADS=1 python benchmarks/bench_load_independence.py [--busy 2] [--seconds 2]

Runs one task (default: BLOCC on blocc-toy1, a 2 s budget) four times in this process (threads
pinned to 1): with the protocol's clock (CPU time of the solver process) and with a wall clock
(the protocol before version 2), each alone and beside ``--busy`` processes that spin on the
CPU (2 on a 2-core machine: the run then competes for its core). Prints the iterations each
budget allowed and the ratio loaded / alone: the CPU-time budget should give the same number of
iterations within 10%, the wall-clock budget far fewer under load. Not a test: timing on a
shared machine belongs in a benchmark, never in an assertion.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch

from bilevel_bench.problem import Budget
from bilevel_bench.runner import RunTask, execute


def _spin() -> None:
    while True:
        pass


def iterations(task: RunTask, clock) -> tuple[int, float]:
    record = execute(task, cpu_time=clock)
    return record["summary"]["iterations"], record["summary"]["solver_wall_time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problem", default="blocc-toy1")
    parser.add_argument("--solver", default="blocc")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--busy", type=int, default=2, help="busy-loop processes beside it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # a target no run reaches: the budget alone stops it
    task = RunTask(problem=args.problem, solver=args.solver, seed=0,
                   budget=Budget(seconds=args.seconds, iterations=None))
    execute(RunTask(problem=args.problem, solver=args.solver,
                    budget=Budget(seconds=0.2, iterations=None)))  # warm-up: imports, caches
    rows = {}
    for label, clock in (("cpu", time.process_time), ("wall", time.perf_counter)):
        alone = iterations(task, clock)
        busy = [mp.Process(target=_spin, daemon=True) for _ in range(args.busy)]
        for p in busy:
            p.start()
        try:
            time.sleep(0.5)
            loaded = iterations(task, clock)
        finally:
            for p in busy:
                p.kill()
                p.join()
        rows[label] = (alone, loaded)
    print(f"{args.solver} on {args.problem}, {args.seconds:g} s budget, {args.busy} busy loop(s)")
    print(f"{'budget clock':14s} {'alone':>8s} {'loaded':>8s} {'loaded/alone':>13s} "
          f"{'wall s alone/loaded':>20s}")
    for label, ((it_a, wall_a), (it_l, wall_l)) in rows.items():
        print(f"{label:14s} {it_a:8d} {it_l:8d} {it_l / max(it_a, 1):13.3f} "
              f"{wall_a:9.2f} / {wall_l:.2f}")


if __name__ == "__main__":
    main()
