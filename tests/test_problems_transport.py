"""Transportation network design (P10): structure, the exact LL solution against an independent
solver, the metric, and reachability of the frozen targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from problem_runs import drive
from scipy.optimize import minimize

from bilevel_bench.problems.transport import Transport
from bilevel_bench.registry import suites

#: the reference configuration of BLOCC that the targets were frozen with
BLOCC = dict(gamma=5.0, lr=0.05, primal_lr_g=0.05, dual_lr_g=0.05, primal_lr_F=0.05,
             dual_lr_F=0.05, dual_steps=10, inner_steps=5)


def test_instances_shapes_and_constraints():
    assert {"transport-3node", "transport-9node"} <= set(suites()["papers"])
    small, grid = Transport(network="3node"), Transport(network="9node")
    assert (small.n_links, small.n_ods, small.n_constraints) == (6, 6, 2 * 3 * 6 + 6)
    assert (grid.n_links, grid.n_ods, grid.n_constraints) == (24, 12, 2 * 9 * 12 + 24)
    x, y = grid.init(torch.Generator().manual_seed(0))
    assert x.shape == grid.x_shape and y.shape == grid.y_shape == torch.Size([12 * 25])
    assert grid.h(x, y).shape == torch.Size([grid.n_constraints])
    # shares are kept in [0.01, 0.99] and link flows in [0, 1] by the projection
    wild = grid.project_y(x, torch.linspace(-2, 2, y.numel(), dtype=torch.float64))
    assert wild[:12].min() >= 0.01 and wild[:12].max() <= 0.99 and wild[12:].min() >= 0


def test_exact_ll_solution_matches_slsqp_and_metrics():
    problem = Transport(network="3node")
    a = np.array([0.5, 0.1, 0.3, 0.2, 0.4, 0.15])
    y_star = problem.solve_ll(torch.as_tensor(a))
    k, e = problem.n_ods, problem.n_links
    t = torch.as_tensor
    x = t(a)

    def g(v):
        return float(problem.g(x, t(v)))

    # one conservation row per OD pair is redundant (rows sum to zero): drop the last node
    cons = [{"type": "eq",
             "fun": lambda v: problem.conservation(t(v))[:, :-1].reshape(-1).numpy()},
            {"type": "ineq", "fun": lambda v: -problem.h(x, t(v))[-e:].numpy()}]
    bounds = [(0.01, 0.99)] * k + [(0.0, 1.0)] * (k * e)
    start = np.concatenate([np.full(k, 0.5), np.zeros(k * e)])
    res = minimize(g, start, method="SLSQP", bounds=bounds, constraints=cons,
                   options={"ftol": 1e-12, "maxiter": 1000})
    assert res.success, res.message
    assert g(y_star.numpy()) == pytest.approx(res.fun, abs=1e-6)
    np.testing.assert_allclose(y_star[:k].numpy(), res.x[:k], atol=1e-3)
    metrics = problem.evaluate(x, y_star)
    fare = problem.revenue.numpy() * problem.demand.numpy()
    profit = fare @ res.x[:k] - problem.build_cost.numpy() @ a
    assert metrics["profit"] == pytest.approx(profit, abs=1e-4)
    assert metrics["ll_gap"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["constraint_violation"] <= 1e-6


@pytest.mark.parametrize("name, steps", [
    ("transport-3node", 40), pytest.param("transport-9node", 80, marks=pytest.mark.slow)])
def test_target_reached_by_blocc_and_not_with_x_frozen(name, steps):
    ok, history = drive(name, "blocc", BLOCC, steps, every=10)
    assert ok, [round(m["profit"], 3) for m in history]
    frozen, history = drive(name, "blocc", {**BLOCC, "lr": 0.0}, 10, every=10)
    assert not frozen and history[-1]["profit"] < 3.0
