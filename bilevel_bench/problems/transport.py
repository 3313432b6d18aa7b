"""Transportation network design with coupled capacity constraints (reference §1, P10;
BLOCC, Jiang et al., arXiv:2406.10148, §4.3).

A network operator builds capacities a_e on candidate directed links e = (i, j);
travellers of each origin-destination pair k = (o, d) with demand w_k either use the new network
(share s_k) or an alternative mode of cost u_k, and route their flow over the links.
UL x = a in R^|E|, a_e >= a_min,e (a per-link floor, below); LL y = (s, r) with shares
s_k in [0.01, 0.99] and link flows r_{k,e} in [0, 1] (per unit of demand):

    LL  min_y  g = sum_k w_k [s_k (ln s_k - 1) + (1 - s_k)(ln(1 - s_k) - 1) + u_k (1 - s_k)
                              + sum_e d_e r_{k,e}]               (entropy-regularised logit choice)
        s.t.   sum_{e out of n} r_{k,e} - sum_{e into n} r_{k,e} = s_k [n = o_k] - s_k [n = d_k]
                                                                  (flow conservation, all n, k)
               sum_k w_k r_{k,e} <= a_e                           (coupled capacity, all e)
    UL  min_a  f = sum_e c_e a_e - sum_k m_k w_k s_k             (construction cost - revenue)

The demand weighting of g and of the capacity constraint follows the authors' 9-node script
(its LL gradients are demand .* (log(f/(1-f)) - u) and demand(o,d) .* d, its capacity
sum(fij .* demand) <= a); with unit demands (3-node) it is the unweighted problem.
Each conservation equality is written as two inequalities, so h = (cons, -cons, capacity) <= 0
with 2 |N| |K| + |E| rows. g is strictly convex in s, hence s*(a) is unique (the link flows may
not be), and F(a) = f(a, y*(a)) is well defined.

Capacity floor: a_min,e = max(1e-3, 0.01 sum_k w_k [e on the d-shortest path of k]) + 1e-3, the
load of the minimal shares s_k = 0.01 routed along shortest paths plus a slack, so that the LL is
strictly feasible for every a >= a_min (``project_x`` clamps to this per-link floor;
``x_bounds`` holds its smallest entry).

Instances: the data of the authors' MATLAB scripts (github.com/Liuyuan999/
Penalty_Based_Lagrangian_Bilevel, folder Transportation/code/), transcribed exactly:

* ``transport-3node`` (``bilevel_3node.m``): a triangle, all 6 directed links, all 6 OD pairs,
  unit demands;
* ``transport-9node`` (``bilevel_9node.m``): 9 nodes, the 15 undirected edges with a finite
  distance (30 directed links; the script's other pairs have distance 10000 and construction cost
  10, so they are left out), all 72 ordered OD pairs with the script's demand matrix.

Init (deterministic, the seed is not used): the scripts' starting capacities, MATLAB ``rng(1)``
(Mersenne twister, identical to ``numpy.random.RandomState(1)``) and a = 0.3 + 0.7 rand(3, 3)
(3-node) or a = 3 + 12 rand(9) (9-node), read column-major at the links and clamped to the
floor; shares s = 0.01 and flows r = 0 as in the scripts.

Evaluation solves the LL exactly (cvxpy + Clarabel, exponential cones) and reports ``profit``
= -F(a) (primary, higher is better), ``ul_value`` = F(a) (F* is not known in closed form, so
there is no ``ul_gap``), ``ll_gap``, ``constraint_violation`` of the
iterate and ``ridership`` = mean s*_k.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bilevel_bench.problem import EXACT_LL, BilevelProblem, Budget, Instance, fingerprint_tensors
from bilevel_bench.problems._cvx import solve_exact

SHARE_BOUNDS = (0.01, 0.99)
MIN_CAPACITY = 1e-3
#: added to every capacity floor: the LL then has a strictly feasible point at the floor
#: (Slater), which the interior-point exact solve needs (at the bare floor Clarabel fails once
#: a dozen links sit on it)
CAPACITY_SLACK = 1e-3

# ----------------------------------------------------------------------- the authors' data
# Transcribed from Liuyuan999/Penalty_Based_Lagrangian_Bilevel, Transportation/code/ (MATLAB,
# nodes 1-based there, 0-based here; matrices row = origin i, column = destination j).

# bilevel_3node.m, lines 22 (d), 24 (u), 27 (c), 31 (m); demand 1 for every pair (the script
# has no demand); init line 55-56: rng(1); a_start = 0.7 .* rand(n, n) + 0.3.
THREE_NODE = {
    "d": [[0, 1, 10], [1, 0, 2], [10, 2, 0]],
    "u": [[0, 3, 3], [3, 0, 3], [3, 3, 0]],
    "c": [[0, 1, 10], [1, 0, 3], [10, 3, 0]],
    "m": [[0, 2, 6], [2, 0, 1], [6, 1, 0]],
    "demand": [[0, 1, 1], [1, 0, 1], [1, 1, 0]],
}

# bilevel_9node.m: distances lines 18-39 (symmetrised at lines 41-45; the commented-out
# alternatives at lines 19 and 33 are not used), u lines 49-57, c lines 59-67 (zeros, i.e.
# non-edges, are set to 10 at line 69), m lines 71-79, demand = 1e-1 .* matrix lines 81-89;
# init lines 176-180: rng(1); a_start = 3 + 12 .* rand(n).
NINE_NODE_EDGES = {  # 1-based (i, j): distance
    (1, 2): 0.75, (1, 3): 0.7, (1, 9): 0.9,
    (2, 3): 0.6, (2, 4): 1.1,
    (3, 4): 1.1, (3, 5): 0.5, (3, 9): 0.7,
    (4, 5): 0.8, (4, 6): 0.7, (4, 8): 0.8,
    (5, 6): 0.5, (5, 7): 0.7,
    (6, 7): 0.5, (6, 8): 0.4,
}
NINE_NODE = {
    "u": [[0, 1.6, 0.8, 2, 1.6, 2.5, 3, 2.5, 0.8],
          [2, 0, 0.9, 1.2, 1.5, 2.5, 2.7, 2.4, 1.8],
          [1.5, 1.4, 0, 1.3, 0.9, 2, 1.6, 2.3, 0.9],
          [1.9, 2, 1.9, 0, 1.8, 2, 1.9, 1.2, 2],
          [3, 1.5, 2, 2, 0, 1.5, 1.1, 1.8, 1.7],
          [2.1, 2.7, 2.2, 1, 1.5, 0, 0.9, 0.9, 2.9],
          [2.8, 2.3, 1.5, 1.8, 0.9, 0.8, 0, 1.3, 2.1],
          [2.8, 2.2, 2, 1.1, 1.5, 0.8, 1.9, 0, 0.3],
          [1, 1.5, 1.1, 2.7, 1.9, 1.8, 2.4, 3, 0]],
    "c": [[0, 1.7, 2.7, 0, 0, 0, 0, 0, 2.9],
          [1.7, 0, 2.1, 3, 0, 0, 0, 0, 0],
          [2.7, 2.1, 0, 2.6, 1.7, 0, 0, 0, 2.5],
          [0, 3, 2.6, 0, 2.8, 2.4, 0, 3.2, 0],
          [0, 0, 1.7, 2.8, 0, 1.9, 3, 0, 0],
          [0, 0, 0, 2.4, 1.9, 0, 2.7, 2.8, 0],
          [0, 0, 0, 0, 3, 2.7, 0, 0, 0],
          [0, 0, 0, 3.2, 0, 2.8, 0, 0, 0],
          [2.9, 0, 2.5, 0, 0, 0, 0, 0, 0]],
    "m": [[0, 2.5, 2.5, 5, 5, 7.5, 7.5, 7.5, 2.5],
          [2.5, 0, 2.5, 2.5, 5, 5, 7.5, 5, 5],
          [2.5, 2.5, 0, 2.5, 2.5, 5, 5, 7.5, 2.5],
          [5, 2.5, 2.5, 0, 2.5, 2.5, 5, 2.5, 7.5],
          [5, 5, 2.5, 2.5, 0, 2.5, 2.5, 5, 2.5],
          [7.5, 5, 5, 2.5, 2.5, 0, 2.5, 2.5, 7.5],
          [7.5, 7.5, 5, 5, 2.5, 2.5, 0, 5, 7.5],
          [7.5, 5, 5, 2.5, 5, 2.5, 5, 0, 7.5],
          [2.5, 5, 2.5, 5, 5, 7.5, 7.5, 7.5, 0]],
    "demand_x10": [[0, 9, 26, 19, 13, 12, 13, 8, 11],
                   [11, 0, 14, 26, 7, 18, 3, 6, 12],
                   [30, 19, 0, 30, 24, 8, 15, 12, 5],
                   [21, 9, 11, 0, 22, 16, 25, 21, 23],
                   [14, 14, 8, 9, 0, 20, 16, 22, 21],
                   [26, 1, 22, 24, 13, 0, 16, 14, 12],
                   [8, 6, 9, 23, 6, 13, 0, 11, 11],
                   [9, 2, 14, 20, 18, 16, 11, 0, 4],
                   [8, 7, 11, 22, 27, 17, 8, 12, 0]],
}


def make_network(kind: str) -> dict[str, np.ndarray]:
    """The authors' instance data: links (0-based node pairs, row-major order), OD pairs (all
    ordered pairs, row-major), per-link d and c, per-OD u, m and demand w, and the initial
    capacities a_0 of the scripts (per link)."""
    if kind == "3node":
        n = 3
        d = np.array(THREE_NODE["d"], dtype=float)
        adjacency = ~np.eye(n, dtype=bool)
        u, c, m = (np.array(THREE_NODE[key], dtype=float) for key in ("u", "c", "m"))
        demand = np.array(THREE_NODE["demand"], dtype=float)
        a_start = 0.3 + 0.7 * _matlab_rand(n)
    elif kind == "9node":
        n = 9
        d = np.zeros((n, n))
        adjacency = np.zeros((n, n), dtype=bool)
        for (i, j), dist in NINE_NODE_EDGES.items():
            d[i - 1, j - 1] = d[j - 1, i - 1] = dist
            adjacency[i - 1, j - 1] = adjacency[j - 1, i - 1] = True
        u, c, m = (np.array(NINE_NODE[key], dtype=float) for key in ("u", "c", "m"))
        demand = 0.1 * np.array(NINE_NODE["demand_x10"], dtype=float)
        a_start = 3.0 + 12.0 * _matlab_rand(n)
    else:
        raise ValueError(f"unknown network {kind!r}: expected '3node' or '9node'")
    links = np.argwhere(adjacency)
    ods = np.argwhere(~np.eye(n, dtype=bool))
    li, lj, oi, oj = links[:, 0], links[:, 1], ods[:, 0], ods[:, 1]
    return {"n_nodes": np.array(n), "links": links, "ods": ods, "travel": d[li, lj],
            "build_cost": c[li, lj], "alternative": u[oi, oj], "revenue": m[oi, oj],
            "demand": demand[oi, oj], "a_start": a_start[li, lj]}


def _matlab_rand(n: int) -> np.ndarray:
    """MATLAB's ``rng(1); rand(n, n)``: the same Mersenne-twister doubles as numpy's
    ``RandomState(1)``, filled column-major."""
    return np.random.RandomState(1).random_sample(n * n).reshape(n, n, order="F")


def _shortest_path_links(n: int, links: np.ndarray, length: np.ndarray,
                         ods: np.ndarray) -> np.ndarray:
    """(|K|, |E|) 0/1 matrix: link e on the (first found) length-shortest path of OD pair k."""
    index = {(int(i), int(j)): e for e, (i, j) in enumerate(links)}
    dist = np.full((n, n), np.inf)
    np.fill_diagonal(dist, 0.0)
    nxt = np.full((n, n), -1)
    for (i, j), ell in zip(links, length, strict=True):
        dist[i, j], nxt[i, j] = ell, j
    for k in range(n):  # Floyd-Warshall with successor matrix
        for i in range(n):
            for j in range(n):
                if dist[i, k] + dist[k, j] < dist[i, j] - 1e-12:
                    dist[i, j], nxt[i, j] = dist[i, k] + dist[k, j], nxt[i, k]
    on_path = np.zeros((len(ods), len(links)))
    for q, (o, dest) in enumerate(ods):
        node = int(o)
        while node != dest:
            step = int(nxt[node, dest])
            on_path[q, index[(node, step)]] = 1.0
            node = step
    return on_path


class Transport(BilevelProblem):
    """P10, transportation network design (module docstring)."""

    name = "transport"
    version = "2"
    citation = ("Jiang, Xiao, Tenorio, Real-Rojas, Marques, Chen, A Primal-Dual-Assisted Penalty "
                "Approach to Bilevel Optimization with Coupled Constraints, arXiv:2406.10148")
    formulation = ("LL: min sum_k w_k [s ln s + (1-s) ln(1-s) - 1 + u_k (1-s_k) + sum_e d_e r_ke] "
                   "s.t. flow conservation, sum_k w_k r_ke <= a_e; "
                   "UL: min_a sum_e c_e a_e - sum_k m_k w_k s_k")
    primary_metric = "profit"
    ll_gate = EXACT_LL  # profit is evaluated at the exact LL solution y*(x) (Clarabel)
    task = "network design with coupled constraints"
    higher_is_better = True
    y_bounds = (0.0, 1.0)
    instances = {
        "transport-3node": Instance(
            {"network": "3node"}, target=1.6,
            budget=Budget(seconds=None, oracle_cost=2e5, iterations=3_000),  # BLOCC: 1.8e4
            suites=("papers", "full"),
            description="authors' triangle (bilevel_3node.m), 6 links, 6 OD pairs, unit "
                        "demands (profit -7.50 at the authors' a_0). BLOCC (gamma 5, eta 0.02, "
                        "T 10 x T_y 5, primal steps 0.05, dual steps 0.2) reaches the target in "
                        "~30 steps and levels off at 1.70 (best 1.705)"),
        "transport-9node": Instance(
            {"network": "9node"}, target=10.0,
            budget=Budget(seconds=None, oracle_cost=1e6, iterations=3_000),  # BLOCC: 1.1e5
            suites=("papers", "full"),
            description="authors' 9-node network (bilevel_9node.m), 30 links, 72 OD pairs "
                        "(profit -413.2 at the authors' a_0). BLOCC (gamma 10, eta 0.05, T 10 x "
                        "T_y 5, primal steps 0.05, dual steps 0.2) reaches the target in ~200 "
                        "steps (~8 s) and levels off at 13-13.7 by 600 steps"),
    }

    def __init__(self, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float64,
                 network: str = "3node") -> None:
        super().__init__(seed=seed, device=device, dtype=dtype, network=network)
        net = make_network(network)
        links, ods = net["links"], net["ods"]
        self.n_nodes, self.n_links, self.n_ods = int(net["n_nodes"]), len(links), len(ods)
        self.travel = self.tensor(net["travel"])
        self.build_cost = self.tensor(net["build_cost"])
        self.revenue = self.tensor(net["revenue"])
        self.demand = self.tensor(net["demand"])
        self.alternative = self.tensor(net["alternative"])
        # node-link incidence (+1 out of the node, -1 into it) and OD source/sink vectors
        incidence = np.zeros((self.n_nodes, self.n_links))
        incidence[links[:, 0], np.arange(self.n_links)] = 1.0
        incidence[links[:, 1], np.arange(self.n_links)] = -1.0
        supply = np.zeros((self.n_ods, self.n_nodes))
        supply[np.arange(self.n_ods), ods[:, 0]] = 1.0
        supply[np.arange(self.n_ods), ods[:, 1]] = -1.0
        self.incidence, self.supply = self.tensor(incidence), self.tensor(supply)
        # per-link floor: minimal shares routed along shortest paths (module docstring)
        on_path = _shortest_path_links(self.n_nodes, links, net["travel"], ods)
        floor = np.maximum(SHARE_BOUNDS[0] * net["demand"] @ on_path, MIN_CAPACITY) \
            + CAPACITY_SLACK
        self.a_min = self.tensor(floor)
        self.a_start = self.tensor(np.maximum(net["a_start"], floor))
        self.x_shape = torch.Size([self.n_links])
        self.x_bounds = (float(floor.min()), None)
        self.y_shape = torch.Size([self.n_ods * (1 + self.n_links)])
        self.n_constraints = 2 * self.n_nodes * self.n_ods + self.n_links
        self._qp: Any = None

    # ------------------------------------------------------------------ oracles
    def _split(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y[: self.n_ods], y[self.n_ods:].reshape(self.n_ods, self.n_links)

    def g(self, x, y, batch=None):
        s, r = self._split(y)
        entropy = s * (torch.log(s) - 1) + (1 - s) * (torch.log(1 - s) - 1)
        per_od = entropy + self.alternative * (1 - s) + r @ self.travel
        return self.demand @ per_od

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

    def project_x(self, x):
        """Clamp to the per-link capacity floor a_min (a tensor, so not expressible in
        ``x_bounds``)."""
        return torch.maximum(x, self.a_min.to(x.dtype))

    def project_y(self, x, y):
        s, r = self._split(y)
        return torch.cat([s.clamp(*SHARE_BOUNDS), r.clamp(0.0, 1.0).reshape(-1)])

    def init(self, generator):
        """The authors' starting point (deterministic, ``generator`` is not used)."""
        x0 = self.a_start.clone()
        y0 = torch.zeros(self.y_shape, dtype=self.dtype, device=self.device)
        y0[: self.n_ods] = SHARE_BOUNDS[0]
        return x0, y0

    # --------------------------------------------------------------- evaluation
    def _build_ll(self) -> tuple[Any, Any, Any, Any]:
        import cvxpy as cp

        cap = cp.Parameter(self.n_links, nonneg=True)
        s = cp.Variable(self.n_ods)
        r = cp.Variable((self.n_ods, self.n_links))
        alt, travel = self.alternative.cpu().numpy(), self.travel.cpu().numpy()
        w = self.demand.cpu().numpy()
        inc, sup = self.incidence.cpu().numpy(), self.supply.cpu().numpy()
        # s (ln s - 1) + (1 - s)(ln(1 - s) - 1) = -entr(s) - entr(1 - s) - 1
        per_od = -cp.entr(s) - cp.entr(1 - s) - 1 + cp.multiply(alt, 1 - s) + r @ travel
        constraints = [
            r @ inc.T == cp.diag(s) @ sup,
            w @ r <= cap,
            s >= SHARE_BOUNDS[0], s <= SHARE_BOUNDS[1], r >= 0, r <= 1,
        ]
        return cp.Problem(cp.Minimize(w @ per_od), constraints), cap, s, r

    def solve_ll(self, x: torch.Tensor) -> torch.Tensor:
        """The exact LL solution y*(a) (cvxpy + Clarabel), at the capacities clamped to the
        floor a_min (the same set as ``project_x``; the LL is feasible there)."""
        if self._qp is None:
            self._qp = self._build_ll()
        problem, cap, s, r = self._qp
        cap.value = self.project_x(x.detach().to(self.dtype)).cpu().double().numpy()
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
            self.incidence, self.supply, self.a_min, self.a_start)}
