"""The exact problems: closed-form optima, LL solutions and hypergradients against ground truth."""

from __future__ import annotations

import math

import pytest
import torch

from bilevel_bench.problem import check_ladder
from bilevel_bench.problems.toys import BOMEToy, SeparableToy
from bilevel_bench.registry import get_problem, get_suite

D = torch.float64


def one_dimensional(name: str, seed: int = 0):
    """The toy with one coordinate (a separable toy's instance has n = 10 copies)."""
    entry = get_problem(name)
    if not issubclass(entry.family, SeparableToy):
        return entry.make(seed=seed)
    return entry.family(seed=seed, **{**entry.instance.params, "n": 1})


def t(*values):
    return torch.tensor(values, dtype=D)


@pytest.mark.parametrize(("name", "x_star", "f_star"), [
    ("vpbgd-toy", 1.2152, 0.1999),        # reference P1
    ("blocc-toy1", 0.3007, 2.6545),       # reference P3, toy 1
    ("blocc-toy2", 0.9862, 1.7219),       # reference P3, toy 2
    ("pbgd-free-counterexample", -5.0, -35.0),
    ("bome-toy", math.sqrt(2.0), 0.0),  # version 3: shifted from 1
])
def test_one_dimensional_optima_match_the_reference(name, x_star, f_star):
    problem = one_dimensional(name)
    assert problem.optimum() == pytest.approx(f_star, abs=1e-4)
    # the optimum value is attained at the published minimiser and nowhere lower on a grid
    assert float(problem.hyper_objective(t(x_star))) == pytest.approx(f_star, abs=2e-4)
    lower, upper = problem.x_bounds
    grid = torch.linspace(lower if lower is not None else -10, upper if upper is not None else 10,
                          20001, dtype=D)
    values = torch.stack([problem.hyper_objective(g.reshape(1)) for g in grid[::20]])
    assert float(values.min()) >= problem.optimum() - 1e-9


def test_vpbgd_toy_local_minima():
    problem = one_dimensional("vpbgd-toy")
    for x in (0.3824, 1.2152, 2.8296):  # reference: three local minimisers of phi
        metrics = problem.evaluate(t(x), t(-x))
        assert metrics["hypergrad_norm"] < 5e-3
        assert metrics["ll_gap"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["vpbgd-toy", "pbgd-free-counterexample", "bome-toy"])
def test_closed_form_ll_solution_is_optimal(name):
    problem = one_dimensional(name)
    for x0 in (0.2, 0.9, 1.4):
        x = t(x0)
        y = {"vpbgd-toy": -x, "pbgd-free-counterexample": x - 1,
             "bome-toy": torch.cat([x, t(3.0)])}[name]
        yr = y.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(problem.g(x, yr), yr)
        assert float(grad.abs().max()) < 1e-12
        assert problem.evaluate(x, y)["ll_gap"] == pytest.approx(0.0, abs=1e-12)


def test_blocc_toy_kkt():
    """y*(x) = x with multiplier 2x >= 0 satisfies the KKT conditions of the coupled LL."""
    problem = one_dimensional("blocc-toy2")
    for x0 in (0.1, 1.0, 2.5):
        x = t(x0)
        y = x.clone().requires_grad_(True)
        (grad_g,) = torch.autograd.grad(problem.g(x, y), y)
        (grad_h,) = torch.autograd.grad(problem.h(x, y).sum(), y)
        multiplier = 2 * x0
        assert float((grad_g + multiplier * grad_h).abs()) < 1e-12
        assert float(problem.h(x, y.detach())) == 0.0
    # an infeasible y is reported as a violation
    assert problem.evaluate(t(1.0), t(1.5))["constraint_violation"] == pytest.approx(0.5)


def test_hypergradient_matches_finite_differences():
    problem = one_dimensional("vpbgd-toy")
    for x0 in (0.7, 1.9):
        eps = 1e-6
        phi = problem.hyper_objective
        fd = (phi(t(x0 + eps)) - phi(t(x0 - eps))) / (2 * eps)
        assert problem.evaluate(t(x0), t(-x0))["hypergrad_norm"] == pytest.approx(abs(float(fd)),
                                                                                 rel=1e-6)


def test_lvhba_closed_form_against_brute_force():
    """Optimistic F(x) = min over the LL solution set, computed by projection, vs closed form."""
    problem = get_problem("lvhba-toy").make()
    n = problem.n
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(n, dtype=D, generator=gen)
        y1 = x + 1
        s = -2 * x.sum() - n  # 1^T y2 fixed by the equality constraint
        y2 = x + (s - x.sum()) / n  # closest point to x on {1^T y2 = s}
        y = torch.cat([y1, y2])
        assert float(problem.f(x, y)) == pytest.approx(float(problem.hyper_objective(x)), rel=1e-12)
        metrics = problem.evaluate(x, y)
        assert metrics["constraint_violation"] < 1e-10 and abs(metrics["ll_gap"]) < 1e-9
    x_star = torch.full((n,), -0.3, dtype=D)
    metrics = problem.evaluate(x_star, torch.cat([x_star + 1, torch.full((n,), -0.4, dtype=D)]))
    assert metrics["ul_value"] == pytest.approx(5.0) and metrics["ul_gap"] == pytest.approx(0.0)
    assert metrics["hypergrad_norm"] < 1e-12


@pytest.mark.parametrize("name", ["quadratic-small", "quadratic-ill-conditioned"])
def test_quadratic_exact_solution(name):
    problem = get_problem(name).make()
    ex = problem._exact
    x_star = ex["x_star"]
    m = problem.evaluate(x_star, problem.y_star(x_star))
    assert abs(m["ul_gap"]) < 1e-10 and m["hypergrad_norm"] < 1e-10 and abs(m["ll_gap"]) < 1e-10
    # hypergradient against the implicit-function formula with autograd Hessians of the means
    x = torch.randn(problem.x_shape, dtype=D, generator=torch.Generator().manual_seed(3))
    y = problem.y_star(x)
    hess = torch.autograd.functional.hessian(lambda a, b: problem.g(a, b), (x, y))
    g_yy, g_xy = hess[1][1], hess[0][1]
    fx, fy = torch.autograd.functional.jacobian(lambda a, b: problem.f(a, b), (x, y))
    implicit = fx - g_xy @ torch.linalg.solve(g_yy, fy)
    torch.testing.assert_close(problem.hypergradient(x), implicit)
    # and against finite differences of the exact hyper-objective
    e = torch.zeros_like(x)
    e[0] = 1e-6
    fd = (problem.hyper_objective(x + e) - problem.hyper_objective(x - e)) / 2e-6
    assert float(fd) == pytest.approx(float(problem.hypergradient(x)[0]), rel=1e-5, abs=1e-8)
    # F* is the minimum: random points are never better
    for k in range(5):
        gen = torch.Generator().manual_seed(k)
        xr = x_star + torch.randn(problem.x_shape, dtype=D, generator=gen)
        assert problem.evaluate(xr, problem.y_star(xr))["ul_gap"] > 0


def test_quadratic_knobs_and_determinism():
    entry = get_problem("quadratic-small")
    a, b = entry.make(seed=0), entry.make(seed=5)
    assert a.data_fingerprints() == b.data_fingerprints()  # data fixed by data_seed, not run seed
    big = type(a)(dim_x=3, dim_y=40, n_inner=64, n_outer=16, mu_inner=0.01)
    eig = torch.linalg.eigvalsh(big.mean_matrices()["A"])
    assert float(eig.min()) > 0 and float(eig.max() / eig.min()) > 20
    with pytest.raises(ValueError, match="mu_inner"):
        type(a)(mu_inner=2.0, L_inner=1.0)


def test_toys_suite_membership():
    suite = set(get_suite("toys"))
    assert {"vpbgd-toy", "pbgd-free-counterexample", "blocc-toy1", "blocc-toy2", "lvhba-toy",
            "bome-toy", "quadratic-small"} <= suite
    for name in suite:
        entry = get_problem(name)
        budget = entry.instance.budget  # a work budget (oracle cost) or CPU seconds
        assert math.isfinite(entry.instance.target) and (budget.seconds or budget.oracle_cost)


@pytest.mark.parametrize("name", ["vpbgd-toy", "blocc-toy1", "blocc-toy2", "bome-toy",
                                  "pbgd-free-counterexample", "lvhba-toy"])
def test_targets_are_precisions_of_one_reference_gap_to_the_exact_optimum(name):
    """Protocol v3: F* (declared in the ladder) is the closed-form optimum, the reference gap is
    F at the stated x_ref, and the ladder (ul_gap or ul_gap_local) is that gap times
    precisions down to the final one."""
    entry = get_problem(name)
    problem, targets = entry.make(seed=0), entry.instance.optimum
    assert targets is not None and targets.on == "gap"
    assert targets.f_star == pytest.approx(problem.optimum(), rel=1e-12, abs=1e-12)
    x_ref = {"vpbgd-toy": 0.0, "blocc-toy1": 0.0, "blocc-toy2": 0.0, "bome-toy": 0.0,
             "pbgd-free-counterexample": 0.0, "lvhba-toy": 10.0}[name]
    f_ref = problem.hyper_objective(torch.full(problem.x_shape, x_ref, dtype=D))
    assert targets.f_ref == pytest.approx(float(f_ref), rel=1e-12)
    ladder = check_ladder(name, entry.instance.ladder, entry.instance.target, False)
    assert ladder[-1] == pytest.approx(targets.gap * targets.final)
    assert f"version {problem.version}" in entry.instance.description.lower() or \
        f"Version {problem.version}" in entry.instance.description


def test_separable_toys_are_sums_of_their_one_dimensional_copies():
    entry = get_problem("vpbgd-toy")
    problem, single = entry.make(seed=0), one_dimensional("vpbgd-toy")
    assert problem.x_shape == (10,) and problem.optimum() == pytest.approx(10 * single.optimum())
    x = t(0.3824, 1.2152, 2.8296, 0.9, 0.2, 1.2, 2.0, 2.5, 3.0, 0.0)
    full = problem.evaluate(x, -x)
    parts = [single.evaluate(x[i:i + 1], -x[i:i + 1]) for i in range(10)]
    for key in ("ul_value", "ul_gap", "ul_gap_local"):
        assert full[key] == pytest.approx(sum(m[key] for m in parts), rel=1e-12, abs=1e-12)
    toy2 = get_problem("blocc-toy2").make()
    assert toy2.x_bounds == (0.0, 3.5) and toy2.n_constraints == 10  # version 3: box [0, 3.5]


def test_bome_toy_optimum_is_off_the_round_constant():
    problem = get_problem("bome-toy").make()
    assert BOMEToy.SHIFT == math.sqrt(2.0)
    gap = problem.evaluate(t(1.0), t(1.0, 1.0))["ul_gap"]
    assert gap == pytest.approx(0.5 * (math.sqrt(2) - 1) ** 2)  # the constant 1: far from x*
