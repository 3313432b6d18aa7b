"""Canary solvers: reference lines that do no bilevel work on purpose (protocol v3).

An instance whose final target (or one of its top rungs) a canary reaches can be won without
solving the bilevel problem, and is reformulated (tests/test_canaries.py;
``benchmarks/canary_table.py`` prints the canary x instance table). Canaries are never ranked
(``Solver.canary``). With the x-frozen LL solve of :mod:`direct_mixing` they are:

* :class:`ValidationFit`, ``validation-fit``: x frozen at x0, y trained on the LL and the UL
  objective together, y <- Proj_Y(y - lr grad_y [g(x0, y) + w f(x0, y)]) (``inner_steps`` steps
  per iteration, mini-batches of ``batch_size``). For the LLM instances this is the papers'
  "direct mixing of SFT and validation data" (SEAL, arXiv:2410.07471; Xiao & Chen,
  arXiv:2511.21056). Oracle cost per iteration: ``inner_steps`` gradients of f and of g.
* :class:`DataBlind`, ``data-blind``: x set once, without any oracle call, to one member of a
  fixed grid built from x0 and the box of x only (:func:`blind_grid`): the scalings s x0 for s
  in :data:`SCALES`, the constant vectors of :data:`CONSTANTS`, and the box's lower and upper
  bounds and midpoint where finite, each projected onto the box; y stays at y0. The grid member
  is the hyperparameter ``member`` (a :class:`~bilevel_bench.solver.Choice`); the canary's
  value is that of the best member, picked by the evaluator (the canary check runs every member;
  the ``tuned`` ruleset picks it the same way). ``step`` does nothing.
* :class:`ZeroOracleRandomSearch`, ``zero-oracle-random-search``: random search at equal
  budget with no oracle call: each iteration moves x to a fresh random point, uniform in the
  box of x when it is bounded, otherwise x0 + radius * rms(x0) * N(0, I) projected onto the box
  (rms(x0) replaced by 1 when x0 = 0); y stays at y0. It cannot tell good points from bad ones;
  the evaluator's checkpoints score each point (the canary check scores every iteration), so
  its value is the best of as many candidates as :mod:`random_search` draws in the same
  iterations.

None of them calls an oracle on x's behalf: their x never depends on f or g.
"""

from __future__ import annotations

import math

import torch
from bilevel_bench_baselines.inner_loops import projected_gradient_descent_y

from bilevel_bench import Choice, Hyperparameter, LogUniform, Solver

#: scalings s x0 of the data-blind grid (0.9^4 = 0.66 and 0.7 shrink svm-ho's slack bounds c)
SCALES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.25, 1.5, 2.0)
#: constant vectors of the data-blind grid
CONSTANTS = (-10.0, -1.0, -0.1, 0.1, 1.0, 10.0)
#: members after the scalings and constants: the box's lower bound, upper bound, midpoint
BOUNDS = ("lower", "upper", "midpoint")
#: the number of members of the data-blind grid
GRID_SIZE = len(SCALES) + len(CONSTANTS) + len(BOUNDS)


def blind_grid(x0: torch.Tensor, bounds: tuple[float | None, float | None]
               ) -> list[tuple[str, torch.Tensor | None]]:
    """The data-blind grid: (label, point) for every member, in :data:`SCALES`,
    :data:`CONSTANTS`, :data:`BOUNDS` order; the point is ``None`` for a bound that is
    infinite. Points are not yet projected onto the box."""
    lower, upper = bounds
    finite_lo = lower is not None and math.isfinite(lower)
    finite_hi = upper is not None and math.isfinite(upper)
    members: list[tuple[str, torch.Tensor | None]] = [(f"{s:g} x0", s * x0) for s in SCALES]
    members += [(f"constant {c:g}", torch.full_like(x0, c)) for c in CONSTANTS]
    members.append(("lower bound", torch.full_like(x0, lower) if finite_lo else None))
    members.append(("upper bound", torch.full_like(x0, upper) if finite_hi else None))
    members.append(("box midpoint", torch.full_like(x0, (lower + upper) / 2)
                    if finite_lo and finite_hi else None))
    return members


class ValidationFit(Solver):
    name = "validation-fit"
    version = "1.0"
    citation = ("Canary (protocol v3): x frozen, y fitted to g + f; the direct mixing of SFT and "
                "validation data of SEAL, arXiv:2410.07471, and Xiao & Chen, arXiv:2511.21056")
    canary = True
    needs = frozenset()
    handles = frozenset({"cuda", "coupled_constraints", "ul_independent_of_x",
                         "ll_infeasible_in_x"})
    hyperparameters = {
        "lr": Hyperparameter(0.1, LogUniform(1e-4, 1.0), "y step"),
        "f_weight": Hyperparameter(1.0, LogUniform(1e-2, 1e2), "weight w of f in g + w f"),
        "inner_steps": Hyperparameter(1, LogUniform(1, 100, integer=True), "y steps per step"),
        "batch_size": Hyperparameter(0, None, "mini-batch size of f and g (0: full batch)"),
    }

    def init(self, problem, x0, y0, generator):
        self.problem, self.generator = problem, generator
        self.x, self.y = x0.clone(), y0.clone()

    def _batch(self):
        size = self.batch_size or None
        return (self.problem.sample_batch("f", size, self.generator),
                self.problem.sample_batch("g", size, self.generator))

    def step(self):
        self.y = projected_gradient_descent_y(
            self.problem, self.x, self.y, self.lr, self.inner_steps,
            penalty=1.0 / self.f_weight, batch=self._batch)

    def solution(self):
        return self.x, self.y


class DataBlind(Solver):
    name = "data-blind"
    version = "1.0"
    citation = ("Canary (protocol v3): x moved without any oracle call to a member of a fixed "
                "grid of scalings of x0, constants and bounds")
    canary = True
    needs = frozenset()
    handles = frozenset({"cuda", "coupled_constraints", "ul_independent_of_x",
                         "ll_infeasible_in_x"})
    hyperparameters = {
        "member": Hyperparameter(0, Choice(tuple(range(GRID_SIZE))),
                                 "grid member: scalings of x0, constants, then the box's lower "
                                 "bound, upper bound and midpoint (an infinite one: x0)"),
    }

    def init(self, problem, x0, y0, generator):
        label, point = blind_grid(x0, problem.x_bounds)[self.member]
        self.label = label if point is not None else f"{label} (infinite: x0)"
        self.x = problem.project_x(x0.clone() if point is None else point)
        self.y = y0.clone()

    def step(self):
        pass

    def solution(self):
        return self.x, self.y


class ZeroOracleRandomSearch(Solver):
    name = "zero-oracle-random-search"
    version = "1.0"
    citation = ("Canary (protocol v3): random points with no oracle call; cf. Bergstra & "
                "Bengio, Random Search for Hyper-Parameter Optimization, JMLR 13, 2012")
    canary = True
    needs = frozenset()
    handles = frozenset({"cuda", "coupled_constraints", "ul_independent_of_x",
                         "ll_infeasible_in_x"})
    hyperparameters = {
        "radius": Hyperparameter(1.0, LogUniform(1e-2, 10.0),
                                 "spread around x0, relative to rms(x0), for an unbounded box"),
    }

    def init(self, problem, x0, y0, generator):
        self.problem, self.generator = problem, generator
        self.x0, self.x, self.y = x0.clone(), x0.clone(), y0.clone()
        rms = float(x0.pow(2).mean().sqrt()) if x0.numel() else 0.0
        self.scale = self.radius * (rms if rms > 0 else 1.0)

    def step(self):
        p, gen = self.problem, self.generator
        lower, upper = p.x_bounds
        if lower is not None and upper is not None and math.isfinite(upper - lower):
            u = torch.rand(p.x_shape, generator=gen, dtype=p.dtype).to(p.device)
            self.x = lower + (upper - lower) * u
        else:
            noise = torch.randn(p.x_shape, generator=gen, dtype=p.dtype).to(p.device)
            self.x = p.project_x(self.x0 + self.scale * noise)

    def solution(self):
        return self.x, self.y
