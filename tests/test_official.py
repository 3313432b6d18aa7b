"""The leaderboard takes the metadata of known instances from the registry, never from records."""

from __future__ import annotations

import copy

import pytest

from bilevel_bench.leaderboard.collect import collect, official_instances, official_suites
from bilevel_bench.problem import Budget
from bilevel_bench.results import write_record
from bilevel_bench.runner import RunTask, execute


@pytest.fixture(scope="module")
def record() -> dict:
    rec = execute(RunTask("pbgd-free-counterexample", "aid-cg", budget=Budget(iterations=200)))
    assert rec["status"] == "converged"
    return rec


def variant(record: dict, run_id: str, **changes) -> dict:
    out = copy.deepcopy(record)
    out["run_id"] = run_id
    for path, value in changes.items():
        *keys, last = path.split(".")
        node = out
        for key in keys:
            node = node[key]
        node[last] = value
    return out


def test_records_that_disagree_with_the_registry_are_skipped(tmp_path, record):
    target = official_instances()["pbgd-free-counterexample"]["target"]
    forged = variant(record, "f" * 16, status="converged")
    for row in forged["trace"]:
        row["metrics"][record["problem"]["primary_metric"]] = 1.0  # never reaches the target
    records = [
        record,
        variant(record, "a" * 16, **{"problem.target": target * 1000}),  # another target
        variant(record, "b" * 16, **{"problem.ladder": [target * 7]}),  # another ladder
        forged,
        variant(record, "c" * 16, **{"problem.name": "my-plugin-instance"}),
    ]
    for rec in records:
        write_record(tmp_path, rec)
    data = collect([tmp_path])
    reasons = sorted(reason for _, reason in data.skipped)
    assert len(reasons) == 3 and all(r.startswith("disagrees with the registry") for r in reasons)
    assert any(f"target {target * 1000!r}" in r for r in reasons)
    assert any("ladder" in r for r in reasons)
    assert any("says converged" in r for r in reasons)
    info = data.problems[("pbgd-free-counterexample", record["problem"]["version"])]
    assert info["official"] and info["target"] == target
    assert info["suites"] == official_instances()["pbgd-free-counterexample"]["suites"]
    mine = data.problems[("my-plugin-instance", record["problem"]["version"])]
    assert mine["official"] is False and mine["label"] == "unofficial"
    frame = data.frame.set_index("problem")
    assert frame.loc["pbgd-free-counterexample", "target"] == target
    assert bool(frame.loc["pbgd-free-counterexample", "converged"])
    assert not frame.loc["my-plugin-instance", "official"]


def test_official_suites_hold_only_official_instances():
    names = set(official_instances())
    suites = official_suites()
    assert suites and all(set(members) <= names for members in suites.values())
