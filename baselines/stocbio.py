"""stocBiO: stochastic bilevel optimizer with a Neumann-series implicit gradient.

Ji, Yang, Liang, Bilevel Optimization: Convergence Analysis and Enhanced Design, ICML 2021,
arXiv:2010.07962. Per outer iteration, with fresh mini-batches:

    y <- Proj_Y(y - beta grad_y G(x, y; B_t))                              D times, warm start
    v_Q = eta sum_{q=0}^{Q} prod_{j=1}^{q} (I - eta grad^2_yy G(x, y; B_j)) grad_y F(x, y; D_F)
    x <- Proj_X(x - alpha (grad_x F(x, y; D_F) - grad^2_xy G(x, y; D_G) v_Q))

One fresh batch per Hessian factor makes the hypergradient estimate unbiased for the full-batch
truncated series. Defaults (benchopt): step = 0.1 for beta and eta, alpha = step / outer_ratio
with outer_ratio = 1, D = 10, Q = 10, batch 64.
Oracle cost per iteration: D gradients of g, Q + 1 gradients of g with create_graph, Q HVPs and
one JVP of g, one gradient of f; each weighted |B|/n.
"""

from __future__ import annotations

import torch
from bilevel_bench_baselines.inner_loops import neumann_series, projected_gradient_descent_y

from bilevel_bench import Hyperparameter, LogUniform, Solver


class StocBiO(Solver):
    name = "stocbio"
    version = "1.0"
    citation = "Ji, Yang, Liang, Bilevel Optimization: Convergence Analysis and Enhanced " \
               "Design, ICML 2021, arXiv:2010.07962"
    needs = frozenset({"second_order"})
    handles = frozenset({"cuda"})
    hyperparameters = {
        "lr": Hyperparameter(0.1, LogUniform(1e-4, 1.0), "LL and Neumann step (benchopt `step`)"),
        "outer_ratio": Hyperparameter(1.0, LogUniform(1e-5, 1e2), "lr / UL step"),
        "inner_steps": Hyperparameter(10, LogUniform(1, 200, integer=True), "D"),
        "neumann_steps": Hyperparameter(10, LogUniform(1, 100, integer=True), "Q"),
        "batch_size": Hyperparameter(64, LogUniform(1, 4096, integer=True), "mini-batch size"),
    }

    def init(self, problem, x0, y0, generator):
        self.problem, self.generator = problem, generator
        self.x, self.y = x0.clone(), y0.clone()

    def _batch(self, level: str):
        return self.problem.sample_batch(level, self.batch_size, self.generator)

    def hypergradient(self) -> torch.Tensor:
        """One stochastic hypergradient estimate at the current (x, y)."""
        p, x, y = self.problem, self.x, self.y
        grad_x_f, grad_y_f = p.grad("f", x, y, self._batch("f"))

        def factor(_: int):
            _, product = p.hvp_operator("g", x, y, self._batch("g"))
            return lambda u: product(u, "y")

        v = neumann_series(factor, grad_y_f, self.neumann_steps, self.lr)
        _, product = p.hvp_operator("g", x, y, self._batch("g"))
        return grad_x_f - product(v, "x")

    def step(self):
        p = self.problem
        self.y = projected_gradient_descent_y(
            p, self.x, self.y, self.lr, self.inner_steps, batch=lambda: (None, self._batch("g")))
        self.last_hypergradient = self.hypergradient()
        self.x = p.project_x(self.x - self.lr / self.outer_ratio * self.last_hypergradient)

    def solution(self):
        return self.x, self.y
