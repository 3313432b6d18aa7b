"""Scale-out backends keep the runner's guarantees: a Dask matrix with no worker left fails with
a message (no endless wait), a Dask worker that dies leaves no process of its run behind, and
the submitit backend (its local executor here, SLURM on a cluster) contains each run as
LocalPool does."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import plugin
from test_containment import assert_no_survivor, noted

from bilevel_bench.problem import Budget
from bilevel_bench.runner import RunTask
from bilevel_bench.sandbox import alive

FAST = Budget(seconds=None, iterations=40)  # work, not CPU speed, bounds a test run


def test_dask_with_no_worker_left_fails_with_a_message():
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    from distributed import LocalCluster

    from bilevel_bench.executors import DaskExecutor, NoWorkerError

    cluster = LocalCluster(n_workers=0, processes=True, dashboard_address=None)
    executor = DaskExecutor(address=cluster.scheduler_address, no_worker_timeout=2.0)
    try:
        with pytest.raises(NoWorkerError, match="no Dask worker left for 2 s with 1 run"):
            executor.map([RunTask("quadratic-small", "aid-cg", budget=FAST)], print)
    finally:
        executor.close()
        cluster.close()


@pytest.mark.slow
def test_a_dead_dask_worker_leaves_no_process(pids):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    import threading

    from bilevel_bench.executors import DaskExecutor

    executor = DaskExecutor(workers=1, no_worker_timeout=60.0)
    task = RunTask("quadratic-small", plugin("BusyWithDetachedChild", "hostile_solvers.py"),
                   timeout=8.0)
    records: list[dict] = []
    thread = threading.Thread(target=executor.map, args=([task], records.append))
    try:
        thread.start()
        deadline = time.monotonic() + 600  # generous: a dask cluster starts slowly when busy
        while not (noted(pids, "busy") and noted(pids, "detached")):
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        first = noted(pids)
        for pid in executor.client.run(os.getpid).values():  # the Dask worker process
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in first) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in first if alive(p)], "a process of the dead worker's run survived"
        thread.join(timeout=600)  # the nanny restarts the worker; the run is retried
        assert not thread.is_alive() and len(records) == 1
        assert records[0]["status"] in ("timeout", "error")
    finally:
        executor.close()
    assert_no_survivor(pids)


@pytest.mark.slow
def test_submitit_local_executor_contains_each_run(tmp_path, pids):
    pytest.importorskip("submitit", reason="the slurm extra is not installed")
    from bilevel_bench.executors import SubmititExecutor

    executor = SubmititExecutor(tmp_path / "submitit", cluster="local")
    tasks = [RunTask("pbgd-free-counterexample", "aid-cg",
                     budget=Budget(seconds=None, iterations=400)),
             RunTask("quadratic-small", plugin("ExactPeek", "hostile_solvers.py"), budget=FAST),
             RunTask("quadratic-small", plugin("DetachedChild", "hostile_solvers.py"),
                     budget=FAST)]
    records: list[dict] = []
    executor.map(tasks, records.append)
    runs = {r["solver"]["name"]: r for r in records}
    assert runs["aid-cg"]["status"] == "converged"
    assert runs["exact-peek"]["status"] == "error"
    assert "problem._exact" in runs["exact-peek"]["error"]["message"]
    assert runs["detached-child"]["status"] == "budget"
    assert runs["detached-child"]["isolation"]["killed_leftover_processes"] >= 1
    assert noted(pids, "detached")
    assert_no_survivor(pids)
