"""Micro-benchmarks of the runner's overhead and of record writing.

Not part of the default test run (``--benchmark-skip`` in the project's addopts). Run with::

    pytest benchmarks/test_bench_*.py -o addopts="" --benchmark-only --benchmark-autosave

* ``execute``: :func:`bilevel_bench.runner.execute` of one task (v-pbgd on quadratic-small, an
  iteration budget): problem construction, provenance, clock, checkpoints and evaluation;
* ``bare``: the same solver on the same problem, ``init`` plus the same number of ``step`` calls,
  nothing else (``suites.solve.Start.solve``, the loop the asv benchmarks time);
* ``write_record``: :func:`bilevel_bench.results.write_record` of that run's record (atomic
  write with fsync).

The ratios execute / bare (wall) and recorded solver time / bare (clock fidelity) are printed
at the end and stored in ``extra_info`` of the JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bilevel_bench.problem import Budget
from bilevel_bench.provenance import pin_threads
from bilevel_bench.results import write_record
from bilevel_bench.runner import RunTask, execute

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the asv suites' bare loop
from suites.solve import Start  # noqa: E402

pin_threads(1)

TASK = RunTask(problem="quadratic-small", solver="v-pbgd",
               budget=Budget(seconds=None, oracle_cost=None, iterations=100))
MEDIANS: dict[str, float] = {}


@pytest.fixture(scope="module")
def record() -> dict[str, Any]:
    """One record of the task (also fixes the number of iterations the bare loop runs)."""
    return execute(TASK)


@pytest.fixture(scope="module", autouse=True)
def ratio_report(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the runner's overhead and the cost of writing a record, after the module."""
    yield
    lines = []
    if {"execute", "bare"} <= MEDIANS.keys():
        lines.append(f"runner overhead: execute / bare = {MEDIANS['execute'] / MEDIANS['bare']:.2f}"
                     f" ({MEDIANS['execute']:.4f} s / {MEDIANS['bare']:.4f} s)")
    if {"solver_time", "bare"} <= MEDIANS.keys():
        lines.append(f"runner clock fidelity: recorded solver time / bare = "
                     f"{MEDIANS['solver_time'] / MEDIANS['bare']:.2f}")
    if "write_record" in MEDIANS:
        lines.append(f"write_record: {1e3 * MEDIANS['write_record']:.2f} ms per record")
    plugins = request.config.pluginmanager
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
        plugins.get_plugin("terminalreporter").ensure_newline()
        for line in lines:
            plugins.get_plugin("terminalreporter").write_line(line)


def test_execute(benchmark, record: dict[str, Any]) -> None:
    benchmark.group = "runner"
    result = benchmark.pedantic(execute, args=(TASK,), rounds=5, iterations=1, warmup_rounds=1)
    assert result["status"] in ("budget", "converged"), result["error"]
    MEDIANS["execute"] = benchmark.stats.stats.median
    summary = result["summary"]
    MEDIANS["solver_time"] = summary["solver_time"]
    benchmark.extra_info.update(
        iterations=summary["iterations"], checkpoints=len(result["trace"]),
        solver_time=summary["solver_time"], evaluation_time=summary["evaluation_time"])


def test_bare(benchmark, record: dict[str, Any]) -> None:
    benchmark.group = "runner"
    start = Start.of(TASK)
    iterations = record["summary"]["iterations"]
    benchmark.pedantic(start.solve, args=(iterations,), rounds=5, iterations=1, warmup_rounds=1)
    MEDIANS["bare"] = benchmark.stats.stats.median
    benchmark.extra_info["iterations"] = iterations
    if "execute" in MEDIANS:
        benchmark.extra_info["execute_over_bare"] = MEDIANS["execute"] / MEDIANS["bare"]


def test_write_record(benchmark, record: dict[str, Any], tmp_path: Path) -> None:
    benchmark.group = "records"
    path = benchmark(write_record, tmp_path, record)
    MEDIANS["write_record"] = benchmark.stats.stats.median
    benchmark.extra_info.update(bytes=path.stat().st_size, checkpoints=len(record["trace"]))
