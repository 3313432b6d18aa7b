"""Cost growth of the quadratic family with the LL dimension d: build, and per outer iteration.

Prints, for d = dim_y in 10, 100, 1,000, 10,000 (dim_x = 10, n_inner = 256, n_outer = 64,
mu_inner = 0.1: the benchopt configuration's shape at a size whose samples fit in memory), the
instance's build time and, for AID-CG and SOBA (default hyperparameters), the median time per
outer iteration and the peak resident memory during the iterations above the memory held after
the build. Each (d, solver) runs in a fresh subprocess (so peaks do not mix), threads pinned
to 1; memory is sampled from /proc/self/statm every millisecond.

Then, side by side in one process (interleaved repeats), the build time of the Haar
construction (QR of a Gaussian matrix and a dense inverse, O(d^3): every size before, and up to
HAAR_MAX_DIM now) against the circulant construction (O(d^2), above HAAR_MAX_DIM now) at
d = 2,000 and 3,000, as a ratio old / new.

    python benchmarks/bench_quadratic_scaling.py [--dims 10,100,1000,10000] [--compare 2000,3000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import torch  # noqa: E402

from bilevel_bench.oracles import Oracles  # noqa: E402
from bilevel_bench.problems import quadratic  # noqa: E402
from bilevel_bench.registry import get_solver  # noqa: E402

torch.set_num_threads(1)
SHAPE = dict(dim_x=10, n_inner=256, n_outer=64, mu_inner=0.1)
ITERATIONS = {10: 40, 100: 40, 1000: 10, 10000: 3}
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class PeakSampler:
    """Highest resident set size seen while active (sampled every millisecond)."""

    def __init__(self) -> None:
        self.peak, self._stop = rss(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.001)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def worker(dim: int, solver_name: str, iterations: int) -> dict:
    """Build the instance, then time ``iterations`` outer steps (after one warm-up step)."""
    start = time.perf_counter()
    with PeakSampler() as build_peak:
        problem = quadratic.Quadratic(seed=0, dim_y=dim, **SHAPE)
    build = time.perf_counter() - start
    oracles = Oracles(problem)
    gen = torch.Generator().manual_seed(0)
    x0, y0 = problem.init(gen)
    solver = get_solver(solver_name)()
    solver.init(oracles, x0, y0, gen)
    solver.step()  # warm-up
    held = rss()
    times = []
    with PeakSampler() as peak:
        for _ in range(iterations):
            t0 = time.perf_counter()
            solver.step()
            times.append(time.perf_counter() - t0)
    return {"build_s": build, "build_peak_mb": build_peak.peak / 2**20,
            "held_mb": held / 2**20, "iteration_s": statistics.median(times),
            "iteration_peak_extra_mb": (peak.peak - held) / 2**20}


def compare_builds(dims: list[int], repeats: int) -> None:
    print(f"\nbuild time, Haar (before: every size) vs circulant (now: above "
          f"{quadratic.HAAR_MAX_DIM}), {repeats} interleaved repeats (medians)")
    print(f"{'d':>6} | {'Haar s':>8} | {'circulant s':>11} | {'ratio old/new':>13}")
    threshold = quadratic.HAAR_MAX_DIM
    for dim in dims:
        times: dict[str, list[float]] = {"haar": [], "circulant": []}
        for rep in range(repeats):
            order = ["haar", "circulant"] if rep % 2 == 0 else ["circulant", "haar"]
            for key in order:
                quadratic.HAAR_MAX_DIM = 10**9 if key == "haar" else min(threshold, dim - 1)
                t0 = time.perf_counter()
                quadratic.Quadratic(seed=0, dim_y=dim, **SHAPE)
                times[key].append(time.perf_counter() - t0)
        quadratic.HAAR_MAX_DIM = threshold
        old, new = statistics.median(times["haar"]), statistics.median(times["circulant"])
        print(f"{dim:>6} | {old:8.2f} | {new:11.2f} | {old / new:13.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="10,100,1000,10000")
    parser.add_argument("--compare", default="2000,3000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=3, metavar=("DIM", "SOLVER", "ITERATIONS"))
    args = parser.parse_args()
    if args.worker:
        dim, solver, iterations = args.worker
        print(json.dumps(worker(int(dim), solver, int(iterations))))
        return
    print(f"torch {torch.__version__}, 1 thread, quadratic {SHAPE}, HAAR_MAX_DIM = "
          f"{quadratic.HAAR_MAX_DIM}")
    header = (f"{'d':>6} | {'solver':<7} | {'build s':>7} | {'build peak MB':>13} | "
              f"{'held MB':>8} | {'s / iteration':>13} | {'iteration peak +MB':>18}")
    print(header)
    print("-" * len(header))
    for dim in (int(d) for d in args.dims.split(",") if d):
        for solver in ("aid-cg", "soba"):
            iterations = ITERATIONS.get(dim, 3)
            out = subprocess.run([sys.executable, __file__, "--worker", str(dim), solver,
                                  str(iterations)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{dim:>6} | {solver:<7} | {r['build_s']:7.2f} | {r['build_peak_mb']:13.0f} | "
                  f"{r['held_mb']:8.0f} | {r['iteration_s']:13.4f} | "
                  f"{r['iteration_peak_extra_mb']:18.1f}", flush=True)
    if args.compare:
        compare_builds([int(d) for d in args.compare.split(",") if d], args.repeats)


if __name__ == "__main__":
    main()
