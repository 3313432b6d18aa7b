"""Toy bilevel problems with closed-form answers (reference §1, P1-P5).

Each toy knows y*(x) in closed form, so its evaluation computes the exact hyper-objective
F(x) = f(x, y*(x)) (optimistic: min over the LL solution set when it is not a singleton), the
exact optimum F* and the hypergradient by autograd through the closed form. One-dimensional
optima are computed once, to machine precision, by a dense grid refined with Brent's method.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bilevel_bench import generated
from bilevel_bench.problem import EXACT_LL, BilevelProblem, Budget, GapTargets

#: the toys' work budget: 20,000 iterations and an oracle cost per instance (about what the
#: former 5 CPU s bought the fastest reference solver on the official machine, rounded up)
TOY_BUDGET = Budget(seconds=None, iterations=20_000)


class ClosedFormToy(BilevelProblem):
    """A toy whose hyper-objective is known in closed form.

    Subclasses implement ``f``, ``g`` (and ``h``), ``init``, ``hyper_objective(x)`` (exact F(x),
    differentiable), ``ll_value(x)`` (min_y g(x, .) over Y(x)) and ``optimum()`` (F*).
    The primary ``ul_gap`` = F(x) - F* is computed from x alone (no LL gate needed).

    Toys with several UL local minima (:class:`SeparableToy`) also report ``ul_gap_local`` =
    F(x) - F(m(x)), where m(x) is the local minimum that exact descent on F reaches from x: a
    run that ends at a stationary point of F in another basin has ``ul_gap_local`` ~ 0 but
    ``ul_gap`` > 0, so "reached the global minimum" and "reached a local minimum" are told
    apart (as the papers do, from several initial points). Unimodal toys report
    ``ul_gap_local`` = ``ul_gap``.
    """

    ll_gate = EXACT_LL
    task = "closed-form toys"

    x_dim = 1
    y_dim = 1

    def __init__(self, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float64,
                 **params: object) -> None:
        super().__init__(seed=seed, device=device, dtype=dtype, **params)
        self.x_shape = torch.Size([self.x_dim])
        self.y_shape = torch.Size([self.y_dim])

    def hyper_objective(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def ll_value(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def optimum(self) -> float:
        raise NotImplementedError

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        x = x.detach().to(self.dtype)
        y = y.detach().to(self.dtype)
        with torch.enable_grad():
            xr = x.clone().requires_grad_(True)
            value = self.hyper_objective(xr)
            (grad,) = torch.autograd.grad(value, xr)
        mapping = self.gradient_mapping(x, grad)
        violation = 0.0
        if self.n_constraints:
            violation = float(self.h(x, y).clamp(min=0).max())
        ul_value = float(value.detach())
        return {
            "ul_value": ul_value,
            "ul_gap": ul_value - self.optimum(),
            "ul_gap_local": ul_value - self.local_minimum_value(x),
            "ll_gap": float(self.g(x, y) - self.ll_value(x)),
            "constraint_violation": violation,
            "hypergrad_norm": float(mapping.norm()),
        }

    def local_minimum_value(self, x: torch.Tensor) -> float:
        """F at the local minimum that descent on F reaches from x (F* when unimodal)."""
        return self.optimum()


def _minimise_1d(fn, lower: float, upper: float, points: int = 200_001) -> tuple[float, float]:
    """Global minimum of a smooth 1-D function on [lower, upper]: grid, then Brent."""
    grid = np.linspace(lower, upper, points)
    values = fn(grid)
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, points - 1)]
    if i in (0, points - 1):
        return float(grid[i]), float(values[i])
    from scipy.optimize import minimize_scalar  # here: importing it costs 0.3 s

    res = minimize_scalar(fn, bounds=(lo, hi), method="bounded", options={"xatol": 1e-14})
    return float(res.x), float(res.fun)


#: per-coordinate optima (x*, phi*) of the separable toys, by family and parameters
_COORDINATE_OPTIMA: dict[tuple, tuple[float, float]] = {}


class SeparableToy(ClosedFormToy):
    """n independent copies of a one-dimensional toy on the box [lower, upper]^n:

        x, y in R^n,  g = sum_i g_1(x_i, y_i),  f = sum_i f_1(x_i, y_i),  F(x) = sum_i phi(x_i),

    with phi the one-dimensional hyper-objective (``phi``, elementwise). F* = n phi*, and
    ``ul_gap_local`` = sum_i [phi(x_i) - phi(m(x_i))], m(x_i) the bottom of x_i's basin of phi
    (steepest descent on a grid of :data:`LOCAL_GRID` points over the box, computed once).

    Why copies (protocol v3): in one dimension, 32 uniform random points in the box come
    closer to *some* local minimum (median ``ul_gap_local`` 6e-4 on the V-PBGD toy, 3e-4 on
    BLOCC's toy 2) than the papers' penalty methods at their published penalty constants end
    (O(1/gamma^2) bias: 2.5e-4 to 4.7e-3 on the V-PBGD toy), so no target separates bilevel
    work from random guessing. With n = 10 copies, random points are far from any product
    of local minima (best of 32: >= 0.7 on the V-PBGD toy in 200 trials), while each
    coordinate of a gradient method behaves as the one-dimensional toy from its own draw.
    """

    multimodal = True
    LOCAL_GRID = 20_001

    def __init__(self, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float64,
                 n: int = 1, **params: object) -> None:
        super().__init__(seed=seed, device=device, dtype=dtype, n=n, **params)
        self.n = int(n)
        self.x_dim = self.y_dim = self.n
        self.x_shape = self.y_shape = torch.Size([self.n])
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """The one-dimensional hyper-objective, elementwise."""
        raise NotImplementedError

    def hyper_objective(self, x):
        return self.phi(x).sum()

    def coordinate_optimum(self) -> tuple[float, float]:
        """(x*, phi*) of one coordinate, to machine precision (computed once per family and
        parameters)."""
        key = (type(self), tuple(sorted((k, v) for k, v in self.params.items() if k != "n")),
               self.x_bounds)
        if key not in _COORDINATE_OPTIMA:
            def fn(v):
                return self.phi(torch.as_tensor(v, dtype=torch.float64)).numpy()
            _COORDINATE_OPTIMA[key] = _minimise_1d(fn, *self.x_bounds)
        return _COORDINATE_OPTIMA[key]

    def optimum(self):
        return self.n * self.coordinate_optimum()[1]

    def local_minimum_value(self, x):
        grid, bottoms = self._basin_bottoms()
        at = np.clip(np.searchsorted(grid, x.detach().cpu().double().numpy().reshape(-1)),
                     0, len(grid) - 1)
        return float(bottoms[at].sum())

    def _basin_bottoms(self) -> tuple[np.ndarray, np.ndarray]:
        """The grid over the box and, per grid point, phi at the bottom of its basin (steepest
        descent between grid neighbours, by pointer doubling)."""
        if self._grid is None:
            grid = np.linspace(*self.x_bounds, self.LOCAL_GRID)
            with torch.no_grad():
                values = self.phi(torch.as_tensor(grid, dtype=torch.float64)).numpy()
            padded = np.concatenate([[np.inf], values, [np.inf]])
            left, right = padded[:-2], padded[2:]
            index = np.arange(len(grid))
            step = np.where(np.minimum(left, right) >= values, index,
                            np.where(left < right, index - 1, index + 1))
            for _ in range(int(np.ceil(np.log2(len(grid)))) + 1):
                step = step[step]
            self._grid = (grid, values[step])
        return self._grid


# ------------------------------------------------------------------------- P1
class VPBGDToy(SeparableToy):
    """P1, the V-PBGD toy (Shen & Chen, arXiv:2302.05185): several UL local minima.

        g(x, y) = (x + y)^2 + x sin^2(x + y),   y*(x) = -x (unique, x >= 0)
        f(x, y) = cos(4y + 2) / (1 + e^{2 - 4x}) + 1/2 ln((4x - 2)^2 + 1),   x in [0, 3]

    phi(x) = f(x, -x) has local minima near 0.3824, 1.2152 (global, phi = 0.1999) and 2.8296.
    The instance (version 3) is n = 10 independent copies (:class:`SeparableToy`, which says
    why): x, y in R^10, F(x) = sum_i phi(x_i), F* = 10 x 0.19991088770.
    """

    name = "vpbgd-toy"
    citation = "Shen & Chen, On Penalty-based Bilevel Gradient Descent Method, arXiv:2302.05185"
    formulation = (
        "n copies of g = (x+y)^2 + x sin^2(x+y); f = cos(4y+2)/(1+exp(2-4x)) + ln((4x-2)^2+1)/2; "
        "x in [0,3]^n; y*(x) = -x"
    )
    x_bounds = (0.0, 3.0)
    #: version 2: ranked on reaching a local minimum of F (``ul_gap_local``), as the paper
    #: measures its toy from several initial points; reaching the global one is reported too
    #: version 3: n = 10 independent copies (32 random points in [0, 3] beat V-PBGD's penalty
    #: bias in one dimension, see SeparableToy) and targets from F* (protocol v3): 10 rungs at
    #: precisions 1e-2^(k/10) of the gap F(0) - F* = 10 (0.75511 - 0.19991) at x_ref = 0. The
    #: final precision is 1e-2, not 1e-3: V-PBGD at its published gamma = 10 ends 2.5e-4
    #: (basin 2.83) to 4.7e-3 (global basin) above a local minimum per coordinate, i.e. up to
    #: 8.5e-3 of the per-coordinate reference gap
    version = "3"
    primary_metric = "ul_gap_local"
    targets = GapTargets(10 * 0.19991088770040277, 10 * 0.7551130373103703, 1e-2,
                         x_ref="0 (the box's lower bound)",
                         source="closed form: 10 phi*, phi* by grid and Brent")
    instances = {
        "vpbgd-toy": targets.instance(
            {"n": 10}, budget=TOY_BUDGET.merged(oracle_cost=7e4),
            suites=("toys", "core", "full"),
            description="V-PBGD toy, 10 independent copies: three UL local minima per "
                        "coordinate, one global (x_i ~ 1.2152). Version 3: ranked on the gap to "
                        "the local minimum of x's basin; " + targets.describe() + " (V-PBGD's "
                        "penalty bias at its published gamma = 10 is up to 8.5e-3 of it)",
        )
    }

    def g(self, x, y, batch=None):
        s = x + y
        return (s**2 + x * torch.sin(s) ** 2).sum()

    def f(self, x, y, batch=None):
        return (torch.cos(4 * y + 2) / (1 + torch.exp(2 - 4 * x))
                + 0.5 * torch.log((4 * x - 2) ** 2 + 1)).sum()

    def init(self, generator):
        u = torch.rand(2 * self.n, generator=generator, dtype=self.dtype).to(self.device)
        return 3.0 * u[: self.n], -5.0 + 13.5 * u[self.n:]

    def phi(self, x):
        return torch.cos(2 - 4 * x) / (1 + torch.exp(2 - 4 * x)) \
            + 0.5 * torch.log((4 * x - 2) ** 2 + 1)

    def ll_value(self, x):
        return torch.zeros((), dtype=self.dtype, device=self.device)


# ------------------------------------------------------------------------- P2
class PBGDFreeCounterexample(ClosedFormToy):
    """P2, the PBGD-Free negative example (Jiang et al., arXiv:2507.20400).

        g(x, y) = (y - x + 1)^2,  f(x, y) = 10 y + x^2,  x, y in [-8, 1.5]
        y*(x) = clip(x - 1, -8, 1.5),  F(x) = 10 y*(x) + x^2,  x* = -5, F* = -35.

    f is not flat in y (grad_y f = 10), so value-function-free PBGD-Free converges to x = 0.
    """

    name = "pbgd-free-counterexample"
    citation = "Jiang, Xiao, Chen, Chen, Beyond Value Functions, arXiv:2507.20400"
    formulation = "g = (y-x+1)^2; f = 10y + x^2; x, y in [-8, 1.5]; x* = -5, F* = -35"
    x_bounds = (-8.0, 1.5)
    y_bounds = (-8.0, 1.5)
    #: version 2: targets from F* (protocol v3): 10 rungs at precisions 1e-9^(k/10) of the gap
    #: F(0) - F* = 25 at x_ref = 0 (where value-function-free methods stop); the final target
    #: 2.5e-8 (|x + 5| < 1.6e-4) was 1e-3, which 32 uniform random points meet with probability
    #: 1 - (1 - 0.0067)^32 = 19% (F - F* = (x + 5)^2)
    version = "2"
    targets = GapTargets(-35.0, -10.0, 1e-9, x_ref="0 (where PBGD-Free stops)",
                         source="closed form, x* = -5")
    instances = {
        "pbgd-free-counterexample": targets.instance(
            {}, budget=TOY_BUDGET.merged(oracle_cost=6e4),
            suites=("toys", "core", "full"),
            description="non-flat f: value-function-free methods stop at x = 0, not x* = -5. "
                        "Version 2: " + targets.describe(),
        )
    }

    def g(self, x, y, batch=None):
        return ((y - x + 1) ** 2).sum()

    def f(self, x, y, batch=None):
        return (10 * y + x**2).sum()

    def init(self, generator):
        u = torch.rand(2, generator=generator, dtype=self.dtype).to(self.device)
        return -8.0 + 9.5 * u[:1], -8.0 + 9.5 * u[1:]

    def hyper_objective(self, x):
        return self.f(x, (x - 1).clamp(-8.0, 1.5))

    def ll_value(self, x):
        return self.g(x, (x - 1).clamp(-8.0, 1.5))

    def optimum(self):
        return -35.0


# ------------------------------------------------------------------------- P3
class BLOCCToy(SeparableToy):
    """P3, the BLOCC coupled-constraint toys (Jiang et al., arXiv:2406.10148, §4.1).

        LL: min_y (y - 2x)^2  s.t.  h(x, y) = y - x <= 0   ->   y*(x) = x (multiplier 2x)
        toy 1: f = e^{2-y} / (2 + cos 4x) + 1/2 ln((4x-2)^2+1) + x^2   (global min x ~ 0.3007)
        toy 2: f = e^{2-y} / (2 + cos 6x) + 1/2 ln((4x-2)^2+1)         (global min x ~ 0.9862)
        x in [0, 3] (toy 1), [0, 3.5] (toy 2).

    The instances (version 3) are n = 10 independent copies (:class:`SeparableToy`, which says
    why), with one constraint y_i <= x_i per copy. Toy 2's box is [0, 3.5], not the paper's
    [0, 3]: its bound 3 sits 0.009 from the local minimum at 2.9907 (phi 1.1e-4 above it), so the
    data-blind canary's "upper bound" member was a local minimum in every coordinate; at 3.5 it
    is 0.196 above (phi rises from 2.99 to 3.7). Initial points are drawn in [0, 3] as before.
    """

    name = "blocc-toy"
    citation = "Jiang et al., A Primal-Dual-Assisted Penalty Approach to Bilevel Optimization " \
               "with Coupled Constraints, arXiv:2406.10148"
    formulation = ("n copies of LL: min (y-2x)^2 s.t. y <= x; f = exp(2-y)/(2+cos(kx)) + "
                   "ln((4x-2)^2+1)/2 [+x^2]")
    x_bounds = (0.0, 3.0)
    #: version 2: ranked on reaching a local minimum of F (``ul_gap_local``)
    #: version 3: n = 10 independent copies (random points in [0, 3] beat the penalty methods
    #: in one dimension, see SeparableToy), toy 2 on [0, 3.5] (its bound 3 was a near-minimum),
    #: targets from F* (protocol v3) at x_ref = 0: toy 1 to precision 1e-6 (LV-HBA's reference
    #: ends within 1e-8 of a local minimum), toy 2 to 5e-5 (ALT-PBGD's penalty bias at gamma 15
    #: is up to 3.4e-5 per coordinate, 2.2e-5 of the per-coordinate reference gap; the constant
    #: 1, 0.014 from the global minimiser 0.9862, is 7.3e-4 of it: rung 8 is at 3.6e-4)
    version = "3"
    primary_metric = "ul_gap_local"
    targets = {
        1: GapTargets(10 * 2.6544983313905486, 10 * 3.2677376558606004, 1e-6,
                      x_ref="0 (the box's lower bound)",
                      source="closed form: 10 phi*, phi* by grid and Brent"),
        2: GapTargets(10 * 1.72187881473492, 10 * 3.2677376558606004, 5e-5,
                      x_ref="0 (the box's lower bound)",
                      source="closed form: 10 phi*, phi* by grid and Brent"),
    }
    instances = {
        "blocc-toy1": targets[1].instance(
            {"variant": 1, "n": 10}, budget=TOY_BUDGET.merged(oracle_cost=2e5),
            suites=("toys", "core", "full"),
            description="coupled constraints y_i <= x_i, toy 1, 10 independent copies (global "
                        "min x_i ~ 0.3007). Version 3: " + targets[1].describe(),
        ),
        "blocc-toy2": targets[2].instance(
            {"variant": 2, "n": 10}, budget=TOY_BUDGET.merged(oracle_cost=2e5),
            suites=("toys", "core", "full"),
            description="coupled constraints y_i <= x_i, toy 2, 10 independent copies on "
                        "[0, 3.5] (global min x_i ~ 0.9862). Version 3: " + targets[2].describe(),
        ),
    }

    def __init__(self, seed=0, device="cpu", dtype=torch.float64, variant: int = 2, n: int = 1):
        if variant not in (1, 2):
            raise ValueError(f"blocc-toy variant must be 1 or 2, got {variant!r}")
        self.variant = variant
        self.x_bounds = (0.0, 3.0) if variant == 1 else (0.0, 3.5)
        super().__init__(seed=seed, device=device, dtype=dtype, n=n, variant=variant)
        self.n_constraints = self.n

    def g(self, x, y, batch=None):
        return ((y - 2 * x) ** 2).sum()

    def h(self, x, y):
        return y - x

    def f(self, x, y, batch=None):
        return self._f(x, y).sum()

    def _f(self, x, y):
        k = 4.0 if self.variant == 1 else 6.0
        value = torch.exp(2 - y) / (2 + torch.cos(k * x)) + 0.5 * torch.log((4 * x - 2) ** 2 + 1)
        return value + x**2 if self.variant == 1 else value

    def init(self, generator):
        u = torch.rand(2 * self.n, generator=generator, dtype=self.dtype).to(self.device)
        return 3.0 * u[: self.n], 3.0 * u[self.n:]

    def phi(self, x):
        return self._f(x, x)

    def ll_value(self, x):
        return self.g(x, x)


# ------------------------------------------------------------------------- P4
class LVHBAToy(ClosedFormToy):
    """P4, the LV-HBA toy with a coupled equality constraint (Yao et al., arXiv:2401.16164).

    x in R^n, y = (y1, y2) in R^{2n}:
        UL  f(x, y) = 1/2 ||x - y2||^2 + 1/2 ||y1 - 1||^2
        LL  g(x, y) = 1/2 ||y1||^2 - x^T y1 + 1^T y2   s.t.  1^T x + 1^T y = 0
    The equality is written as h = (s, -s) <= 0 with s = 1^T x + 1^T y. LL solutions:
    y1 = x + 1, any y2 with 1^T y2 = -2 1^T x - n (not unique: optimistic F). Closed form
        F(x) = 1/2 ||x||^2 + (3 1^T x + n)^2 / (2n),   x* = -0.3 . 1,   F* = 0.05 n (5 for n=100).
    """

    name = "lvhba-toy"
    citation = "Yao, Yu, Zeng, Zhang, Constrained Bi-Level Optimization: Proximal Lagrangian " \
               "Value Function Approach and Hessian-free Algorithm, arXiv:2401.16164"
    formulation = "f = ||x-y2||^2/2 + ||y1-1||^2/2; g = ||y1||^2/2 - x.y1 + 1.y2; 1.x + 1.y = 0"
    n_constraints = 2
    #: version 2: target 1e-3 -> 0.5 (F - F*, F* = 5). 1e-3 was reached by no solver: LV-HBA
    #: converges sublinearly here and needs more than 20,000 iterations for it.
    #: version 3: initial points from exact normal draws (the same on every CPU)
    #: version 4: targets from F* (protocol v3): 10 rungs at precisions 1e-5^(k/10) of the gap
    #: F(10 . 1) - F* = 53045 at x_ref = 10 . 1 (the centre of the initial draws); the final
    #: target 0.53 stays where version 2 put it (LV-HBA's reference ends at 0.21-0.26, BLOCC's at
    #: 0.20 within the work budget), the rungs no longer depend on the seed's x0
    version = "4"
    targets = GapTargets(5.0, 53_050.0, 1e-5, x_ref="10 . 1 (the centre of the initial draws)",
                         source="closed form, x* = -0.3 . 1, F* = 0.05 n")
    instances = {
        "lvhba-toy": targets.instance(
            {"n": 100}, budget=TOY_BUDGET.merged(oracle_cost=6e4),
            suites=("toys", "core", "full"),
            description="coupled equality constraint, non-unique LL solution, n = 100. Version 4: "
                        + targets.describe() + " (final target F - F* = 0.53: LV-HBA's and "
                        "BLOCC's reference configurations end at 0.20-0.26 within the work "
                        "budget; LV-HBA is sublinear here)",
        )
    }

    def __init__(self, seed=0, device="cpu", dtype=torch.float64, n: int = 100):
        super().__init__(seed=seed, device=device, dtype=dtype, n=n)
        self.n = int(n)
        self.x_dim, self.y_dim = self.n, 2 * self.n
        self.x_shape = torch.Size([self.n])
        self.y_shape = torch.Size([2 * self.n])

    def _split(self, y):
        return y[: self.n], y[self.n:]

    def f(self, x, y, batch=None):
        y1, y2 = self._split(y)
        return 0.5 * ((x - y2) ** 2).sum() + 0.5 * ((y1 - 1) ** 2).sum()

    def g(self, x, y, batch=None):
        y1, y2 = self._split(y)
        return 0.5 * (y1**2).sum() - (x * y1).sum() + y2.sum()

    def h(self, x, y):
        s = x.sum() + y.sum()
        return torch.stack([s, -s])

    def init(self, generator):
        noise = generated.normal(generator, 3 * self.n).to(self.dtype).to(self.device)
        return 10.0 + noise[: self.n], 10.0 + noise[self.n:]

    def hyper_objective(self, x):
        return 0.5 * (x**2).sum() + (3 * x.sum() + self.n) ** 2 / (2 * self.n)

    def ll_value(self, x):
        # y1 = x + 1 and 1^T y2 = -2 1^T x - n
        return 0.5 * ((x + 1) ** 2).sum() - (x * (x + 1)).sum() - 2 * x.sum() - self.n

    def optimum(self):
        return 0.05 * self.n

    def evaluate(self, x, y):
        metrics = super().evaluate(x, y)
        metrics["constraint_violation"] = float((x.sum() + y.sum()).abs())
        return metrics


# ------------------------------------------------------------------------- P5
class BOMEToy(ClosedFormToy):
    """P5, the BOME toy with a non-singleton LL solution set (Liu et al., arXiv:2209.08709).

        g(x, y) = 1/2 y1^2 - x y1   (y2 free),   f(x, y) = 1/2 (x - y2)^2 + 1/2 (y1 - a)^2
    LL solutions: y1 = x, any y2. Optimistic F(x) = 1/2 (x - a)^2: x* = a, F* = 0.

    The paper has a = 1. Version 3 shifts the optimum to a = sqrt(2): with a = 1 the data-blind
    canary's constant vector 1 (no oracle call) is exactly x*, so the instance could be won
    without any bilevel work (protocol v3). Nothing else changes: y1 = x, y2 free, F quadratic.
    """

    name = "bome-toy"
    #: version 2: initial points from exact normal draws (the same on every CPU)
    #: version 3: x* shifted from 1 to a = sqrt(2) (the data-blind constant 1 was x*) and
    #: targets from F* = 0 (protocol v3): 10 rungs at precisions 1e-10^(k/10) of the gap
    #: F(0) - F* = a^2 / 2 = 1 at x_ref = 0; the final target 1e-10 (|x - a| < 1.4e-5) was 1e-3
    version = "3"
    #: the UL target of y1 (the paper's 1, shifted off the round constant, see the docstring)
    SHIFT = math.sqrt(2.0)
    citation = "Liu, Ye, Wright, Stone, Liu, BOME! Bilevel Optimization Made Easy, arXiv:2209.08709"
    formulation = ("g = y1^2/2 - x y1; f = (x-y2)^2/2 + (y1-a)^2/2, a = sqrt(2); "
                   "LL solution set {(x, t)}")
    y_dim = 2
    provides = frozenset({"second_order"})
    targets = GapTargets(0.0, 1.0, 1e-10, x_ref="0", source="closed form, x* = sqrt(2)")
    instances = {
        "bome-toy": targets.instance(
            {}, budget=TOY_BUDGET.merged(oracle_cost=4e4),
            suites=("toys", "core", "full"),
            description="non-singleton LL solution set (y2 free): optimistic bilevel. Version 3: "
                        "x* = sqrt(2) (the paper's x* = 1 shifted: the data-blind constant 1 "
                        "was the optimum); " + targets.describe(),
        )
    }

    def f(self, x, y, batch=None):
        return (0.5 * (x - y[1:]) ** 2 + 0.5 * (y[:1] - self.SHIFT) ** 2).sum()

    def g(self, x, y, batch=None):
        return (0.5 * y[:1] ** 2 - x * y[:1]).sum()

    def init(self, generator):
        u = generated.normal(generator, 3).to(self.dtype).to(self.device)
        return 2.0 * u[:1], 2.0 * u[1:]

    def hyper_objective(self, x):
        return (0.5 * (x - self.SHIFT) ** 2).sum()

    def ll_value(self, x):
        return (-0.5 * x**2).sum()

    def optimum(self):
        return 0.0


TOY_PROBLEMS = (VPBGDToy, PBGDFreeCounterexample, BLOCCToy, LVHBAToy, BOMEToy)
