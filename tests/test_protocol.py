"""Protocol version 2 on hand-computed examples: target ladders (default and declared), the
ECDF area and its ranking, the LL gate, and the migration of schema-1 records."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bilevel_bench.metrics import area_scores, ecdf, ladder_ranking
from bilevel_bench.problem import (
    EXACT_LL,
    LadderError,
    LLGate,
    check_ladder,
    default_ladder,
)
from bilevel_bench.results import ladder_hits, migrate_record

INF = math.inf


def test_default_ladder_is_geometric_for_positive_gaps_and_linear_otherwise():
    assert default_ladder(1.0, 1e-4, False, rungs=4) == pytest.approx((0.1, 0.01, 1e-3, 1e-4))
    # accuracy-like metric (higher is better): linear from the start to the target
    assert default_ladder(0.5, 0.9, True, rungs=4) == pytest.approx((0.6, 0.7, 0.8, 0.9))
    # a metric that may be negative: linear
    assert default_ladder(3.0, -1.0, False, rungs=2) == pytest.approx((1.0, -1.0))
    # a start that already meets the target, or a NaN start: the final target alone
    assert default_ladder(1e-5, 1e-3, False) == (1e-3,)
    assert default_ladder(math.nan, 1e-3, False) == (1e-3,)


@pytest.mark.parametrize("ladder, higher, match", [
    ((1.0, 0.1, 0.5, 1e-3), False, "strictly decreasing"),
    ((0.1, 0.01, 1e-3), True, "strictly increasing"),
    ((1.0, 0.1), False, "must end at the final target"),
    ((1.0, math.nan, 1e-3), False, "finite numbers"),
])
def test_a_bad_ladder_is_refused_naming_the_instance(ladder, higher, match):
    with pytest.raises(LadderError, match=match) as info:
        check_ladder("my-instance", ladder, 1e-3, higher)
    assert "my-instance" in str(info.value)


def test_ll_gate_relative_absolute_and_exact():
    gate = LLGate("ll_gap", rtol=1e-2, atol=1e-6)
    start = {"ll_gap": 10.0}
    assert gate.passes({"ll_gap": 0.1}, start) and not gate.passes({"ll_gap": 0.11}, start)
    assert gate.passes({"ll_gap": 1e-7}, {"ll_gap": 0.0})  # the absolute floor
    assert not gate.passes({}, start) and not gate.passes({"ll_gap": math.nan}, start)
    assert EXACT_LL.passes({}, {}) and "exact" in EXACT_LL.describe()
    assert "0.01 x its value at (x0, y0)" in gate.describe()


def test_ladder_hits_take_the_first_gated_checkpoint_per_rung():
    trace = [{"iteration": 0, "oracle_cost": 0, "time": 0.0, "gate": True,
              "metrics": {"m": 1.0}},
             {"iteration": 1, "oracle_cost": 5, "time": 0.1, "gate": False,
              "metrics": {"m": 0.05}},
             {"iteration": 2, "oracle_cost": 9, "time": 0.2, "gate": True,
              "metrics": {"m": 0.08}},
             {"iteration": 4, "oracle_cost": 20, "time": 0.4, "gate": True,
              "metrics": {"m": 0.001}}]
    hits = ladder_hits(trace, "m", [0.5, 0.1, 0.01, 1e-4], False)
    assert [h and h["iteration"] for h in hits] == [2, 2, 4, None]
    assert hits[0]["oracle_cost"] == 9  # the gated-out checkpoint at iteration 1 never counts


def test_area_under_the_ecdf_by_hand():
    # log axis [1, 100]: a rung at cost 10 is half-way, cost <= 1 is full, a miss is 0
    assert area_scores([10.0], 1.0, 100.0) == pytest.approx(0.5)
    assert area_scores([0.5, 10.0, INF, 1000.0], 1.0, 100.0) == pytest.approx(1.5 / 4)
    assert area_scores([], 1.0, 100.0) == 0.0
    assert area_scores([10.0, float("nan")], 1.0, 100.0) == pytest.approx(0.25)  # NaN: missed


def _frame(rows: list[tuple[str, str, int, list[float]]]) -> pd.DataFrame:
    """Runs from (problem, solver, seed, oracle cost per rung; inf = missed)."""
    return pd.DataFrame([{
        "problem": p, "problem_version": "1", "solver": s, "seed": k, "ruleset": "default",
        "hardware_class": "hw", "primary_metric": "ul_gap", "status": "budget",
        "converged": costs[-1] < INF, "oracles_to_target": costs[-1] if costs[-1] < INF else None,
        "time_to_target": None, "final_ul_gap": 0.0,
        "ladder_hits": [None if c == INF else {"oracle_cost": c, "time": None} for c in costs],
    } for p, s, k, costs in rows])


def test_partial_progress_separates_solvers_that_all_miss_the_final_target():
    rows = []
    for seed in range(3):
        for problem in ("p1", "p2", "p3"):
            rows += [(problem, "fast", seed, [10.0, 100.0, INF]),
                     (problem, "slow", seed, [1e4, INF, INF]),
                     (problem, "stuck", seed, [INF, INF, INF])]
    table, _ = ladder_ranking(_frame(rows), "oracles", n_boot=200, seed=0)
    assert table["solver"].tolist() == ["fast", "slow", "stuck"]
    assert table["rank"].tolist() == [1, 2, 3]  # three distinct groups, no final target hit
    assert (table["solved"] == 0).all()
    low, high = 1.0, 1e7  # the oracle clock's axis
    fast = (2 * math.log(high) - math.log(10.0) - math.log(100.0)) / math.log(high / low) / 3
    assert table.loc[0, "score"] == pytest.approx(fast)


def test_a_solver_is_scored_over_the_union_of_instances():
    rows = [("p1", "a", 0, [10.0]), ("p2", "a", 0, [10.0]),
            ("p1", "b", 0, [10.0])]  # b never ran p2: it counts 0 there (protocol v3)
    table, _ = ladder_ranking(_frame(rows), "oracles", n_boot=50)
    scores = dict(zip(table["solver"], table["score"], strict=True))
    assert scores["b"] == pytest.approx(scores["a"] / 2)
    assert dict(zip(table["solver"], table["instances"], strict=True)) == {"a": 2, "b": 1}
    assert table["instances_total"].tolist() == [2, 2]


def test_ecdf_curves():
    rows = [("p1", "a", 0, [1.0, 100.0]), ("p2", "a", 0, [INF, INF])]
    curves = ecdf(_frame(rows), "oracles", [1.0, 10.0, 100.0])
    assert np.allclose(curves["a"], [0.25, 0.25, 0.5])


def test_schema_1_records_are_migrated_not_dropped():
    record = {"schema": "bilevel-bench/run-record", "schema_version": 1,
              "problem": {"name": "p", "version": "1", "primary_metric": "ul_gap",
                          "target": 1e-3},
              "summary": {"converged": True},
              "trace": [{"iteration": 0, "oracle_cost": 0, "metrics": {"ul_gap": 1.0}},
                        {"iteration": 7, "oracle_cost": 70, "metrics": {"ul_gap": 1e-4}}]}
    migrated = migrate_record(record)
    assert migrated["schema_version"] == 2 and migrated["migrated_from"] == 1
    assert migrated["problem"]["ladder"] == [1e-3]
    assert migrated["summary"]["ladder_hits"][0]["iteration"] == 7
    assert migrated["summary"]["rungs_reached"] == 1


def test_multimodal_toys_tell_a_local_minimum_from_the_global_one():
    import torch

    from bilevel_bench.registry import get_problem

    problem = get_problem("vpbgd-toy").family(seed=0, n=1)  # one of the instance's 10 copies
    at = {x: problem.evaluate(torch.tensor([x], dtype=torch.float64),
                              torch.tensor([-x], dtype=torch.float64))
          for x in (0.3824, 1.2152, 2.8296, 0.9)}
    # the three local minima of F: ul_gap_local ~ 0 at each, ul_gap ~ 0 only at the global one
    assert all(abs(at[x]["ul_gap_local"]) < 1e-5 for x in (0.3824, 1.2152, 2.8296))
    assert at[1.2152]["ul_gap"] < 1e-5 and at[0.3824]["ul_gap"] > 0.2
    assert at[2.8296]["ul_gap"] > 1.0
    assert at[0.9]["ul_gap_local"] > 0.1  # on a slope: no stationary point
    unimodal = get_problem("bome-toy").make(seed=0)
    m = unimodal.evaluate(torch.tensor([0.5], dtype=torch.float64),
                          torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert m["ul_gap_local"] == m["ul_gap"]


def test_per_instance_splits_global_and_local_success():
    from bilevel_bench.metrics import per_instance

    rows = [{"problem": "t", "problem_version": "1", "hardware_class": "hw",
             "ruleset": "default", "solver": "s", "seed": k, "converged": k == 0,
             "time_to_target": 1.0 if k == 0 else None,
             "oracles_to_target": 5.0 if k == 0 else None, "primary_metric": "ul_gap",
             "target": 1e-3, "final_ul_gap": [1e-4, 0.2, 0.3][k],
             "final_ul_gap_local": [1e-4, 1e-5, 0.1][k], "status": "budget"}
            for k in range(3)]
    table = per_instance(pd.DataFrame(rows))
    assert table.loc[0, "success_rate"] == pytest.approx(1 / 3)
    assert table.loc[0, "local_success_rate"] == pytest.approx(2 / 3)
    assert table.loc[0, "global_success_rate"] == pytest.approx(1 / 3)
