"""F2SA: fully first-order stochastic approximation for bilevel optimization.

Kwon, Kwon, Wright, Nowak, A Fully First-Order Method for Stochastic Bilevel Optimization,
ICML 2023, arXiv:2301.10945. A penalty method whose multiplier lambda_k grows: y tracks
argmin_y f + lambda g, z tracks argmin_y g. Per outer iteration k (mini-batches drawn afresh
for every gradient):

    repeat T times:  y <- Proj_Y(y - alpha_k (grad_y f(x, y) + lambda_k grad_y g(x, y)))
                     z <- Proj_Y(z - gamma_k grad_y g(x, z))
    x <- Proj_X(x - xi alpha_k [grad_x f(x, y) + lambda_k (grad_x g(x, y) - grad_x g(x, z))])
    lambda_{k+1} = lambda_k + delta_k

Schedules (benchopt's implementation; step = ``lr``): alpha_k = step / (k+1)^{5/7},
gamma_k = step / (k+1)^{4/7},
x-step xi alpha_k = (step / outer_ratio) / (k+1)^{4/7}, delta_k = lambda_increment / (k+1)^{1/7};
defaults step = 0.01, outer_ratio = 1, lambda_0 = 1, lambda_increment = 0.1, T = 10.
Setting the exponents to 0 gives the deterministic (constant-step) variant.
Oracle cost per iteration: 2T + 2 gradients of g, T + 1 gradients of f (|B|/n each).
"""

from __future__ import annotations

from bilevel_bench_baselines.inner_loops import penalty_hypergradient, projected_gradient_descent_y

from bilevel_bench import Hyperparameter, LogUniform, Reference, Solver


class F2SA(Solver):
    name = "f2sa"
    version = "1.0"
    citation = "Kwon, Kwon, Wright, Nowak, A Fully First-Order Method for Stochastic Bilevel " \
               "Optimization, ICML 2023, arXiv:2301.10945"
    needs = frozenset()
    handles = frozenset({"cuda"})
    hyperparameters = {
        "lr": Hyperparameter(0.01, LogUniform(1e-4, 1.0), "base step (benchopt `step`)"),
        "outer_ratio": Hyperparameter(1.0, LogUniform(1e-3, 1e2), "step / outer step"),
        "lambda0": Hyperparameter(1.0, LogUniform(0.1, 100.0), "initial multiplier"),
        "lambda_increment": Hyperparameter(0.1, LogUniform(1e-3, 10.0), "delta"),
        "inner_steps": Hyperparameter(10, LogUniform(1, 100, integer=True), "T"),
        "batch_size": Hyperparameter(64, LogUniform(1, 4096, integer=True), "mini-batch size"),
        "exp_y": Hyperparameter(5 / 7, None, "decay exponent of alpha_k"),
        "exp_z": Hyperparameter(4 / 7, None, "decay exponent of gamma_k"),
        "exp_x": Hyperparameter(4 / 7, None, "decay exponent of the x-step"),
        "exp_lambda": Hyperparameter(1 / 7, None, "decay exponent of delta_k"),
    }

    references = {
        "hyper-cleaning": Reference(
            dict(lr=0.1, outer_ratio=0.08, batch_size=4096),
            "F2SA's hyper-cleaning experiment (arXiv:2301.10945), full batches, outer step "
            "lr / outer_ratio = 1.25: benchopt's hyper-cleaning outer step 1000 (outer_ratio "
            "1e-4) divided by n = 800, as hyper-cleaning version 3 weighs by sigmoid(sqrt(n) x)"),
    }

    def init(self, problem, x0, y0, generator):
        self.problem, self.generator = problem, generator
        self.x, self.y, self.z = x0.clone(), y0.clone(), y0.clone()
        self.lam = float(self.lambda0)
        self.k = 0

    def _batch_f(self):
        return self.problem.sample_batch("f", self.batch_size, self.generator)

    def _batch_g(self):
        return self.problem.sample_batch("g", self.batch_size, self.generator)

    def step(self):
        p, k1 = self.problem, self.k + 1
        alpha = self.step_size("exp_y", k1)
        lr_z = self.step_size("exp_z", k1)
        lam = self.lam
        for _ in range(self.inner_steps):
            # y-step on f + lam g, written as lam alpha (f/lam + g)
            self.y = projected_gradient_descent_y(
                p, self.x, self.y, alpha * lam, 1, penalty=lam,
                batch=lambda: (self._batch_f(), self._batch_g()))
            self.z = projected_gradient_descent_y(
                p, self.x, self.z, lr_z, 1, batch=lambda: (None, self._batch_g()))
        grad = penalty_hypergradient(p, self.x, self.y, self.z, lam,
                                     batches=(self._batch_f(), self._batch_g(), self._batch_g()))
        lr_x = self.step_size("exp_x", k1) / self.outer_ratio
        self.x = p.project_x(self.x - lr_x * grad)
        self.lam += self.lambda_increment / k1**self.exp_lambda
        self.k += 1

    def step_size(self, exponent: str, k1: int) -> float:
        """lr / (k+1)^e for the schedule named by ``exponent``."""
        return self.lr / k1 ** getattr(self, exponent)

    def solution(self):
        return self.x, self.y
