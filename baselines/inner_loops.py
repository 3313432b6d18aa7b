"""Building blocks shared by the reference solvers: LL gradient descent and conjugate gradient."""

from __future__ import annotations

from collections.abc import Callable

import torch

from bilevel_bench.oracles import Oracles


def projected_gradient_descent_y(
    problem: Oracles,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    steps: int,
    penalty: float | None = None,
    batch: Callable[[], tuple] | None = None,
) -> torch.Tensor:
    """``steps`` of y <- Proj_Y(y - lr * grad_y h(x, y)) with h = g, or h = f / penalty + g
    when ``penalty`` is given (the penalised LL objective of PBGD-type methods).

    ``batch`` optionally returns ``(batch_f, batch_g)`` index tensors for each step.
    """
    for _ in range(steps):
        bf, bg = batch() if batch is not None else (None, None)
        _, grad = problem.grad("g", x, y, bg, wrt="y")
        if penalty is not None:
            _, grad_f = problem.grad("f", x, y, bf, wrt="y")
            grad = grad + grad_f / penalty
        y = problem.project_y(x, y - lr * grad)
    return y


def conjugate_gradient(
    operator: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    start: torch.Tensor,
    steps: int,
    tol: float = 1e-12,
) -> torch.Tensor:
    """``steps`` iterations of CG on operator(v) = rhs from ``start`` (operator SPD).

    Stops early once the residual norm is below ``tol`` times the norm of ``rhs``.
    """
    v = start.clone()
    r = rhs - operator(v)
    p = r.clone()
    rr = r @ r
    threshold = (tol * rhs.norm()) ** 2
    for _ in range(steps):
        if rr <= threshold:
            break
        Ap = operator(p)
        curvature = p @ Ap
        if curvature <= 0:  # not positive definite along p: stop with the current iterate
            break
        alpha = rr / curvature
        v = v + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return v
