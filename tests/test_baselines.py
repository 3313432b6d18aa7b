"""The issue-2 reference solvers (AID-CG, V-PBGD, random search) against known answers.

Protocol as in the papers: several random initial points (seeds), a fixed number of steps,
tolerances stated per assertion. On the V-PBGD toy the authors' success criterion is landing on
a local minimiser of phi with y ~ -x (not necessarily the global one).
"""

from __future__ import annotations

import math

import pytest
import torch
from test_solvers_toys import one_dimensional

from bilevel_bench.registry import get_solver
from bilevel_bench.runner import start_solver

VPBGD_TOY_MINIMISERS = torch.tensor([0.3824, 1.2152, 2.8296], dtype=torch.float64)
SEEDS = (0, 1, 2)


def solve(problem_name: str, solver_name: str, seed: int, steps: int, **hp):
    problem = one_dimensional(problem_name, seed)  # separable toys: one of their copies
    solver, oracles = start_solver(problem, get_solver(solver_name), hp, seed)
    for _ in range(steps):
        solver.step()
    x, y = solver.solution()
    return x, y, problem.evaluate(x, y), oracles


def distance_to_local_minimiser(x: torch.Tensor) -> float:
    return float((VPBGD_TOY_MINIMISERS - x).abs().min())


@pytest.mark.parametrize("seed", SEEDS)
def test_aid_cg_quadratic_reaches_exact_optimum(seed):
    _, _, metrics, _ = solve("quadratic-small", "aid-cg", seed, 250)
    assert metrics["ul_gap"] < 1e-6  # the instance's frozen target
    assert metrics["hypergrad_norm"] < 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_aid_cg_vpbgd_toy_lands_on_a_local_minimiser(seed):
    x, y, metrics, _ = solve("vpbgd-toy", "aid-cg", seed, 200)
    assert distance_to_local_minimiser(x) < 1e-3
    assert metrics["hypergrad_norm"] < 1e-4
    assert float((x + y).abs()) < 1e-6  # y = y*(x) = -x


@pytest.mark.parametrize("solver", ["aid-cg", "v-pbgd"])
def test_value_function_methods_solve_the_pbgd_free_counterexample(solver):
    """Reference P2: methods that keep the value-function term reach x* = -5 (phi* = -35)."""
    for seed in SEEDS:
        hp = {} if solver == "aid-cg" else {"inner_steps": 1}
        x, _, metrics, _ = solve("pbgd-free-counterexample", solver, seed,
                                 60 if solver == "aid-cg" else 1000, **hp)
        assert abs(float(x) + 5.0) < 1e-3
        assert metrics["ul_gap"] < 1e-5


@pytest.mark.parametrize("seed", SEEDS)
def test_vpbgd_toy_protocol(seed):
    """gamma = 10, alpha = 0.01 (authors' toy defaults): a local minimiser up to O(1/gamma)."""
    x, y, _, _ = solve("vpbgd-toy", "v-pbgd", seed, 1500, inner_steps=1)
    assert distance_to_local_minimiser(x) < 0.05
    assert float((x + y).abs()) < 0.05


def test_vpbgd_non_singleton_lower_level():
    """Reference P5 (BOME toy): the penalty reaches the optimistic solution x* = 1."""
    for seed in (0, 1):
        x, _, metrics, _ = solve("bome-toy", "v-pbgd", seed, 2000, inner_steps=3)
        assert abs(float(x) - math.sqrt(2.0)) < 1e-2 and metrics["ul_gap"] < 1e-4  # bome-toy v3


def test_vpbgd_penalty_bias_on_the_quadratic():
    """With a fixed gamma the penalised solution is O(1/gamma) away: gap small, not zero."""
    _, _, metrics, _ = solve("quadratic-small", "v-pbgd", 0, 1500, lr=0.05, inner_steps=1)
    assert 1e-6 < metrics["ul_gap"] < 2e-2


@pytest.mark.parametrize("problem", ["vpbgd-toy", "pbgd-free-counterexample"])
def test_random_search_finds_the_global_minimum_of_one_dimensional_toys(problem):
    for seed in SEEDS:
        _, _, metrics, _ = solve(problem, "random-search", seed, 400)
        assert metrics["ul_gap"] < 1e-3  # the instances' frozen target
        assert metrics["ll_gap"] < 1e-10  # accurate LL solve per trial


def test_aid_cg_cost_per_iteration():
    """D + 1 gradients of g, N + 1 HVPs (CG with a warm-start residual), 1 JVP, 1 f gradient."""
    d, n = 3, 4
    *_, oracles = solve("quadratic-small", "aid-cg", 0, 1, inner_steps=d, cg_steps=n)
    c = oracles.counter.counts
    assert (c["g_value"], c["g_grad"], c["g_hvp"], c["g_jvp"]) == (d + 1, d + 1, n + 1, 1)
    assert (c["f_value"], c["f_grad"], c["f_hvp"]) == (1, 1, 0)


def test_vpbgd_cost_per_iteration():
    """T gradients of g for the value function, 2 more at (x, y) and (x, omega), 1 of f."""
    t = 5
    *_, oracles = solve("quadratic-small", "v-pbgd", 0, 2, inner_steps=t)
    c = oracles.counter.counts
    assert (c["g_grad"], c["f_grad"], c["g_hvp"], c["g_jvp"]) == (2 * (t + 2), 2, 0, 0)
