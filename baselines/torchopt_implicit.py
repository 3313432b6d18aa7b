"""AID through torchopt's implicit differentiation (optional plugin, extra ``plugins``).

Ren et al., TorchOpt: An Efficient Library for Differentiable Optimization, JMLR 2023,
arXiv:2211.06934; implicit differentiation as in Blondel et al., arXiv:2105.15183. The LL is
solved by D projected gradient steps (warm-started, counted oracles); the hypergradient comes
from ``torchopt.diff.implicit.custom_root`` with the optimality condition grad_y g(x, y) = 0:

    x <- Proj_X(x - alpha (grad_x f - grad^2_xy g [grad^2_yy g]^{-1} grad_y f)),

the linear system solved by torchopt's CG (``linear_solver = "cg"``, at most N steps, from 0, on
grad^2_yy g + ``ridge`` I) or its Neumann series (``"neumann"``, N terms, step eta). The ridge
(version 1.1, default 1e-6) keeps CG defined where the LL Hessian is singular (bome-toy: y2 is
free, so a CG step meets zero curvature and divided by it, giving NaN): the solution's
component in the Hessian's null space is then rhs / ridge, finite, and the hypergradient uses
grad^2_xy g, which vanishes on that null space when it is the LL solution set's direction.
The products go through the counted oracles, so counts stay honest. Shows that the plugin API
carries third-party code.
Defaults as AID-CG (alpha = beta = 0.1, D = N = 10).
"""

from __future__ import annotations

import torch
from bilevel_bench_baselines.inner_loops import projected_gradient_descent_y

from bilevel_bench import Choice, Hyperparameter, LogUniform, Solver


def _import_torchopt():
    try:
        import torchopt
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("this solver needs torchopt: pip install 'bilevel-bench[plugins]'") \
            from exc
    return torchopt


class _StationarityY(torch.autograd.Function):
    """grad_y g(x, y) as a function of (y, x) whose VJPs are the counted products
    (grad^2_yy g u, grad^2_xy g u): the counted oracles cannot run inside torch.func
    transforms, which torchopt applies to the optimality condition."""

    @staticmethod
    def forward(y: torch.Tensor, x: torch.Tensor, problem) -> torch.Tensor:
        _, grad_y = problem.grad("g", x, y, wrt="y")
        return grad_y

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        y, x, ctx.problem = inputs
        ctx.save_for_backward(y, x)

    @staticmethod
    def backward(ctx, u: torch.Tensor):
        if not hasattr(ctx, "product"):  # one gradient pass, reused by every matvec
            y, x = ctx.saved_tensors
            ctx.product = ctx.problem.hvp_operator("g", x, y)[1]
        grad_y = ctx.product(u, "y") if ctx.needs_input_grad[0] else None
        grad_x = ctx.product(u, "x") if ctx.needs_input_grad[1] else None
        return grad_y, grad_x, None


class TorchoptImplicit(Solver):
    name = "torchopt-implicit"
    requires = {"torchopt": "pip install 'bilevel-bench[plugins]'"}
    version = "1.1"
    citation = "Ren et al., TorchOpt, JMLR 2023, arXiv:2211.06934; Blondel et al., " \
               "arXiv:2105.15183"
    needs = frozenset({"second_order"})
    handles = frozenset({"cuda"})
    hyperparameters = {
        "outer_lr": Hyperparameter(0.1, LogUniform(1e-3, 1.0), "UL step alpha"),
        "inner_lr": Hyperparameter(0.1, LogUniform(1e-3, 1.0), "LL step beta"),
        "inner_steps": Hyperparameter(10, LogUniform(1, 100, integer=True), "D"),
        "linear_solver": Hyperparameter("cg", Choice(["cg", "neumann"]), "torchopt solver"),
        "linear_steps": Hyperparameter(10, LogUniform(1, 100, integer=True), "N"),
        "neumann_lr": Hyperparameter(0.5, LogUniform(1e-3, 1.0), "eta (neumann only)"),
        "ridge": Hyperparameter(1e-6, LogUniform(1e-10, 1e-2), "CG on H + ridge I (cg only)"),
    }

    def init(self, problem, x0, y0, generator):
        torchopt = _import_torchopt()
        self.problem = problem
        self.x, self.y = x0.clone(), y0.clone()
        if self.linear_solver == "cg":
            solve = torchopt.linear_solve.solve_cg(maxiter=self.linear_steps, rtol=1e-12,
                                                   ridge=self.ridge)
        else:
            solve = torchopt.linear_solve.solve_inv(ns=True, maxiter=self.linear_steps,
                                                    alpha=self.neumann_lr)

        def optimality(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return _StationarityY.apply(y, x, problem)

        @torchopt.diff.implicit.custom_root(optimality, argnums=1, solve=solve)
        def ll_solution(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return projected_gradient_descent_y(problem, x.detach(), y.detach(),
                                                self.inner_lr, self.inner_steps)

        self._ll_solution = ll_solution

    def step(self):
        p = self.problem
        with torch.enable_grad():
            x = self.x.detach().requires_grad_(True)
            y = self._ll_solution(self.y, x)
            (self.last_hypergradient,) = torch.autograd.grad(p.f(x, y), x)
        self.y = y.detach()
        self.x = p.project_x(self.x - self.outer_lr * self.last_hypergradient)

    def solution(self):
        return self.x, self.y
