"""The canary x instance table: what solvers that do no bilevel work reach on each instance.

For every instance of a suite and every registered canary (``Solver.canary``), runs the
canary in-process with :func:`bilevel_bench.canary_check.check` (iterations, never CPU seconds:
``--iterations`` per configuration, capped by the instance's own iteration budget; every
configuration of the data-blind grid; the evaluator keeps the best checkpoint that passes the
LL gate) and prints, per instance, the final target, the rung no canary may reach (third from
the top), and per canary the best gated primary metric and the rungs reached. A ``FAIL`` marks
a canary that reaches the top three rungs: the instance must be reformulated.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 BILEVEL_BENCH_DATA=/work/shared/data \\
        python benchmarks/canary_table.py --suite core --iterations 32
"""

from __future__ import annotations

import argparse
import sys
import time

from bilevel_bench import registry
from bilevel_bench.canary_check import DENSE, TOP_RUNGS, CanaryOutcome, canaries, check_all


def cell(outcome: CanaryOutcome | str) -> str:
    """One table cell: value (rungs reached / rungs), FAIL if it reaches the top rungs."""
    if isinstance(outcome, str):
        return "n/a"
    text = f"{outcome.value:.4g} ({outcome.rungs_reached}/{outcome.rungs})"
    return text + (" FAIL" if outcome.fails else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="core")
    parser.add_argument("--instance", action="append", default=[],
                        help="instead of a suite (repeatable)")
    parser.add_argument("--iterations", type=int, default=DENSE,
                        help="iterations per canary configuration (capped by the budget's)")
    parser.add_argument("--seed", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    instances = args.instance or registry.get_suite(args.suite)
    names = canaries()
    seeds = args.seed or [0]
    header = ["instance", "seed", "target", f"rung -{TOP_RUNGS}", *names]
    rows, failures, notes = [], 0, []
    for instance in instances:
        entry = registry.get_problem(instance)
        cap = entry.instance.budget.iterations
        iterations = min(args.iterations, cap) if cap else args.iterations
        for seed in seeds:
            began = time.perf_counter()
            try:
                outcomes = check_all(instance, names, seed, iterations)
            except Exception as exc:  # a missing data file or optional library: say so
                notes.append(f"{instance}: not run ({type(exc).__name__}: {exc})")
                continue
            some = next((o for o in outcomes.values() if not isinstance(o, str)), None)
            rows.append([instance, str(seed), f"{entry.instance.target:g}",
                         f"{some.forbidden:.4g}" if some else "-",
                         *[cell(outcomes[n]) for n in names]])
            failures += sum(1 for o in outcomes.values()
                            if not isinstance(o, str) and o.fails)
            for name, o in outcomes.items():
                if isinstance(o, str):
                    notes.append(f"{instance} / {name}: n/a, it {o}")
                elif o.fails:
                    notes.append(f"FAIL {o.message()}")
            print(f"# {instance} seed {seed}: {time.perf_counter() - began:.1f} s, "
                  f"{iterations} iterations per configuration", file=sys.stderr, flush=True)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print()
    print(f"cells: best primary metric over the checkpoints that pass the LL gate (rungs "
          f"reached / rungs); FAIL: reaches rung -{TOP_RUNGS} (the top {TOP_RUNGS} rungs) or "
          f"the final target. {failures} failing cell(s).")
    for note in notes:
        print(f"- {note}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
