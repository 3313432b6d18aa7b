"""G-PBGD: gradient-norm penalised bilevel gradient descent.

Shen & Chen, On Penalty-based Bilevel Gradient Descent Method, ICML 2023, arXiv:2302.05185.
Penalised joint problem  min_{x in X, y in Y} f(x, y) + gamma/2 |grad_y g(x, y)|^2, whose
gradient needs one Hessian- and one Jacobian-vector product of g per iteration:

    u = grad_y g(x, y)
    x <- Proj_X(x - alpha (grad_x f(x, y) + gamma grad^2_xy g(x, y) u))
    y <- Proj_Y(y - alpha (grad_y f(x, y) + gamma grad^2_yy g(x, y) u))

gamma ramps linearly from ``gamma_init`` to ``gamma`` over ``gamma_ramp_steps`` iterations as in
V-PBGD. Defaults: the authors' toy gamma = 10, alpha = 0.01 (hyper-cleaning, linear model:
alpha_x = 0.3, alpha_y = 0.5, gamma 0 -> 37 over 5,000 steps).
Oracle cost per iteration: one gradient of g (with create_graph), one HVP and one JVP of g,
one gradient of f.
"""

from __future__ import annotations

from bilevel_bench_baselines.inner_loops import linear_ramp

from bilevel_bench import Hyperparameter, LogUniform, Reference, Solver


class GPBGD(Solver):
    name = "g-pbgd"
    version = "1.0"
    citation = "Shen & Chen, On Penalty-based Bilevel Gradient Descent Method, ICML 2023, " \
               "arXiv:2302.05185"
    needs = frozenset({"second_order"})
    handles = frozenset({"cuda"})
    hyperparameters = {
        "gamma": Hyperparameter(10.0, LogUniform(1.0, 1000.0), "penalty constant (final)"),
        "lr": Hyperparameter(0.01, LogUniform(1e-4, 1.0), "joint step alpha"),
        "gamma_init": Hyperparameter(0.0, None, "penalty at iteration 0 when ramping"),
        "gamma_ramp_steps": Hyperparameter(0, None, "iterations of the linear ramp (0: none)"),
    }

    references = {
        "vpbgd-toy": Reference(dict(gamma=10.0, lr=0.005),
                               "the V-PBGD toy's gamma 10 with the step that converges in each "
                               "basin (lr 0.02 oscillates: the penalty's curvature is ~160)"),
    }

    def init(self, problem, x0, y0, generator):
        self.problem = problem
        self.x, self.y = x0.clone(), y0.clone()
        self.iteration = 0

    def step(self):
        p = self.problem
        gamma = linear_ramp(self.iteration, self.gamma_init, self.gamma, self.gamma_ramp_steps)
        grad_y_g, product = p.hvp_operator("g", self.x, self.y)
        grad_x_f, grad_y_f = p.grad("f", self.x, self.y)
        x = self.x - self.lr * (grad_x_f + gamma * product(grad_y_g, "x"))
        y = self.y - self.lr * (grad_y_f + gamma * product(grad_y_g, "y"))
        self.x = p.project_x(x)
        self.y = p.project_y(self.x, y)
        self.iteration += 1

    def solution(self):
        return self.x, self.y
