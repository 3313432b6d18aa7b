"""Tuning rulesets in the AlgoPerf sense (arXiv:2306.07179).

* ``default``: the solver's own defaults, one configuration for every problem.
* ``reference``: the solver's reference configuration for the instance or its family
  (:attr:`bilevel_bench.Solver.references`: the authors' published settings, or the
  configuration that froze the instance's target), with its source; a pair without one is not
  run (:func:`reference_tasks` says why).
* ``tuned``: per problem instance, a stated budget of ``trials`` configurations (CLI
  ``--trials``, default 8) from the solver's declared search space, each run on *tuning seeds*
  that are disjoint from the evaluation seeds. Trial 0 is the defaults; trials 1 .. N-1 are the
  first N-1 points of a scrambled Sobol sequence (quasi-random: evenly spread over the space,
  unlike independent draws, which leave holes and clusters at 8-16 trials) in the unit cube of
  the tuned hyperparameters, scrambled with a seed from (problem, solver), so the trials are the
  same on any machine and differ between problems. Each coordinate maps to its hyperparameter
  through its space (:meth:`bilevel_bench.Solver.hyperparameters_at`): log-linearly for the
  log-uniform spaces of step sizes, penalties and loop lengths, so a trial budget covers every
  order of magnitude; untuned hyperparameters (e.g. the step rule ``safe_steps``) keep their
  defaults. The configuration chosen is
  the best by the mean area under the target-ladder ECDF on the oracle clock (partial progress
  counts; machine-independent, so the choice is the same on any machine), then success rate,
  then median final primary metric, on the tuning runs; the ladder and the primary metric are
  the instance's optimisation target (e.g. the UL gap or a validation loss), never a test
  metric. The chosen configuration is then run on the evaluation
  seeds with ``ruleset = "tuned"``.

Tuning runs are ordinary records with ``ruleset = "tuning"`` in the ``tuning/`` subdirectory of
the results; the leaderboard does not rank them.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bilevel_bench import registry
from bilevel_bench.metrics import ECDF_RANGE, area_scores, hit_costs
from bilevel_bench.results import iter_records
from bilevel_bench.runner import RunTask

TUNING_SEED_OFFSET = 10_000  # tuning seeds never coincide with evaluation seeds


def reference_tasks(tasks: Sequence[RunTask]) -> tuple[list[RunTask], list[tuple[str, str]]]:
    """The tasks of the ``reference`` ruleset: each task with its solver's reference
    configuration for the instance (``ruleset = "reference"``), and the (problem, solver)
    pairs that have none (not run)."""
    out, missing = [], []
    for task in tasks:
        cls = registry.get_solver(task.solver)
        entry = registry.get_problem(task.problem)
        ref = cls.reference_for(entry.family.name, task.problem)
        if ref is None:
            if (task.problem, cls.name) not in missing:
                missing.append((task.problem, cls.name))
            continue
        out.append(replace(task, hyperparameters=dict(ref.hyperparameters),
                           ruleset="reference"))
    return out, missing


def _scramble_seed(problem: str, solver: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{problem}|{solver}".encode()).digest()[:8], "big")


def quasi_random_points(dimensions: int, count: int, seed: int) -> list[list[float]]:
    """The first ``count`` points of a scrambled Sobol sequence in [0, 1)^dimensions (Owen
    scrambling with ``seed``; :class:`scipy.stats.qmc.Sobol`)."""
    if count <= 0:
        return []
    if dimensions == 0:
        return [[] for _ in range(count)]
    from scipy.stats import qmc

    sampler = qmc.Sobol(dimensions, scramble=True, seed=seed)
    with warnings.catch_warnings():  # balance properties need 2^m points; a prefix is fine
        warnings.simplefilter("ignore", UserWarning)
        return sampler.random(count).tolist()


def trial_configurations(solver: str, problem: str, trials: int) -> list[dict[str, Any]]:
    """``trials`` configurations: the defaults, then the first ``trials - 1`` points of the
    scrambled Sobol sequence of (problem, solver) mapped into the search space."""
    cls = registry.get_solver(solver)
    points = quasi_random_points(len(cls.search_dimensions()), trials - 1,
                                 _scramble_seed(problem, cls.name))
    configs = [cls.defaults()]
    for point in points:
        config = cls.hyperparameters_at(point)
        if config not in configs:  # (a solver without tuned hyperparameters: defaults only)
            configs.append(config)
    return configs


def tuning_tasks(tasks: Sequence[RunTask], trials: int, tuning_seeds: int) -> list[RunTask]:
    """The tuning runs for every (problem, solver) among ``tasks``."""
    pairs = sorted({(t.problem, t.solver): t for t in tasks}.items())
    out = []
    for (problem, solver), template in pairs:
        for config in trial_configurations(solver, problem, trials):
            for k in range(tuning_seeds):
                out.append(replace(template, seed=TUNING_SEED_OFFSET + k,
                                   hyperparameters=config, ruleset="tuning"))
    return out


def _score(records: list[dict]) -> tuple[float, float, float]:
    """Lower is better: (-mean ECDF area on the oracle clock, -success rate, median final
    primary)."""
    low, high = ECDF_RANGE["oracles"]
    areas = []
    for r in records:
        areas.append(area_scores(hit_costs(r["summary"].get("ladder_hits"), "oracles"),
                                 low, high))
    successes = sum(bool(r["summary"].get("converged")) for r in records)
    finals = []
    for r in records:
        value = r["summary"].get("final", {}).get(r["problem"]["primary_metric"], math.nan)
        sign = -1.0 if r["problem"].get("higher_is_better") else 1.0
        finals.append(sign * value if math.isfinite(value) else math.inf)
    return (-statistics.fmean(areas), -successes / len(records),
            statistics.median(finals) if finals else math.inf)


def select(tuning_dir: str | Path, tasks: Sequence[RunTask], trials: int,
           tuning_seeds: int) -> list[RunTask]:
    """Evaluation tasks with ``ruleset = "tuned"`` and the best configuration found by the
    tuning runs of :func:`tuning_tasks` (same ``trials`` and ``tuning_seeds``) recorded in
    ``tuning_dir``. Pairs with no tuning record are left out."""
    by_config: dict[tuple[str, str, str], list[dict]] = {}
    wanted = {t.run_id(): t for t in tuning_tasks(tasks, trials, tuning_seeds)}
    for _path, record, _ in iter_records(tuning_dir):
        if record is None or record["run_id"] not in wanted:
            continue
        task = wanted[record["run_id"]]
        key = (task.problem, task.solver, repr(sorted(task.hyperparameters.items())))
        by_config.setdefault(key, []).append(record)
    best: dict[tuple[str, str], tuple[tuple, dict]] = {}
    for (problem, solver, _), records in by_config.items():
        score = _score(records)
        config = wanted[records[0]["run_id"]].hyperparameters
        if (problem, solver) not in best or score < best[(problem, solver)][0]:
            best[(problem, solver)] = (score, config)
    tuned = []
    for task in tasks:
        if (task.problem, task.solver) in best:
            tuned.append(replace(task, hyperparameters=best[(task.problem, task.solver)][1],
                                 ruleset="tuned"))
    return tuned

