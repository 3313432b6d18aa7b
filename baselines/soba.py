"""SOBA: stochastic bilevel algorithm with a single loop and three variables.

Dagreou, Ablin, Vaiter, Moreau, A Framework for Bilevel Optimization That Enables Stochastic
and Global Variance Reduction Algorithms, NeurIPS 2022, arXiv:2201.13409. With one LL batch i
and one UL batch j per iteration t, and v ~ -[grad^2_yy g]^{-1} grad_y f:

    D_y = grad_y G_i(x, y)
    D_v = grad^2_yy G_i(x, y) v + grad_y F_j(x, y)
    D_x = grad^2_xy G_i(x, y) v + grad_x F_j(x, y)
    y <- Proj_Y(y - rho_t D_y);  v <- v - rho_t D_v;  x <- Proj_X(x - gamma_t D_x)

Each direction is an unbiased estimate of its full-batch value. Steps (benchopt):
rho_t = step / t^decay, gamma_t = (step / outer_ratio) / t^decay with decay = 1/2; defaults
step = 0.1, outer_ratio = 1, batch 64.
Oracle cost per iteration: one gradient of g (create_graph), one HVP and one JVP of g, one
gradient of f, each weighted |B|/n.

Compiled fast path (opt-in, ``compiled = True``; ``baselines/compiled.py``): the first step is
eager and records its passes; every later step runs directions and update as one Inductor-compiled
function of the uncounted objectives and counts the recorded passes. Same iterates up to
rounding, identical counts.
"""

from __future__ import annotations

import torch
from bilevel_bench_baselines.compiled import FastPath, record_passes
from bilevel_bench_baselines.inner_loops import soba_directions

from bilevel_bench import Hyperparameter, LogUniform, Reference, Solver


class SOBA(Solver):
    name = "soba"
    version = "1.0"
    citation = "Dagreou, Ablin, Vaiter, Moreau, A Framework for Bilevel Optimization That " \
               "Enables Stochastic and Global Variance Reduction Algorithms, NeurIPS 2022, " \
               "arXiv:2201.13409"
    needs = frozenset({"second_order"})
    handles = frozenset({"cuda"})
    hyperparameters = {
        "lr": Hyperparameter(0.1, LogUniform(1e-4, 10.0), "step rho (benchopt `step`)"),
        "outer_ratio": Hyperparameter(1.0, LogUniform(1e-5, 1e2), "rho / gamma"),
        "batch_size": Hyperparameter(64, LogUniform(1, 4096, integer=True), "mini-batch size"),
        "decay": Hyperparameter(0.5, None, "steps decay as t^-decay (0: constant)"),
    }

    references = {
        "quadratic": Reference(dict(lr=0.1, outer_ratio=1.0, batch_size=64),
                               "benchopt benchmark_bilevel defaults: step 0.1, outer_ratio 1, "
                               "batch 64 (Dagreou et al., arXiv:2201.13409)"),
        "hyper-cleaning": Reference(
            dict(lr=1.0, outer_ratio=2.0, batch_size=64),
            "benchopt's best hyper-cleaning parameters (p = 0.5: step 1.0, outer_ratio 1e-4, "
            "i.e. outer step 1e4 on n = 20,000 with sigmoid(x) weights), the outer step "
            "rescaled to version 3's sigmoid(sqrt(n) x): 1e4 / 20,000 = 0.5"),
    }

    #: opt-in compiled fast path (module docstring; not a hyperparameter: same trajectory)
    compiled: bool = False

    def init(self, problem, x0, y0, generator):
        self.problem, self.generator = problem, generator
        self.x, self.y = x0.clone(), y0.clone()
        self.v = torch.zeros_like(y0)
        self.t = 0
        self._fast: FastPath | None = None  # once the first (eager) step recorded its passes

    def directions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(D_y, D_v, D_x) at the current state on freshly drawn mini-batches."""
        p = self.problem
        batch_g = p.sample_batch("g", self.batch_size, self.generator)
        batch_f = p.sample_batch("f", self.batch_size, self.generator)
        gy, hyy_v, hxy_v, fy, fx = soba_directions(p, self.x, self.y, self.v, batch_g, batch_f)
        return gy, hyy_v + fy, hxy_v + fx

    def step(self):
        self.t += 1
        rho = self.lr / self.t**self.decay
        if not self.compiled:
            self.update(rho, *self.directions())
        elif self._fast is None:  # eager, recording the passes each compiled step makes
            with record_passes(self.problem) as log:
                self.update(rho, *self.directions())
            outer_ratio = self.outer_ratio
            self._fast = FastPath("SOBA", lambda: soba_step_function(self.problem, outer_ratio),
                                  log.passes(), log.samples)
        else:
            self._compiled_step(rho)

    def _compiled_step(self, rho: float) -> None:
        p = self.problem
        batch_g = p.sample_batch("g", self.batch_size, self.generator)
        batch_f = p.sample_batch("f", self.batch_size, self.generator)
        state = (self.x, self.y, self.v)
        out = self._fast(p, *state, batch_g, batch_f, torch.tensor(rho, dtype=self.x.dtype))
        if out is None:  # warned: continue eagerly, on the same batches
            self.compiled = False
            self.update(rho, *soba_directions_full(p, *state, batch_g, batch_f))
            return
        self.x, self.y, self.v = out

    def update(self, rho: float, d_y: torch.Tensor, d_v: torch.Tensor, d_x: torch.Tensor) -> None:
        """x <- Proj_X(x - rho/outer_ratio D_x), y <- Proj_Y(y - rho D_y), v <- v - rho D_v."""
        self.x = self.problem.project_x(self.x - rho / self.outer_ratio * d_x)
        self.y = self.problem.project_y(self.x, self.y - rho * d_y)
        self.v = self.v - rho * d_v

    def solution(self):
        return self.x, self.y


def soba_directions_full(p, x, y, v, batch_g, batch_f):
    """(D_y, D_v, D_x) at (x, y, v) on the given batches (counted helpers)."""
    gy, hyy_v, hxy_v, fy, fx = soba_directions(p, x, y, v, batch_g, batch_f)
    return gy, hyy_v + fy, hxy_v + fx


def soba_step_function(p, outer_ratio: float):
    """One SOBA step (directions and update) as a pure function of the uncounted objectives,
    for :class:`~bilevel_bench_baselines.compiled.FastPath`:
    ``(x, y, v, batch_g, batch_f, rho) -> (x, y, v)``."""
    from torch.func import grad, vjp

    g, f = p.uncounted("g"), p.uncounted("f")

    def step(x, y, v, batch_g, batch_f, rho):
        d_y, pull = vjp(lambda x_, y_: grad(g, argnums=1)(x_, y_, batch_g), x, y)
        hxy_v, hyy_v = pull(v)
        fx, fy = grad(f, argnums=(0, 1))(x, y, batch_f)
        x_new = p.project_x(x - rho / outer_ratio * (hxy_v + fx))
        return x_new, p.project_y(x_new, y - rho * d_y), v - rho * (hyy_v + fy)

    return step
