"""The runner and the executors: statuses, fault isolation, streamed traces, records, resume."""

from __future__ import annotations

import json
import math
import shutil
import time

import pytest
import torch
from conftest import plugin

from bilevel_bench import load_results
from bilevel_bench.errors import ResultsError
from bilevel_bench.executors import LocalPool
from bilevel_bench.matrix import plan, run_matrix
from bilevel_bench.problem import Budget
from bilevel_bench.registry import get_problem
from bilevel_bench.results import iter_records, validate_record, write_record
from bilevel_bench.runner import RunTask, execute

FAST = Budget(seconds=None, iterations=300)  # work, not CPU speed, bounds a test run


def run(solver: str, problem: str = "quadratic-small", **kw) -> dict:
    return execute(RunTask(problem=problem, solver=solver, budget=kw.pop("budget", FAST), **kw))


def test_converged_record_is_complete_and_self_describing():
    record = run("aid-cg", "pbgd-free-counterexample")
    assert validate_record(record) == []
    assert record["status"] == "converged" and record["error"] is None
    s = record["summary"]
    assert s["converged"] and s["time_to_target"] > 0 and s["oracles_to_target"] > 0
    # the first checkpoint that meets the target defines time-to-target
    hit = next(r for r in record["trace"] if r["metrics"]["ul_gap"] <= record["problem"]["target"])
    assert hit["time"] == s["time_to_target"] and hit["iteration"] == s["iterations_to_target"]
    iterations = [r["iteration"] for r in record["trace"]]
    assert iterations[0] == 0 and iterations == sorted(set(iterations))
    times = [r["time"] for r in record["trace"]]
    assert times == sorted(times)
    entry = get_problem("pbgd-free-counterexample")
    assert record["problem"]["version"] == entry.family.version
    assert record["problem"]["target"] == entry.instance.target
    assert len(record["solver"]["source_sha256"]) == 64
    assert record["solver"]["hyperparameters"]["cg_steps"] == 10  # defaults recorded
    assert record["versions"]["torch"] and record["hardware"]["class"]
    assert json.loads(json.dumps(record)) == record  # plain JSON


def test_checkpoints_are_log_spaced():
    record = run("v-pbgd", budget=Budget(seconds=None, iterations=500),
                 hyperparameters={"inner_steps": 1})
    assert record["status"] == "budget" and record["summary"]["iterations"] == 500
    iterations = [r["iteration"] for r in record["trace"]]
    assert iterations[-1] == 500  # the final state is always evaluated
    assert {1, 2, 3, 9, 11, 20} <= set(iterations) and 10 not in iterations
    # 20 per decade of iterations only (machine-independent), not one per step
    assert len(iterations) <= 20 * math.log10(500) + 3 < 500


def test_oracle_budget_stops_the_run():
    record = run("aid-cg", budget=Budget(seconds=None, oracle_cost=500, iterations=None))
    assert record["status"] == "budget"
    assert 500 <= record["summary"]["oracle_cost"] < 600  # at most one step past the budget


def test_diverged():
    record = run(plugin("NaNSolver"))
    assert record["status"] == "diverged" and "non-finite" in record["error"]["message"]


def test_exception_in_step_keeps_the_trace():
    record = run(plugin("RaisingSolver"))
    assert record["status"] == "error"
    assert "deliberate failure" in record["error"]["traceback"]
    assert record["trace"] and record["trace"][0]["iteration"] == 0


def test_wrong_shape_is_a_clear_error():
    record = run(plugin("WrongShapeSolver"))
    assert record["status"] == "error"
    assert "shape (11,)" in record["error"]["message"] and "expects (10,)" in \
        record["error"]["message"]


def test_memory_exhaustion_is_out_of_memory():
    record = run(plugin("MemoryHogSolver"))
    assert record["status"] == "oom"


def test_data_mutation_is_detected():
    record = run(plugin("MutatingSolver"), budget=Budget(iterations=3))
    assert record["status"] == "error" and "modified problem data" in record["error"]["message"]


def test_incompatible_or_unknown_inputs_become_error_records():
    record = run("aid-cg", "blocc-toy1")
    assert record["status"] == "error" and "coupled_constraints" in record["error"]["message"]
    record = run("aid-cg", hyperparameters={"outer_lrr": 0.1})
    assert "did you mean 'outer_lr'" in record["error"]["message"]


def test_pool_survives_hangs_crashes_and_keeps_partial_traces(results_dir):
    tasks = [
        RunTask("quadratic-small", plugin("HangingSolver"), timeout=4.0, budget=FAST),
        RunTask("quadratic-small", plugin("KilledSolver"), budget=FAST),
        RunTask("pbgd-free-counterexample", "aid-cg", budget=FAST),
    ]
    seen = []
    run_matrix(tasks, results_dir, LocalPool(workers=2), on_record=lambda r, p: seen.append(r))
    by_solver = {r["solver"]["name"]: r for r in seen}
    hang, killed, good = by_solver["hanging"], by_solver["killed"], by_solver["aid-cg"]
    # a hang uses no CPU: the wall-clock backstop (3 x the 4 CPU s limit) stops it
    assert hang["status"] == "timeout" and "backstop" in hang["error"]["message"]
    assert [r["iteration"] for r in hang["trace"]][:2] == [0, 1]  # streamed before the kill
    assert hang["problem"]["version"] == "2"  # the header arrived before the hang
    # a SIGKILL far from any memory limit is an error, not "oom"
    assert killed["status"] == "error" and "killed by signal 9" in killed["error"]["message"]
    assert killed["trace"] and good["status"] == "converged"
    assert len(list(results_dir.glob("*.json"))) == 3
    assert all(validate_record(r) == [] for r in seen)


def test_resume_skips_recorded_runs_and_records_merge_by_copying(tmp_path):
    the_plan = plan(["pbgd-free-counterexample"], ["aid-cg"], [0, 1],
                    budget={"seconds": 2.0})
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_matrix(the_plan.tasks, first, LocalPool(workers=1)) == []
    again = run_matrix(the_plan.tasks, first, LocalPool(workers=1))
    assert sorted(again) == sorted(t.run_id() for t in the_plan.tasks)
    shutil.copytree(first, second)
    frame = load_results(first, second)
    assert len(frame) == 4 and set(frame["seed"]) == {0, 1}


def test_incompatible_combinations_are_skipped_by_capability():
    # svm-ho-wdbc declares its constraints per instance (n_constraints set in __init__)
    the_plan = plan(["blocc-toy1", "vpbgd-toy", "svm-ho-wdbc"], ["aid-cg"], [0])
    assert [t.problem for t in the_plan.tasks] == ["vpbgd-toy"]
    assert [s[:2] for s in the_plan.skipped] == [("blocc-toy1", "aid-cg"),
                                                 ("svm-ho-wdbc", "aid-cg")]


def test_unwritable_results_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    the_plan = plan(["vpbgd-toy"], ["aid-cg"], [0])
    with pytest.raises(ResultsError, match="not writable"):
        run_matrix(the_plan.tasks, blocker / "results", LocalPool())


def test_loader_reports_corrupt_and_foreign_files(tmp_path):
    record = run("aid-cg", "pbgd-free-counterexample")
    write_record(tmp_path, record)
    (tmp_path / "corrupt.json").write_text('{"schema": "bilevel-bench/run-rec')
    (tmp_path / "foreign.json").write_text('{"hello": "world"}')
    newer = dict(record, schema_version=99, run_id="x")
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    with pytest.warns(UserWarning, match="skipped 3"):
        frame = load_results(tmp_path)
    assert len(frame) == 1 and frame.loc[0, "status"] == "converged"
    reasons = dict((p.rsplit("/", 1)[-1], r) for p, r in frame.attrs["skipped"])
    assert "unreadable JSON" in reasons["corrupt.json"]
    assert "not a bilevel-bench run record" in reasons["foreign.json"]
    assert "unsupported schema_version 99" in reasons["newer.json"]
    assert sum(1 for _, rec, _ in iter_records(tmp_path) if rec) == 1
    assert math.isfinite(frame.loc[0, "final_ul_gap"])


SLOW = plugin("SlowEvaluation", "slow_problems.py") + ":slow-evaluation"  # 50 ms evaluations


class _SlowMachine:
    """A CPU clock running ``factor`` times faster than the real one: the same work reads as
    ``factor`` times more solver seconds, as on a slower machine."""

    def __init__(self, factor: float) -> None:
        self.factor, self.start = factor, time.process_time()

    def __call__(self) -> float:
        return self.start + self.factor * (time.process_time() - self.start)


def test_oracle_clock_figures_do_not_depend_on_machine_speed():
    task = RunTask(problem="quadratic-small", solver="aid-cg", seed=3,
                   budget=Budget(seconds=None, iterations=400))
    fast = execute(task)
    slow = execute(task, cpu_time=_SlowMachine(7.0))
    for key in ("iterations", "oracle_cost", "oracles_to_target", "iterations_to_target",
                "rungs_reached", "converged"):
        assert fast["summary"][key] == slow["summary"][key], key
    assert [r["iteration"] for r in fast["trace"]] == [r["iteration"] for r in slow["trace"]]
    assert [h and h["oracle_cost"] for h in fast["summary"]["ladder_hits"]] == \
        [h and h["oracle_cost"] for h in slow["summary"]["ladder_hits"]]
    assert slow["summary"]["solver_time"] > 3 * fast["summary"]["solver_time"]


def test_cpu_seconds_budget_counts_the_solver_process_only():
    # a solver that sleeps uses wall time but no CPU: the CPU-seconds budget is not consumed
    record = run(plugin("Sleepy"), "quadratic-small", budget=Budget(seconds=0.05, iterations=30))
    s = record["summary"]
    assert record["status"] == "budget" and s["iterations"] == 30
    assert s["solver_wall_time"] >= 30 * 0.005 > s["solver_time"]


def test_ladder_hits_are_the_first_gated_checkpoints_of_each_rung():
    record = run("aid-cg", "quadratic-small", budget=Budget(seconds=None, iterations=2000))
    ladder, hits = record["problem"]["ladder"], record["summary"]["ladder_hits"]
    assert len(ladder) == 10 and ladder[-1] == record["problem"]["target"]
    assert ladder == sorted(ladder, reverse=True)  # lower is better: decreasing rungs
    start = record["start_metrics"]["ul_gap"]
    assert ladder[0] < start and ladder[0] == pytest.approx(start * (1e-6 / start) ** 0.1)
    assert record["status"] == "converged" and all(hits)
    for rung, hit in zip(ladder, hits, strict=True):
        first = next(r for r in record["trace"]
                     if r["gate"] and r["metrics"]["ul_gap"] <= rung)
        assert (hit["iteration"], hit["oracle_cost"]) == (first["iteration"], first["oracle_cost"])
    iterations = [h["iteration"] for h in hits]
    assert iterations == sorted(iterations)


def test_a_checkpoint_counts_only_when_it_passes_the_ll_gate():
    gated = plugin("GatedQuadratic", "slow_problems.py") + ":gated-quadratic"
    record = run("aid-cg", gated, budget=Budget(seconds=None, iterations=2000))
    assert record["problem"]["ll_gate"]["metric"] == "ll_gap"
    target = record["problem"]["target"]
    met = [r for r in record["trace"] if r["metrics"]["ul_gap"] <= target]
    # the UL target is met before the LL is solved to the gate's tolerance: those checkpoints
    # do not count, and the first one that passes the gate defines iterations-to-target
    assert met and not met[0]["gate"]
    first = next(r for r in met if r["gate"])
    assert record["summary"]["iterations_to_target"] == first["iteration"] > met[0]["iteration"]
    bound = 1e-8 * record["start_metrics"]["ll_gap"]
    assert all((r["metrics"]["ll_gap"] <= bound) == r["gate"] for r in record["trace"])


def test_evaluation_time_does_not_count_against_the_hard_timeout():
    # ~100 uncapped checkpoints x 50 ms of evaluation, far beyond the 1.5 s hard timeout
    task = RunTask(problem=SLOW, solver="v-pbgd", budget=Budget(seconds=0.3), timeout=1.5,
                   hyperparameters={"inner_steps": 1})
    records: list[dict] = []
    LocalPool(workers=1).map([task], records.append)
    (record,) = records
    assert record["status"] == "budget", record["error"]
    assert record["summary"]["evaluation_time"] > 1.5


@pytest.mark.parametrize("problem,solver", [("quadratic-small", "soba"),
                                            ("svm-ho-wdbc", "lv-hba")])
def test_warm_up_before_the_clock_changes_nothing(monkeypatch, problem, solver):
    """The warm-up before the solver clock (first autograd calls, uncounted, on a throw-away
    point) leaves the trajectory, the counts and the problem's data as they were."""
    from bilevel_bench import runner

    instance = get_problem(problem).make(seed=0)
    before = {k: t.clone() for k, t in instance.data_tensors().items()}
    runner.warm_up(instance)
    assert all(torch.equal(before[k], t) for k, t in instance.data_tensors().items())
    budget = Budget(seconds=None, oracle_cost=None, iterations=3)
    warm = run(solver, problem, budget=budget)
    monkeypatch.setattr(runner, "warm_up", lambda problem: None)
    cold = run(solver, problem, budget=budget)
    assert warm["status"] == cold["status"] == "budget"
    for a, b in zip(warm["trace"], cold["trace"], strict=True):
        assert a["metrics"] == b["metrics"] and a["counts"] == b["counts"]
        assert a["oracle_cost"] == b["oracle_cost"] and a["samples"] == b["samples"]


def test_a_cuda_problem_carries_the_device_index_its_tensors_report(monkeypatch):
    """Tensors on the GPU report ``cuda:0``; a problem built for ``"cuda"`` must say
    ``cuda:0`` too, or every solution is refused as being on the wrong device (found on the
    first GPU run: all 33 llm-tiny runs ended in that error)."""
    from bilevel_bench.problem import resolve_device

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("cpu") == torch.device("cpu")
    assert torch.empty(0, device="meta").device == resolve_device("meta")


def test_workers_start_from_the_fork_server_with_the_orchestrators_environment(monkeypatch):
    """Pools of this process fork their workers from one fork server (imports paid once), and
    each worker still runs with the orchestrator's environment of its start (not the server's)
    and its pool's thread count (another count than the server's: spawned workers)."""
    import multiprocessing as mp

    from bilevel_bench import executors

    task = RunTask("quadratic-small", plugin("EnvironmentEcho"), budget=Budget(iterations=3))
    for value, threads in (("first", 1), ("second", 1), ("third", 2)):
        monkeypatch.setenv("BILEVEL_BENCH_TEST_ECHO", value)
        records: list[dict] = []
        LocalPool(workers=1, threads=threads).map([task], records.append)
        assert records[0]["status"] == "error"
        assert records[0]["error"]["message"].endswith(f"echo={value} threads={threads}")
    if "forkserver" in mp.get_all_start_methods():
        served = executors._forkserver_threads
        assert executors.worker_context(served).get_start_method() == "forkserver"
        assert executors.worker_context(served + 1).get_start_method() == "spawn"


def test_a_new_problem_version_is_a_new_run(monkeypatch):
    """Resume skips recorded run ids: a version bump (new data or target) must change the id,
    or an upgraded instance would keep the records of the old one."""
    task = RunTask("quadratic-small", "aid-cg", budget=FAST)
    before = task.run_id()
    monkeypatch.setattr(get_problem("quadratic-small").family, "version", "99")
    assert task.run_id() != before


def test_records_say_whether_the_solver_is_a_canary():
    canary = run("direct-mixing", "quadratic-small", budget=Budget(seconds=None, iterations=2))
    real = run("aid-cg", "quadratic-small", budget=Budget(seconds=None, iterations=2))
    assert canary["solver"]["canary"] is True and real["solver"]["canary"] is False
