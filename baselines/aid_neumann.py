"""AID-Neumann (AID-FP): approximate implicit differentiation with a fixed-point linear solver.

Ji, Yang, Liang, Bilevel Optimization: Convergence Analysis and Enhanced Design, ICML 2021,
arXiv:2010.07962 (AID-BiO with the fixed-point / Neumann solver). Per outer iteration k:

    y <- Proj_Y(y - beta grad_y g(x, y))                      D times, warm-started
    v <- v - eta (grad^2_yy g(x, y) v - grad_y f(x, y))         N times, warm-started from v_{k-1}
    x <- Proj_X(x - alpha (grad_x f(x, y) - grad^2_xy g(x, y) v))

(from v = 0 the N fixed-point steps are exactly the truncated Neumann series
eta sum_{q<N} (I - eta H)^q grad_y f). Defaults (stocBiO repo): alpha = 0.1, beta = 0.1, eta = 0.5;
D = 10, N = 10 [the repo's T = 200, Q = 3 are for its stochastic MNIST runs].
Oracle cost per iteration: D + 1 gradients of g (one with create_graph), N HVPs and one JVP of
g, one gradient of f.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from bilevel_bench_baselines.aid_cg import AIDCG
from bilevel_bench_baselines.inner_loops import fixed_point_solve

from bilevel_bench import Hyperparameter, LogUniform, Reference


class AIDNeumann(AIDCG):
    """AID-CG's outer loop with the fixed-point (Neumann) linear solver."""

    name = "aid-neumann"
    version = "1.0"
    hyperparameters = {
        **{k: v for k, v in AIDCG.hyperparameters.items() if k != "cg_steps"},
        "neumann_lr": Hyperparameter(0.5, LogUniform(1e-3, 1.0), "eta"),
        "neumann_steps": Hyperparameter(10, LogUniform(1, 100, integer=True), "N"),
    }

    references = {
        "quadratic": Reference(dict(outer_lr=0.1, inner_lr=0.1, inner_steps=10, neumann_lr=0.5,
                                    neumann_steps=10),
                               "stocBiO repository's Neumann step (eta 0.5) with AID-CG's "
                               "quadratic steps"),
        "hyper-cleaning": Reference(dict(outer_lr=1.25, inner_lr=1.0, inner_steps=10,
                                         neumann_lr=0.1, neumann_steps=3),
                                    "configuration that froze the MLP target, with the linear "
                                    "model's inner step"),
        "hyper-cleaning-digits-mlp": Reference(
            dict(outer_lr=1.25, inner_lr=0.5, inner_steps=10, neumann_lr=0.1,
                 neumann_steps=3),
            "configuration that froze the target (short Neumann series: the LL is non-convex)"),
    }

    def linear_solve(self, operator: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor,
                     start: torch.Tensor) -> torch.Tensor:
        """N fixed-point steps v <- v - eta (operator(v) - rhs), warm-started."""
        return fixed_point_solve(operator, rhs, start, self.neumann_steps, self.neumann_lr)

    def linear_solve_masked(self, operator: Callable[[torch.Tensor], torch.Tensor],
                            rhs: torch.Tensor, start: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor | int]:
        """:meth:`linear_solve` (no branches) and its number of products, N."""
        return self.linear_solve(operator, rhs, start), self.neumann_steps
