"""Scale-out on a real Dask cluster (a local one, with worker processes)."""

from __future__ import annotations

import pytest
from conftest import plugin

from bilevel_bench import load_results
from bilevel_bench.matrix import plan, run_matrix

pytest.importorskip("distributed", reason="the dask extra is not installed")


def test_dask_cluster_runs_a_matrix_with_isolation(tmp_path):
    from bilevel_bench.executors import DaskExecutor
    from bilevel_bench.runner import RunTask

    tasks = plan(["pbgd-free-counterexample"], ["aid-cg"], [0, 1],
                 budget={"seconds": 30.0, "iterations": 200}).tasks
    tasks.append(RunTask("quadratic-small", plugin("KilledSolver")))
    executor = DaskExecutor(workers=2)
    try:
        run_matrix(tasks, tmp_path, executor)
    finally:
        executor.close()
    frame = load_results(tmp_path).set_index("solver")
    assert list(frame.loc["aid-cg", "status"]) == ["converged", "converged"]
    # a SIGKILL far from the memory limit is an error, not oom; the Dask worker survived it
    assert frame.loc["killed", "status"] == "error"
