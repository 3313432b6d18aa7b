"""Reference solvers reach the known optima of the toys and of the quadratic (float64).

Protocol of the authors: several random initial points (seeds); on multimodal toys every run
must end at a stationary point of the exact hyper-objective (projected hypergradient mapping)
and the best run at the global optimum. Penalty methods with a finite gamma are judged at the
tolerance their O(1/gamma) bias allows, stated per case.
"""

from __future__ import annotations

import math

import pytest
import torch

from bilevel_bench.problems.quadratic import Quadratic
from bilevel_bench.problems.toys import SeparableToy
from bilevel_bench.registry import get_problem, get_solver
from bilevel_bench.runner import start_solver


def one_dimensional(name: str, seed: int = 0):
    """The instance, with one coordinate where it is a separable toy (vpbgd-toy and the BLOCC
    toys are 10 independent copies of the papers' one-dimensional toys since version 3)."""
    entry = get_problem(name)
    if issubclass(entry.family, SeparableToy):
        return entry.family(seed=seed, **{**entry.instance.params, "n": 1})
    return entry.make(seed=seed)


def run(problem_or_name, solver: str, steps: int, seed: int = 0, **hp):
    """Drive one solver directly; returns (solver, problem, metrics)."""
    problem = (one_dimensional(problem_or_name, seed)
               if isinstance(problem_or_name, str) else problem_or_name)
    solver_obj, _ = start_solver(problem, get_solver(solver), hp, seed)
    for _ in range(steps):
        solver_obj.step()
    x, y = solver_obj.solution()
    return solver_obj, problem, problem.evaluate(x, y)


# ------------------------------------------------ P2: the PBGD-Free counter-example
@pytest.mark.parametrize("solver, hp, steps", [
    ("v-pbgd", {"lr": 0.03, "inner_steps": 3}, 300),
    ("alt-pbgd", {"lr": 0.1, "inner_steps": 5}, 150),
    ("g-pbgd", {"lr": 0.02}, 1000),  # gradient-norm penalty: exact on this toy
    ("f2sa", {"lr": 0.1, "lambda0": 5.0, "lambda_increment": 0.0, "inner_steps": 5,
              "exp_y": 0.0, "exp_z": 0.0, "exp_x": 0.0}, 150),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_function_methods_reach_minus_five(solver, hp, steps, seed):
    solver_obj, _, metrics = run("pbgd-free-counterexample", solver, steps, seed, **hp)
    x, _ = solver_obj.solution()
    assert abs(float(x) + 5.0) < 1e-3
    assert metrics["ul_gap"] < 1e-5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pbgd_free_stops_at_zero_on_counterexample(seed):
    # grad_x f = 2x only: the value-function-free update converges to x = 0 (F = -10), not -5
    solver_obj, _, metrics = run("pbgd-free-counterexample", "pbgd-free", 1500, seed)
    x, _ = solver_obj.solution()
    assert abs(float(x)) < 1e-4
    assert metrics["ul_gap"] == pytest.approx(25.0, abs=1e-3)


# ------------------------------------------------------------- P5: BOME toy
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bome_reaches_optimistic_optimum(seed):
    solver_obj, _, metrics = run("bome-toy", "bome", 400, seed)
    x, y = solver_obj.solution()
    assert abs(float(x) - math.sqrt(2.0)) < 1e-3  # version 3: x* = sqrt(2)
    assert torch.allclose(y, torch.full((2,), math.sqrt(2.0), dtype=y.dtype), atol=1e-2)
    assert metrics["ul_gap"] < 1e-5


# ------------------------------------------------------------ P1: V-PBGD toy
LOCAL_MINIMA_P1 = (0.3824, 1.2152, 2.8296)


def vpbgd_1d(seed: int):
    """The V-PBGD toy with one coordinate (the instance has 10 independent copies)."""
    return get_problem("vpbgd-toy").family(seed=seed, n=1)


@pytest.mark.parametrize("solver, hp, steps", [
    ("v-pbgd", {"lr": 0.02, "inner_steps": 3}, 600),
    # gradient-norm penalty gamma/2 |grad_y g|^2: its curvature gamma |grad^2 g|^2 ~ 160 at
    # gamma = 10 bounds the joint step (lr = 0.02 oscillates between basins)
    ("g-pbgd", {"lr": 0.005}, 1500),
])
def test_penalty_methods_land_on_local_minima_of_p1(solver, hp, steps):
    # gamma = 10: the penalised stationary points sit O(1/gamma) away from those of F
    best = float("inf")
    for seed in (1, 4, 7):  # random starts in different basins, one of them the global one
        solver_obj, _, metrics = run(vpbgd_1d(seed), solver, steps, seed, **hp)
        x = float(solver_obj.solution()[0])
        assert min(abs(x - m) for m in LOCAL_MINIMA_P1) < 0.03, (seed, x)
        assert metrics["ll_gap"] < 1e-2
        best = min(best, metrics["ul_gap"])
    assert best < 1e-2


@pytest.mark.parametrize("solver", ["grid-search", "random-search"])
def test_zero_order_methods_find_global_minimum_of_p1(solver):
    solver_obj, _, metrics = run(vpbgd_1d(0), solver, 80, 0)
    assert metrics["ul_gap"] < (1e-5 if solver == "grid-search" else 1e-2)
    assert abs(float(solver_obj.solution()[0]) - 1.2152) < 0.05


# -------------------------------------------------------- P6: quadratic (x* known)
def small_quadratic(seed: int = 0) -> Quadratic:
    return Quadratic(seed=seed, dim_x=3, dim_y=6, n_inner=32, n_outer=16)


@pytest.mark.parametrize("solver, hp, steps, tol", [
    ("aid-cg", {"outer_lr": 0.5}, 150, 1e-10),
    ("aid-neumann", {"outer_lr": 0.5, "neumann_lr": 1.0}, 150, 1e-10),
    ("itd", {"outer_lr": 0.5, "inner_lr": 1.0, "inner_steps": 60, "truncate": 60}, 40, 1e-4),
    ("saba", {"lr": 0.3, "batch_size": 8}, 1000, 1e-8),  # variance reduced: exact limit
    ("soba", {"lr": 0.5, "batch_size": 8}, 1500, 1e-2),  # decreasing steps: slow, noisy
    # full batches and a long Neumann series (eta = 1, Q = 60: bias 0.9^61 on the slowest mode)
    ("stocbio", {"lr": 1.0, "outer_ratio": 2.0, "batch_size": 10**6, "neumann_steps": 60}, 60,
     1e-5),
])
@pytest.mark.parametrize("seed", [0])
def test_implicit_methods_reach_quadratic_optimum(solver, hp, steps, tol, seed):
    _, _, metrics = run(small_quadratic(seed), solver, steps, seed, **hp)
    assert metrics["ul_gap"] < tol
