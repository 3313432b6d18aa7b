"""Third-party differentiation libraries as solver plugins (extra ``plugins``).

torchopt (implicit and unrolled) and higher (unrolled) give the exact hypergradient of the
quadratic when run to convergence, like our AID-CG and ITD, and count their oracle calls.
Skipped cleanly when the libraries are not installed.
"""

from __future__ import annotations

import warnings

import pytest
from test_solvers_toys import run, small_quadratic

CASES = [
    # a ridge of 1e-10 on H (the default 1e-6 keeps CG defined on singular LL Hessians and
    # biases the solution by ~1e-5 relative here)
    ("torchopt", "torchopt-implicit", {"inner_lr": 1.0, "inner_steps": 200, "linear_steps": 30,
                                       "ridge": 1e-10}),
    ("torchopt", "torchopt-implicit", {"inner_lr": 1.0, "inner_steps": 200,
                                       "linear_solver": "neumann", "linear_steps": 300,
                                       "neumann_lr": 1.0}),
    ("torchopt", "torchopt-unrolled", {"inner_lr": 1.0, "inner_steps": 300}),
    ("higher", "higher-unrolled", {"inner_lr": 1.0, "inner_steps": 300}),
]


@pytest.mark.parametrize("module, solver, hp", CASES, ids=[c[1] for c in CASES])
def test_plugin_hypergradient_matches_exact(module, solver, hp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip(module)
    solver_obj, problem, _ = run(small_quadratic(0), solver, 2, 0, outer_lr=0.0, **hp)
    x, _ = solver_obj.solution()
    exact = problem.hypergradient(x)
    assert float((solver_obj.last_hypergradient - exact).norm() / exact.norm()) < 1e-6
    counts = solver_obj.problem.counter.snapshot()
    assert counts["g_grad"] >= hp["inner_steps"] and counts["f_grad"] >= 1


@pytest.mark.parametrize("module, solver", [("torchopt", "torchopt-implicit"),
                                            ("torchopt", "torchopt-unrolled"),
                                            ("higher", "higher-unrolled")])
def test_plugin_reaches_quadratic_optimum(module, solver):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip(module)
    hp = {"outer_lr": 0.5, "inner_lr": 1.0, "inner_steps": 60}
    _, _, metrics = run(small_quadratic(1), solver, 40, 1, **hp)
    assert metrics["ul_gap"] < 1e-4
