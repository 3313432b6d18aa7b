"""Oracle counts of one step match each solver's stated per-iteration cost (docstrings).

Deterministic problems / full batches, so every pass weighs 1. Checked: gradients, HVPs and
JVPs per level (all other such counts must be zero), and values of h for coupled solvers.
"""

from __future__ import annotations

import pytest
import torch
from test_solvers_toys import small_quadratic

from bilevel_bench.oracles import Oracles
from bilevel_bench.registry import get_problem, get_solver

D, N, T, K = 4, 3, 2, 3  # LL steps, linear-system steps, dual rounds, primal steps

CASES = [
    # solver, problem, hyperparameters, expected counts of one step
    ("aid-cg", "quadratic", {"inner_steps": D, "cg_steps": N},
     {"g_grad": D + 1, "g_hvp": N + 1, "g_jvp": 1, "f_grad": 1}),
    ("aid-neumann", "quadratic", {"inner_steps": D, "neumann_steps": N},
     {"g_grad": D + 1, "g_hvp": N, "g_jvp": 1, "f_grad": 1}),
    ("itd", "quadratic", {"inner_steps": D + K, "truncate": K},
     {"g_grad": D + K, "g_hvp": K - 1, "g_jvp": K, "f_grad": 1}),
    ("stocbio", "quadratic", {"inner_steps": D, "neumann_steps": N, "batch_size": 10**6},
     {"g_grad": D + N + 1, "g_hvp": N, "g_jvp": 1, "f_grad": 1}),
    ("soba", "quadratic", {"batch_size": 10**6},
     {"g_grad": 1, "g_hvp": 1, "g_jvp": 1, "f_grad": 1}),
    ("saba", "quadratic", {"batch_size": 10**6},
     {"g_grad": 1, "g_hvp": 1, "g_jvp": 1, "f_grad": 1}),
    ("g-pbgd", "vpbgd-toy", {}, {"g_grad": 1, "g_hvp": 1, "g_jvp": 1, "f_grad": 1}),
    ("v-pbgd", "vpbgd-toy", {"inner_steps": D}, {"g_grad": D + 2, "f_grad": 1}),
    ("bome", "bome-toy", {"inner_steps": D}, {"g_grad": D + 2, "f_grad": 1}),
    ("f2sa", "vpbgd-toy", {"inner_steps": D}, {"g_grad": 2 * D + 2, "f_grad": D + 1}),
    ("alt-pbgd", "vpbgd-toy", {"inner_steps": K}, {"g_grad": 2 * K + 2, "f_grad": K + 1}),
    ("pbgd-free", "vpbgd-toy", {"inner_steps": K}, {"g_grad": K, "f_grad": K + 1}),
    # default (safe_steps): + one value pass of h for the LL-domain check of the x-step (the
    # last LP's point certifies the step on blocc-toy2: no LP, no halving)
    ("blocc", "blocc-toy2", {"dual_steps": T, "inner_steps": K},
     {"g_grad": 2 * T * K + 2, "f_grad": T * K + 1, "h_grad": 2 * T * K + 2,
      "h_value": 2 * T * K + 2 * T + 3}),
    ("blocc", "blocc-toy2", {"dual_steps": T, "inner_steps": K, "safe_steps": False},
     {"g_grad": 2 * T * K + 2, "f_grad": T * K + 1, "h_grad": 2 * T * K + 2,
      "h_value": 2 * T * K + 2 * T + 2}),
    ("alt-pbgd", "blocc-toy2", {"dual_steps": T, "inner_steps": K},
     {"g_grad": 2 * T * K + 2, "f_grad": T * K + 1, "h_grad": 2 * T * K + 2,
      "h_value": 2 * T * K + 2 * T + 3}),
    ("pbgd-free", "blocc-toy2", {"dual_steps": T, "inner_steps": K},
     {"g_grad": T * K, "f_grad": T * K + 1, "h_grad": T * K, "h_value": T * K + T}),
    ("lv-hba", "blocc-toy2", {}, {"g_grad": 3, "f_grad": 1, "h_grad": 3, "h_value": 4}),
]


@pytest.mark.parametrize("solver, problem_name, hp, expected", CASES,
                         ids=[f"{c[0]}-{c[1]}" + ("-unsafe" if "safe_steps" in c[2] else "")
                              for c in CASES])
def test_oracle_counts_per_step(solver, problem_name, hp, expected):
    problem = (small_quadratic(0) if problem_name == "quadratic"
               else get_problem(problem_name).make(seed=0))
    oracles = Oracles(problem)
    gen = torch.Generator().manual_seed(0)
    x0, y0 = problem.init(gen)
    solver_obj = get_solver(solver)(**hp)
    solver_obj.init(oracles, x0, y0, gen)
    solver_obj.step()  # the first step may differ (warm starts); count the second one
    before = oracles.counter.snapshot()
    solver_obj.step()
    after = oracles.counter.snapshot()
    delta = {k: after[k] - before[k] for k in after if k.endswith(("_grad", "_hvp", "_jvp"))}
    delta["h_value"] = after["h_value"] - before["h_value"]
    wanted = {k: 0.0 for k in delta}
    wanted.update({k: float(v) for k, v in expected.items()})
    assert delta == wanted
