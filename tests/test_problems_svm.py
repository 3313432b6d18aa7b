"""SVM hyperparameter optimisation with coupled constraints (P7, P7'): data, splits, the exact
LL solution against independent solvers, metrics, and reachability of the frozen targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from problem_runs import drive
from scipy.optimize import minimize

from bilevel_bench.problems.svm import SVMLVHBA, SVMCoupled
from bilevel_bench.registry import get_problem, get_solver, suites

#: the reference configuration of BLOCC that the targets were frozen with
BLOCC = dict(gamma=12.0, primal_lr_g=1e-3, dual_lr_g=1e-3, primal_lr_F=1e-3, dual_lr_F=1e-3,
             dual_steps=10, inner_steps=5, accelerated=True)
#: instance -> (UL step of BLOCC, iterations allowed in the test)
REFERENCE = {
    "svm-ho-wdbc": (1e-2, 60),
    "svm-ho-diabetes": (1e-3, 150),
    "svm-ho-fourclass": (1e-3, 150),
    "svm-ho-breast-cancer": (1e-3, 150),
}


def test_instances_and_suites():
    table = suites()
    assert "svm-ho-wdbc" in table["core"]
    assert {"svm-ho-diabetes", "svm-ho-fourclass"} <= set(table["papers"])
    for name in REFERENCE:
        assert name in table["full"]


def test_diabetes_features_and_split_sizes():
    problem = SVMCoupled(seed=0, dataset="diabetes", poly=True)
    assert problem.dim == 45 and problem.y_shape == torch.Size([46])
    assert [len(s) for s in problem.split] == [500, 150, 118]
    assert problem.n_constraints == 500 and problem.x_shape == torch.Size([500])
    # degree-2 features: [1, z, z^2, z_i z_j] with z the raw features
    assert torch.all(problem.z_train[:, 0] == 1)
    z = problem.z_train[:, 1:9]
    assert torch.allclose(problem.z_train[:, 9:17], z**2)
    assert torch.allclose(problem.z_train[:, 17], z[:, 0] * z[:, 1])
    assert SVMCoupled(seed=0, dataset="fourclass").split[2].size == 212
    assert SVMLVHBA(seed=0, dataset="diabetes").dim == 8


def test_splits_are_per_seed_and_deterministic():
    a, b, c = (SVMCoupled(seed=s, dataset="wdbc") for s in (1, 1, 2))
    assert torch.equal(a.z_train, b.z_train) and torch.equal(a.t_test, b.t_test)
    assert not torch.equal(a.z_train, c.z_train)
    assert a.data_fingerprints() == c.data_fingerprints()
    assert [len(s) for s in a.split] == [300, 100, 169]


def _dual_solution(problem: SVMCoupled, c: np.ndarray) -> np.ndarray:
    """Independent y*(c): the dual  max_{mu >= 0} mu^T (1 - c) - 1/2 |A^T mu|^2,
    A_i = t_i [z_i, 1], solved by L-BFGS-B; y* = A^T mu*."""
    z = problem.z_train.numpy()
    a = problem.t_train.numpy()[:, None] * np.hstack([z, np.ones((len(z), 1))])

    def neg_dual(mu):
        v = a.T @ mu
        return 0.5 * v @ v - mu @ (1 - c), a @ v - (1 - c)

    res = minimize(neg_dual, np.zeros(len(c)), jac=True, method="L-BFGS-B",
                   bounds=[(0, None)] * len(c), options={"maxiter": 20000, "ftol": 1e-15,
                                                          "gtol": 1e-12})
    return a.T @ res.x


def test_exact_ll_solution_matches_an_independent_dual_solve():
    problem = SVMCoupled(seed=0, dataset="wdbc")
    c = np.random.default_rng(0).uniform(0.3, 1.2, problem.n_train)
    y_qp = problem.solve_ll(torch.as_tensor(c))
    y_dual = _dual_solution(problem, c)
    assert np.linalg.norm(y_qp) > 0.1
    np.testing.assert_allclose(y_qp, y_dual, atol=1e-4 * np.linalg.norm(y_dual))
    # metrics on the exact solution, recomputed with numpy
    zero = torch.zeros(problem.y_shape, dtype=torch.float64)
    metrics = problem.evaluate(torch.as_tensor(c), zero)
    w, b = y_dual[:-1], y_dual[-1]
    margins = problem.t_test.numpy() * (problem.z_test.numpy() @ w + b)
    assert metrics["test_accuracy_exact_ll"] == pytest.approx(np.mean(margins > 0))
    val = problem.t_val.numpy() * (problem.z_val.numpy() @ w + b)
    assert metrics["val_loss_exact_ll"] == pytest.approx(np.mean(np.exp(1 - val)), rel=1e-4)
    assert metrics["val_accuracy_exact_ll"] == pytest.approx(np.mean(val > 0))
    # the primary metric: F(c) = n_val * mean exp(1 - margin) + |c|^2 / 2 at y*(c)
    assert problem.primary_metric == "ul_value" and not problem.higher_is_better
    assert metrics["ul_value"] == pytest.approx(
        len(val) * np.mean(np.exp(1 - val)) + 0.5 * c @ c, rel=1e-4)
    assert metrics["ll_value_exact"] == pytest.approx(0.5 * y_dual @ y_dual, rel=1e-5)
    assert metrics["ll_feasible"] == 1.0
    assert metrics["constraint_violation"] == pytest.approx(np.max(1 - c))  # y = 0


def test_iterate_metrics_and_infeasible_lower_level():
    problem = SVMCoupled(seed=0, dataset="fourclass")
    x = torch.full(problem.x_shape, 1e-4, dtype=torch.float64)  # hard margin, not separable
    y = torch.zeros(problem.y_shape, dtype=torch.float64)
    y[-1] = 1.0  # predicts +1 everywhere
    metrics = problem.evaluate(x, y)
    assert metrics["ll_feasible"] == 0.0 and metrics["test_accuracy_exact_ll"] == 0.0
    assert np.isnan(metrics["ul_value"])  # F = +inf outside the LL's feasible set: diverged
    positive = float((problem.t_test > 0).double().mean())
    assert metrics["test_accuracy_iterate"] == pytest.approx(positive)
    # c >= 1 everywhere: the LL solution is exactly w = 0, b = 0, which classifies nothing
    x0, y0 = problem.init(torch.Generator().manual_seed(0))
    metrics = problem.evaluate(x0, y0)
    assert metrics["ll_feasible"] == 1.0 and metrics["test_accuracy_exact_ll"] == 0.0


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_ll_infeasible_in_x_is_declared_exactly_where_small_c_has_no_classifier(name):
    """The feature ``ll_infeasible_in_x`` (PBGD-Free, whose x-step -eta c ignores the LL, is not
    run there) matches the data: the hard-margin LL at c = 1e-4 (X's bound) is infeasible on
    every seed's training split iff the instance declares it."""
    entry = get_problem(name)
    declared = "ll_infeasible_in_x" in entry.instance.features
    for seed in range(3):
        problem = entry.make(seed=seed)
        bound = torch.full(problem.x_shape, 1e-4, dtype=torch.float64)
        assert (problem.solve_ll(bound) is None) == declared, (name, seed)
    reason = get_solver("pbgd-free").can_solve(entry.features(), entry.family.provides, "cpu")
    assert ("ll_infeasible_in_x" in reason) == declared
    assert get_solver("blocc").can_solve(entry.features(), entry.family.provides, "cpu") == ""


def test_lvhba_exact_ll_solution_matches_an_independent_primal_solve():
    problem = SVMLVHBA(seed=0, dataset="fourclass")
    c = np.random.default_rng(1).uniform(-2.0, 2.0, problem.n_train)
    y_qp = problem.solve_ll(torch.as_tensor(c))
    z, t, d = problem.z_train.numpy(), problem.t_train.numpy(), problem.dim
    weight = np.exp(c)

    def objective(v):  # squared-hinge form: xi_i = max(0, 1 - margin_i)
        w, b = v[:d], v[d]
        xi = np.maximum(0.0, 1 - t * (z @ w + b))
        grad_margin = -weight * xi * t
        return (0.5 * w @ w + 0.5 * weight @ xi**2,
                np.concatenate([w + z.T @ grad_margin, [grad_margin.sum()]]))

    res = minimize(objective, np.zeros(d + 1), jac=True, method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10000})
    np.testing.assert_allclose(y_qp[: d + 1], res.x, atol=1e-4)
    xi = np.maximum(0.0, 1 - t * (z @ res.x[:d] + res.x[d]))
    np.testing.assert_allclose(y_qp[d + 1:], xi, atol=1e-4)


@pytest.mark.parametrize("name", [
    "svm-ho-wdbc",
    pytest.param("svm-ho-diabetes", marks=pytest.mark.slow),
    pytest.param("svm-ho-fourclass", marks=pytest.mark.slow),
    pytest.param("svm-ho-breast-cancer", marks=pytest.mark.slow),
])
def test_target_reached_by_blocc_and_not_with_x_frozen(name):
    lr, steps = REFERENCE[name]
    ok, history = drive(name, "blocc", {**BLOCC, "lr": lr}, steps, every=5)
    assert ok, f"BLOCC did not reach {get_problem(name).instance.target}: " \
               f"{[round(m['ul_value'], 1) for m in history]}"
    # the papers' metric improves too (test accuracy of BLOCC's iterate; reported, not ranked)
    assert history[-1]["test_accuracy_iterate"] > 0.7
    frozen, history = drive(name, "blocc", {**BLOCC, "lr": 0.0}, 10, every=5)
    assert not frozen and history[-1]["test_accuracy_exact_ll"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["svm-ho-lvhba-diabetes", "svm-ho-lvhba-fourclass"])
def test_lvhba_variant_target_reached_by_blocc_and_not_with_x_frozen(name):
    hp = dict(BLOCC, lr=3.0, primal_lr_g=1e-2, dual_lr_g=1e-2, primal_lr_F=1e-2, dual_lr_F=1e-2)
    ok, history = drive(name, "blocc", hp, 60, every=10)
    assert ok, [round(m["ul_value"], 2) for m in history]
    frozen, _ = drive(name, "blocc", {**hp, "lr": 0.0}, 10, every=10)
    assert not frozen
