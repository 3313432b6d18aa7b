"""BOME: bilevel optimization made easy (value-function first-order method).

Liu, Ye, Wright, Stone, Liu, BOME! Bilevel Optimization Made Easy: A Simple First-Order
Approach, NeurIPS 2022, arXiv:2209.08709. With the value-function gap
q(x, y) = g(x, y) - g(x, y_T), y_T = T gradient steps on g(x, .) from y (no gradient through
y_T), each iteration moves (x, y) jointly along

    d = grad f(x, y) + lam grad q(x, y),
    grad q = (grad_x g(x, y) - grad_x g(x, y_T), grad_y g(x, y)),
    lam = max((phi - <grad f, grad q>) / |grad q|^2, 0),   phi = eta |grad q|^2,
    (x, y) <- Proj((x, y) - xi d).

Defaults (benchopt): eta = 0.5, T = 10, step xi = 0.1; inner step 0.1 [choice of this package].
Oracle cost per iteration: T + 2 gradients of g, one gradient of f.
"""

from __future__ import annotations

import torch
from bilevel_bench_baselines.inner_loops import projected_gradient_descent_y

from bilevel_bench import Hyperparameter, LogUniform, Reference, Solver


class BOME(Solver):
    name = "bome"
    version = "1.0"
    citation = "Liu, Ye, Wright, Stone, Liu, BOME! Bilevel Optimization Made Easy, NeurIPS " \
               "2022, arXiv:2209.08709"
    needs = frozenset()
    handles = frozenset({"cuda"})
    hyperparameters = {
        "lr": Hyperparameter(0.1, LogUniform(1e-4, 1.0), "joint step xi"),
        "eta": Hyperparameter(0.5, LogUniform(0.01, 1.0), "phi = eta |grad q|^2"),
        "inner_lr": Hyperparameter(0.1, LogUniform(1e-3, 1.0), "step of the T LL steps"),
        "inner_steps": Hyperparameter(10, LogUniform(1, 100, integer=True), "T"),
    }

    references = {
        "bome-toy": Reference(dict(lr=0.1, eta=0.5, inner_lr=0.1, inner_steps=10),
                              "benchopt defaults of BOME (eta 0.5, T 10, step 0.1; "
                              "arXiv:2209.08709)"),
    }

    def init(self, problem, x0, y0, generator):
        self.problem = problem
        self.x, self.y = x0.clone(), y0.clone()

    def step(self):
        p, x, y = self.problem, self.x, self.y
        y_t = projected_gradient_descent_y(p, x, y, self.inner_lr, self.inner_steps)
        fx, fy = p.grad("f", x, y)
        gx, gy = p.grad("g", x, y)
        gx_t, _ = p.grad("g", x, y_t, wrt="x")
        qx, qy = gx - gx_t, gy
        q_norm2 = (qx * qx).sum() + (qy * qy).sum()
        inner = (fx * qx).sum() + (fy * qy).sum()
        lam = torch.clamp((self.eta * q_norm2 - inner) / q_norm2.clamp(min=1e-30), min=0.0)
        self.x = p.project_x(x - self.lr * (fx + lam * qx))
        self.y = p.project_y(self.x, y - self.lr * (fy + lam * qy))

    def solution(self):
        return self.x, self.y
