"""Transportation network design (P10): the authors' data, structure, the exact LL solution
against an independent solver, the metric, and reachability of the frozen targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from problem_runs import drive
from scipy.optimize import minimize

from bilevel_bench.problems.transport import Transport
from bilevel_bench.registry import suites

_STEPS = dict(primal_lr_g=0.05, dual_lr_g=0.2, primal_lr_F=0.05, dual_lr_F=0.2,
              dual_steps=10, inner_steps=5)
#: the reference configurations of BLOCC that the targets were frozen with
BLOCC = {"transport-3node": dict(gamma=5.0, lr=0.02, **_STEPS),
         "transport-9node": dict(gamma=10.0, lr=0.05, **_STEPS)}


def _link(problem: Transport, i: int, j: int) -> int:
    """Index of the link between the authors' (1-based) nodes i -> j."""
    ends = (problem.incidence == 1).int().argmax(0), (problem.incidence == -1).int().argmax(0)
    hits = ((ends[0] == i - 1) & (ends[1] == j - 1)).nonzero()
    assert hits.numel() == 1, (i, j)
    return int(hits[0, 0])


def _od(problem: Transport, o: int, d: int) -> int:
    hits = ((problem.supply[:, o - 1] == 1) & (problem.supply[:, d - 1] == -1)).nonzero()
    assert hits.numel() == 1, (o, d)
    return int(hits[0, 0])


def test_data_matches_the_authors_scripts():
    small = Transport(network="3node")  # bilevel_3node.m lines 22, 24, 27, 31
    for (i, j), d, c in [((1, 2), 1, 1), ((1, 3), 10, 10), ((2, 3), 2, 3), ((3, 2), 2, 3)]:
        assert small.travel[_link(small, i, j)] == d and small.build_cost[_link(small, i, j)] == c
    for (o, d), m in [((1, 2), 2), ((3, 1), 6), ((2, 3), 1)]:
        k = _od(small, o, d)
        assert small.revenue[k] == m and small.alternative[k] == 3 and small.demand[k] == 1
    grid = Transport(network="9node")  # bilevel_9node.m lines 18-39, 49-57, 59-67, 71-79, 81-89
    for (i, j), d, c in [((1, 2), 0.75, 1.7), ((2, 1), 0.75, 1.7), ((4, 8), 0.8, 3.2),
                         ((6, 8), 0.4, 2.8), ((1, 9), 0.9, 2.9)]:
        e = _link(grid, i, j)
        assert float(grid.travel[e]) == d and float(grid.build_cost[e]) == c
    for (o, d), u, m, w in [((1, 2), 1.6, 2.5, 0.9), ((2, 1), 2.0, 2.5, 1.1),
                            ((8, 9), 0.3, 7.5, 0.4), ((9, 5), 1.9, 5.0, 2.7),
                            ((6, 2), 2.7, 5.0, 0.1)]:
        k = _od(grid, o, d)
        assert float(grid.alternative[k]) == u and float(grid.revenue[k]) == m
        assert float(grid.demand[k]) == pytest.approx(w, abs=1e-12)
    assert float(grid.demand.sum()) == pytest.approx(104.4)
    # init: MATLAB rng(1); a = 0.3 + 0.7 rand(3, 3) (column-major), shares 0.01, flows 0
    x, y = small.init(torch.Generator().manual_seed(0))
    assert float(x[_link(small, 1, 2)]) == pytest.approx(0.3 + 0.7 * 0.30233257263183977)
    assert float(x[_link(small, 2, 1)]) == pytest.approx(0.3 + 0.7 * 0.7203244934421581)
    assert (y[:6] == 0.01).all() and (y[6:] == 0).all()
    x9, _ = grid.init(torch.Generator().manual_seed(1))
    assert float(x9.min()) >= 3.0 and float(x9.max()) <= 15.0
    assert torch.equal(x9, grid.init(torch.Generator().manual_seed(2))[0])  # deterministic


def test_instances_shapes_constraints_and_floor():
    assert {"transport-3node", "transport-9node"} <= set(suites()["papers"])
    small, grid = Transport(network="3node"), Transport(network="9node")
    assert Transport.version == "2"
    assert (small.n_links, small.n_ods, small.n_constraints) == (6, 6, 2 * 3 * 6 + 6)
    assert (grid.n_links, grid.n_ods, grid.n_constraints) == (30, 72, 2 * 9 * 72 + 30)
    x, y = grid.init(torch.Generator().manual_seed(0))
    assert x.shape == grid.x_shape and y.shape == grid.y_shape == torch.Size([72 * 31])
    assert grid.h(x, y).shape == torch.Size([grid.n_constraints])
    # shares are kept in [0.01, 0.99] and link flows in [0, 1] by the projection
    wild = grid.project_y(x, torch.linspace(-2, 2, y.numel(), dtype=torch.float64))
    assert wild[:72].min() >= 0.01 and wild[:72].max() <= 0.99 and wild[72:].min() >= 0
    # the per-link floor: 3-node shortest paths 1->3 = 1->2->3 and 3->1 = 3->2->1, so the
    # direct links 1->3, 3->1 carry none (floor 1e-3) and the others two minimal shares, each
    # plus the slack of 1e-3 that keeps the LL strictly feasible
    floor = small.a_min
    assert float(floor[_link(small, 1, 3)]) == float(floor[_link(small, 3, 1)]) == 2e-3
    assert float(floor[_link(small, 1, 2)]) == pytest.approx(0.021)
    assert torch.equal(small.project_x(torch.zeros(6, dtype=torch.float64)), floor)
    assert small.x_bounds == (2e-3, None)
    # the LL is feasible at the floor: minimal shares fit, F is finite
    for problem in (small, grid):
        metrics = problem.evaluate(problem.a_min, problem.init(torch.Generator())[1])
        assert np.isfinite(metrics["profit"])
        assert 0.01 - 1e-6 <= metrics["ridership"] <= 0.02


@pytest.mark.parametrize("demand", [None, [0.5, 2.0, 1.0, 1.5, 0.8, 3.0]])
def test_exact_ll_solution_matches_slsqp_and_metrics(demand):
    """The 3-node instance, and (SLSQP is too slow for the 9-node's 2304 LL variables) the same
    network with unequal demands, which exercises the demand weighting of g and of h."""
    problem = Transport(network="3node")
    if demand is not None:
        problem.demand = torch.as_tensor(demand, dtype=torch.float64)
    a = np.array([0.5, 0.1, 0.3, 0.2, 0.4, 0.15]) * (1.0 if demand is None else 2.0)
    k, e = problem.n_ods, problem.n_links
    y_star = problem.solve_ll(torch.as_tensor(a))
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
    # status 8 (no descent direction for the line search) happens at ftol 1e-12 once SLSQP
    # has converged to machine precision; require a feasible point instead of the flag
    assert res.status in (0, 8), res.message
    assert np.abs(cons[0]["fun"](res.x)).max() <= 1e-8 and cons[1]["fun"](res.x).min() >= -1e-8
    assert g(y_star.numpy()) == pytest.approx(res.fun, abs=1e-6 * max(1.0, abs(res.fun)))
    np.testing.assert_allclose(y_star[:k].numpy(), res.x[:k], atol=2e-3)
    metrics = problem.evaluate(x, y_star)
    fare = problem.revenue.numpy() * problem.demand.numpy()
    profit = fare @ res.x[:k] - problem.build_cost.numpy() @ a
    assert metrics["profit"] == pytest.approx(profit, abs=1e-3)
    assert metrics["ll_gap"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["constraint_violation"] <= 1e-6


@pytest.mark.parametrize("name, steps, every, initial", [
    ("transport-3node", 60, 10, -7.49),
    pytest.param("transport-9node", 300, 25, -413.2, marks=pytest.mark.slow)])
def test_target_reached_by_blocc_and_not_with_x_frozen(name, steps, every, initial):
    ok, history = drive(name, "blocc", BLOCC[name], steps, every=every)
    assert ok, [round(m["profit"], 3) for m in history]
    frozen, history = drive(name, "blocc", {**BLOCC[name], "lr": 0.0}, 2 * every, every=every)
    assert not frozen and history[-1]["profit"] == pytest.approx(initial, abs=0.1)


def test_exact_solve_at_capacities_on_the_floor():
    # capacities reached by PBGD-Free on the 9-node after 280 steps, 13 links on the floor: at
    # the bare floor (no Slater point) Clarabel failed here; the slack of 1e-3 keeps it solvable
    a = [4.6888, 0.091, 0.011, 6.8669, 0.054, 0.032, 0.108, 5.3216, 6.2317, 0.197, 0.7471, 0.011,
         7.3131, 4.1337, 0.041, 1.9735, 1.9841, 0.1853, 0.129, 1.6417, 7.7507, 6.639, 3.8101,
         6.4671, 0.04, 3.559, 2.3105, 0.072, 0.008, 0.104]
    problem = Transport(network="9node")
    x = torch.tensor(a, dtype=torch.float64)
    metrics = problem.evaluate(x, problem.init(torch.Generator())[1])
    assert np.isfinite(metrics["profit"]) and metrics["ll_gap"] >= -1e-6
