"""BLOCC and ALT-PBGD under their default step rule keep the UL iterate inside the LL's domain
(issue 14): on svm-ho-fourclass (non-separable, ``ll_infeasible_in_x``) seed 1, version 2 of
both walked c out of the set where the LL is feasible (F = NaN from iterations 6 and 5:
diverged). Needs the LIBSVM fourclass file (``$BILEVEL_BENCH_DATA``; skipped when absent)."""

from __future__ import annotations

import math

import pytest
import torch

from bilevel_bench.registry import get_problem, get_solver
from bilevel_bench.runner import start_solver


@pytest.mark.parametrize("solver", ["blocc", "alt-pbgd"])
def test_default_stays_in_ll_domain_on_fourclass(solver):
    instance = get_problem("svm-ho-fourclass").make(seed=1)
    algo, _ = start_solver(instance, get_solver(solver), {}, 1)
    fractions = []
    for k in range(1, 16):
        algo.step()
        fractions.append(getattr(algo, "_ll_fraction", 1.0))
        x, y = algo.solution()
        metrics = instance.evaluate(x, y)
        assert metrics["ll_feasible"] == 1.0, f"{solver}: LL infeasible at iteration {k}"
        assert math.isfinite(metrics["ul_value"]), f"{solver}: F not finite at iteration {k}"
    assert min(fractions) < 1.0  # the backtracking acted


def test_ll_infeasibility_sign():
    """s*(x) <= 0 iff the SVM LL {(w, b): 1 - c_i - t_i (w.z_i + b) <= 0} is non-empty: c = 1
    (w = b = 0 feasible) against c = 1e-4 on non-separable data (infeasible)."""
    from bilevel_bench_baselines.inner_loops import ll_infeasibility

    from bilevel_bench.oracles import Oracles

    problem = get_problem("svm-ho-fourclass").make(seed=1)
    oracles = Oracles(problem)
    y = torch.zeros(problem.y_shape, dtype=problem.dtype)
    ones = torch.ones(problem.x_shape, dtype=problem.dtype)
    assert ll_infeasibility(oracles, ones, y, -1.0)[0] <= 0.0
    assert ll_infeasibility(oracles, 1e-4 * ones, y, -1.0)[0] > 0.0
    assert problem.evaluate(1e-4 * ones, y)["ll_feasible"] == 0.0
