"""Records that cannot lie about themselves: resume validates, concurrent commands share the
work, loading survives hostile files, and the solver's source is named without local paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import plugin

from bilevel_bench import load_results
from bilevel_bench.executors import InlineExecutor
from bilevel_bench.matrix import plan, run_matrix
from bilevel_bench.results import MAX_DEPTH, REJECTED, iter_records, json_depth_exceeds, read_record

TASKS = plan(["pbgd-free-counterexample"], ["aid-cg"], [0, 1], budget={"iterations": 30}).tasks


def test_resume_reruns_a_truncated_record_and_keeps_it_aside(tmp_path):
    run_matrix(TASKS, tmp_path, InlineExecutor())
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 2
    files[0].write_text(files[0].read_text()[:200])  # truncated
    record = json.loads(files[1].read_text())
    record["run_id"] = "0" * 16  # a record that is not the run its name says
    files[1].write_text(json.dumps(record))
    ran: list[str] = []
    skipped = run_matrix(TASKS, tmp_path, InlineExecutor(), on_record=lambda r, p: ran.append(
        r["run_id"]))
    assert skipped == [] and sorted(ran) == sorted(t.run_id() for t in TASKS)
    aside = tmp_path / REJECTED
    assert sorted(p.name for p in aside.glob("*.json")) == [f.name for f in files]
    reasons = [p.read_text() for p in sorted(aside.glob("*.reason"))]
    assert "unreadable JSON" in reasons[0] and "run id" in reasons[1]
    assert all(read_record(f, tmp_path)[0] for f in files)  # re-run and valid again
    assert len(load_results(tmp_path)) == 2  # the set-aside files are not read as results


def nested(depth: int, leaf: object = 1) -> object:
    """``depth`` containers, dicts and lists alternating, around ``leaf``."""
    value = leaf
    for level in range(depth):
        value = {"k": value, "n": 0.5} if level % 2 else [0, value, "s"]
    return value


def test_json_depth_limit_is_exact():
    assert not json_depth_exceeds(nested(MAX_DEPTH))
    assert json_depth_exceeds(nested(MAX_DEPTH + 1))
    assert json_depth_exceeds(nested(MAX_DEPTH, leaf={}))  # an empty container counts
    assert not json_depth_exceeds(3.0) and not json_depth_exceeds([[1], {"a": [2]}], limit=3)
    assert json_depth_exceeds([[1], {"a": [[2]]}], limit=3)


def test_hostile_files_are_skipped_with_a_reason(tmp_path):
    run_matrix(TASKS[:1], tmp_path / "in", InlineExecutor())
    inside = tmp_path / "in"
    (inside / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (inside / "deep2.json").write_text(json.dumps(
        {"schema": "bilevel-bench/run-record", "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]
                                                    ]]]]]]]]]]]]]]]]]]]]]]]]]]]}))
    outside = tmp_path / "outside.json"
    outside.write_text(next(inside.glob("pbgd*.json")).read_text())
    (inside / "link.json").symlink_to(outside)
    (tmp_path / "elsewhere").mkdir()
    (inside / "linked-folder").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    os.mkfifo(inside / "fifo.json")
    seen = {p.name: (rec is not None, reason) for p, rec, reason in iter_records(inside)}
    assert seen["deep.json"][1].startswith("unreadable JSON") and "deep" in seen["deep.json"][1]
    assert "nested deeper" in seen["deep2.json"][1]
    assert "outside the results folder" in seen["link.json"][1]
    assert "regular file" in seen["fifo.json"][1]
    assert sum(ok for ok, _ in seen.values()) == 1
    frame = load_results(inside, warn=False)
    assert len(frame) == 1 and len(frame.attrs["skipped"]) == 4


def test_records_name_the_solver_source_without_local_paths(tmp_path):
    records: list[dict] = []
    the_plan = plan(["pbgd-free-counterexample"], ["aid-cg", plugin("GoodSolver")], [0],
                    budget={"iterations": 5})
    run_matrix(the_plan.tasks, tmp_path, InlineExecutor(), on_record=lambda r, p: records.append(r))
    by_name = {r["solver"]["name"]: r["solver"] for r in records}
    official, local = by_name["aid-cg"], by_name["good"]
    assert official["source"]["package"] == "bilevel-bench"
    assert official["source"]["package_version"] and len(official["source"]["sha256"]) == 64
    assert local["source"]["file"] == "bad_solvers.py" and local["spec"] == \
        "bad_solvers.py:GoodSolver"
    for record in records:
        assert str(Path.home()) not in json.dumps(record["solver"])
        assert str(Path(__file__).parent) not in json.dumps(record["solver"])


COMMAND = textwrap.dedent("""
    import sys
    from bilevel_bench.executors import InlineExecutor
    from bilevel_bench.matrix import plan, run_matrix
    tasks = plan(["pbgd-free-counterexample", "vpbgd-toy"], ["aid-cg"], [0, 1, 2],
                 budget={"iterations": 200}).tasks
    run_matrix(tasks, sys.argv[1], InlineExecutor(),
               on_record=lambda r, p: print("RAN", r["run_id"], flush=True))
""")


def test_two_commands_on_one_folder_share_the_work(tmp_path):
    results = tmp_path / "results"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", COMMAND, str(results)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    ran = [[line.split()[1] for line in out.splitlines() if line.startswith("RAN")]
           for out in outputs]
    assert len(ran[0]) + len(ran[1]) == 6 and not set(ran[0]) & set(ran[1])
    assert len(list(results.glob("*.json"))) == 6
