"""Grid search: a zero-order UL baseline on a grid of x, refined around the best point.

Classical hyperparameter grid search (see Bergstra & Bengio, JMLR 13, 2012, no arXiv id), with
the accurate LL solve of :mod:`random_search` (L-BFGS on g, then the projection onto Y). The
grid has ``points`` values per coordinate of x on the box of x (or on [x0 - radius, x0 + radius]
when x is unbounded); one candidate is evaluated per iteration, and the best one is kept. Once
the grid is exhausted, a new grid of the same size is laid on [x_best - w, x_best + w] (clipped
to the box), where w is the previous spacing: the search zooms in on the best cell.
Uses values and LL gradients only (no UL gradient). Cost per iteration: at most ``ll_iters``
L-BFGS iterations on g (values and gradients of g) and one value of f.
"""

from __future__ import annotations

import itertools
import math

import torch
from bilevel_bench_baselines.random_search import RandomSearch

from bilevel_bench import Hyperparameter, LogUniform


class GridSearch(RandomSearch):
    name = "grid-search"
    version = "1.0"
    citation = "Grid search with zooming; cf. Bergstra & Bengio, Random Search for " \
               "Hyper-Parameter Optimization, JMLR 13, 2012"
    hyperparameters = {
        **RandomSearch.hyperparameters,
        "points": Hyperparameter(21, LogUniform(3, 101, integer=True), "values per coordinate"),
    }

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        lower, upper = problem.x_bounds
        lo = torch.full(problem.x_shape, -math.inf if lower is None else lower,
                        dtype=problem.dtype, device=problem.device)
        hi = torch.full_like(lo, math.inf if upper is None else upper)
        self.box = (lo, hi)
        bounded = lower is not None and upper is not None
        self._grid(lo if bounded else x0 - self.radius, hi if bounded else x0 + self.radius)

    def _grid(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        lo, hi = torch.maximum(lo, self.box[0]), torch.minimum(hi, self.box[1])
        self.spacing = (hi - lo) / (self.points - 1)
        axes = [torch.linspace(float(a), float(b), self.points).tolist()
                for a, b in zip(lo.reshape(-1), hi.reshape(-1), strict=True)]
        self.queue = itertools.product(*axes)

    def _candidate(self) -> torch.Tensor:
        point = next(self.queue, None)
        if point is None:  # grid exhausted: zoom in on the best cell
            self._grid(self.best_x - self.spacing, self.best_x + self.spacing)
            point = next(self.queue)
        return torch.tensor(point, dtype=self.problem.dtype,
                            device=self.problem.device).reshape(self.problem.x_shape)
