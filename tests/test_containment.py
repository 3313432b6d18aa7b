"""Fault injection: hostile solver plugins (tests/plugins/hostile_solvers.py) against the local
pool. Each test asserts the recorded status, that the other runs complete, and that no process
of any run survives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import torch
from conftest import plugin

from bilevel_bench import landlock
from bilevel_bench.executors import LocalPool
from bilevel_bench.problem import Budget
from bilevel_bench.registry import get_problem
from bilevel_bench.results import validate_record
from bilevel_bench.runner import DataChecksum, RunTask, describe_problem
from bilevel_bench.sandbox import NO_LANDLOCK_ENV, alive, private_tmp

FAST = Budget(seconds=None, iterations=40)  # work, not CPU speed, bounds a test run
QUAD = "quadratic-small"


def hostile(name: str) -> str:
    return plugin(name, "hostile_solvers.py")


def noted(folder: Path, tag: str = "") -> list[int]:
    return [int(p.name.rsplit(".", 1)[1]) for p in folder.iterdir() if p.name.startswith(tag)]


def assert_no_survivor(folder: Path) -> None:
    deadline = time.monotonic() + 5
    while any(alive(p) for p in noted(folder)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in noted(folder) if alive(p)], "a process of a run survived it"
    left = [c for c in psutil.Process().children(recursive=True) if c.is_running()
            and c.status() != psutil.STATUS_ZOMBIE
            and not {"resource_tracker", "forkserver"} & set(" ".join(
                c.cmdline()).replace(".", " ").split())]  # multiprocessing's own helpers
    assert not left, f"processes left behind: {[c.cmdline() for c in left]}"


def run_all(tasks: list[RunTask], workers: int = 2) -> dict[str, dict]:
    records: list[dict] = []
    LocalPool(workers=workers).map(tasks, records.append)
    assert len(records) == len(tasks)
    assert all(validate_record(r) == [] for r in records)
    return {f"{r['solver']['name']}@{r['problem']['name']}" if r["solver"]["name"] in runs_of
            else r["solver"]["name"]: r for r in records}


#: solvers run on several instances in one matrix: keyed by solver@instance
runs_of = {"aid-cg"}
LANDLOCK = landlock.unavailable()
needs_landlock = pytest.mark.skipif(bool(LANDLOCK), reason=f"Landlock unavailable: {LANDLOCK}")


def test_evaluation_is_out_of_the_solvers_reach(pids):
    names = ["ExactPeek", "GcPeek", "FramePeek", "Float32Answer", "Int64Answer",
             "LiesOnTheWire"]
    tasks = [RunTask(QUAD, hostile(n), budget=FAST) for n in names]
    tasks.append(RunTask("pbgd-free-counterexample", "aid-cg",
                         budget=Budget(seconds=None, iterations=400)))
    runs = run_all(tasks)
    assert runs["aid-cg@pbgd-free-counterexample"]["status"] == "converged"
    peek = runs["exact-peek"]
    assert peek["status"] == "error" and "problem._exact" in peek["error"]["message"]
    assert "_exact" in peek["isolation"]["removed"]
    gc_peek = runs["gc-peek"]  # found nothing on the heap: an honest LL-only run
    assert gc_peek["status"] == "budget" and gc_peek["summary"]["rungs_reached"] == 0
    frame = runs["frame-peek"]
    assert frame["status"] == "error" and frame["error"]["type"] == "EvaluationOnlyError"
    for name in ("float32-answer", "int64-answer", "lies-on-the-wire"):
        assert runs[name]["status"] == "error", name
        assert "dtype" in runs[name]["error"]["message"], name
    assert_no_survivor(pids)


def test_a_patch_does_not_survive_its_run(pids):
    tasks = [RunTask(QUAD, hostile("EvaluatePatcher"), budget=FAST),
             RunTask(QUAD, plugin("GoodSolver"), budget=FAST)]
    runs = run_all(tasks, workers=1)  # same worker, one after the other
    for name in ("evaluate-patcher", "good"):
        run = runs[name]
        assert run["status"] == "budget", name
        assert all(r["metrics"]["ul_gap"] > 1e-3 for r in run["trace"]), name
    assert_no_survivor(pids)


def test_crashes_and_strays_are_contained(pids):
    tasks = [RunTask(QUAD, hostile(n), budget=FAST, timeout=t) for n, t in [
        ("UnprintableError", None), ("BusyLoop", 3.0), ("ForkThenCrash", 60.0),
        ("DetachedChild", None), ("DoubleFork", None), ("ExitsEarly", None)]]
    tasks.append(RunTask(QUAD, plugin("KilledSolver"), budget=FAST))
    runs = run_all(tasks)
    unprintable = runs["unprintable-error"]
    assert unprintable["status"] == "error"
    assert unprintable["error"]["type"] == "_Unprintable"
    assert "unprintable" in unprintable["error"]["message"]
    assert runs["busy-loop"]["status"] == "timeout"
    assert "s of solver CPU time" in runs["busy-loop"]["error"]["message"]  # the CPU limit
    crash = runs["fork-then-crash"]  # the forked child holds the channel: no full timeout
    assert crash["status"] == "error" and "code 3" in crash["error"]["message"]
    assert crash["summary"]["wall_time"] < 30
    for name in ("detached-child", "double-fork"):
        assert runs[name]["status"] == "budget", name
    assert runs["detached-child"]["isolation"]["killed_leftover_processes"] >= 1
    assert runs["exits-early"]["status"] == "error"
    assert runs["exits-early"]["error"]["type"] == "SystemExit"
    killed = runs["killed"]
    assert killed["status"] == "error" and "killed by signal 9" in killed["error"]["message"]
    assert noted(pids, "busy") and noted(pids, "forked") and noted(pids, "detached") \
        and noted(pids, "daemon")
    assert_no_survivor(pids)


ORCHESTRATOR = textwrap.dedent("""
    import sys
    from bilevel_bench.executors import LocalPool
    from bilevel_bench.runner import RunTask
    if __name__ == "__main__":
        LocalPool(workers=1).map([RunTask("quadratic-small", sys.argv[1], timeout=600)],
                                 print)
""")


def test_kill_9_of_the_orchestrator_kills_every_process_of_its_runs(pids, tmp_path):
    script = tmp_path / "orchestrate.py"
    script.write_text(ORCHESTRATOR)
    proc = subprocess.Popen([sys.executable, str(script), hostile("BusyWithDetachedChild")],
                            cwd=Path(__file__).parent, env={**os.environ, "PYTHONPATH": str(
                                Path(__file__).parent)})
    deadline = time.monotonic() + 120
    while not (noted(pids, "busy") and noted(pids, "detached")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    workers = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(alive(w.pid) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w.pid for w in workers if alive(w.pid)]
    assert_no_survivor(pids)


@needs_landlock
def test_data_files_and_the_evaluator_are_out_of_the_solvers_reach(pids, tmp_path, monkeypatch):
    data = tmp_path / "data"  # the data directory, under the temporary folder
    data.mkdir()
    (data / "held-out.csv").write_text("1,2,3\n")
    monkeypatch.setenv("BILEVEL_BENCH_DATA", str(data))
    names = ["ReadsDataDir", "ReadsBundledData", "ReadsEvaluatorMemory",
             "UsesScratchAndImports", "HiddenWork"]
    scoped = landlock.abi_version() >= 6  # signals scoped to the run's Landlock domain
    tasks = [RunTask(QUAD, hostile(n), budget=FAST) for n in names + ["KillsEvaluator"] * scoped]
    tasks += [RunTask(QUAD, "aid-cg", budget=FAST),
              RunTask("hyper-cleaning-digits", "aid-cg", budget=FAST),
              RunTask("svm-ho-wdbc", "blocc", budget=FAST)]
    runs = run_all(tasks)
    for name in ["reads-data-dir", "reads-bundled-data", "reads-evaluator-memory"] + \
            ["kills-evaluator"] * scoped:
        assert runs[name]["status"] == "error", name
        assert runs[name]["error"]["type"] == "PermissionError", name
    assert "held-out.csv" in runs["reads-data-dir"]["error"]["message"]
    assert "digits.csv.gz" in runs["reads-bundled-data"]["error"]["message"]
    for name in ("uses-scratch-and-imports", "aid-cg@quadratic-small",
                 "aid-cg@hyper-cleaning-digits", "blocc"):
        run = runs[name]
        assert run["status"] in ("budget", "converged"), (name, run["error"])
        assert run["isolation"]["fs_restriction"] == "landlock", name
        assert run["summary"]["clock_check"] == "ok", (name, run["isolation"]["clock_check"])
    confined = runs["aid-cg@quadratic-small"]["isolation"]["landlock"]
    assert {"data directory", "sklearn bundled data"} <= set(confined["denied"])
    assert confined["private_tmp"] and confined["threads_before"] == 0
    hidden = runs["hidden-work"]
    assert hidden["status"] == "budget" and hidden["summary"]["clock_check"].startswith("flagged")
    assert hidden["summary"]["solver_cpu_external"] > hidden["summary"]["solver_time"] + 1.2
    assert_no_survivor(pids)
    assert not [p for p in noted(pids, "scratch") if os.path.exists(private_tmp(p))]


@pytest.mark.parametrize("fs", ["landlock", "none"])
def test_a_solver_process_cannot_rebuild_its_problem(pids, monkeypatch, fs):
    if fs == "landlock" and LANDLOCK:
        pytest.skip(f"Landlock unavailable: {LANDLOCK}")
    if fs == "none":  # the guard holds without Landlock
        monkeypatch.setenv(NO_LANDLOCK_ENV, "1")
    touched = {"RebuildsThroughRegistry": "registry.get_problem('quadratic-small').make()",
               "RebuildsThroughFamily": "HyperCleaning(...)",
               "LoadsDataset": "bilevel_bench.data.load()"}
    tasks = [RunTask(QUAD, hostile(n), budget=FAST) for n in touched]
    tasks.append(RunTask(QUAD, plugin("GoodSolver"), budget=FAST))
    runs = run_all(tasks)
    for run, what in zip([runs[t] for t in ("rebuilds-through-registry",
                                            "rebuilds-through-family", "loads-dataset")],
                         touched.values(), strict=True):
        assert run["status"] == "error" and run["error"]["type"] == "EvaluationOnlyError"
        assert f"touched {what}" in run["error"]["message"]
        assert "evaluation-only" in run["error"]["message"]
    good = runs["good"]
    assert good["status"] == "budget" and good["summary"]["clock_check"] == "ok"
    assert good["isolation"]["fs_restriction"].startswith(fs)
    assert_no_survivor(pids)


class _Stub:
    def __init__(self, **tensors):
        self.tensors = tensors

    def data_tensors(self):
        return dict(self.tensors)


def test_integrity_checks_stay_cheap_at_scale(monkeypatch):
    big = torch.randn(2000, 1000, dtype=torch.float64)  # sampled, not summed whole
    stub = _Stub(A=big, b=torch.zeros(10))
    check = DataChecksum(stub)
    assert list(check.positions) == ["A"] and check.changed() == []
    big.mul_(1.0001)
    assert check.changed() == ["A"]
    stub.tensors["b"] = torch.ones(10)
    assert check.changed() == ["A", "b"]
    # data fingerprints: once per (instance, seed) in a worker, not once per run
    # (building an instance checks its pinned fingerprints: both builds come first)
    problem, twin = get_problem(QUAD).make(seed=3), get_problem(QUAD).make(seed=3)
    family = type(problem)
    calls = []
    original = family.data_fingerprints
    monkeypatch.setattr(family, "data_fingerprints",
                        lambda self: calls.append(1) or original(self))
    task = RunTask(QUAD, "aid-cg", seed=3)
    first = describe_problem(problem, task)
    again = describe_problem(twin, task)
    assert len(calls) == 1 and first == again
    assert first["dataset_fingerprints"] == original(problem)
