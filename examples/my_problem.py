"""A complete problem plugin in one file: bilevel ridge regression with a closed-form answer.

    lower level:  y*(x) = argmin_y  g(x, y) = 1/2 ||y - A x||^2          (so y*(x) = A x)
    upper level:  min_x  F(x) = f(x, y*(x)),  f(x, y) = 1/2 ||y - b||^2 + lam/2 ||x||^2

F(x) = 1/2 ||A x - b||^2 + lam/2 ||x||^2 is a ridge regression: its minimiser
x* = (A^T A + lam I)^{-1} A^T b and its gradient A^T (A x - b) + lam x are exact, so the
evaluation reports the exact gap F(x) - F* (the primary metric), the LL gap and the hypergradient
norm. A and b are drawn from the instance's ``data_seed`` (the same data for every run seed);
the run seed only draws the initial point.

Check it:  bilevel-bench check-problem examples/my_problem.py:RidgeBilevel
Run it:    bilevel-bench run --problem examples/my_problem.py:RidgeBilevel:ridge-example
"""

from __future__ import annotations

import math

import torch

from bilevel_bench import BilevelProblem, Budget, Instance, LLGate
from bilevel_bench.generated import normal


class RidgeBilevel(BilevelProblem):
    name = "ridge-bilevel"
    version = "1"  # bump whenever data, formulation or target change
    citation = "Bilevel ridge regression (closed form), an example of the problem plugin API"
    formulation = "g = ||y - A x||^2 / 2;  f = ||y - b||^2 / 2 + lam ||x||^2 / 2;  y*(x) = A x"
    primary_metric = "ul_gap"  # a key of evaluate()'s output; the target applies to it
    higher_is_better = False
    # when a checkpoint counts for a target (docs/protocol.md): ul_gap is computed from x with
    # the closed-form y*(x), so the solver's own y cannot flatter it and no LL gate is needed
    ll_gate = LLGate(None, why="ul_gap is computed from x with the closed-form y*(x)")
    provides = frozenset({"second_order"})  # f and g are twice differentiable (HVPs work)
    instances = {
        "ridge-example": Instance(
            {"x_dim": 5, "y_dim": 8, "lam": 0.1, "data_seed": 0},
            target=1e-6, budget=Budget(seconds=None, oracle_cost=2e4, iterations=20_000),
            suites=("examples",), description="bilevel ridge regression, 5 x 8, closed form"),
    }
    #: a configuration that reaches the target (checked by `bilevel-bench check-problem`)
    reference = {"solver": "aid-cg", "hyperparameters": {}, "iterations": 2000}

    def __init__(self, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float64,
                 x_dim: int = 5, y_dim: int = 8, lam: float = 0.1, data_seed: int = 0) -> None:
        super().__init__(seed=seed, device=device, dtype=dtype, x_dim=x_dim, y_dim=y_dim,
                         lam=lam, data_seed=data_seed)
        self.x_shape, self.y_shape = torch.Size([x_dim]), torch.Size([y_dim])
        data = torch.Generator().manual_seed(data_seed)
        # public tensors are the problem's data: a solver must not modify them
        # exact normal draws: the same data on every CPU (bilevel_bench.generated)
        self.A = (normal(data, y_dim, x_dim) / math.sqrt(y_dim)).to(dtype).to(device)
        self.b = normal(data, y_dim).to(dtype).to(device)
        self.lam = lam
        # the evaluation's private, exact answer (attributes starting with "_")
        gram = self.A.T @ self.A + lam * torch.eye(x_dim, dtype=dtype, device=device)
        self._x_star = torch.linalg.solve(gram, self.A.T @ self.b)
        self._f_star = float(self.hyper_objective(self._x_star))

    # ----------------------------------------------------------- oracle half (counted)
    def f(self, x, y, batch=None):
        return 0.5 * ((y - self.b) ** 2).sum() + 0.5 * self.lam * (x**2).sum()

    def g(self, x, y, batch=None):
        return 0.5 * ((y - self.A @ x) ** 2).sum()

    def init(self, generator):
        x0 = normal(generator, *self.x_shape).to(self.dtype)
        y0 = normal(generator, *self.y_shape).to(self.dtype)
        return x0.to(self.device), y0.to(self.device)

    # ------------------------------------------------ evaluation half (untimed, hidden)
    def hyper_objective(self, x: torch.Tensor) -> torch.Tensor:
        """F(x) = f(x, y*(x)) with the exact y*(x) = A x."""
        return self.f(x, self.A @ x)

    def evaluate(self, x, y):
        x, y = x.detach().to(self.dtype), y.detach().to(self.dtype)
        grad = self.A.T @ (self.A @ x - self.b) + self.lam * x
        value = float(self.hyper_objective(x))
        return {
            "ul_value": value,
            "ul_gap": value - self._f_star,
            "ll_gap": float(self.g(x, y)),  # min_y g(x, .) = 0
            "constraint_violation": 0.0,
            "hypergrad_norm": float(self.gradient_mapping(x, grad).norm()),
        }

    def data_fingerprints(self):
        from bilevel_bench.problem import fingerprint_tensors

        return {"A,b": fingerprint_tensors(self.A, self.b)}
