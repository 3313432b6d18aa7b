"""Protocol v3 scores on synthetic records (issue 26): rankings over the union of a view's
instances (an instance not run counts 0 and is shown as not run), solved fraction before ECDF
area (never reaching a final target cannot outrank reaching it), and rank labels from paired
bootstrap comparisons with Holm's correction.

The ``case_*`` builders are the issue's cases; each returns a results frame (rows as in
``tests/test_protocol.py``: per run, the oracle cost of each rung, ``inf`` = missed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bilevel_bench.leaderboard.collect import collect
from bilevel_bench.leaderboard.synthetic import synthetic_record
from bilevel_bench.leaderboard.views import annotate, build_views
from bilevel_bench.metrics import ladder_bootstrap, ladder_ranking, paired_labels
from bilevel_bench.results import write_record
from tests.test_protocol import _frame

INF = math.inf


def case_stalling() -> pd.DataFrame:
    """Case 1: ``stall`` reaches 9 of 10 rungs at 10 oracles and never the final target;
    ``finish`` reaches every rung, the final one included, at 1e4 oracles (3 instances x 3
    seeds)."""
    rows = []
    for problem in ("p1", "p2", "p3"):
        for seed in range(3):
            rows += [(problem, "stall", seed, [10.0] * 9 + [INF]),
                     (problem, "finish", seed, [1e4] * 10)]
    return _frame(rows)


def case_margin(instances: int = 12) -> pd.DataFrame:
    """Case 3: instances of very different difficulty (first rungs at 10**(p/3) oracles) and
    seeds (4**seed times more); ``worse`` needs twice the oracles of ``better`` on every rung
    of every instance and seed: a constant margin in ECDF area on each of the 12 instances."""
    rows = []
    for p in range(instances):
        for seed in range(3):
            cost = 10 ** (p / 3) * 4 ** seed
            rows += [(f"p{p:02d}", "better", seed, [cost, 10 * cost, INF]),
                     (f"p{p:02d}", "worse", seed, [2 * cost, 20 * cost, INF])]
    return _frame(rows)


def case_identical(solvers: int = 20, instances: int = 6, seeds: int = 3,
                   same: bool = True, data_seed: int = 0) -> pd.DataFrame:
    """Case 4: ``solvers`` solvers with the same behaviour. ``same``: identical records (the
    same rung costs per instance and seed); else each solver's costs are drawn independently
    from one distribution (identical solvers observed with noise), seeded by ``data_seed``."""
    rng = np.random.default_rng(data_seed)
    base = rng.lognormal(3.0, 1.5, size=(instances, seeds))
    rows = []
    for s in range(solvers):
        noise = np.ones((instances, seeds)) if same else \
            rng.lognormal(0.0, 1.0, size=(instances, seeds))
        for p in range(instances):
            for k in range(seeds):
                cost = float(base[p, k] * noise[p, k])
                final = 100 * cost if 100 * cost < 1e5 else INF
                rows.append((f"p{p}", f"s{s:02d}", k, [cost, 10 * cost, final]))
    return _frame(rows)


def case_partial_records(root) -> pd.DataFrame:
    """Case 2, as records: ``easy-only`` ran the easy instance only; ``everywhere`` has the
    same costs there (same noise) and also ran three hard instances, where it reaches early
    rungs but not the final target. Returns the collected (annotated) frame."""
    for seed in range(3):
        for solver in ("easy-only", "everywhere"):
            write_record(root, synthetic_record("easy", solver, seed, speed=2.0,
                                                rng=np.random.default_rng(seed)))
        for problem in ("hard-1", "hard-2", "hard-3"):
            write_record(root, synthetic_record(problem, "everywhere", seed, speed=0.3))
    return annotate(collect([root], official={}).frame, {})


def _rows(table: pd.DataFrame) -> dict[str, dict]:
    return table.set_index("solver").to_dict("index")


def test_never_reaching_the_final_target_cannot_outrank_reaching_it():
    table, _ = ladder_ranking(case_stalling(), "oracles", n_boot=200, seed=0)
    rows = _rows(table)
    # the stalling solver has the larger ECDF area (the old score ranked it first) ...
    assert rows["stall"]["score"] == pytest.approx(0.9 * 6 / 7)
    assert rows["finish"]["score"] == pytest.approx(3 / 7)
    # ... and ranks second: solved fraction first
    assert table["solver"].tolist() == ["finish", "stall"]
    assert (rows["finish"]["solved_fraction"], rows["stall"]["solved_fraction"]) == (1.0, 0.0)
    assert (rows["finish"]["rank"], rows["stall"]["rank"]) == (1, 2)


def test_an_instance_not_run_counts_nothing_and_shows_as_not_run(tmp_path):
    frame = case_partial_records(tmp_path)
    table, _ = ladder_ranking(frame, "oracles", n_boot=200, seed=0)
    rows = _rows(table)
    assert table["solver"].iloc[0] == "everywhere"  # not the solver that skipped 3 of 4
    assert rows["easy-only"]["rank"] >= rows["everywhere"]["rank"]
    assert (rows["easy-only"]["instances"], rows["easy-only"]["instances_total"]) == (1, 4)
    # its score is its easy-instance area over the 4 instances of the union
    easy = frame[(frame["solver"] == "easy-only")]
    alone, _ = ladder_ranking(easy, "oracles", n_boot=0)
    assert rows["easy-only"]["score"] == pytest.approx(alone["score"].iloc[0] / 4)
    # the view: the same order, "1 of 4" instances run, the missing cells "n/a: not run"
    [view] = build_views(frame, {}, {}, None, None, n_boot=50)
    panel = view.panels[0]
    assert panel.ranking["solver"].iloc[0] == "everywhere"
    shown = {r["solver"]: r for r in panel.table.rows}
    assert shown["easy-only"]["ran"] == "1 of 4" and shown["everywhere"]["ran"] == "4 of 4"
    matrix = {r["solver"]: r for r in view.matrix.rows}["easy-only"]
    assert [matrix[f"cell:hard-{k}"] for k in (1, 2, 3)] == ["n/a: not run (counts 0)"] * 3
    assert not matrix["cell:easy"].startswith("n/a")


def test_worse_on_every_instance_by_a_constant_margin_gets_a_worse_label():
    table, _ = ladder_ranking(case_margin(), "oracles", n_boot=1000, seed=0)
    rows = _rows(table)
    assert table["solver"].tolist() == ["better", "worse"]
    # the marginal intervals overlap widely (the old rule tied them) ...
    assert rows["worse"]["score_hi"] > rows["better"]["score_lo"]
    # ... the paired differences do not: separate labels
    assert (rows["better"]["rank"], rows["worse"]["rank"]) == (1, 2)
    assert not rows["better"]["tied"] and not rows["worse"]["tied"]


def test_twenty_identical_solvers_all_tie():
    table, _ = ladder_ranking(case_identical(), "oracles", n_boot=200, seed=0)
    assert len(table) == 20 and table["score"].nunique() == 1
    assert (table["rank"] == 1).all() and table["tied"].all()


def test_twenty_solvers_alike_up_to_noise_tie_after_holm():
    # 12 instances: with 6, the percentile bootstrap is anti-conservative (3 of 10 data seeds
    # separate one pair); with 12, none of 10 did
    frame = case_identical(same=False, instances=12)
    table, cube = ladder_ranking(frame, "oracles", n_boot=1000, seed=0)
    assert table["score"].nunique() == 20  # noisy: every pair is ordered by its estimate
    assert (table["rank"] == 1).all()
    # without the correction some of the 190 pairs would be called different at 5%
    solved, area, _ = ladder_bootstrap(cube, n_boot=4000, seed=0)
    point = table.set_index("solver").loc[cube.solvers, ["solved_fraction", "score"]]
    _, p = paired_labels(point.to_numpy(), np.stack([solved, area], axis=-1))
    assert np.nanmin(p) < 0.05


def test_seeds_are_paired_and_the_bootstrap_is_seeded():
    frame = case_margin(instances=1)  # one instance, 3 seeds: only the seeds can separate
    first, _ = ladder_ranking(frame, "oracles", n_boot=300, seed=3)
    again, _ = ladder_ranking(frame, "oracles", n_boot=300, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert first["rank"].tolist() == [1, 2]  # paired by seed: worse in each seed
    # the same runs with the seeds of "worse" relabelled: no longer paired, no longer separated
    shifted = frame.assign(seed=np.where(frame["solver"] == "worse", frame["seed"] + 10,
                                         frame["seed"]))
    unpaired, _ = ladder_ranking(shifted, "oracles", n_boot=300, seed=3)
    assert unpaired["rank"].tolist() == [1, 1]
