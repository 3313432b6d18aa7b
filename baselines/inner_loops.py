"""Building blocks shared by the reference solvers.

* :func:`weighted_grad`: the gradient of  a f + b g + mu^T h  in one backward pass;
* :func:`projected_gradient_descent_y`: LL gradient descent on g or on the penalised f/gamma + g;
* :func:`lagrangian_max_min`: the max-min solver of the Lagrangian of a (penalised) LL problem
  with coupled constraints (BLOCC, ALT-PBGD and PBGD-Free in coupled form);
* :func:`penalty_hypergradient`: the value-function penalty gradient of F_gamma (Danskin), with
  or without multipliers (V-PBGD, ALT-PBGD, BLOCC, F2SA);
* :func:`conjugate_gradient`, :func:`fixed_point_solve`, :func:`neumann_series`: solvers of the
  implicit-differentiation linear system  grad^2_yy g . v = grad_y f
  (:func:`conjugate_gradient_masked`: CG without branches, for compiled steps);
* :func:`unrolled_hypergradient`: reverse-mode differentiation through T LL steps (ITD);
* :func:`project_onto_constraints`: Euclidean projection of (x, y) onto {h <= 0} intersected
  with the boxes (exact for h affine), for LV-HBA;
* :func:`curvature_estimate`, :func:`constraint_gain`, :func:`stable_max_min_steps`: the
  scale-aware step rule of the penalty methods (``safe_steps``): every step capped at the
  stability limit of its own update, estimated once at the start.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bilevel_bench.oracles import Oracles

Batches = Callable[[], tuple[torch.Tensor | None, torch.Tensor | None]]


# ------------------------------------------------------------------ gradients
def weighted_grad(
    problem: Oracles,
    x: torch.Tensor,
    y: torch.Tensor,
    f_weight: float = 0.0,
    g_weight: float = 1.0,
    mu: torch.Tensor | None = None,
    batch_f: torch.Tensor | None = None,
    batch_g: torch.Tensor | None = None,
    wrt: str = "y",
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(nabla_x, nabla_y) of  f_weight f + g_weight g + mu^T h  at (x, y) in one backward pass.

    A level with weight 0 (or ``mu`` None) is not evaluated. Counts one value and one gradient
    per level used. A side not in ``wrt`` is ``None``. (:meth:`Oracles.weighted_grad`.)
    """
    return problem.weighted_grad(x, y, {"f": f_weight, "g": g_weight}, mu,
                                 {"f": batch_f, "g": batch_g}, wrt)


def projected_gradient_descent_y(
    problem: Oracles,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    steps: int,
    penalty: float | None = None,
    batch: Batches | None = None,
) -> torch.Tensor:
    """``steps`` of y <- Proj_Y(y - lr * grad_y h(x, y)) with h = g, or h = f / penalty + g
    when ``penalty`` is given (the penalised LL objective of PBGD-type methods).

    ``batch`` optionally returns ``(batch_f, batch_g)`` index tensors for each step. Cost per
    step: one gradient of g (and one of f when penalised), in a single backward pass.
    """
    f_weight = 0.0 if penalty is None else 1.0 / penalty
    for _ in range(steps):
        bf, bg = batch() if batch is not None else (None, None)
        _, grad = weighted_grad(problem, x, y, f_weight, 1.0, None, bf, bg, wrt="y")
        y = problem.project_y(x, y - lr * grad)
    return y


# ------------------------------------------------------------ scale-aware steps
def curvature_estimate(
    problem: Oracles,
    x: torch.Tensor,
    y: torch.Tensor,
    f_weight: float = 0.0,
    g_weight: float = 1.0,
    wrt: str = "y",
    iterations: int = 10,
) -> float:
    """Largest positive curvature lambda_max (0 if none) of  phi = f_weight f + g_weight g  at
    (x, y), in y (``wrt="y"``) or jointly in (x, y) (``wrt="xy"``): the local Lipschitz
    constant of grad phi along the directions where gradient descent can overshoot, which bounds
    a stable gradient step on phi by 2 / lambda_max (negative curvature does not make a descent
    step unstable).

    First order only (any problem): power iteration on gradient differences,
    Hv ~ (grad phi(z + eps v) - grad phi(z)) / eps with eps = eps_dtype^(1/3) (1 + rms(z)), from
    a fixed pseudo-random direction (its own generator: the run's random stream is untouched),
    ``iterations`` products; when the dominant eigenvalue is negative (Rayleigh quotient < 0),
    as many more products with H + s I, s its magnitude, to find lambda_max. Returns 0.0 when
    phi has no positive curvature or the estimate is not finite (then nothing is capped).
    Cost: ``iterations`` + 1 gradients of each level with a non-zero weight (twice as many
    products when the shift is needed).
    """
    z = y.reshape(-1) if wrt == "y" else torch.cat([x.reshape(-1), y.reshape(-1)])
    if z.numel() == 0:
        return 0.0
    nx = x.numel()

    def grad(w: torch.Tensor) -> torch.Tensor:
        if wrt == "y":
            _, gy = weighted_grad(problem, x, w.reshape(y.shape), f_weight, g_weight, wrt="y")
            return gy.reshape(-1)
        gx, gy = weighted_grad(problem, w[:nx].reshape(x.shape), w[nx:].reshape(y.shape),
                               f_weight, g_weight, wrt="xy")
        return torch.cat([gx.reshape(-1), gy.reshape(-1)])

    eps = float(torch.finfo(z.dtype).eps) ** (1 / 3) * (1.0 + float(z.norm()) / z.numel() ** 0.5)
    base = grad(z)

    def dominant(shift: float) -> float:
        """Rayleigh quotient of H + shift I after power iteration (NaN if not finite)."""
        gen = torch.Generator(device="cpu").manual_seed(0)
        v = torch.randn(z.numel(), generator=gen, dtype=torch.float64).to(z.dtype).to(z.device)
        v = v / v.norm()
        quotient = 0.0
        for _ in range(iterations):
            hv = (grad(z + eps * v) - base) / eps + shift * v
            quotient = float(v @ hv)
            norm = float(hv.norm())
            if not (norm < float("inf")):  # NaN or inf
                return float("nan")
            if norm == 0.0:
                break
            v = hv / norm
        return quotient

    top = dominant(0.0)
    if not top == top:
        return 0.0
    if top >= 0:
        return top
    shifted = dominant(-top) + top  # lambda_max of H: dominant of H + |top| I, minus |top|
    return max(shifted, 0.0) if shifted == shifted else 0.0


def constraint_gain(problem: Oracles, x: torch.Tensor, y: torch.Tensor) -> float:
    """|dh/dy|_2^2 at (x, y), the squared spectral norm of the constraint Jacobian in y (0 when
    there are no coupled constraints): how strongly the multipliers act on y and back.
    Cost: one value and one (batched) gradient pass of h."""
    if not problem.n_constraints:
        return 0.0
    _, _, jy = problem.jacobian_h(x, y)
    jac = jy.reshape(jy.shape[0], -1).to(torch.float64)
    return float(torch.linalg.matrix_norm(jac, ord=2)) ** 2


def stable_max_min_steps(
    problem: Oracles,
    x: torch.Tensor,
    y: torch.Tensor,
    f_weight: float,
    primal_lr: float,
    dual_lr: float,
    primal_steps: int,
) -> tuple[float, float]:
    """The ``safe_steps`` rule for the (warm-started) max-min solver of
    f_weight f + g + mu^T h (:func:`lagrangian_max_min`; plain gradient descent on
    f_weight f + g without constraints), at the start (x, y):

        primal step  tau  = min(primal_lr, 1 / L),       L = curvature of f_weight f + g in y
        dual step    beta = min(dual_lr, 1 / (K tau |dh/dy|^2))

    (:func:`curvature_estimate`, :func:`constraint_gain`). 1/L is half the stability limit of
    gradient descent; after K primal steps of size tau, y moves by at most K tau |dh/dy| per
    unit change of mu, so the dual ascent sees a curvature of at most K tau |dh/dy|^2 and beta
    is half its stability limit. The published steps are kept where they are below the caps
    (every toy of the registry); on problems whose f is a sum over many samples (SVM HO: a
    curvature of 10^3 at the start) the caps take over.
    Cost: 11 gradients of g (and of f when f_weight != 0), one Jacobian pass of h.
    """
    curvature = curvature_estimate(problem, x, y, f_weight, 1.0)
    tau = min(primal_lr, 1.0 / curvature) if curvature > 0 else primal_lr
    gain = constraint_gain(problem, x, y) * max(int(primal_steps), 1) * tau
    beta = min(dual_lr, 1.0 / gain) if gain > 0 else dual_lr
    return tau, beta


def ll_infeasibility(
    problem: Oracles,
    x: torch.Tensor,
    y: torch.Tensor,
    floor: float,
) -> tuple[float, torch.Tensor | None]:
    """The LL's worst constraint value at its most feasible point, and that point,

        s*(x) = max(floor, min_{y' in B} max_i [h(x, y) + dh/dy (y' - y)]_i),

    an LP in (y', s) (scipy's HiGHS) on h linearised in y at (x, y): exact for h affine in y
    (every coupled problem of the registry), B the scalar box ``y_bounds`` when Y is that box,
    else all of R^{n_y} (a relaxation: s*(x) > 0 then still proves the LL infeasible at x).
    s*(x) <= 0 iff the LL has a feasible point; ``floor`` < 0 keeps the LP bounded (it is
    unbounded below when any margin can be reached, e.g. separable SVM data). Returns NaN when
    the LP solver fails (nothing is then decided from it). Returned as (s*(x), y'), y' the
    minimiser, ``None`` when the LP failed or Y is not the box B (then y' need not lie in Y).
    Cost: one value and one (batched) gradient pass of h."""
    import numpy as np
    from scipy.optimize import linprog

    h, _, jy = problem.jacobian_h(x, y)
    jac = jy.reshape(jy.shape[0], -1).to(torch.float64).cpu().numpy()
    hv = h.reshape(-1).to(torch.float64).cpu().numpy()
    yv = y.reshape(-1).to(torch.float64).cpu().numpy()
    n, m = jac.shape[1], jac.shape[0]
    in_box = _plain_boxes(problem)
    lo, hi = problem.y_bounds if in_box else (None, None)
    cost = np.zeros(n + 1)
    cost[-1] = 1.0
    # h + J (y' - y) <= s  <=>  J y' - s <= J y - h
    a_ub = np.hstack([jac, -np.ones((m, 1))])
    res = linprog(cost, A_ub=a_ub, b_ub=jac @ yv - hv, bounds=[(lo, hi)] * n + [(floor, None)],
                  method="highs")
    if res.status != 0:
        return float("nan"), None
    point = torch.as_tensor(res.x[:n], dtype=y.dtype, device=y.device).reshape(y.shape)
    return float(res.fun), point if in_box else None


# ---------------------------------------------------- coupled constraints (BLOCC)
def lagrangian_max_min(
    problem: Oracles,
    x: torch.Tensor,
    y: torch.Tensor,
    mu: torch.Tensor | None,
    f_weight: float,
    primal_lr: float,
    dual_lr: float,
    dual_steps: int,
    primal_steps: int,
    accelerated: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Approximate saddle point of  max_{mu >= 0} min_{y in Y} L(mu, y) = f_weight f + g + mu^T h.

    ``dual_steps`` rounds of: ``primal_steps`` projected gradient steps on y for fixed mu, then
    one projected gradient ascent step mu <- max(mu + dual_lr h(x, y), 0) (with Nesterov
    extrapolation of mu when ``accelerated``, as in BLOCC's accelerated dual ascent).
    Warm-started from (y, mu). ``f_weight = 0`` gives the Lagrangian of the LL problem (value
    function v(x)); ``f_weight = 1/gamma`` that of the penalised problem f/gamma + g.
    Cost: dual_steps * primal_steps gradients of g and h (and of f if f_weight != 0), in one
    backward pass each, plus dual_steps values of h.
    Without coupled constraints (``mu`` None) this is ``primal_steps`` projected gradient
    steps and ``mu`` stays ``None``.
    """
    if mu is None:
        return projected_gradient_descent_y(
            problem, x, y, primal_lr, primal_steps, None if not f_weight else 1.0 / f_weight), None
    mu_prev, anchor = mu, mu
    for t in range(dual_steps):
        for _ in range(primal_steps):
            _, grad = weighted_grad(problem, x, y, f_weight, 1.0, anchor, wrt="y")
            y = problem.project_y(x, y - primal_lr * grad)
        with torch.no_grad():
            h = problem.h(x, y)
        mu_next = (anchor + dual_lr * h).clamp(min=0.0)
        if accelerated:
            anchor = mu_next + (t / (t + 3)) * (mu_next - mu_prev)
        else:
            anchor = mu_next
        mu_prev = mu_next
    return y, mu_prev


def penalty_hypergradient(
    problem: Oracles,
    x: torch.Tensor,
    y_penalised: torch.Tensor,
    y_ll: torch.Tensor,
    gamma: float,
    mu_penalised: torch.Tensor | None = None,
    mu_ll: torch.Tensor | None = None,
    batches: tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None] = (None,) * 3,
) -> torch.Tensor:
    """Danskin gradient of the penalty hyper-objective
    F_gamma(x) = min_y max_mu [f + gamma (g + mu^T h)] - gamma max_mu min_y [g + mu^T h]:

        grad_x f(x, y_F) + gamma [grad_x g(x, y_F) + grad_x h(x, y_F)^T mu_F
                                  - grad_x g(x, y_g) - grad_x h(x, y_g)^T mu_g]

    with (y_F, mu_F) the saddle point of f/gamma + g + mu^T h and (y_g, mu_g) that of g + mu^T h
    (multipliers ``None`` without coupled constraints). ``batches`` = (f batch, g batch at y_F,
    g batch at y_g). Cost: 2 gradients of g, one of f (and 2 of h when coupled).
    """
    bf, bg_f, bg_g = batches
    mu_f = None if mu_penalised is None else gamma * mu_penalised
    grad_pen, _ = weighted_grad(problem, x, y_penalised, 1.0, gamma, mu_f, bf, bg_f, wrt="x")
    grad_val, _ = weighted_grad(problem, x, y_ll, 0.0, 1.0, mu_ll, None, bg_g, wrt="x")
    return grad_pen - gamma * grad_val


# ------------------------------------------------ linear systems of implicit diff.
def conjugate_gradient(
    operator: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    start: torch.Tensor,
    steps: int,
    tol: float = 1e-12,
) -> torch.Tensor:
    """``steps`` iterations of CG on operator(v) = rhs from ``start`` (operator SPD).

    Stops early once the residual norm is below ``tol`` times the norm of ``rhs``, and (keeping
    the current iterate) at a breakdown: when the curvature along the search direction is not
    positive, or is numerically zero, p.Ap <= 1e-8 |p| |Ap| (the direction lies in the null
    space of a singular operator, e.g. an LL whose solution set is not a singleton; for an SPD
    operator p.Ap >= |p| |Ap| 2 sqrt(kappa) / (1 + kappa), so this needs kappa > 4e16). Without
    it the step rr / p.Ap is unbounded there and the iterate overflows.
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
        if curvature <= 1e-8 * p.norm() * Ap.norm():  # not positive definite along p: stop
            break
        alpha = rr / curvature
        v = v + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return v


def conjugate_gradient_masked(
    operator: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    start: torch.Tensor,
    steps: int,
    tol: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`conjugate_gradient` without data-dependent branches, for compiled steps: every
    iteration runs, and once the eager loop would have stopped (its two tests, NaN included)
    the state is frozen by ``torch.where``. Returns ``(v, products)``, ``products`` the number of
    operator products the eager loop makes (a 0-d integer tensor; 1 + the iterations it enters).
    """
    v = start.clone()
    r = rhs - operator(v)
    p = r.clone()
    rr = r @ r
    threshold = (tol * rhs.norm()) ** 2
    active = torch.ones((), dtype=torch.bool, device=rhs.device)
    products = torch.ones((), dtype=torch.int64, device=rhs.device)
    for _ in range(steps):
        active = active & ~(rr <= threshold)
        products = products + active.to(torch.int64)
        Ap = operator(p)
        curvature = p @ Ap
        active = active & ~(curvature <= 1e-8 * p.norm() * Ap.norm())
        alpha = rr / curvature
        v = torch.where(active, v + alpha * p, v)
        r_next = r - alpha * Ap
        rr_next = r_next @ r_next
        p = torch.where(active, r_next + (rr_next / rr) * p, p)
        r = torch.where(active, r_next, r)
        rr = torch.where(active, rr_next, rr)
    return v, products


def fixed_point_solve(
    operator: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    start: torch.Tensor,
    steps: int,
    lr: float,
) -> torch.Tensor:
    """``steps`` of Richardson iteration v <- v - lr (operator(v) - rhs) (AID-FP), warm-started.

    Converges to operator^{-1} rhs when 0 < lr < 2 / L. Cost: ``steps`` operator products.
    """
    v = start
    for _ in range(steps):
        v = v - lr * (operator(v) - rhs)
    return v


def neumann_series(
    operators: Callable[[int], Callable[[torch.Tensor], torch.Tensor]],
    rhs: torch.Tensor,
    terms: int,
    lr: float,
) -> torch.Tensor:
    """The truncated Neumann series  lr sum_{q=0}^{Q} prod_{j<=q} (I - lr H_j) rhs  (stocBiO),
    with H_j = ``operators(j)`` (a fresh mini-batch Hessian per factor for stocBiO; the same
    Hessian for the deterministic series). Cost: ``terms`` operator products.
    """
    term, total = rhs, rhs
    for j in range(terms):
        term = term - lr * operators(j)(term)
        total = total + term
    return lr * total


# ---------------------------------------------------------------------- ITD
def unrolled_hypergradient(
    problem: Oracles,
    x: torch.Tensor,
    y0: torch.Tensor,
    lr: float,
    steps: int,
    truncate: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse-mode differentiation of f(x, y_T(x)) through T projected LL gradient steps
    y_{t+1} = Proj_Y(y_t - lr grad_y g(x, y_t)); only the last ``truncate`` steps are kept in
    the graph (T-RHG; truncate = steps is full RHG). Returns (d/dx f(x, y_T), y_T).
    Cost: T gradients of g, K = min(truncate, T) Jacobian- and K - 1 Hessian-vector products
    of g (the backward pass), one gradient of f.
    """
    keep = min(max(int(truncate), 0), steps)
    y = projected_gradient_descent_y(problem, x, y0, lr, steps - keep)
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        y = y.detach().requires_grad_(keep > 0)
        for _ in range(keep):
            (gy,) = torch.autograd.grad(problem.g(xr, y), y, create_graph=True)
            y = problem.project_y(xr, y - lr * gy)
        (dx,) = torch.autograd.grad(problem.f(xr, y), xr)
    return dx, y.detach()


# ------------------------------------------------------------- projections (LV-HBA)
def project_onto_constraints(
    problem: Oracles,
    x: torch.Tensor,
    y: torch.Tensor,
    dual_iters: int = 500,
    rounds: int = 50,
    tol: float = 1e-12,
    structured: bool = True,
    exact_boxes: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean projection of (x, y) onto {h(x, y) <= 0} intersected with the boxes of x, y.

    h is linearised at (x, y) (exact when h is affine, as in every coupled problem of the
    registry): the set is {z : J z <= J z0 - h} with z = (x, y), J the Jacobian of h at z0.

    When the constraints are separable per sample (every row of J has private coordinates that
    no other row touches, and no box acts on a coordinate of J), the projection is computed
    exactly by :func:`separable_halfspace_projection`. With ``exact_boxes`` (the default since
    LV-HBA 2.1), the same holds when boxes act on the rows' private coordinates (svm-ho:
    c_i >= 1e-4), by :func:`separable_boxed_projection`; ``exact_boxes=False`` gives the generic
    path there, which stops at ``rounds`` Dykstra rounds short of the projection (on LV-HBA's
    svm-ho-wdbc iterates: up to 7e-4 from it, constraints violated by up to 1e-3). Otherwise
    (or with ``structured=False``) the generic path: the projection onto the half-space
    intersection from its dual
    min_{lam >= 0} 1/2 |J^T lam|^2 - lam^T (J w - b) by accelerated projected gradient, stopped
    when its KKT residual |min(lam, grad)| is below ``tol`` relative to the violation, and the
    boxes combined with it by Dykstra's alternating projections (at most ``rounds``; one round
    when there is no box, stopped at relative change ``tol``).
    Cost: one value and one (batched) Jacobian pass of h.
    """
    nx = x.numel()
    h, jx, jy = problem.jacobian_h(x, y)
    m = h.numel()
    jac = torch.cat([jx.reshape(m, nx), jy.reshape(m, -1)], dim=1)
    z0 = torch.cat([x.reshape(-1), y.reshape(-1)])
    rhs0 = jac @ z0 - h  # the linearised set is {z : jac z <= rhs0}
    boxed_x = any(b is not None for b in problem.x_bounds)
    boxed_y = any(b is not None for b in problem.y_bounds)
    boxes_touch_rows = (boxed_x and bool((jx != 0).any())) or (boxed_y and bool((jy != 0).any()))
    if structured and not boxes_touch_rows:
        z = separable_halfspace_projection(jac, rhs0, z0)
        if z is not None:  # boxes act only on coordinates that no constraint touches
            xp = problem.project_x(z[:nx].reshape(x.shape)) if boxed_x else z[:nx].reshape(x.shape)
            yp = z[nx:].reshape(y.shape)
            return xp, problem.project_y(xp, yp) if boxed_y else yp
    elif structured and exact_boxes and _plain_boxes(problem):
        lower, upper = _box_vectors(problem, nx, z0)
        z = separable_boxed_projection(jac, rhs0, z0, lower, upper)
        if z is not None:  # boxes on private coordinates (and untouched ones) only
            return z[:nx].reshape(x.shape), z[nx:].reshape(y.shape)

    gram = jac @ jac.T
    step = 1.0 / max(float(torch.linalg.matrix_norm(gram, ord=2)), 1e-12)

    def halfspaces(w: torch.Tensor) -> torch.Tensor:
        excess = jac @ w - rhs0
        if bool((excess <= 0).all()):
            return w
        lam = torch.zeros(m, dtype=h.dtype, device=h.device)
        anchor = lam
        scale = tol * (1.0 + float(excess.abs().max()))
        for k in range(dual_iters):
            lam_next = (anchor - step * (gram @ anchor - excess)).clamp(min=0.0)
            anchor = lam_next + (k / (k + 3)) * (lam_next - lam)
            lam = lam_next
            # KKT residual min(lam, grad) of the dual: zero exactly at its solutions, also when
            # the Gram matrix is singular (an equality written as two inequalities) and lam
            # itself drifts along the null space without changing the projection
            if bool(torch.minimum(lam, gram @ lam - excess).abs().max() <= scale):
                break
        return w - jac.T @ lam

    def boxes(w: torch.Tensor) -> torch.Tensor:
        xp = problem.project_x(w[:nx].reshape(x.shape))
        yp = problem.project_y(xp, w[nx:].reshape(y.shape))
        return torch.cat([xp.reshape(-1), yp.reshape(-1)])

    boxed = boxed_x or boxed_y
    z, p, q = z0, torch.zeros_like(z0), torch.zeros_like(z0)
    for _ in range(rounds if boxed else 1):
        w = halfspaces(z + p)
        p = z + p - w
        z_next = boxes(w + q) if boxed else w
        q = w + q - z_next
        moved = float((z_next - z).abs().max())
        z = z_next
        if moved <= tol * (1.0 + float(z.abs().max())):
            break
    return z[:nx].reshape(x.shape), z[nx:].reshape(y.shape)


def separable_halfspace_projection(
    jac: torch.Tensor, rhs: torch.Tensor, z0: torch.Tensor, max_iter: int = 100
) -> torch.Tensor | None:
    """Exact Euclidean projection of z0 onto {z : jac z <= rhs} when the rows are separable per
    sample; ``None`` when they are not (or, in theory, when Newton does not terminate).

    Structure: a coordinate touched by exactly one row is *private* to it, one touched by
    several rows is *shared* (u), one touched by none is left alone. Separable means every row
    has private coordinates p_i, so row i reads  alpha_i^T p_i + a_i^T u <= b_i  (the SVM's
    h_i = 1 - xi_i - t_i (w^T z_i + b): p_i = xi_i, u = (w, b)). For fixed u each p_i is the
    projection onto its own half-space, p_i = p0_i - alpha_i (v_i)_+ / |alpha_i|^2 with the
    violation v_i(u) = alpha_i^T p0_i + a_i^T u - b_i, which leaves the strongly convex,
    piecewise quadratic, C^1 problem in the few shared coordinates

        min_u  phi(u) = 1/2 |u - u0|^2 + 1/2 sum_i w_i (v_i(u))_+^2,   w_i = 1 / |alpha_i|^2,

    solved by semismooth Newton (generalised Hessian I + sum_{v_i > 0} w_i a_i a_i^T, Armijo
    backtracking on phi). Newton stops when the step it took did not change the active set
    {v_i > 0}: phi is then exactly the quadratic of that set around u, whose minimiser the step
    reached, so the result is the projection up to rounding (finite termination). Cost per
    Newton step O(m k^2 + k^3), k shared coordinates; no iteration over the m rows.
    """
    nz = jac != 0
    col_count = nz.sum(0)
    private = col_count == 1
    shared = col_count > 1
    if not bool(nz[:, private].any(1).all()):  # a row without private coordinates
        return None
    pcols = private.nonzero().squeeze(1)
    prow = nz[:, pcols].to(torch.int8).argmax(0)  # the row owning each private coordinate
    alpha = jac[prow, pcols]
    m = jac.shape[0]
    weight = 1.0 / torch.zeros(m, dtype=jac.dtype, device=jac.device).index_add_(
        0, prow, alpha * alpha)
    offset = torch.zeros(m, dtype=jac.dtype, device=jac.device).index_add_(
        0, prow, alpha * z0[pcols]) - rhs  # v(u) = A u + offset
    scols = shared.nonzero().squeeze(1)
    A = jac[:, scols]
    u0 = z0[scols]
    u = u0.clone()

    def phi(point: torch.Tensor) -> torch.Tensor:
        v = (A @ point + offset).clamp(min=0.0)
        return 0.5 * ((point - u0) ** 2).sum() + 0.5 * (weight * v * v).sum()

    active = A @ u + offset > 0
    for _ in range(max_iter):
        if scols.numel() == 0:
            break
        v = (A @ u + offset).clamp(min=0.0)
        grad = (u - u0) + A.T @ (weight * v)
        act_a = A[active]
        hess = act_a.T @ (weight[active, None] * act_a)
        hess.diagonal().add_(1.0)
        direction = -torch.linalg.solve(hess, grad)
        t, current = 1.0, phi(u)
        slope = float(grad @ direction)
        while t > 1e-10 and float(phi(u + t * direction)) > float(current) + 1e-4 * t * slope:
            t *= 0.5
        u = u + t * direction
        new_active = A @ u + offset > 0
        if t == 1.0 and torch.equal(new_active, active):
            break
        active = new_active
    else:
        return None
    v = (A @ u + offset).clamp(min=0.0) if scols.numel() else offset.clamp(min=0.0)
    z = z0.clone()
    z[scols] = u
    z[pcols] = z0[pcols] - alpha * (weight * v)[prow]
    return z


def _plain_boxes(problem: Oracles) -> bool:
    """Whether the simple sets of x and y are the default boxes (``x_bounds``, ``y_bounds``),
    not a family's own ``project_x``/``project_y``."""
    from bilevel_bench.problem import BilevelProblem

    cls = type(getattr(problem, "_problem", None))
    return (getattr(cls, "project_x", None) is BilevelProblem.project_x
            and getattr(cls, "project_y", None) is BilevelProblem.project_y)


def _box_vectors(problem: Oracles, nx: int, z0: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coordinate bounds of z = (x, y) from the scalar boxes (infinite where absent)."""
    lower, upper = torch.full_like(z0, -torch.inf), torch.full_like(z0, torch.inf)
    for part, (lo, hi) in ((slice(0, nx), problem.x_bounds), (slice(nx, None), problem.y_bounds)):
        if lo is not None:
            lower[part] = lo
        if hi is not None:
            upper[part] = hi
    return lower, upper


def separable_boxed_projection(
    jac: torch.Tensor, rhs: torch.Tensor, z0: torch.Tensor, lower: torch.Tensor,
    upper: torch.Tensor, max_iter: int = 200,
) -> torch.Tensor | None:
    """Exact Euclidean projection of z0 onto {z : jac z <= rhs, lower <= z <= upper} when every
    row has exactly one private coordinate p_i (coefficient alpha_i), the boxes leave the
    shared coordinates u free and each private box is open on the side its half-space bounds
    (svm-ho: h_i = 1 - c_i - t_i (w^T z_i + b) <= 0 with c_i >= 1e-4). ``None`` otherwise, or
    when the active-set iteration below does not certify a solution (the caller then takes
    the generic path).

    With the sign of p_i flipped where alpha_i > 0, row i reads p_i >= t_i(u) = a_i u - r_i
    (scaled by 1 / |alpha_i|) and its box p_i >= l_i; for fixed u, p_i = max(c_i, t_i(u)) with
    c_i = max(p0_i, l_i), d_i = c_i - p0_i >= 0, leaving the strongly convex, piecewise
    quadratic problem in the k shared coordinates

        min_u 1/2 |u - u0|^2 + sum_i 1/2 (max(c_i, t_i(u)) - p0_i)^2,

    kinked (slope jump d_i) where t_i(u) = c_i. Its optimality conditions: u - u0 + sum_i a_i
    g_i = 0 with g_i = 0 where t_i < c_i (set I), g_i = t_i - p0_i where t_i > c_i (A), and
    g_i in [0, d_i] where t_i = c_i (K, rows held at their kink). Primal active set: on the
    current piece (A, K), one linear system (k + |K| unknowns, via the k x k matrix
    I + sum_A a_i a_i^T) gives its minimiser and g_K; the step towards it is an exact line search
    (phi is convex piecewise quadratic along it: the rows' crossings of c_i are walked in order,
    stopping where the slope reaches 0 or at a kink that it cannot pass, whose row joins K); at
    a piece minimiser, a row of K whose g_i lies outside [0, d_i] is released. phi decreases at
    every step and the pieces are finitely many, so the iteration ends at a point satisfying
    the projection's KKT system to rounding (checked before returning).
    Started from the projection without boxes (:func:`separable_halfspace_projection`)."""
    nz = jac != 0
    col_count = nz.sum(0)
    private = col_count == 1
    shared = col_count > 1
    m = jac.shape[0]
    if not bool((nz[:, private].sum(1) == 1).all()):  # exactly one private coordinate per row
        return None
    scols = shared.nonzero().squeeze(1)
    if bool(torch.isfinite(lower[scols]).any() or torch.isfinite(upper[scols]).any()):
        return None
    pcols = private.nonzero().squeeze(1)
    prow = nz[:, pcols].to(torch.int8).argmax(0)
    order = torch.argsort(prow)
    pcols, prow = pcols[order], prow[order]  # row i owns private coordinate pcols[i]
    alpha = jac[prow, pcols]
    sign = -torch.sign(alpha)  # p~ = sign * p reads p~ >= t(u)
    scale = alpha.abs()
    p0 = sign * z0[pcols]
    lo = torch.where(sign > 0, lower[pcols], -upper[pcols])
    hi = torch.where(sign > 0, upper[pcols], -lower[pcols])
    if bool(torch.isfinite(hi).any()):  # a box that could make a row infeasible
        return None
    A = jac[:, scols] / scale[:, None]  # t(u) = A u - r
    r = rhs / scale
    u0 = z0[scols]
    c = torch.maximum(p0, lo)
    d = c - p0
    k = scols.numel()
    eye = torch.eye(k, dtype=jac.dtype, device=jac.device)
    # start: u of the projection without boxes (no kinks), each row on the side it lies
    start = separable_halfspace_projection(jac, rhs, z0)
    u = u0.clone() if start is None else start[scols].clone()
    t = A @ u - r
    in_a = t > c
    in_k = torch.zeros(m, dtype=torch.bool, device=jac.device)
    tol = 1e-11 * (1.0 + float(t.abs().max()) + float(c.abs().max()))
    for _ in range(max_iter):
        # minimiser of the current piece (rows of K held at their kink): u* and g_K
        a_act, a_k = A[in_a], A[in_k]
        chol = torch.linalg.cholesky(eye + a_act.T @ a_act)
        hinv_b = torch.cholesky_solve((u0 + a_act.T @ (r[in_a] + p0[in_a]))[:, None], chol)[:, 0]
        g = torch.zeros(m, dtype=jac.dtype, device=jac.device)
        target = hinv_b
        if a_k.shape[0]:
            hinv_kt = torch.cholesky_solve(a_k.T.contiguous(), chol)
            try:
                g_k = torch.linalg.solve(a_k @ hinv_kt, a_k @ hinv_b - (c[in_k] + r[in_k]))
            except RuntimeError:  # dependent kink rows: left to the generic path
                return None
            target = hinv_b - hinv_kt @ g_k
            g[in_k] = g_k
        delta = target - u
        if float(delta.abs().max()) <= tol:
            low, high = in_k & (g < -tol), in_k & (g > d + tol)
            if not bool((low | high).any()):
                u = target
                break
            # release the kink row whose multiplier is most out of [0, d_i]
            worst = int(torch.argmax(torch.where(low, -g, torch.where(high, g - d, -1.0))))
            in_k[worst] = False
            in_a[worst] = bool(high[worst])
            continue
        # exact line search on u + tau delta (convex, piecewise quadratic in tau): walk the
        # rows' crossings of c_i in order; stop where the slope reaches 0, or at a kink whose
        # jump makes it non-negative (that row joins K)
        e = A @ delta
        t = A @ u - r
        free = ~in_k & (e != 0)
        tau = torch.where(free, (c - t) / torch.where(e != 0, e, 1.0), torch.inf)
        ahead = free & (tau >= 0) & ~((tau == 0) & ((e > 0) == in_a))
        slope0 = float(delta @ (u - u0)) + float((e * (t - p0))[in_a].sum())
        curve = float(delta @ delta) + float((e * e)[in_a].sum())
        order = torch.argsort(tau[ahead])
        rows = ahead.nonzero().squeeze(1)[order].tolist()
        taus = tau[rows].tolist()
        es, ds, ts, ps = e[rows].tolist(), d[rows].tolist(), t[rows].tolist(), p0[rows].tolist()
        step, joined = None, None
        for j, (tj, ej, dj, tt, pj) in enumerate(zip(taus, es, ds, ts, ps, strict=True)):
            if slope0 + curve * tj >= 0:  # the slope reaches 0 before this crossing
                step = -slope0 / curve
                rows, taus = rows[:j], taus[:j]
                break
            entering = ej > 0  # I -> A when t increases
            before = slope0 + curve * tj
            if entering:
                slope0 += ej * (tt - pj)
                curve += ej * ej
            else:
                slope0 -= ej * (tt - pj)
                curve -= ej * ej
            if dj > 0 and before + abs(ej) * dj >= 0:  # stops at this kink
                step, joined = tj, rows[j]
                rows, taus = rows[:j], taus[:j]
                break
        if step is None:
            step = -slope0 / curve
        u = u + step * delta
        for row in rows:  # crossed: now on the other side
            in_a[row] = not bool(in_a[row])
        if joined is not None:
            in_k[joined], in_a[joined] = True, False
    else:
        return None
    t = A @ u - r
    free = ~in_k
    if bool((free & in_a & (t < c - 1e3 * tol)).any() or (free & ~in_a & (t > c + 1e3 * tol)).any()
            or (in_k & ((t - c).abs() > 1e3 * tol)).any()):
        return None
    p = torch.where(in_k, c, torch.maximum(c, t))
    z = z0.clone()
    z[scols] = u
    z[pcols] = sign * p
    untouched = ~(private | shared)
    z[untouched] = z0[untouched].clamp(min=lower[untouched], max=upper[untouched])
    return z


# ------------------------------------------------------ penalty-method state
class PenaltyMethodBase:
    """Mixin holding the state of penalty methods (V-PBGD family, ALT-PBGD, PBGD-Free, BLOCC):
    UL x, penalised-LL iterate y (~ y_gamma(x)), LL iterate z (~ y_g(x)) and, with coupled
    constraints, their multipliers ``mu_y`` and ``mu_z`` (``None`` otherwise).

    Expects the solver attributes ``gamma``, ``inner_steps`` and ``dual_steps``.
    """

    gamma: float
    inner_steps: int
    dual_steps: int

    def _init_state(self, problem: Oracles, x0: torch.Tensor, y0: torch.Tensor) -> None:
        self.problem = problem
        self.x, self.y, self.z = x0.clone(), y0.clone(), y0.clone()
        m = problem.n_constraints
        zeros = torch.zeros(m, dtype=problem.dtype, device=problem.device) if m else None
        self.mu_y = zeros
        self.mu_z = None if zeros is None else zeros.clone()

    def _stable_steps(self, f_weight: float, primal_lr: float,
                      dual_lr: float) -> tuple[float, float]:
        """(primal, dual) steps of the max-min solver on f_weight f + g + mu^T h: as given, or
        capped by :func:`stable_max_min_steps` at the current (x, y) when the solver's
        ``safe_steps`` is on."""
        if not getattr(self, "safe_steps", False):
            return primal_lr, dual_lr
        return stable_max_min_steps(self.problem, self.x, self.y, f_weight, primal_lr, dual_lr,
                                    self.inner_steps)

    def _track_penalised(self, lr: float, dual_lr: float, accelerated: bool = False) -> None:
        """Warm-started max-min (or plain GD) on f/gamma + g (+ mu^T h)."""
        self.y, self.mu_y = lagrangian_max_min(
            self.problem, self.x, self.y, self.mu_y, 1.0 / self.gamma, lr, dual_lr,
            self.dual_steps, self.inner_steps, accelerated)

    def _track_ll(self, lr: float, dual_lr: float, accelerated: bool = False) -> None:
        """Warm-started max-min (or plain GD) on g (+ mu^T h)."""
        self.z, self.mu_z = lagrangian_max_min(
            self.problem, self.x, self.z, self.mu_z, 0.0, lr, dual_lr,
            self.dual_steps, self.inner_steps, accelerated)

    def _penalty_step(self, lr: float) -> None:
        """x <- Proj_X(x - lr grad F_gamma(x)) with the Danskin gradient at (y, mu_y), (z, mu_z);
        backtracked into the LL's domain (:meth:`_ll_domain_step`) once
        :meth:`_init_ll_domain` has run."""
        grad = penalty_hypergradient(self.problem, self.x, self.y, self.z, self.gamma,
                                     self.mu_y, self.mu_z)
        if self._ll_slack is None:
            self.x = self.problem.project_x(self.x - lr * grad)
        else:
            self.x = self._ll_domain_step(grad, lr)

    #: at most this many halvings of the x-step per iteration (2^-20 ~ 1e-6)
    ll_domain_halvings = 20
    #: s*(x) at the current x once :meth:`_init_ll_domain` has run (``None``: no backtracking)
    _ll_slack: float | None = None

    def _init_ll_domain(self) -> None:
        """Turn on the LL-domain backtracking of the x-step (coupled constraints only): the
        margin eps = 1e-6 (1 + max_i |h_i(x0, y0)|) in the units of h, and s*(x0)
        (:func:`ll_infeasibility`)."""
        if self.mu_y is None:
            return
        with torch.no_grad():
            scale = float(self.problem.h(self.x, self.z).abs().max())
        self._ll_margin = 1e-6 * (1.0 + scale)
        self._ll_floor = -(1.0 + scale)  # how feasible the LP's point may be made
        self._ll_fraction = 1.0
        slack, self._ll_point = ll_infeasibility(self.problem, self.x, self.z, self._ll_floor)
        self._ll_slack = slack if slack == slack else self._ll_floor

    def _ll_domain_step(self, grad: torch.Tensor, lr: float) -> torch.Tensor:
        """x+ = Proj_X(x - t lr grad) with the largest t in {min(1, 2 t_prev) 2^-j, j = 0..J}
        whose LL is feasible with margin eps, s*(x+) <= -eps, or no less feasible than at x,
        s*(x+) <= s*(x) (from an infeasible x0); x+ = x if none (``ll_domain_halvings`` = J).
        t = 1 whenever the full step keeps the LL feasible (then x+ is the plain step).
        The LP's minimiser y' (in Y) certifies later steps without an LP: max_i h_i(x+, y')
        <= -eps implies s*(x+) <= -eps, so x+ is accepted exactly when the LP would accept it
        (one value pass of h instead of an LP); the LP's floor is -(1 + max_i |h_i(x0, y0)|)
        so that y' keeps a margin where the data allow one."""
        t = min(1.0, 2.0 * self._ll_fraction)
        for _ in range(self.ll_domain_halvings + 1):
            x_new = self.problem.project_x(self.x - (t * lr) * grad)
            if self._ll_point is not None:  # the last LP's point, if still feasible at x+
                with torch.no_grad():
                    bound = float(self.problem.h(x_new, self._ll_point).max())
                if bound <= -self._ll_margin:  # s*(x+) <= bound: the LP would accept x+ too
                    self._ll_fraction, self._ll_slack = t, bound
                    return x_new
            slack, point = ll_infeasibility(self.problem, x_new, self.z, self._ll_floor)
            self._ll_point = point if point is not None else self._ll_point
            if not slack == slack or slack <= -self._ll_margin or slack <= self._ll_slack:
                self._ll_fraction = t
                if slack == slack:
                    self._ll_slack = slack
                return x_new
            t *= 0.5
        self._ll_fraction = t
        return self.x

    def solution(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x, self.y


def linear_ramp(iteration: int, start: float, end: float, steps: int) -> float:
    """``start`` -> ``end`` linearly over ``steps`` iterations, then ``end`` (steps <= 0: end)."""
    if steps <= 0 or iteration >= steps:
        return end
    return start + (iteration / steps) * (end - start)


def soba_directions(
    problem: Oracles,
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    batch_g: torch.Tensor | None,
    batch_f: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The SOBA/SABA directions at (x, y, v) on one LL and one UL mini-batch (Dagreou et al.):

        D_y = grad_y G_B(x, y)
        D_v = grad^2_yy G_B(x, y) v + grad_y F_B'(x, y)
        D_x = grad^2_xy G_B(x, y) v + grad_x F_B'(x, y)

    returned as their LL and UL parts (grad_y G, H_yy v, H_xy v, grad_y F, grad_x F) so that SABA
    can keep them in its memory. Cost: one gradient of g (create_graph), one HVP and one JVP of
    g, one gradient of f; each weighted |B|/n.
    """
    grad_y_g, product = problem.hvp_operator("g", x, y, batch_g)
    hyy_v, hxy_v = product(v, "y"), product(v, "x")
    grad_x_f, grad_y_f = problem.grad("f", x, y, batch_f)
    return grad_y_g, hyy_v, hxy_v, grad_y_f, grad_x_f
