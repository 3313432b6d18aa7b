"""P6, the quadratic bilevel family with an exact hyper-objective (benchopt/SOBA, arXiv:2201.13409).

Finite sums over n LL samples i and m UL samples j:

    g_i(x, z) = 1/2 z^T (A0 + p_i p_i^T) z + (u_i^T x)(q_i^T z) + x^T C0 z + a_i^T z
                + 1/2 x^T B x + b_i^T x
    f_j(x, z) = 1/2 z^T F z + 1/2 x^T H x + x^T K z + c_j^T z + e_j^T x

g = mean_i g_i, f = mean_j f_j. Every g_i is strongly convex in z (A0 is positive definite), and
the means are exact: A = A0 + mean p p^T, C = C0 + mean u q^T, a = mean a_i, ... Hence

    z*(x) = M x + r,  M = -A^{-1} C^T,  r = -A^{-1} a,
    F(x)  = f(x, z*(x)),  grad F(x) = M^T (F z* + K^T x + c) + H x + K z* + e   (closed form),
    x*    solves the linear system grad F = 0 (F is a strongly convex quadratic of x).

Knobs: dimensions (dim_x, dim_y), conditioning (mu_inner, L_inner of the LL Hessian spectrum),
coupling (L_cross), sample counts (n_inner, n_outer), per-sample noise, and the data seed.

The data are the same on every CPU, BLAS and thread count (version 2,
:mod:`bilevel_bench.generated`): random draws are exact Irwin-Hall normals, and every matrix
computed with LAPACK/BLAS (eigenbases, products, spectral norms) is rounded to the grid 2^-20
(the rounded matrices are the instance: the closed form below is computed from them).

Spectral matrices S = Q diag(lambda) Q^T (the LL Hessian A, and F, B, H) have log-spaced
eigenvalues lambda between the stated bounds (up to the rounding, below 1e-5). Up to
``HAAR_MAX_DIM`` (1,000) dimensions Q is a random rotation (QR of a matrix of normal draws,
O(d^3), the construction of every registered instance).
Above it, S is a sign-flipped symmetric circulant matrix,

    S = D C D,   C_ij = c_{(i - j) mod d},   c = IDFT(lambda),   D = diag(random signs),

whose eigenvectors (D times the Fourier basis) are fully delocalised and whose spectrum is lambda
(log-spaced over the d // 2 + 1 frequencies, shuffled among them, each value shared by the
frequencies k and d - k of a real symmetric circulant): it is built in O(d^2) and inverted in
O(d log d) (A^{-1} v = D IDFT(DFT(D v) / lambda)), so an instance builds in
O(n dim_y^2 + dim_x dim_y^2 + dim_x^3) time and O(dim_y^2) memory (dim_y = 10,000: a few
seconds). Every reference solver is rotation-equivariant, so the spectrum, the coupling and the
noise make an instance hard, not the eigenbasis.
"""

from __future__ import annotations

import math

import torch

from bilevel_bench import generated
from bilevel_bench.generated import FixedGrid
from bilevel_bench.problem import EXACT_LL, BilevelProblem, Budget, Instance, fingerprint_tensors

#: spectral matrices of at most this dimension get a Haar-random eigenbasis (O(d^3)); larger ones
#: a sign-flipped circulant one (O(d^2)), see the module docstring
HAAR_MAX_DIM = 1000


class CirculantSPD:
    """S = D C D: C the symmetric circulant matrix with first column ``first`` (eigenvalues
    ``lam_half``), D = diag(signs).

    ``lam_half[k]`` (k = 0..d//2) is the eigenvalue of the Fourier modes k and d - k, so that
    C_ij = c_{(i - j) mod d} with c = IDFT(lambda) real and even. ``dense()`` builds S in O(d^2);
    ``solve(v)`` applies S^{-1} = D C^{-1} D to the columns of v in O(d log d) each.
    """

    def __init__(self, lam_half: torch.Tensor, signs: torch.Tensor,
                 first: torch.Tensor | None = None) -> None:
        self.dim = signs.numel()
        self.lam_half, self.signs = lam_half, signs
        self.first = torch.fft.irfft(lam_half.to(torch.complex128), n=self.dim) \
            if first is None else first

    @classmethod
    def random(cls, dim: int, low: float, high: float, gen: torch.Generator,
               grid: FixedGrid | None = None) -> CirculantSPD:
        """Eigenvalues log-spaced in [low, high] over the dim // 2 + 1 frequencies, shuffled
        among them, and random signs, both drawn from ``gen``. With a ``grid``, the first
        column c is made exactly even and rounded to it (portable data, see
        :mod:`bilevel_bench.generated`), and the eigenvalues are those of the rounded c."""
        lam = _logspace(low, high, dim // 2 + 1)
        lam = lam[torch.randperm(lam.numel(), generator=gen)]
        signs = torch.randint(0, 2, (dim,), generator=gen).to(torch.float64) * 2 - 1
        if grid is None:
            return cls(lam, signs)
        first = torch.fft.irfft(lam.to(torch.complex128), n=dim)
        first = grid(0.5 * (first + first.flip(0).roll(1)))  # c_k = c_{(d - k) mod d}
        return cls(torch.fft.rfft(first).real, signs, first)

    def dense(self) -> torch.Tensor:
        """S as a dense d x d float64 matrix: one copy out of a strided view, then the signs."""
        d = self.dim
        # C_ij = r_{d - i + j} with r_k = c_{(d - k) mod d} (k < 2d); the Hankel view
        # hankel[m, j] = r_{m + j} holds row i of C at m = d - i
        r_half = self.first.flip(0).roll(1)
        hankel = torch.cat([r_half, r_half]).as_strided((d + 1, d), (1, 1))
        out = hankel[1:].flip(0)
        return out.mul_(self.signs[:, None]).mul_(self.signs[None, :])

    def solve(self, v: torch.Tensor) -> torch.Tensor:
        """S^{-1} v for v of shape (d,) or (d, k): D IDFT(DFT(D v) / lambda)."""
        signs = self.signs.to(v)[:, None]
        u = signs * (v[:, None] if v.ndim == 1 else v)
        spec = torch.fft.rfft(u, dim=0) / self.lam_half.to(v.device)[:, None]
        out = signs * torch.fft.irfft(spec, n=self.dim, dim=0)
        return out[:, 0] if v.ndim == 1 else out


#: sha256 of the registered instances' generated data (bilevel_bench.generated: the same on every
#: CPU, BLAS and thread count; tests/test_generated.py rebuilds them on several code paths)
PINNED = {
    "quadratic-small": "5b9ed327aaba2c96d687a813278e03abae55765983e97aef903ad9cff1314cdd",
    "quadratic-ill-conditioned": "a97dbe3717621b5e30c0c4c3348d25c9b6b1179f0b242d4b9090b2de6daad79e",
    "quadratic-benchopt": "5f3e47a6941bf22d4fb03707212adfa54d7c17cb01348d9ef833211ee5e7582a",
}


def _logspace(low: float, high: float, count: int) -> torch.Tensor:
    """``count`` values log-spaced from ``low`` to ``high`` (float64)."""
    return torch.logspace(math.log10(low), math.log10(high), count, dtype=torch.float64)


class Quadratic(BilevelProblem):
    """Quadratic bilevel problem with exact F, F*, grad F and stochastic oracles."""

    name = "quadratic"
    #: 2: data built from exact draws and rounded to a fixed grid (the same on every CPU)
    version = "2"
    ll_gate = EXACT_LL  # ul_gap is F(x) - F* with the closed-form y*(x)
    task = "quadratics"
    citation = "Dagreou, Ablin, Vaiter, Moreau, A Framework for Bilevel Optimization That " \
               "Enables Stochastic and Global Variance Reduction Algorithms, arXiv:2201.13409"
    formulation = (
        "g = mean_i [z^T A_i z/2 + x^T C_i z + a_i^T z + x^T B x/2 + b_i^T x]; "
        "f = mean_j [z^T F z/2 + x^T H x/2 + x^T K z + c_j^T z + e_j^T x]"
    )
    instances = {
        "quadratic-small": Instance(
            dict(dim_x=5, dim_y=10, n_inner=256, n_outer=64),
            target=1e-6, budget=Budget(seconds=None, oracle_cost=3e4, iterations=20_000),
            suites=("toys", "core", "full"),
            description="small quadratic for tests and the toys suite (v2: data the same on "
                        "every CPU)",
            fingerprints={"generated": PINNED["quadratic-small"]},
        ),
        "quadratic-ill-conditioned": Instance(
            dict(dim_x=10, dim_y=50, n_inner=1024, n_outer=256, mu_inner=0.01, L_inner=1.0),
            target=1e-6, budget=Budget(seconds=None, oracle_cost=3e4, iterations=50_000),
            suites=("core", "full"),
            description="LL condition number 100 (v2: data the same on every CPU)",
            fingerprints={"generated": PINNED["quadratic-ill-conditioned"]},
        ),
        "quadratic-benchopt": Instance(
            dict(dim_x=10, dim_y=100, n_inner=32_768, n_outer=1_024, mu_inner=0.1, L_cross=0.1),
            target=1e-6, budget=Budget(seconds=None, oracle_cost=5e4, iterations=50_000),
            suites=("full",),
            description="benchopt's best-params simulated configuration (v2: data the same "
                        "on every CPU)",
            fingerprints={"generated": PINNED["quadratic-benchopt"]},
        ),
    }

    def __init__(
        self,
        seed: int = 0,
        device: str = "cpu",
        dtype: torch.dtype = torch.float64,
        dim_x: int = 5,
        dim_y: int = 10,
        n_inner: int = 256,
        n_outer: int = 64,
        mu_inner: float = 0.1,
        L_inner: float = 1.0,
        L_cross: float = 0.1,
        mu_outer: float = 0.5,
        L_outer: float = 1.0,
        noise: float = 0.1,
        data_seed: int = 0,
    ) -> None:
        super().__init__(
            seed=seed, device=device, dtype=dtype, dim_x=dim_x, dim_y=dim_y, n_inner=n_inner,
            n_outer=n_outer, mu_inner=mu_inner, L_inner=L_inner, L_cross=L_cross,
            mu_outer=mu_outer, L_outer=L_outer, noise=noise, data_seed=data_seed,
        )
        if not 0 < mu_inner <= L_inner:
            raise ValueError(f"need 0 < mu_inner <= L_inner, got {mu_inner}, {L_inner}")
        self.x_shape, self.y_shape = torch.Size([dim_x]), torch.Size([dim_y])
        self.n_samples = {"g": n_inner, "f": n_outer}
        gen = torch.Generator().manual_seed(data_seed)
        grid = FixedGrid()  # BLAS/LAPACK results, rounded (bilevel_bench.generated)

        def randn(*shape):
            return generated.normal(gen, *shape)

        structured: dict[str, CirculantSPD] = {}

        def spd(dim, low, high, key=""):
            """S = Q diag(lambda) Q^T, lambda log-spaced in [low, high]: Haar Q up to
            HAAR_MAX_DIM, a sign-flipped circulant above it (module docstring); on the grid."""
            if dim > HAAR_MAX_DIM:
                structured[key] = CirculantSPD.random(dim, low, high, gen, grid)
                return structured[key].dense()
            q, _ = torch.linalg.qr(randn(dim, dim))
            return grid.symmetric((q * _logspace(low, high, dim)) @ q.T)

        def with_norm(mat, norm):
            return grid(mat * (norm / torch.linalg.matrix_norm(mat, ord=2)))

        # LL: A0 keeps half of the spectrum; the rank-one terms carry the rest on average.
        p = randn(n_inner, dim_y) * math.sqrt(noise * mu_inner / dim_y)
        if dim_y > HAAR_MAX_DIM:  # in place: one d x d matrix, no temporaries
            A0 = spd(dim_y, mu_inner, L_inner, "A").addmm_(p.T, p, alpha=-1.0 / n_inner)
            A0 = grid(A0, inplace=True)
        else:
            A0 = grid.symmetric(spd(dim_y, mu_inner, L_inner) - p.T @ p / n_inner)
        u, q = randn(n_inner, dim_x) * math.sqrt(noise), randn(n_inner, dim_y) * math.sqrt(noise)
        C = with_norm(randn(dim_x, dim_y), L_cross)
        C0 = grid(C - u.T @ q / n_inner)
        a = randn(n_inner, dim_y) * noise + randn(dim_y)
        B = spd(dim_x, mu_outer, L_outer)
        b = randn(n_inner, dim_x) * noise
        # UL
        F = spd(dim_y, 1e-3, L_outer)
        H = spd(dim_x, mu_outer, L_outer)
        K = with_norm(randn(dim_x, dim_y), L_cross)
        c = randn(n_outer, dim_y) * noise + randn(dim_y)
        e = randn(n_outer, dim_x) * noise + randn(dim_x)
        #: the smallest distance of a rounded entry to a rounding boundary (FixedGrid.margin)
        self.grid_margin = grid.margin
        self._fingerprint = fingerprint_tensors(A0, p, u, q, C0, a, B, b, F, H, K, c, e)

        #: the circulant S (A = A0 + mean p p^T is S up to A0's rounding; None: Haar, dense
        #: algebra)
        self._ll_hessian = structured.get("A")
        to = dict(dtype=dtype, device=self.device)
        self.A0, self.p, self.u, self.q, self.C0 = (t.to(**to) for t in (A0, p, u, q, C0))
        self.a, self.B, self.b = a.to(**to), B.to(**to), b.to(**to)
        self.F, self.H, self.K, self.c, self.e = (t.to(**to) for t in (F, H, K, c, e))
        self._exact = self._exact_solution()

    # ------------------------------------------------------------------- oracles
    def g(self, x, z, batch=None):
        p, u, q, a, b = self.p, self.u, self.q, self.a, self.b
        if batch is not None:
            p, u, q, a, b = p[batch], u[batch], q[batch], a[batch], b[batch]
        return (0.5 * z @ self.A0 @ z + 0.5 * ((p @ z) ** 2).mean()
                + ((u @ x) * (q @ z)).mean() + x @ self.C0 @ z + a.mean(0) @ z
                + 0.5 * x @ self.B @ x + b.mean(0) @ x)

    def f(self, x, z, batch=None):
        c, e = (self.c, self.e) if batch is None else (self.c[batch], self.e[batch])
        return (0.5 * z @ self.F @ z + 0.5 * x @ self.H @ x + x @ self.K @ z
                + c.mean(0) @ z + e.mean(0) @ x)

    def init(self, generator):
        x0 = generated.normal(generator, *self.x_shape).to(self.dtype).to(self.device)
        return x0, torch.zeros(self.y_shape, dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------ exact solution
    def mean_matrices(self) -> dict[str, torch.Tensor]:
        """A, C, a (LL) and c, e (UL) of the mean objectives."""
        n = self.p.shape[0]
        return {
            "A": self.A0 + self.p.T @ self.p / n,
            "C": self.C0 + self.u.T @ self.q / n,
            "a": self.a.mean(0),
            "b": self.b.mean(0),
            "c": self.c.mean(0),
            "e": self.e.mean(0),
        }

    def _solve_ll_hessian(self, rhs: torch.Tensor, sweeps: int = 8) -> torch.Tensor:
        """A^{-1} rhs for A = A0 + p^T p / n = S + E, where S is the circulant whose inverse is
        applied in closed form and E the rounding of A0 to the grid (entries below 2^-21):
        iterative refinement z <- z + S^{-1} (rhs - A z), which contracts by ||S^{-1} E|| (about
        1e-4) per sweep; O(dim_y^2) per column and sweep, no dense factorisation."""
        n = self.p.shape[0]
        A0, p = self.A0.to(torch.float64).cpu(), self.p.to(torch.float64).cpu()
        sol = self._ll_hessian.solve(rhs)
        for _ in range(sweeps):
            resid = rhs - A0 @ sol - p.T @ (p @ sol) / n
            if float(resid.abs().max()) <= 1e-15 * float(rhs.abs().max()):
                break
            sol = sol + self._ll_hessian.solve(resid)
        return sol

    def _exact_solution(self) -> dict[str, torch.Tensor]:
        """z*(x) = M x + r and the hyper-objective's Hessian and linear term. With a circulant
        LL Hessian (dim_y > HAAR_MAX_DIM) A^{-1} is applied by refinement on the closed-form
        circulant inverse, O(dim_y^2) per column, instead of a dense O(dim_y^3) inverse."""
        if self._ll_hessian is not None:
            a = self.a.mean(0)
            C = self.C0 + self.u.T @ self.q / self.p.shape[0]
            rhs = torch.cat([C.T, a[:, None]], dim=1).to(torch.float64)
            sol = (-self._solve_ll_hessian(rhs.cpu())).to(self.A0)
            M, r = sol[:, :-1], sol[:, -1]
            mm = {"c": self.c.mean(0), "e": self.e.mean(0)}
        else:
            mm = self.mean_matrices()
            A_inv = torch.linalg.inv(mm["A"])
            M = -A_inv @ mm["C"].T
            r = -A_inv @ mm["a"]
        hess = M.T @ self.F @ M + self.H + self.K @ M + M.T @ self.K.T
        hess = 0.5 * (hess + hess.T)
        if torch.linalg.eigvalsh(hess).min() <= 0:
            raise ValueError("the hyper-objective is not strongly convex: raise mu_outer "
                             "or lower L_cross")
        lin = M.T @ (self.F @ r + mm["c"]) + self.K @ r + mm["e"]
        x_star = -torch.linalg.solve(hess, lin)
        out = {"M": M, "r": r, "hess": hess, "lin": lin, "x_star": x_star}
        out["F_star"] = self.hyper_objective(x_star, out)
        return out

    def y_star(self, x: torch.Tensor) -> torch.Tensor:
        """The exact LL solution z*(x)."""
        return self._exact["M"] @ x + self._exact["r"]

    def hyper_objective(self, x: torch.Tensor, exact: dict | None = None) -> torch.Tensor:
        ex = exact if exact is not None else self._exact
        z = ex["M"] @ x + ex["r"]
        return self.f(x, z)

    def hypergradient(self, x: torch.Tensor) -> torch.Tensor:
        """The exact grad F(x)."""
        return self._exact["hess"] @ x + self._exact["lin"]

    def evaluate(self, x, y):
        x, y = x.detach().to(self.dtype), y.detach().to(self.dtype)
        value = self.hyper_objective(x)
        z_star = self.y_star(x)
        return {
            "ul_value": float(value),
            "ul_gap": float(value - self._exact["F_star"]),
            "ll_gap": float(self.g(x, y) - self.g(x, z_star)),
            "constraint_violation": 0.0,
            "hypergrad_norm": float(self.hypergradient(x).norm()),
            "y_error": float((y - z_star).norm()),
        }

    def data_fingerprints(self) -> dict[str, str]:
        """The float64 data as generated (the same for every dtype and device)."""
        return {"generated": self._fingerprint}
