"""Build time of the static leaderboard for 10,000 (or more) synthetic run records.

    python benchmarks/bench_leaderboard.py [--seeds 10] [--records-dir DIR] [--keep]

Writes 25 problems x 20 solvers x SEEDS seeds x 2 tuning rulesets = 1,000 x SEEDS synthetic
records (10,000 by default; ``--seeds 50``: the 50,000 of issue 17's goal)
(seeds spread over two hardware classes; see ``bilevel_bench.leaderboard.synthetic``), then
times ``build_site`` on them (1,000 bootstrap replicates per ranking), each build in a fresh
interpreter as the CLI runs it (imports not counted), side by side in one run:

* reading alone (``collect``, no cache);
* with ``--baseline TREE``: a build by another source tree (an older commit), no cache;
* a build without a cache (every file parsed and checked);
* a build that fills an empty cache (``--cache DIR``: what the first build pays);
* a rebuild from the cache (nothing changed: the usual rebuild);
* a rebuild after 500 more records arrived (1% of 50,000: they are parsed, the rest comes
  from the cache).

Each figure is the median of ``--repeats`` builds, with its ratio to the build without a cache.
The records are synthetic: this measures the site builder, never a solver.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bilevel_bench.leaderboard.synthetic import write_synthetic

SHAPE = dict(problems=25, solvers=20, rulesets=("default", "tuned"),
             hardware=("cpu:synthetic-A|threads=1", "cpu:synthetic-B|threads=1"))


THREADS = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

#: one build (or read) in a fresh interpreter, as the CLI runs it; prints wall and CPU seconds
CHILD = """
import sys, time
from bilevel_bench.leaderboard.build import build_site
from bilevel_bench.leaderboard.collect import collect
what, records, site, cache = sys.argv[1:5]
options = {} if cache == "-" else {"cache": cache}  # an older tree may not know the option
t0, c0 = time.perf_counter(), time.process_time()
if what == "collect":
    collect([records], **options)
else:
    build_site([records], site, **options)
print(time.perf_counter() - t0, time.process_time() - c0)
"""


def timed(what: str, records: Path, site: Path, cache: Path | None, repeats: int,
          before=None, tree: str | None = None) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeats`` fresh processes (imports not counted);
    ``before()`` runs before each; ``tree``: import bilevel_bench from that source tree."""
    walls, cpus = [], []
    env = {**os.environ, **THREADS}
    if tree:
        env["PYTHONPATH"] = os.pathsep.join([tree, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for _ in range(repeats):
        if before is not None:
            before()
        out = subprocess.run([sys.executable, "-c", CHILD, what, str(records), str(site),
                              str(cache) if cache else "-"], check=True, capture_output=True,
                             text=True, env=env, cwd=tree).stdout.split()  # -c: cwd first
        walls.append(float(out[-2]))
        cpus.append(float(out[-1]))
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records-dir", help="reuse/keep records here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--seeds", type=int, default=10, help="records = 1,000 x seeds")
    parser.add_argument("--repeats", type=int, default=1, help="builds per figure (median)")
    parser.add_argument("--baseline", metavar="TREE",
                        help="also time the build of another source tree, e.g. a worktree of "
                             "an older commit (`git worktree add /tmp/old COMMIT`)")
    args = parser.parse_args()
    root = Path(args.records_dir or tempfile.mkdtemp(prefix="bench-leaderboard-"))
    records, site, cache = root / "records", root / "site", root / "cache"
    if not records.exists() or not any(records.glob("*.json")):
        t0 = time.perf_counter()
        n = write_synthetic(records, seeds=args.seeds, **SHAPE)
        print(f"wrote {n} synthetic records in {time.perf_counter() - t0:.1f} s")
    new = records / "new"
    shutil.rmtree(new, ignore_errors=True)

    figures = {}
    figures["reading alone (collect, no cache)"] = timed("collect", records, site, None,
                                                         args.repeats)
    if args.baseline:
        figures[f"build by {args.baseline}"] = timed("build", records, site, None, args.repeats,
                                                     tree=args.baseline)
    figures["build, no cache"] = timed("build", records, site, None, args.repeats)
    figures["build filling an empty cache"] = timed(
        "build", records, site, cache, args.repeats,
        before=lambda: shutil.rmtree(cache, ignore_errors=True))
    figures["rebuild from the cache"] = timed("build", records, site, cache, args.repeats)
    # one more seed of every (problem, solver) under one ruleset: 500 records, 1% of 50,000
    added = write_synthetic(new, seeds=1, first_seed=args.seeds,
                            **{**SHAPE, "rulesets": ("default",)})
    figures[f"rebuild after {added} new records"] = timed("build", records, site, cache, 1)
    shutil.rmtree(new, ignore_errors=True)
    pages = len(list(site.glob("*.html")))
    n_records = sum(1 for _ in records.rglob("*.json"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    base = figures["build, no cache"][0]
    print(f"records: {n_records}; pages: {pages}; load average {load:.1f} on "
          f"{os.cpu_count()} cores; median of {args.repeats}")
    for name, (wall, cpu) in figures.items():
        print(f"  {name:42s} {wall:7.2f} s wall {cpu:7.2f} s CPU   ratio {wall / base:5.2f}")
    if not (args.keep or args.records_dir):
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
