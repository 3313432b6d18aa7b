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
"""

from __future__ import annotations

import warnings

import torch
from bilevel_bench_baselines.inner_loops import soba_directions

from bilevel_bench import Hyperparameter, LogUniform, Solver


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

    #: opt-in compiled fast path (module docstring)
    compiled: bool = False

    def init(self, problem, x0, y0, generator):
        self.problem, self.generator = problem, generator
        self.x, self.y = x0.clone(), y0.clone()
        self.v = torch.zeros_like(y0)
        self.t = 0
        self._fast = None  # (compiled step, counts per step) once measured

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
        elif self._fast is None:  # eager, measuring the counts each compiled step adds
            with self.problem.measure_counts() as counts:
                self.update(rho, *self.directions())
            self._fast = (compiled_soba_step(self.problem, self.outer_ratio), counts)
        else:
            self._compiled_step(rho)

    def _compiled_step(self, rho: float) -> None:
        p = self.problem
        batch_g = p.sample_batch("g", self.batch_size, self.generator)
        batch_f = p.sample_batch("f", self.batch_size, self.generator)
        fn, counts = self._fast
        state = (self.x, self.y, self.v)
        try:
            self.x, self.y, self.v = fn(*state, batch_g, batch_f,
                                            torch.tensor(rho, dtype=self.x.dtype))
        except Exception as exc:  # noqa: BLE001 - any compile failure: stay eager
            warnings.warn(f"SOBA: compiled step failed ({type(exc).__name__}: {exc}); "
                          "running eagerly", RuntimeWarning, stacklevel=2)
            self.compiled = False
            self.x, self.y, self.v = state
            self.update(rho, *soba_directions_full(p, *state, batch_g, batch_f))
            return
        p.add_counts(counts)

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


def compiled_soba_step(p, outer_ratio: float):
    """One SOBA step (directions and update) as a ``torch.compile`` graph on the uncounted
    objectives: ``(x, y, v, batch_g, batch_f, rho) -> (x, y, v)``."""
    from torch.func import grad, vjp

    g, f = p.uncounted("g"), p.uncounted("f")

    def step(x, y, v, batch_g, batch_f, rho):
        d_y, pull = vjp(lambda x_, y_: grad(g, argnums=1)(x_, y_, batch_g), x, y)
        hxy_v, hyy_v = pull(v)
        fx, fy = grad(f, argnums=(0, 1))(x, y, batch_f)
        x_new = p.project_x(x - rho / outer_ratio * (hxy_v + fx))
        return x_new, p.project_y(x_new, y - rho * d_y), v - rho * (hyy_v + fy)

    return torch.compile(step, fullgraph=True, dynamic=False)
