"""The tuned ruleset: seeded trials from the search space, selection on tuning seeds only."""

from __future__ import annotations

import json

from bilevel_bench.cli import main
from bilevel_bench.matrix import plan
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


def test_score_prefers_success_then_speed():
    def rec(converged, t, final):
        return {"summary": {"converged": converged, "time_to_target": t, "final": {"m": final}},
                "problem": {"primary_metric": "m"}}
    fast = [rec(True, 1.0, 0.0), rec(True, 2.0, 0.0)]
    slow = [rec(True, 5.0, 0.0), rec(True, 6.0, 0.0)]
    flaky = [rec(True, 0.1, 0.0), rec(False, None, 1.0)]
    assert _score(fast) < _score(slow) < _score(flaky)


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
