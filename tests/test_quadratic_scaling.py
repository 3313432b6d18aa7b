"""The quadratic family (P6) builds in O(d^2) above HAAR_MAX_DIM, with an exact solution.

Registered instances keep their data bit for bit (Haar eigenbases below the threshold): their
fingerprints are pinned in the family (``quadratic.PINNED``, rebuilt on several BLAS code paths
by tests/test_generated.py) and F* is frozen here. Above the threshold the spectral matrices are
sign-flipped circulants whose inverse is applied in closed form (refined for the rounding of A0
to the grid); no dense O(d^3) factorisation runs.
"""

from __future__ import annotations

import pytest
import torch

from bilevel_bench.oracles import Oracles
from bilevel_bench.problems import quadratic
from bilevel_bench.problems.quadratic import HAAR_MAX_DIM, CirculantSPD, Quadratic
from bilevel_bench.registry import get_problem

# F* of the registered instances (version 2 data; LAPACK's last bits vary between machines)
F_STAR = {
    "quadratic-small": -14.721500638285189,
    "quadratic-ill-conditioned": 5083.301262199549,
    "quadratic-benchopt": 92.69371299287985,
}


@pytest.mark.parametrize("name", sorted(F_STAR))
def test_registered_instances_keep_their_data(name):
    problem = get_problem(name).make(seed=0)
    assert problem.data_fingerprints()["generated"] == quadratic.PINNED[name]
    assert float(problem._exact["F_star"]) == pytest.approx(F_STAR[name], rel=1e-12)


@pytest.mark.parametrize("dim", [7, 8, 64])
def test_circulant_spd_has_the_stated_spectrum_and_inverse(dim):
    gen = torch.Generator().manual_seed(dim)
    spd = CirculantSPD.random(dim, 0.1, 1.0, gen)
    dense = spd.dense()
    assert torch.equal(dense, dense.T) or float((dense - dense.T).abs().max()) < 1e-15
    # eigenvalue lam_half[k] for the modes k and d - k: each value twice, but k = 0 and d / 2
    repeated = torch.cat([spd.lam_half, spd.lam_half[1:(dim + 1) // 2]])
    torch.testing.assert_close(torch.linalg.eigvalsh(dense), torch.sort(repeated).values)
    assert float(spd.lam_half.min()) == pytest.approx(0.1)
    assert float(spd.lam_half.max()) == pytest.approx(1.0)
    v = torch.randn(dim, 3, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(dense @ spd.solve(v), v)
    torch.testing.assert_close(spd.solve(v[:, 0]), torch.linalg.solve(dense, v[:, 0]))


@pytest.fixture(scope="module")
def large():
    """An instance above the threshold, built with dense O(d^3) factorisations forbidden."""
    dim = HAAR_MAX_DIM + 201
    forbidden = {}

    def guard(name):
        original = getattr(torch.linalg, name)

        def wrapped(a, *args, **kwargs):
            if min(a.shape[-2:]) > HAAR_MAX_DIM:  # both sides large: an O(d^3) factorisation
                raise AssertionError(f"torch.linalg.{name} on a {tuple(a.shape)} matrix")
            return original(a, *args, **kwargs)

        forbidden[name] = original
        return wrapped

    mp = pytest.MonkeyPatch()
    for name in ("qr", "inv", "solve", "eigh", "eigvalsh", "cholesky", "matrix_norm"):
        mp.setattr(torch.linalg, name, guard(name))
    try:
        problem = Quadratic(seed=0, dim_x=4, dim_y=dim, n_inner=64, n_outer=16)
    finally:
        mp.undo()
    return problem


def test_large_instance_exact_solution(large):
    problem = large
    assert problem._ll_hessian is not None  # the structured construction was used
    oracles = Oracles(problem)
    x = torch.randn(problem.x_shape, dtype=torch.float64, generator=torch.Generator())
    z = problem.y_star(x)
    _, gy = oracles.grad("g", x, z)
    assert float(gy.abs().max()) < 1e-10  # z*(x) is the LL minimiser
    xr = x.clone().requires_grad_()
    value = problem.f(xr, problem._exact["M"] @ xr + problem._exact["r"])
    (grad,) = torch.autograd.grad(value, xr)
    torch.testing.assert_close(problem.hypergradient(x), grad)  # closed-form grad F
    assert float(problem.hypergradient(problem._exact["x_star"]).abs().max()) < 1e-10
    assert problem.evaluate(problem._exact["x_star"], problem.y_star(problem._exact["x_star"]))[
        "ul_gap"] == pytest.approx(0.0, abs=1e-9)


def test_large_instance_ll_hessian_spectrum(large):
    problem = large
    mean_hessian = problem.mean_matrices()["A"]
    eigs = torch.linalg.eigvalsh(0.5 * (mean_hessian + mean_hessian.T))
    mu, big = problem.params["mu_inner"], problem.params["L_inner"]
    # the stated spectrum up to the rounding of the data to the grid 2^-20
    assert float(eigs.min()) == pytest.approx(mu, abs=1e-4)
    assert float(eigs.max()) == pytest.approx(big, abs=1e-4)


def test_threshold_is_the_only_switch(monkeypatch):
    """Below the threshold the Haar construction runs (data as before); raising the threshold
    gives the Haar construction at any size, so the two can be compared."""
    small = Quadratic(dim_x=3, dim_y=12, n_inner=8, n_outer=4)
    assert small._ll_hessian is None
    monkeypatch.setattr(quadratic, "HAAR_MAX_DIM", 5)
    structured = Quadratic(dim_x=3, dim_y=12, n_inner=8, n_outer=4)
    assert structured._ll_hessian is not None
    assert not torch.equal(small.A0, structured.A0)
    eigs = torch.linalg.eigvalsh(structured.mean_matrices()["A"])
    assert float(eigs.min()) == pytest.approx(0.1, abs=1e-4)
    assert float(eigs.max()) == pytest.approx(1.0, abs=1e-4)
