"""The tuned ruleset: seeded trials from the search space, selection on tuning seeds only."""

from __future__ import annotations

import json
import math

import pytest

from bilevel_bench.cli import main
from bilevel_bench.matrix import plan
from bilevel_bench.registry import get_solver
from bilevel_bench.tuning import TUNING_SEED_OFFSET, _score, trial_configurations, tuning_tasks


def test_trials_are_seeded_and_start_with_the_defaults():
    a = trial_configurations("aid-cg", "vpbgd-toy", 5)
    assert a == trial_configurations("aid-cg", "vpbgd-toy", 5)
    assert a[0] == {"outer_lr": 0.1, "inner_lr": 0.1, "inner_steps": 10, "cg_steps": 10}
    assert len({json.dumps(c, sort_keys=True) for c in a}) == 5
    assert a != trial_configurations("aid-cg", "bome-toy", 5)  # per problem draws


def test_tuning_seeds_are_disjoint_from_evaluation_seeds():
    tasks = plan(["vpbgd-toy"], ["aid-cg"], range(3)).tasks
    trials = tuning_tasks(tasks, trials=3, tuning_seeds=2)
    assert len(trials) == 6 and all(t.ruleset == "tuning" for t in trials)
    assert {t.seed for t in trials} == {TUNING_SEED_OFFSET, TUNING_SEED_OFFSET + 1}


def test_score_prefers_ladder_area_then_success():
    def rec(costs, converged=True, final=0.0):
        hits = [{"oracle_cost": c} if c is not None else None for c in costs]
        return {"summary": {"converged": converged, "ladder_hits": hits, "final": {"m": final}},
                "problem": {"primary_metric": "m"}}
    fast = [rec([10, 100]), rec([20, 200])]
    slow = [rec([1e3, 1e5]), rec([2e3, 2e5])]
    partial = [rec([10, None], converged=False, final=1.0)] * 2  # one rung of two, early
    nothing = [rec([None, None], converged=False, final=2.0)] * 2
    assert _score(fast) < _score(slow) < _score(nothing)
    assert _score(partial) < _score(nothing)  # partial progress counts


def test_trials_are_quasi_random_and_log_scaled():
    """16 Sobol points: each tuned coordinate has exactly one point per sixteenth of its
    (log-)range, so 16 trials span every order of magnitude of every step size."""
    cls = get_solver("lv-hba")
    configs = trial_configurations("lv-hba", "lvhba-toy", 17)[1:]
    assert len(configs) == 16
    for key in cls.search_dimensions():
        space = cls.hyperparameters[key].space
        cells = sorted(int(16 * (math.log(c[key]) - math.log(space.low))
                           / (math.log(space.high) - math.log(space.low))) for c in configs)
        assert cells == list(range(16)), key
    assert all(c["safe_steps"] is True for c in configs)  # untuned: the default rule


def test_hyperparameters_at_maps_the_unit_cube():
    cls = get_solver("blocc")
    keys = cls.search_dimensions()
    low = cls.hyperparameters_at([0.0] * len(keys))
    assert low["gamma"] == 1.0 and low["dual_steps"] == 1 and low["accelerated"] is False
    high = cls.hyperparameters_at([0.999999] * len(keys))
    assert high["gamma"] == pytest.approx(100.0, rel=1e-4) and high["accelerated"] is True
    mid = cls.hyperparameters_at([0.5] * len(keys))
    assert mid["gamma"] == pytest.approx(10.0)  # log-midpoint of [1, 100]
    with pytest.raises(ValueError, match="coordinates"):
        cls.hyperparameters_at([0.5])


def test_tuned_run_uses_the_best_tuning_configuration(tmp_path, capsys):
    results = tmp_path / "r"
    code = main(["run", "--problem", "pbgd-free-counterexample", "--solver", "aid-cg",
                 "--seeds", "1", "--ruleset", "tuned", "--trials", "3", "--tuning-seeds", "1",
                 "--budget-iterations", "40", "--backend", "inline", "--results", str(results)])
    assert code == 0
    tuning = [json.loads(p.read_text()) for p in (results / "tuning").glob("*.json")]
    assert len(tuning) == 3 and all(r["ruleset"] == "tuning" for r in tuning)
    (final,) = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert final["ruleset"] == "tuned" and final["seed"] == 0
    best = min(tuning, key=lambda r: _score([r]))
    assert final["solver"]["hyperparameters"] == best["solver"]["hyperparameters"]
