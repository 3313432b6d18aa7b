"""ITD: reverse-mode iterative differentiation (RHG / ITD-BiO), with truncation.

Franceschi, Donini, Frasconi, Pontil, Forward and Reverse Gradient-Based Hyperparameter
Optimization, ICML 2017, arXiv:1703.01785; Ji, Yang, Liang, ICML 2021, arXiv:2010.07962
(ITD-BiO); truncated back-propagation (T-RHG): Shaban et al., arXiv:1810.10667.
Per outer iteration, from y_0 (the previous y_T when ``warm_start``, else the initial y0):

    y_{t+1} = Proj_Y(y_t - beta grad_y g(x, y_t)),  t < T
    dx = d/dx f(x, y_T(x))   by back-propagation through the last K steps (K = T: full RHG)
    x <- Proj_X(x - alpha dx)

Defaults (V-PBGD repo, hyper-cleaning): alpha = 1e-3, beta = 0.1, T = K = 500 (T-RHG: K = 100).
Oracle cost per iteration: T gradients of g (the last K with create_graph), K - 1 HVPs and K JVPs
of g in the backward pass (y_{T-K} does not depend on x: no HVP at the first kept step), one
gradient of f.
"""

from __future__ import annotations

from bilevel_bench_baselines.inner_loops import unrolled_hypergradient

from bilevel_bench import Choice, Hyperparameter, LogUniform, Solver


class ITD(Solver):
    name = "itd"
    version = "1.0"
    citation = "Franceschi et al., Forward and Reverse Gradient-Based Hyperparameter " \
               "Optimization, ICML 2017, arXiv:1703.01785; Ji, Yang, Liang, arXiv:2010.07962"
    needs = frozenset({"second_order"})
    handles = frozenset({"cuda"})
    hyperparameters = {
        "outer_lr": Hyperparameter(1e-3, LogUniform(1e-4, 1.0), "UL step alpha"),
        "inner_lr": Hyperparameter(0.1, LogUniform(1e-3, 1.0), "LL step beta"),
        "inner_steps": Hyperparameter(500, LogUniform(1, 1000, integer=True), "T"),
        "truncate": Hyperparameter(500, LogUniform(1, 1000, integer=True), "K (backprop steps)"),
        "warm_start": Hyperparameter(True, Choice([True, False]), "y_0 = previous y_T"),
    }

    def init(self, problem, x0, y0, generator):
        self.problem = problem
        self.x, self.y, self.y0 = x0.clone(), y0.clone(), y0.clone()

    def step(self):
        start = self.y if self.warm_start else self.y0
        self.last_hypergradient, self.y = unrolled_hypergradient(
            self.problem, self.x, start, self.inner_lr, self.inner_steps, self.truncate)
        self.x = self.problem.project_x(self.x - self.outer_lr * self.last_hypergradient)

    def solution(self):
        return self.x, self.y
