"""Exact lower-level solves with cvxpy + Clarabel (interior point), shared by the problem
families whose LL is a convex program (SVM, transport)."""

from __future__ import annotations

from typing import Any

#: tight tolerances first; Clarabel's defaults (1e-8) if those stall
_TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def solve_exact(problem: Any) -> bool:
    """Solve a parametrised cvxpy problem with Clarabel; True if optimal, False if the
    problem is infeasible. Raises ``cvxpy.error.SolverError`` if both attempts fail."""
    import cvxpy as cp

    failure = "no attempt"
    for options in (_TIGHT, {}):
        try:
            problem.solve(solver=cp.CLARABEL, **options)
        except cp.error.SolverError as exc:
            failure = f"solver error ({exc})"
            continue
        if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            return False
        if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            return True
        failure = f"status {problem.status}"
    raise cp.error.SolverError(
        f"Clarabel could not solve the lower level with tight or default tolerances: {failure}")
