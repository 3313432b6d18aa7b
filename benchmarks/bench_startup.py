"""Start-up costs, measured side by side in one run: the CLI's light commands, and workers.

1. ``bilevel-bench --help``, ``--version`` and ``list problems|solvers|suites``: wall-clock
   seconds of the command (median and range of ``--repeats``; goal: under 1.5 s each on an
   idle machine). ``--help`` and ``--version`` import no torch; ``list`` imports torch and the
   plugins, nothing heavier (SciPy's optimisers and pyarrow are imported where they are used).
2. Local workers, started as :class:`~bilevel_bench.executors.LocalPool` starts them, until each
   is ready for its first run: forked from the fork server (``worker_context``: the server
   imports ``WORKER_PRELOAD`` once) vs one spawned interpreter per worker (each imports
   everything itself). Reported per variant: wall seconds until all ``--workers`` are ready, and
   the CPU seconds of the whole process tree that start-up took (workers, their run templates,
   the fork server; read from /proc with psutil before anything exits). The fork server's
   first start is reported apart: every later pool (and every worker replaced after a timeout,
   crash or OOM) forks from a server already running, which is the ``forked`` row.

Usage:  python benchmarks/bench_startup.py [--repeats 5] [--workers 2]
Run on an idle machine: wall-clock figures are the point of (1).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import psutil  # noqa: E402

from bilevel_bench.executors import LocalPool  # noqa: E402

COMMANDS = (["--help"], ["--version"], ["list", "problems"], ["list", "solvers"],
            ["list", "suites"])


def cli_seconds(args: list[str]) -> float:
    exe = shutil.which("bilevel-bench") or os.path.join(os.path.dirname(sys.executable),
                                                        "bilevel-bench")
    start = time.perf_counter()
    subprocess.run([exe, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def tree_cpu(exclude: set[int]) -> float:
    """CPU seconds (user + system) of this process's descendants not in ``exclude``."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        if child.pid in exclude:
            continue
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def start_workers(workers: int, spawn: bool, server: set[int]) -> tuple[float, float]:
    """(wall seconds until ``workers`` workers are ready, CPU seconds of their start-up)."""
    pool = LocalPool(workers=workers)
    if spawn:
        pool.context = mp.get_context("spawn")
    start = time.perf_counter()
    started = [pool._spawn() for _ in range(workers)]
    for worker in started:
        pool._await_ready(worker)
    wall = time.perf_counter() - start
    cpu = tree_cpu(exclude=server)
    for worker in started:
        worker.stop()
    return wall, cpu


def forkserver_pids() -> set[int]:
    return {c.pid for c in psutil.Process().children()
            if "forkserver" in " ".join(c.cmdline())}


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    print(f"1. CLI, wall seconds, median (min-max) of {args.repeats} (goal < 1.5 s idle)")
    for command in COMMANDS:
        times = [cli_seconds(command) for _ in range(args.repeats)]
        print(f"   bilevel-bench {' '.join(command):16s} {summary(times)}")

    print(f"\n2. {args.workers} local workers until ready, median (min-max) of {args.repeats}")
    before = tree_cpu(exclude=set())
    wall, _ = start_workers(args.workers, spawn=False, server=set())
    server = forkserver_pids()
    first_cpu = tree_cpu(exclude=set()) - before
    print(f"   first pool of the process (starts the fork server): wall {wall:.2f} s, "
          f"CPU {first_cpu:.2f} s")
    rows: dict[str, list[tuple[float, float]]] = {"forked": [], "spawned": []}
    for _ in range(args.repeats):
        rows["forked"].append(start_workers(args.workers, spawn=False, server=server))
        rows["spawned"].append(start_workers(args.workers, spawn=True, server=server))
    for name, values in rows.items():
        walls, cpus = [v[0] for v in values], [v[1] for v in values]
        print(f"   {name:8s} wall {summary(walls)} s   CPU {summary(cpus)} s")
    ratio_wall = [f[0] / s[0] for f, s in zip(rows["forked"], rows["spawned"], strict=True)]
    ratio_cpu = [f[1] / s[1] for f, s in zip(rows["forked"], rows["spawned"], strict=True)]
    print(f"   forked / spawned: wall {summary(ratio_wall)}, CPU {summary(ratio_cpu)}")


if __name__ == "__main__":
    main()
