"""Cost of run isolation: wall time of a main-job-like matrix through the local pool.

Runs the ``toys`` suite x (aid-cg, soba) x 2 seeds, 100 iterations each, with 2 workers, and
prints the wall time and where ``bilevel_bench`` was imported from. Compare two checkouts:

    OMP_NUM_THREADS=1 python benchmarks/bench_isolation.py                  # this checkout
    git worktree add /tmp/before 4b68612
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/before python benchmarks/bench_isolation.py   # before
"""

from __future__ import annotations

import sys
import tempfile
import time

import bilevel_bench
from bilevel_bench import registry
from bilevel_bench.executors import LocalPool
from bilevel_bench.matrix import plan, run_matrix

if __name__ == "__main__":
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    tasks = plan(registry.get_suite("toys"), ["aid-cg", "soba"], [0, 1],
                 budget={"iterations": 100, "seconds": 30.0}).tasks
    walls = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as results:
            t0 = time.perf_counter()
            run_matrix(tasks, results, LocalPool(workers=2))
            walls.append(time.perf_counter() - t0)
    print(f"{bilevel_bench.__file__}: {len(tasks)} runs, wall {min(walls):.1f} s "
          f"(min of {repeats}: {', '.join(f'{w:.1f}' for w in walls)})")
