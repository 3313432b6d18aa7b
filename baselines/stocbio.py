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

Compiled fast path (opt-in, ``compiled = True``; ``baselines/compiled.py``): the first step is
eager and records its passes; every later step draws its D + Q + 2 batches in the eager order and
runs the whole step (LL loop, series, hypergradient, update) as one Inductor-compiled function of
the uncounted objectives, counting the recorded passes. Same iterates up to rounding, identical
counts.
"""

from __future__ import annotations

import torch
from bilevel_bench_baselines.compiled import FastPath, record_passes
from bilevel_bench_baselines.inner_loops import neumann_series, projected_gradient_descent_y

from bilevel_bench import Hyperparameter, LogUniform, Reference, Solver


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

    references = {
        "quadratic": Reference(dict(lr=0.1, outer_ratio=1.0, inner_steps=10, neumann_steps=10,
                                    batch_size=64),
                               "benchopt benchmark_bilevel defaults: step 0.1, outer_ratio 1, "
                               "10 inner and 10 Neumann steps, batch 64 (arXiv:2010.07962)"),
        "hyper-cleaning": Reference(
            dict(lr=0.01, outer_ratio=0.2, inner_steps=10, neumann_steps=10, batch_size=64),
            "benchopt's best hyper-cleaning parameters (p = 0.5: step 0.01, outer_ratio 1e-5, "
            "i.e. outer step 1000 on n = 20,000 with sigmoid(x) weights), the outer step "
            "rescaled to version 3's sigmoid(sqrt(n) x): 1000 / 20,000 = 0.05"),
    }

    #: opt-in compiled fast path (module docstring; not a hyperparameter: same trajectory)
    compiled: bool = False

    def init(self, problem, x0, y0, generator):
        self.problem, self.generator = problem, generator
        self.x, self.y = x0.clone(), y0.clone()
        self._fast: FastPath | None = None  # once the first (eager) step recorded its passes
        self._drawn: list | None = None  # batches drawn ahead (eager replay after a failure)

    def _batch(self, level: str):
        if self._drawn:
            return self._drawn.pop(0)
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
        if self.compiled and self._fast is not None:
            return self._compiled_step()
        if not self.compiled:
            return self._eager_step()
        with record_passes(self.problem) as log:  # eager, recording the passes
            self._eager_step()
        self._fast = FastPath("StocBiO", lambda: stocbio_step_function(self),
                              log.passes(), log.samples)

    def _compiled_step(self):
        d, q = self.inner_steps, self.neumann_steps
        order = ["g"] * d + ["f"] + ["g"] * (q + 1)  # the eager step's order of draws
        batches = [self._batch(level) for level in order]
        out = self._fast(self.problem, self.x, self.y, *batches)
        if out is None:  # warned: continue eagerly, on the same batches
            self.compiled, self._drawn = False, batches
            return self._eager_step()
        self.x, self.y, self.last_hypergradient = out

    def _eager_step(self):
        p = self.problem
        self.y = projected_gradient_descent_y(
            p, self.x, self.y, self.lr, self.inner_steps, batch=lambda: (None, self._batch("g")))
        self.last_hypergradient = self.hypergradient()
        self.x = p.project_x(self.x - self.lr / self.outer_ratio * self.last_hypergradient)

    def solution(self):
        return self.x, self.y


def stocbio_step_function(solver: StocBiO):
    """One StocBiO step as a pure function of the uncounted objectives, for
    :class:`~bilevel_bench_baselines.compiled.FastPath`: ``(x, y, *batches) -> (x, y,
    hypergradient)``, batches in the eager order (D LL, one UL, Q + 1 LL)."""
    from torch.func import grad, vjp

    p = solver.problem
    g, f = p.uncounted("g"), p.uncounted("f")
    lr, outer_lr = solver.lr, solver.lr / solver.outer_ratio
    d, q = solver.inner_steps, solver.neumann_steps

    def step(x, y, *batches):
        for b in batches[:d]:
            y = p.project_y(x, y - lr * grad(g, argnums=1)(x, y, b))
        fx, fy = grad(f, argnums=(0, 1))(x, y, batches[d])
        term = total = fy
        for b in batches[d + 1:d + 1 + q]:
            _, pull = vjp(lambda y_, b=b: grad(g, argnums=1)(x, y_, b), y)
            term = term - lr * pull(term)[0]
            total = total + term
        _, pull = vjp(lambda x_: grad(g, argnums=1)(x_, y, batches[-1]), x)
        hypergradient = fx - pull(lr * total)[0]
        return p.project_x(x - outer_lr * hypergradient), y, hypergradient

    return step
