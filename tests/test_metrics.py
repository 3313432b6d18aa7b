"""Scoring on hand-computed examples: costs, Dolan–Moré ratios and profiles, the AlgoPerf
integrated score, mean ranks with ties, tie-aware rank labels, bootstrap intervals."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from bilevel_bench.metrics import (
    TAU_MAX,
    cost_cube,
    holm,
    lex_compare,
    mean_ranks,
    nan_quantile,
    paired_labels,
    per_instance,
    performance_profile,
    performance_ratios,
    profile_score,
    ranking,
)

INF = math.inf
# three instances x three solvers (A, B, C); the last instance is solved by nobody
COSTS = np.array([[1.0, 2.0, INF],
                  [3.0, 3.0, 6.0],
                  [INF, INF, INF]])


def runs(table: list[tuple[str, str, int, float | None]], clock: str = "oracles_to_target",
         version: str = "1") -> pd.DataFrame:
    """A results frame from (problem, solver, seed, cost or None = missed the target)."""
    rows = [{"problem": p, "problem_version": version, "hardware_class": "hw", "ruleset": "default",
             "solver": s, "seed": k, "converged": c is not None, clock: c,
             "time_to_target" if clock == "oracles_to_target" else "oracles_to_target": c,
             "primary_metric": "ul_gap", "final_ul_gap": 0.1 if c is not None else 1.0,
             "status": "converged" if c is not None else "budget"}
            for p, s, k, c in table]
    return pd.DataFrame(rows)


def test_ratios_and_profile_by_hand():
    ratios = performance_ratios(COSTS)
    assert ratios.tolist() == [[1.0, 2.0, INF], [1.0, 1.0, 2.0], [INF, INF, INF]]
    rho = performance_profile(ratios, [1.0, 2.0, 4.0])
    # A: within 1x on instances 1, 2; B: only instance 2 at tau=1, both at tau=2; C: 1 at tau=2
    assert np.allclose(rho, [[2 / 3, 2 / 3, 2 / 3], [1 / 3, 2 / 3, 2 / 3], [0.0, 1 / 3, 1 / 3]])


def test_score_is_algoperf_area_on_linear_tau():
    ratios = performance_ratios(COSTS)
    # B_s = mean_p max(0, 4 - r_p) / 3: A (3+3+0)/9, B (2+3+0)/9, C (0+2+0)/9
    assert profile_score(ratios).tolist() == pytest.approx([6 / 9, 5 / 9, 2 / 9])
    # the closed form equals the integral of the step function rho over [1, tau_max]
    taus = np.linspace(1.0, TAU_MAX, 300_001)
    rho = performance_profile(ratios, taus)
    area = ((rho[:, 1:] + rho[:, :-1]) / 2 * np.diff(taus)).sum(axis=1) / (TAU_MAX - 1)
    assert area == pytest.approx(profile_score(ratios), abs=1e-4)
    assert profile_score(np.array([[1.0], [5.0]])).tolist() == [0.5]  # r > tau_max counts 0


def test_mean_ranks_share_ties():
    # instance 1: 1, 2, 3; instance 2: A and B tie -> 1.5, 1.5, 3; instance 3: all fail -> 2 each
    assert mean_ranks(COSTS).tolist() == pytest.approx([4.5 / 3, 5.5 / 3, 8 / 3])


def test_paired_labels_count_solvers_significantly_ahead_after_holm():
    # replicates of three solvers' scores drawn with one resampling: A is ahead of C in every
    # replicate, A and B swap places in a third of them, B is ahead of C in every one
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.01, size=(300, 1))
    reps = np.hstack([0.9 + noise, 0.9 + noise + np.tile([0.05, -0.05, 0.02], 100)[:, None],
                      0.5 + noise])
    labels, p = paired_labels(np.array([0.9, 0.91, 0.5]), reps[..., None], alpha=0.05)
    assert labels.tolist() == [1, 1, 3]
    assert p[0, 2] == p[1, 2] == 1 / 301 and p[1, 0] == pytest.approx(101 / 301)
    assert np.isnan(p[0, 1]) and np.isnan(p[2, 0])  # only pairs in point order are tested
    # no replicates: no test, 1 + the number of solvers ahead
    assert paired_labels(np.array([0.9, 0.91, 0.5]), np.empty((0, 3)))[0].tolist() == [2, 1, 3]


def test_holm_and_lexicographic_comparison():
    # sorted 0.01 <= 0.05/3, 0.02 <= 0.05/2, 0.06 > 0.05/1: stops after two
    assert holm(np.array([0.06, 0.01, 0.02]), 0.05).tolist() == [False, True, True]
    assert holm(np.array([0.03, 0.03]), 0.05).tolist() == [False, False]  # 0.03 > 0.05/2
    assert holm(np.array([0.02, 0.04]), 0.05).tolist() == [True, True]  # 0.04 <= 0.05/1
    assert lex_compare(np.array([[1.0, 0.0], [0.5, 0.9], [0.5, 0.9]]),
                       np.array([[0.9, 1.0], [0.5, 0.1], [0.5, 0.9]])).tolist() == [1, 1, 0]


def test_cost_is_median_over_seeds_with_failures_infinite():
    frame = runs([("p", "a", 0, 1.0), ("p", "a", 1, 2.0), ("p", "a", 2, None),   # 2
                  ("p", "b", 0, 1.0), ("p", "b", 1, None), ("p", "b", 2, None),  # inf
                  ("p", "c", 0, 1.0), ("p", "c", 1, 3.0),                        # 2 (even n)
                  ("p", "d", 0, 1.0), ("p", "d", 1, None),                       # inf
                  ("q", "a", 0, 0.0)])                                           # floor: 1
    cube = cost_cube(frame, "oracles")
    assert cube.solvers == ["a", "b", "c", "d"]
    assert cube.costs().tolist() == [[2.0, INF, 2.0, INF], [1.0, INF, INF, INF]]


def test_ranking_separates_a_dominant_solver_and_ties_twins():
    table = []
    for p in range(6):
        for k in range(5):
            table += [(f"p{p}", "fast", k, 1.0 + 0.01 * k), (f"p{p}", "twin", k, 1.0 + 0.01 * k),
                      (f"p{p}", "slow", k, 10.0)]
    result, cube = ranking(runs(table), "oracles", n_boot=200, seed=1)
    rows = result.set_index("solver")
    assert rows.loc["fast", "score"] == rows.loc["twin", "score"] == 1.0
    assert rows.loc["slow", "score"] == 0.0  # ratio 10 > tau_max
    assert rows.loc["fast", "rank"] == rows.loc["twin", "rank"] == 1
    assert bool(rows.loc["fast", "tied"]) and not bool(rows.loc["slow", "tied"])
    assert rows.loc["slow", "rank"] == 3
    assert rows.loc["fast", "mean_rank"] == 1.5 and rows.loc["slow", "mean_rank"] == 3.0
    assert list(result["solver"][:2]) == ["fast", "twin"] and result["instances"].iloc[0] == 6
    again, _ = ranking(runs(table), "oracles", n_boot=200, seed=1)
    pd.testing.assert_frame_equal(result, again)  # seeded bootstrap: reproducible


def test_bootstrap_intervals_cover_the_estimate():
    rng = np.random.default_rng(0)
    table = [(f"p{p}", s, k, float(rng.lognormal(mean=m)))
             for p in range(8) for s, m in (("a", 0.0), ("b", 0.3)) for k in range(5)]
    result, _ = ranking(runs(table), "oracles", n_boot=300, seed=0)
    for row in result.itertuples():
        assert row.score_lo <= row.score <= row.score_hi
        assert row.mean_rank_lo <= row.mean_rank <= row.mean_rank_hi


def test_time_clock_reads_time_to_target():
    frame = runs([("p", "a", 0, 0.5), ("p", "b", 0, 1.0)], clock="time_to_target")
    frame["oracles_to_target"] = [1.0, 1.0]
    assert ranking(frame, "time", n_boot=10)[0]["solver"].tolist() == ["a", "b"]
    assert ranking(frame, "oracles", n_boot=10)[0]["score"].tolist() == [1.0, 1.0]


def test_nan_quantile_matches_numpy():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(6, 11))
    values[rng.random(values.shape) < 0.3] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanquantile(values, [0.25, 0.5, 0.75], axis=0)
    assert np.allclose(nan_quantile(values, (0.25, 0.5, 0.75), axis=0), expected, equal_nan=True)
    assert nan_quantile(np.array([1.0, INF, INF]), 0.5) == INF


def test_per_instance_figures():
    frame = runs([("p", "a", 0, 1.0), ("p", "a", 1, 3.0), ("p", "a", 2, None),
                  ("p", "a", 3, 2.0)])
    row = per_instance(frame).iloc[0]
    assert row["runs"] == 4 and row["success_rate"] == 0.75
    assert row["median_oracles_to_target"] == 2.0
    assert (row["q25_oracles_to_target"], row["q75_oracles_to_target"]) == (1.5, 2.5)
    assert row["iqr_oracles_to_target"] == 1.0
    assert row["median_final_primary"] == pytest.approx(0.1)
    assert row["statuses"] == "converged:3, budget:1"
