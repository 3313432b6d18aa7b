"""Our AID-CG, AID-Neumann and ITD against torchopt (and higher) on the same quadratic.

A benchmark, not a test: prints, for three sizes of the quadratic family (P6), the per-iteration
time and the time-to-target (solver time until ul_gap <= target, evaluation untimed) of each of
our solvers and of its third-party counterpart with the same algorithmic knobs (UL/LL steps,
D LL steps, N linear-system steps, T unrolled steps, warm-started y), measured side by side in
one process, alternating the two in every repetition. The LL conditioning is mu_inner = 0.3, so
that T = 40 unrolled steps are accurate enough to reach the target. Ratios > 1 mean that the
third-party plugin is slower than ours. Threads are pinned to 1.

    OMP_NUM_THREADS=1 python benchmarks/bench_implicit_vs_torchopt.py [--quick] [--hook-counting]

``--hook-counting`` counts every pass through the autograd hooks (the mechanism before the
helpers counted their own passes), for before/after comparisons.

Needs the ``plugins`` extra (torchopt, higher).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

from bilevel_bench.oracles import Oracles  # noqa: E402
from bilevel_bench.problems.quadratic import Quadratic  # noqa: E402
from bilevel_bench.registry import get_solver  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

SIZES = [  # (dim_x, dim_y)
    (5, 10),
    (10, 100),
    (20, 400),
]
COMMON = {"outer_lr": 0.5, "inner_lr": 1.0, "inner_steps": 10}
PAIRS = [  # (label, ours, theirs)
    ("AID-CG vs torchopt implicit (CG)",
     ("aid-cg", {**COMMON, "cg_steps": 10}),
     ("torchopt-implicit", {**COMMON, "linear_solver": "cg", "linear_steps": 10})),
    ("AID-Neumann vs torchopt implicit (Neumann)",
     ("aid-neumann", {**COMMON, "neumann_lr": 1.0, "neumann_steps": 10}),
     ("torchopt-implicit", {**COMMON, "linear_solver": "neumann", "linear_steps": 10,
                            "neumann_lr": 1.0})),
    ("ITD vs torchopt unrolled",
     ("itd", {**COMMON, "inner_steps": 40, "truncate": 40}),
     ("torchopt-unrolled", {**COMMON, "inner_steps": 40})),
    ("ITD vs higher unrolled",
     ("itd", {**COMMON, "inner_steps": 40, "truncate": 40}),
     ("higher-unrolled", {**COMMON, "inner_steps": 40})),
]


def measure(problem: Quadratic, solver: str, hp: dict, iterations: int, target: float):
    """(median seconds per step, solver seconds to reach ul_gap <= target or None)."""
    oracles = Oracles(problem)
    gen = torch.Generator().manual_seed(0)
    x0, y0 = problem.init(gen)
    solver_obj = get_solver(solver)(**hp)
    solver_obj.init(oracles, x0, y0, gen)
    gc.collect()
    gc.freeze()  # same garbage-collector state for every measured run
    times, elapsed, reached = [], 0.0, None
    for _ in range(iterations):
        start = time.perf_counter()
        solver_obj.step()
        dt = time.perf_counter() - start
        times.append(dt)
        elapsed += dt
        if reached is None:
            x, y = solver_obj.solution()
            if problem.evaluate(x, y)["ul_gap"] <= target:
                reached = elapsed
    gc.unfreeze()
    return statistics.median(times[1:]), reached


def fmt(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "not reached"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    parser.add_argument("--target", type=float, default=1e-6, help="ul_gap target")
    parser.add_argument("--only", default="", help="run only the pairs whose label contains this")
    parser.add_argument("--hook-counting", action="store_true",
                        help="count the oracle helpers' passes through autograd hooks, as "
                             "before direct counting (Oracles.direct_counting = False)")
    args = parser.parse_args()
    Oracles.direct_counting = not args.hook_counting
    iterations, repeats = (40, 1) if args.quick else (100, 5)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{iterations} iterations, {repeats} repeats (best), target ul_gap <= {args.target}, "
          f"counting {'hooks' if args.hook_counting else 'direct'}")
    header = (f"{'size (x, y)':>12} | {'pair':<42} | {'ours ms/it':>10} | {'theirs ms/it':>12} | "
              f"{'ratio it':>8} | {'ours ttt s':>10} | {'theirs ttt s':>12} | {'ratio ttt':>9}")
    print(header)
    print("-" * len(header))
    for dim_x, dim_y in SIZES:
        problem = Quadratic(seed=0, dim_x=dim_x, dim_y=dim_y, n_inner=256, n_outer=64,
                            mu_inner=0.3)
        for label, (ours, ours_hp), (theirs, theirs_hp) in PAIRS:
            if args.only not in label:
                continue
            best = {"ours": [float("inf"), None], "theirs": [float("inf"), None]}
            for rep in range(repeats):
                order = [("ours", ours, ours_hp), ("theirs", theirs, theirs_hp)]
                for key, name, hp in (order if rep % 2 == 0 else order[::-1]):
                    per_it, ttt = measure(problem, name, hp, iterations, args.target)
                    best[key][0] = min(best[key][0], per_it)
                    if ttt is not None:
                        best[key][1] = ttt if best[key][1] is None else min(best[key][1], ttt)
            (o_it, o_ttt), (t_it, t_ttt) = best["ours"], best["theirs"]
            ratio_ttt = f"{t_ttt / o_ttt:9.2f}" if o_ttt and t_ttt else f"{'n/a':>9}"
            print(f"{f'({dim_x}, {dim_y})':>12} | {label:<42} | {1e3 * o_it:10.2f} | "
                  f"{1e3 * t_it:12.2f} | {t_it / o_it:8.2f} | {fmt(o_ttt):>10} | "
                  f"{fmt(t_ttt):>12} | {ratio_ttt}")


if __name__ == "__main__":
    main()
