"""Transportation network design with coupled capacity constraints (reference §1, P10;
BLOCC, Jiang et al., arXiv:2406.10148, §4.3).

A network operator builds capacities a_e on candidate directed links e = (i, j);
travellers of each origin-destination pair k = (o, d) with demand w_k either use the new network
(share s_k) or an alternative mode of cost u_k, and route their flow over the links.
UL x = a in R^|E|, a_e >= a_min = 0.01 sum_k w_k (so that the LL is feasible for every a: the
minimal flows s_k = 0.01 of all pairs fit through any link); LL y = (s, r) with shares
s_k in [0.01, 0.99] and link flows r_{k,e} in [0, 1]:

    LL  min_y  g = sum_k [s_k (ln s_k - 1) + (1 - s_k)(ln(1 - s_k) - 1) + u_k (1 - s_k)]
                   + sum_k sum_e d_e r_{k,e}                      (entropy-regularised logit choice)
        s.t.   sum_{e out of n} r_{k,e} - sum_{e into n} r_{k,e} = s_k [n = o_k] - s_k [n = d_k]
                                                                  (flow conservation, all n, k)
               sum_k w_k r_{k,e} <= a_e                           (coupled capacity, all e)
    UL  min_a  f = sum_e c_e a_e - sum_k m_k w_k s_k             (construction cost - revenue)

Each conservation equality is written as two inequalities, so h = (cons, -cons, capacity) <= 0
with 2 |N| |K| + |E| rows. g is strictly convex in s, hence s*(a) is unique (the link flows may
not be), and F(a) = f(a, y*(a)) is well defined.

Instances (bilevel_bench's own data: the BLOCC MATLAB scripts' matrices are not available to
us, so the networks below are reconstructions with the same structure, [unverified] against
the paper's numbers):

* ``transport-3node``: a triangle, all 6 directed links, all 6 OD pairs, unit demands;
* ``transport-9node``: a 3 x 3 grid (unit spacing), 24 directed links between grid neighbours,
  the 12 OD pairs between the 4 corners, unit demands.

Link travel cost d_e = length, construction cost c_e = 0.25 length, fare m_k = 1 + l_k and
alternative cost u_k = 1 + l_k with l_k the shortest-path length (so that a traveller prefers
the network when it is uncongested). Init: a_0 = a_min on every link, s = 1/2, r = 0.

Evaluation solves the LL exactly (cvxpy + Clarabel, exponential cones) and reports ``profit``
= -F(a) (primary, higher is better), ``ul_value`` = F(a) (F* is not known in closed form, so
there is no ``ul_gap``), ``ll_gap``, ``constraint_violation`` of the
iterate and ``ridership`` = mean s*_k.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from bilevel_bench.problem import BilevelProblem, Budget, Instance, fingerprint_tensors
from bilevel_bench.problems._cvx import solve_exact

SHARE_BOUNDS = (0.01, 0.99)


def make_network(kind: str) -> dict[str, np.ndarray]:
    """Coordinates, links (pairs of node indices) and OD pairs of a named network."""
    if kind == "3node":
        coords = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
        links = [(i, j) for i in range(3) for j in range(3) if i != j]
        ods = links
    elif kind == "9node":
        coords = np.array([[i % 3, i // 3] for i in range(9)], dtype=float)
        links = [(i, j) for i in range(9) for j in range(9)
                 if i != j and np.abs(coords[i] - coords[j]).sum() == 1]
        corners = (0, 2, 6, 8)
        ods = [(o, d) for o, d in itertools.product(corners, corners) if o != d]
    else:
        raise ValueError(f"unknown network {kind!r}: expected '3node' or '9node'")
    return {"coords": coords, "links": np.array(links), "ods": np.array(ods)}


def _shortest_paths(n: int, links: np.ndarray, length: np.ndarray) -> np.ndarray:
    dist = np.full((n, n), np.inf)
    np.fill_diagonal(dist, 0.0)
    for (i, j), ell in zip(links, length, strict=True):
        dist[i, j] = min(dist[i, j], ell)
    for k in range(n):  # Floyd-Warshall
        dist = np.minimum(dist, dist[:, [k]] + dist[[k], :])
    return dist


class Transport(BilevelProblem):
    """P10, transportation network design (module docstring)."""

    name = "transport"
    version = "1"
    citation = ("Jiang, Xiao, Tenorio, Real-Rojas, Marques, Chen, A Primal-Dual-Assisted Penalty "
                "Approach to Bilevel Optimization with Coupled Constraints, arXiv:2406.10148")
    formulation = ("LL: min sum_k [s ln s + (1-s) ln(1-s) - 1 + u_k (1-s_k)] + sum_ke d_e r_ke "
                   "s.t. flow conservation, sum_k w_k r_ke <= a_e; "
                   "UL: min_a sum_e c_e a_e - sum_k m_k w_k s_k")
    primary_metric = "profit"
    higher_is_better = True
    y_bounds = (0.0, 1.0)
    instances = {
        "transport-3node": Instance(
            {"network": "3node"}, target=7.0, budget=Budget(seconds=30.0, iterations=3_000),
            suites=("papers", "full"),
            description="triangle, 6 links, 6 OD pairs (profit 0.63 at a_0). Target reached by "
                        "BLOCC (gamma 5, eta 0.05, T 10 x T_y 5, primal/dual steps 0.05) in "
                        "~20 steps"),
        "transport-9node": Instance(
            {"network": "9node"}, target=24.0, budget=Budget(seconds=60.0, iterations=3_000),
            suites=("papers", "full"),
            description="3x3 grid, 24 links, 12 corner OD pairs (profit 2.8 at a_0). Target "
                        "reached by BLOCC (gamma 5, eta 0.05, T 10 x T_y 5, primal/dual steps "
                        "0.05) in ~40 steps"),
    }

    def __init__(self, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float64,
                 network: str = "3node") -> None:
        super().__init__(seed=seed, device=device, dtype=dtype, network=network)
        net = make_network(network)
        coords, links, ods = net["coords"], net["links"], net["ods"]
        self.n_nodes, self.n_links, self.n_ods = len(coords), len(links), len(ods)
        length = np.linalg.norm(coords[links[:, 0]] - coords[links[:, 1]], axis=1)
        sp = _shortest_paths(self.n_nodes, links, length)
        self.travel = self.tensor(length)
        self.build_cost = self.tensor(0.25 * length)
        self.revenue = self.tensor(1.0 + sp[ods[:, 0], ods[:, 1]])
        self.demand = self.tensor(np.ones(self.n_ods))
        self.alternative = self.tensor(1.0 + sp[ods[:, 0], ods[:, 1]])
        # node-link incidence (+1 out of the node, -1 into it) and OD source/sink vectors
        incidence = np.zeros((self.n_nodes, self.n_links))
        incidence[links[:, 0], np.arange(self.n_links)] = 1.0
        incidence[links[:, 1], np.arange(self.n_links)] = -1.0
        supply = np.zeros((self.n_ods, self.n_nodes))
        supply[np.arange(self.n_ods), ods[:, 0]] = 1.0
        supply[np.arange(self.n_ods), ods[:, 1]] = -1.0
        self.incidence, self.supply = self.tensor(incidence), self.tensor(supply)
        self.x_shape = torch.Size([self.n_links])
        self.a_min = 0.01 * float(self.demand.sum())
        self.x_bounds = (self.a_min, None)
        self.y_shape = torch.Size([self.n_ods * (1 + self.n_links)])
        self.n_constraints = 2 * self.n_nodes * self.n_ods + self.n_links
        self._qp: Any = None

    # ------------------------------------------------------------------ oracles
    def _split(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y[: self.n_ods], y[self.n_ods:].reshape(self.n_ods, self.n_links)

    def g(self, x, y, batch=None):
        s, r = self._split(y)
        entropy = s * (torch.log(s) - 1) + (1 - s) * (torch.log(1 - s) - 1)
        return (entropy + self.alternative * (1 - s)).sum() + (r @ self.travel).sum()

    def f(self, x, y, batch=None):
        s, _ = self._split(y)
        return self.build_cost @ x - (self.revenue * self.demand * s).sum()

    def conservation(self, y: torch.Tensor) -> torch.Tensor:
        """Flow-conservation residuals, (|K|, |N|)."""
        s, r = self._split(y)
        return r @ self.incidence.T - s[:, None] * self.supply

    def h(self, x, y):
        _, r = self._split(y)
        cons = self.conservation(y).reshape(-1)
        return torch.cat([cons, -cons, self.demand @ r - x])

    def project_y(self, x, y):
        s, r = self._split(y)
        return torch.cat([s.clamp(*SHARE_BOUNDS), r.clamp(0.0, 1.0).reshape(-1)])

    def init(self, generator):
        x0 = torch.full(self.x_shape, self.a_min, dtype=self.dtype, device=self.device)
        y0 = torch.zeros(self.y_shape, dtype=self.dtype, device=self.device)
        y0[: self.n_ods] = 0.5
        return x0, y0

    # --------------------------------------------------------------- evaluation
    def _build_ll(self) -> tuple[Any, Any, Any, Any]:
        import cvxpy as cp

        cap = cp.Parameter(self.n_links, nonneg=True)
        s = cp.Variable(self.n_ods)
        r = cp.Variable((self.n_ods, self.n_links))
        alt, travel = self.alternative.cpu().numpy(), self.travel.cpu().numpy()
        inc, sup = self.incidence.cpu().numpy(), self.supply.cpu().numpy()
        # s (ln s - 1) + (1 - s)(ln(1 - s) - 1) = -entr(s) - entr(1 - s) - 1
        objective = (cp.sum(-cp.entr(s) - cp.entr(1 - s)) - self.n_ods + alt @ (1 - s)
                     + cp.sum(r @ travel))
        constraints = [
            r @ inc.T == cp.diag(s) @ sup,
            self.demand.cpu().numpy() @ r <= cap,
            s >= SHARE_BOUNDS[0], s <= SHARE_BOUNDS[1], r >= 0, r <= 1,
        ]
        return cp.Problem(cp.Minimize(objective), constraints), cap, s, r

    def solve_ll(self, x: torch.Tensor) -> torch.Tensor:
        """The exact LL solution y*(a) (cvxpy + Clarabel)."""
        if self._qp is None:
            self._qp = self._build_ll()
        problem, cap, s, r = self._qp
        cap.value = np.maximum(x.detach().cpu().double().numpy(), 0.0)
        if not solve_exact(problem):  # cannot happen for a >= a_min
            raise ValueError(f"transport LL infeasible for capacities {cap.value}")
        return self.tensor(np.concatenate([s.value, r.value.reshape(-1)]))

    def hyper_objective(self, x: torch.Tensor) -> float:
        """F(a) = f(a, y*(a))."""
        return float(self.f(x, self.solve_ll(x)))

    def evaluate(self, x, y):
        x, y = x.detach().to(self.dtype), y.detach().to(self.dtype)
        if not bool(torch.isfinite(x).all()):
            nan = float("nan")
            return {"profit": nan, "ul_value": nan}
        y_star = self.solve_ll(x)
        value = float(self.f(x, y_star))
        s, _ = self._split(y_star)
        return {
            "profit": -value,
            "ul_value": value,
            "ll_gap": float(self.g(x, y) - self.g(x, y_star)),
            "constraint_violation": float(self.h(x, y).clamp(min=0).max()),
            "ridership": float(s.mean()),
            "profit_iterate": -float(self.f(x, y)),
        }

    def data_fingerprints(self) -> dict[str, str]:
        return {"generated": fingerprint_tensors(
            self.travel, self.build_cost, self.revenue, self.demand, self.alternative,
            self.incidence, self.supply)}
