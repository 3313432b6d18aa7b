"""V-PBGD: value-function-based penalised bilevel gradient descent.

Shen & Chen, On Penalty-based Bilevel Gradient Descent Method, ICML 2023, arXiv:2302.05185.
Solves the penalised joint problem  min_{x in X, y in Y} f(x, y) + gamma [g(x, y) - v(x)],
v(x) = min_y g(x, y). Per iteration:

    omega <- Proj_Y(omega - beta grad_y g(x, omega))                T times (omega ~ y_g(x))
    x <- Proj_X(x - alpha (grad_x f(x, y) + gamma (grad_x g(x, y) - grad_x g(x, omega))))
    y <- Proj_Y(y - alpha (grad_y f(x, y) + gamma grad_y g(x, y)))

gamma ramps linearly from ``gamma_init`` to ``gamma`` over ``gamma_ramp_steps`` iterations (the
authors' hyper-cleaning schedule; 0 = constant). Toy defaults of the authors: gamma = 10,
alpha = 0.1 / gamma. Oracle cost per iteration: T + 2 gradients of g, one gradient of f.
"""

from __future__ import annotations

from bilevel_bench_baselines.inner_loops import linear_ramp, projected_gradient_descent_y

from bilevel_bench import Hyperparameter, LogUniform, Reference, Solver


class VPBGD(Solver):
    name = "v-pbgd"
    version = "1.0"
    citation = "Shen & Chen, On Penalty-based Bilevel Gradient Descent Method, ICML 2023, " \
               "arXiv:2302.05185"
    needs = frozenset()
    handles = frozenset({"cuda"})
    hyperparameters = {
        "gamma": Hyperparameter(10.0, LogUniform(1.0, 1000.0), "penalty constant (final)"),
        "lr": Hyperparameter(0.01, LogUniform(1e-4, 1.0), "joint step alpha"),
        "inner_lr": Hyperparameter(0.1, LogUniform(1e-3, 1.0), "value-function step beta"),
        "inner_steps": Hyperparameter(10, LogUniform(1, 100, integer=True), "T"),
        "gamma_init": Hyperparameter(0.0, None, "penalty at iteration 0 when ramping"),
        "gamma_ramp_steps": Hyperparameter(0, None, "iterations of the linear ramp (0: none)"),
    }

    _toy = Reference(dict(gamma=10.0, lr=0.01, inner_lr=0.1, inner_steps=10),
                     "arXiv:2302.05185 toy: gamma 10, alpha 0.01")
    references = {
        "vpbgd-toy": _toy,
        "bome-toy": _toy,
        # the PBGD-Free notebook's counter-example: V-PBGD is expected to succeed there
        "pbgd-free-counterexample": _toy,
    }

    def init(self, problem, x0, y0, generator):
        self.problem = problem
        self.x, self.y = x0.clone(), y0.clone()
        self.omega = y0.clone()
        self.iteration = 0

    def current_gamma(self) -> float:
        return linear_ramp(self.iteration, self.gamma_init, self.gamma, self.gamma_ramp_steps)

    def step(self):
        p, gamma = self.problem, self.current_gamma()
        self.omega = projected_gradient_descent_y(
            p, self.x, self.omega, self.inner_lr, self.inner_steps)
        grad_x_f, grad_y_f = p.grad("f", self.x, self.y)
        grad_x_g, grad_y_g = p.grad("g", self.x, self.y)
        grad_x_v, _ = p.grad("g", self.x, self.omega, wrt="x")
        x = self.x - self.lr * (grad_x_f + gamma * (grad_x_g - grad_x_v))
        y = self.y - self.lr * (grad_y_f + gamma * grad_y_g)
        self.x = p.project_x(x)
        self.y = p.project_y(self.x, y)
        self.iteration += 1

    def solution(self):
        return self.x, self.y
