"""GPU checks (issue 17): synchronised solver time on CUDA, and the GPU/CPU per-iteration ratio.

    python benchmarks/gpu_check.py [--iterations 300] [--solvers soba,aid-cg]

For each solver on quadratic-benchopt: (1) a run through the runner on CUDA with an iteration
budget; its recorded solver time (device-synchronised, see runner.SolverClock) is compared with
the same init + steps timed by CUDA events around them, in the same process: they must agree
within 5%; (2) the same run on the CPU: the per-iteration ratio GPU/CPU is printed. Exits 1 if
a timing disagrees, 0 otherwise; prints one line and exits 0 when no CUDA device is present.
"""

from __future__ import annotations

import argparse
import sys

import torch

from bilevel_bench.problem import Budget
from bilevel_bench.registry import get_problem, get_solver
from bilevel_bench.runner import RunTask, execute, start_solver


def event_time(problem_name: str, solver: str, iterations: int) -> float:
    """Seconds of init + ``iterations`` steps, measured with CUDA events (no runner)."""
    problem = get_problem(problem_name).make(seed=0, device="cuda")
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    algo, _ = start_solver(problem, get_solver(solver), {}, seed=0)
    for _ in range(iterations):
        algo.step()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problem", default="quadratic-benchopt")
    parser.add_argument("--solvers", default="soba,aid-cg")
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check")
        return 0
    print(f"device: {torch.cuda.get_device_name(0)}; problem {args.problem}, "
          f"{args.iterations} iterations")
    ok = True
    for solver in args.solvers.split(","):
        budget = Budget(seconds=None, iterations=args.iterations)
        per_iteration = {}
        for device in ("cuda", "cpu"):
            record = execute(RunTask(problem=args.problem, solver=solver, device=device,
                                     budget=budget))
            s = record["summary"]
            per_iteration[device] = s["solver_time"] / max(s["iterations"], 1)
            if device == "cuda":
                recorded = s["solver_time"]
        measured = event_time(args.problem, solver, args.iterations)
        # the recorded time also includes solution() at each checkpoint: allow 5%
        agree = abs(recorded - measured) <= 0.05 * measured
        ok &= agree
        print(f"{solver:10s} recorded {recorded:.4f} s, CUDA events {measured:.4f} s "
              f"({'agree' if agree else 'DISAGREE'} within 5%); per iteration GPU/CPU = "
              f"{per_iteration['cuda'] / per_iteration['cpu']:.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
