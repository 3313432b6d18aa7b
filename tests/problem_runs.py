"""Shared helpers of the standard-problem tests: a direct solver driver (the runner is tested
elsewhere; these tests only need problem + solver + evaluation).

Tests that need an optional dataset file (the LIBSVM sets) find it in ``$BILEVEL_BENCH_DATA``
like any user; when it is missing they skip with the loader's message (see ``conftest.py``),
unless ``BILEVEL_BENCH_REQUIRE_DATA=1`` makes that a failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bilevel_bench.oracles import Oracles
from bilevel_bench.problem import reached
from bilevel_bench.registry import get_problem, get_solver

REPO = Path(__file__).resolve().parents[1]


def drive(instance: str, solver: str, hp: dict[str, Any], steps: int, every: int,
          seed: int = 0) -> tuple[bool, list[dict[str, float]]]:
    """Run ``solver`` on ``instance`` for at most ``steps`` iterations, evaluating every
    ``every``; stop at the instance's target. Returns (reached, evaluations)."""
    entry = get_problem(instance)
    problem = entry.make(seed=seed)
    oracles = Oracles(problem)
    gen = torch.Generator().manual_seed(seed)
    x0, y0 = problem.init(gen)
    algo = get_solver(solver)(**hp)
    algo.init(oracles, x0, y0, gen)
    history = []
    for k in range(1, steps + 1):
        algo.step()
        if k % every == 0 or k == steps:
            metrics = problem.evaluate(*algo.solution())
            history.append(metrics)
            value = metrics[problem.primary_metric]
            if reached(value, entry.instance.target, problem.higher_is_better):
                return True, history
    return False, history
