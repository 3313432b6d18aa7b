"""Build time of the static leaderboard for 10,000 (or more) synthetic run records.

    python benchmarks/bench_leaderboard.py [--seeds 10] [--records-dir DIR] [--keep]

Writes 25 problems x 20 solvers x SEEDS seeds x 2 tuning rulesets = 1,000 x SEEDS synthetic
records (10,000 by default; ``--seeds 50``: the 50,000 of issue 17's goal)
(seeds spread over two hardware classes; see ``bilevel_bench.leaderboard.synthetic``), then
times ``build_site`` on them (1,000 bootstrap replicates per ranking) and prints the figure.
The records are synthetic: this measures the site builder, never a solver.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bilevel_bench.leaderboard.build import build_site
from bilevel_bench.leaderboard.collect import collect
from bilevel_bench.leaderboard.synthetic import write_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records-dir", help="reuse/keep records here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--seeds", type=int, default=10, help="records = 1,000 x seeds")
    args = parser.parse_args()
    root = Path(args.records_dir or tempfile.mkdtemp(prefix="bench-leaderboard-"))
    records, site = root / "records", root / "site"
    if not records.exists() or not any(records.glob("*.json")):
        t0 = time.perf_counter()
        n = write_synthetic(records, problems=25, solvers=20, seeds=args.seeds,
                            rulesets=("default", "tuned"),
                            hardware=("cpu:synthetic-A|threads=1", "cpu:synthetic-B|threads=1"))
        print(f"wrote {n} synthetic records in {time.perf_counter() - t0:.1f} s")
    shutil.rmtree(site, ignore_errors=True)
    t0, c0 = time.perf_counter(), time.process_time()
    loaded = collect([records])
    t_read, c_read = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    index = build_site([records], site)
    t_build, c_build = time.perf_counter() - t0, time.process_time() - c0
    pages = len(list(site.glob("*.html")))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"records: {len(loaded.frame)}  (reading alone: {t_read:.2f} s wall, "
          f"{c_read:.2f} s CPU)")
    print(f"build_site: {t_build:.2f} s wall, {c_build:.2f} s CPU -> {pages} pages, "
          f"index {index}  (load average {load:.1f} on {os.cpu_count()} cores)")
    if not (args.keep or args.records_dir):
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
