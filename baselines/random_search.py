"""Random search: a zero-order UL baseline with an accurate LL solve per trial.

Bergstra & Bengio, Random Search for Hyper-Parameter Optimization, JMLR 2012 (no arXiv id).
Per iteration one candidate x_c is drawn (uniformly in the box of x when it is bounded,
otherwise from N(x_best, radius^2 I)); the LL is solved accurately for it,

    y_c = Proj_Y(argmin_y g(x_c, y))   by L-BFGS with strong-Wolfe line search (max ``ll_iters``)

(exact after the projection for separable boxes), and the candidate is kept if f(x_c, y_c) is
the best seen. Uses values and LL gradients only; no UL gradient.
"""

from __future__ import annotations

import math

import torch

from bilevel_bench import Hyperparameter, LogUniform, Solver


class RandomSearch(Solver):
    name = "random-search"
    version = "1.0"
    citation = "Bergstra & Bengio, Random Search for Hyper-Parameter Optimization, JMLR 13, 2012"
    needs = frozenset()
    handles = frozenset({"cuda"})
    hyperparameters = {
        "radius": Hyperparameter(1.0, LogUniform(1e-2, 10.0), "sampling scale for unbounded x"),
        "ll_iters": Hyperparameter(100, LogUniform(10, 1000, integer=True), "L-BFGS iterations"),
    }

    def init(self, problem, x0, y0, generator):
        self.problem, self.generator = problem, generator
        self.y_warm = y0.clone()
        self.best_x = x0.clone()
        self.best_y = self._solve_ll(self.best_x)
        self.best_value = float(problem.f(self.best_x, self.best_y))

    def _solve_ll(self, x: torch.Tensor) -> torch.Tensor:
        y = self.y_warm.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([y], lr=1.0, max_iter=self.ll_iters, tolerance_grad=1e-12,
                                tolerance_change=1e-14, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            value = self.problem.g(x, y)
            value.backward()
            return value

        opt.step(closure)
        return self.problem.project_y(x, y.detach())

    def _candidate(self) -> torch.Tensor:
        p, gen = self.problem, self.generator
        lower, upper = p.x_bounds
        u = torch.rand(p.x_shape, generator=gen, dtype=p.dtype).to(p.device)
        if lower is not None and upper is not None and math.isfinite(upper - lower):
            return lower + (upper - lower) * u
        noise = torch.randn(p.x_shape, generator=gen, dtype=p.dtype).to(p.device)
        return p.project_x(self.best_x + self.radius * noise)

    def step(self):
        x = self._candidate()
        y = self._solve_ll(x)
        value = float(self.problem.f(x, y))
        if value < self.best_value:
            self.best_x, self.best_y, self.best_value = x, y, value

    def solution(self):
        return self.best_x, self.best_y
