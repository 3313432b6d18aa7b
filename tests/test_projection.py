"""LV-HBA's projection onto {h <= 0}: the exact separable path against independent solvers."""

from __future__ import annotations

import pytest
import torch
from bilevel_bench_baselines.inner_loops import (
    project_onto_constraints,
    separable_halfspace_projection,
)

from bilevel_bench.oracles import Oracles
from bilevel_bench.problems.svm import SVMLVHBA


def cvxpy_projection(jac: torch.Tensor, rhs: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
    cp = pytest.importorskip("cvxpy")
    z = cp.Variable(z0.numel())
    problem = cp.Problem(cp.Minimize(cp.sum_squares(z - z0.numpy())),
                         [jac.numpy() @ z <= rhs.numpy()])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return torch.as_tensor(z.value)


def kkt_residual(jac, rhs, z0, z) -> float:
    """Largest violation of the projection's KKT conditions, with the multipliers obtained by
    least squares on the active rows: z0 - z = J_act^T lam, lam >= 0, J z <= rhs."""
    excess = jac @ z - rhs
    act = excess > -1e-9
    lam = torch.linalg.lstsq(jac[act].T, (z0 - z)[:, None]).solution[:, 0]
    stationarity = (jac[act].T @ lam - (z0 - z)).abs().max()
    return max(float(excess.clamp(min=0).max()), float(stationarity),
               float((-lam).clamp(min=0).max()))


@pytest.fixture(scope="module")
def svm_point():
    """The LV-HBA SVM variant (h_i = 1 - xi_i - t_i (w^T z_i + b)) at a point violating many
    constraints, with its linearised constraint set."""
    problem = SVMLVHBA(dataset="wdbc", n_train=80, n_val=20)
    gen = torch.Generator().manual_seed(0)
    x, y = problem.init(gen)
    y = y + 0.5 * torch.randn(y.shape, generator=gen, dtype=y.dtype)
    oracles = Oracles(problem)
    h, jx, jy = oracles.jacobian_h(x, y)
    jac = torch.cat([jx, jy], dim=1)
    z0 = torch.cat([x, y])
    return problem, oracles, x, y, jac, jac @ z0 - h, z0


def test_svm_projection_is_exact(svm_point):
    problem, oracles, x, y, jac, rhs, z0 = svm_point
    assert int((problem.h(x, y) > 0).sum()) > 10  # the point is far from feasible
    xp, yp = project_onto_constraints(oracles, x, y)
    z = torch.cat([xp, yp])
    torch.testing.assert_close(z, cvxpy_projection(jac, rhs, z0), atol=1e-7, rtol=0)
    assert kkt_residual(jac, rhs, z0, z) < 1e-10
    assert float(problem.h(xp, yp).max()) <= 1e-12
    torch.testing.assert_close(xp, x)  # h does not involve x: x is left alone


def test_svm_projection_matches_the_converged_generic_path(svm_point):
    _, oracles, x, y, *_ = svm_point
    fast = project_onto_constraints(oracles, x, y)
    generic = project_onto_constraints(oracles, x, y, dual_iters=200_000, tol=1e-14,
                                       structured=False)
    torch.testing.assert_close(fast[1], generic[1], atol=1e-8, rtol=0)


def test_projection_counts_one_value_and_one_jacobian_pass(svm_point):
    problem, _, x, y, *_ = svm_point
    for structured in (True, False):
        oracles = Oracles(problem)
        project_onto_constraints(oracles, x, y, structured=structured)
        counts = oracles.counter.counts
        assert (counts["h_value"], counts["h_grad"], oracles.counter.oracle_cost) == (1, 1, 2)


def test_separable_projection_with_several_private_and_untouched_coordinates():
    """Rows with 1-3 private coordinates, 4 shared ones, untouched coordinates: exact."""
    gen = torch.Generator().manual_seed(1)
    m, shared, untouched = 30, 4, 5
    sizes = torch.randint(1, 4, (m,), generator=gen)
    n = shared + untouched + int(sizes.sum())
    jac = torch.zeros(m, n, dtype=torch.float64)
    jac[:, :shared] = torch.randn(m, shared, generator=gen, dtype=torch.float64)
    col = shared + untouched
    for i, size in enumerate(sizes.tolist()):
        jac[i, col:col + size] = torch.randn(size, generator=gen, dtype=torch.float64)
        col += size
    z0 = 3 * torch.randn(n, generator=gen, dtype=torch.float64)
    rhs = torch.randn(m, generator=gen, dtype=torch.float64)
    assert int((jac @ z0 > rhs).sum()) > 5
    z = separable_halfspace_projection(jac, rhs, z0)
    assert z is not None
    torch.testing.assert_close(z, cvxpy_projection(jac, rhs, z0), atol=1e-7, rtol=0)
    assert kkt_residual(jac, rhs, z0, z) < 1e-10
    torch.testing.assert_close(z[shared:shared + untouched], z0[shared:shared + untouched])
    # no shared coordinates at all: each row is its own half-space
    z = separable_halfspace_projection(jac[:, shared:], rhs, z0[shared:])
    assert kkt_residual(jac[:, shared:], rhs, z0[shared:], z) < 1e-12


def test_non_separable_rows_take_the_generic_path():
    jac = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 0.0]], dtype=torch.float64)
    assert separable_halfspace_projection(jac, torch.zeros(2, dtype=torch.float64),
                                          torch.ones(3, dtype=torch.float64)) is None


def cvxpy_boxed_projection(jac, rhs, z0, lower, upper) -> torch.Tensor:
    cp = pytest.importorskip("cvxpy")
    z = cp.Variable(z0.numel())
    cons = [jac.numpy() @ z <= rhs.numpy()]
    lo, hi = lower.numpy(), upper.numpy()
    finite_lo, finite_hi = lower.isfinite().numpy(), upper.isfinite().numpy()
    if finite_lo.any():
        cons.append(z[finite_lo] >= lo[finite_lo])
    if finite_hi.any():
        cons.append(z[finite_hi] <= hi[finite_hi])
    cp.Problem(cp.Minimize(cp.sum_squares(z - z0.numpy())), cons).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return torch.as_tensor(z.value)


@pytest.fixture(scope="module")
def svm_ho_point():
    """svm-ho (P7: h_i = 1 - c_i - t_i (w^T z_i + b), c >= 1e-4, x = c) at a point violating
    many constraints with about a fifth of c below its box."""
    from bilevel_bench.problems.svm import SVMCoupled

    problem = SVMCoupled(dataset="wdbc", n_train=80, n_val=20)
    gen = torch.Generator().manual_seed(0)
    x, y = problem.init(gen)
    y = y + 0.5 * torch.randn(y.shape, generator=gen, dtype=y.dtype)
    x = x - 4 * torch.rand(x.shape, generator=gen, dtype=x.dtype)
    return problem, Oracles(problem), x, y


def test_svm_ho_boxed_projection_is_exact(svm_ho_point):
    problem, oracles, x, y = svm_ho_point
    assert int((problem.h(x, y) > 0).sum()) > 10 and int((x < 1e-4).sum()) > 10
    xp, yp = project_onto_constraints(oracles, x, y, exact_boxes=True)
    h, jx, jy = oracles.jacobian_h(x, y)
    jac, z0 = torch.cat([jx, jy], dim=1), torch.cat([x, y])
    lower = torch.cat([torch.full_like(x, 1e-4), torch.full_like(y, -torch.inf)])
    reference = cvxpy_boxed_projection(jac, jac @ z0 - h, z0, lower, torch.full_like(z0, torch.inf))
    torch.testing.assert_close(torch.cat([xp, yp]), reference, atol=1e-7, rtol=0)
    assert float(problem.h(xp, yp).max()) <= 1e-12 and float(xp.min()) >= 1e-4
    # KKT with the box written as rows -c_i <= -1e-4
    box = torch.cat([-torch.eye(x.numel(), dtype=x.dtype), torch.zeros(x.numel(), y.numel(),
                                                                         dtype=x.dtype)], dim=1)
    rows, rhs = torch.cat([jac, box]), torch.cat([jac @ z0 - h, torch.full_like(x, -1e-4)])
    assert kkt_residual(rows, rhs, z0, torch.cat([xp, yp])) < 1e-10


def test_svm_ho_default_is_the_exact_path(svm_ho_point):
    """On by default (LV-HBA 2.1); ``exact_boxes=False`` is the generic (Dykstra) path."""
    _, oracles, x, y = svm_ho_point
    default = project_onto_constraints(oracles, x, y)
    exact = project_onto_constraints(oracles, x, y, exact_boxes=True)
    assert all(torch.equal(a, b) for a, b in zip(default, exact, strict=True))
    generic = project_onto_constraints(oracles, x, y, exact_boxes=False)
    assert all(torch.equal(a, b) for a, b in zip(
        generic, project_onto_constraints(oracles, x, y, structured=False), strict=True))
    counted = Oracles(oracles._problem)
    project_onto_constraints(counted, x, y)
    counts = counted.counter.counts
    assert (counts["h_value"], counts["h_grad"], counted.counter.oracle_cost) == (1, 1, 2)


def test_boxed_projection_random_signs_and_untouched_coordinates():
    """Private coefficients of both signs, boxes on the side the rows leave open, untouched
    coordinates boxed too: exact against cvxpy; a box the rows could cross, or a box on a
    shared coordinate, is left to the generic path (None)."""
    from bilevel_bench_baselines.inner_loops import separable_boxed_projection

    gen = torch.Generator().manual_seed(2)
    m, shared, untouched = 40, 5, 3
    n = shared + untouched + m
    jac = torch.zeros(m, n, dtype=torch.float64)
    jac[:, :shared] = torch.randn(m, shared, generator=gen, dtype=torch.float64)
    alpha = torch.randn(m, generator=gen, dtype=torch.float64)
    jac[torch.arange(m), shared + untouched + torch.arange(m)] = alpha
    z0 = 2 * torch.randn(n, generator=gen, dtype=torch.float64)
    rhs = torch.randn(m, generator=gen, dtype=torch.float64)
    lower, upper = torch.full_like(z0, -torch.inf), torch.full_like(z0, torch.inf)
    priv = shared + untouched + torch.arange(m)
    bound = 0.5 * torch.randn(m, generator=gen, dtype=torch.float64)
    lower[priv] = torch.where(alpha < 0, bound, -torch.inf)  # p >= (..): box from below
    upper[priv] = torch.where(alpha > 0, bound, torch.inf)   # p <= (..): box from above
    lower[shared:shared + untouched], upper[shared:shared + untouched] = -0.1, 0.1
    assert int((jac @ z0 > rhs).sum()) > 5
    z = separable_boxed_projection(jac, rhs, z0, lower, upper)
    assert z is not None
    reference = cvxpy_boxed_projection(jac, rhs, z0, lower, upper)
    torch.testing.assert_close(z, reference, atol=1e-7, rtol=0)
    crossing = upper.clone()
    crossing[priv[alpha < 0][0]] = 5.0
    assert separable_boxed_projection(jac, rhs, z0, lower, crossing) is None
    boxed_shared = lower.clone()
    boxed_shared[0] = -1.0
    assert separable_boxed_projection(jac, rhs, z0, boxed_shared, upper) is None
