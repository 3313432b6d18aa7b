"""A JAX reference implementation of SOBA and StocBiO on the quadratic family (benchmarks only).

Written from the update rules (shared reference section 3.3-3.4, ``baselines/soba.py``,
``baselines/stocbio.py``), jit-compiled, float64, on the data of our own instance (the tensors of
``get_problem("quadratic-benchopt").make(seed=0)`` as numpy arrays). It is the peer that
``benchmarks/bench_jax_reference.py`` times ours against; jax is not a dependency of the package
(``.venv/bin/pip install jax jaxlib`` to run it).

Objectives, for index batches B (LL) and B' (UL), as in ``bilevel_bench/problems/quadratic.py``:

    G_B(x, z)  = 1/2 z^T A0 z + 1/2 mean_B (p_i^T z)^2 + mean_B (u_i^T x)(q_i^T z) + x^T C0 z
                 + mean_B a_i^T z + 1/2 x^T B x + mean_B b_i^T x
    F_B'(x, z) = 1/2 z^T F z + 1/2 x^T H x + x^T K z + mean_B' c_j^T z + mean_B' e_j^T x

SOBA (per iteration t, one LL batch i then one UL batch j, rho_t = lr / t^decay):

    D_y = grad_y G_i,  D_v = grad^2_yy G_i v + grad_y F_j,  D_x = grad^2_xy G_i v + grad_x F_j
    x <- x - rho_t / outer_ratio D_x;  y <- y - rho_t D_y;  v <- v - rho_t D_v

(both second-order products from one vector-Jacobian product of grad_y G_i).

StocBiO (per iteration; batches drawn in this order: D LL batches, one UL batch, Q LL batches,
one LL batch):

    y <- y - lr grad_y G_{B_k}(x, y)                                        k = 1..D
    v = lr sum_{q=0}^{Q} prod_{j<=q} (I - lr grad^2_yy G_{B_j}) grad_y F_{B'}
    x <- x - lr / outer_ratio (grad_x F_{B'} - grad^2_xy G_{B''} v)

Mini-batches are drawn as ours are (``Oracles.sample_batch``): consecutive slices of one random
permutation per epoch, the remainder dropped, one epoch state per level. ``run_*_on_batches``
take explicit index arrays: the ones one of our runs drew (replay), or fresh ones from
``soba_batches`` / ``stocbio_batches`` (numpy, outside the compiled function).
"""

from __future__ import annotations

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # pragma: no cover - the callers check ``available``
    jax = jnp = None

available = jax is not None
if available:
    jax.config.update("jax_enable_x64", True)

#: the tensors of a quadratic instance the objectives read
FIELDS = ("A0", "p", "u", "q", "C0", "a", "B", "b", "F", "H", "K", "c", "e")


def problem_data(problem) -> dict:
    """The quadratic instance's tensors as float64 JAX arrays (via ``.numpy()``)."""
    return {k: jnp.asarray(getattr(problem, k).detach().cpu().double().numpy()) for k in FIELDS}


# -------------------------------------------------------------------------- objectives
def g(d: dict, x, z, idx):
    p, u, q, a, b = (d[k][idx] for k in ("p", "u", "q", "a", "b"))
    return (0.5 * z @ d["A0"] @ z + 0.5 * jnp.mean((p @ z) ** 2)
            + jnp.mean((u @ x) * (q @ z)) + x @ d["C0"] @ z + a.mean(0) @ z
            + 0.5 * x @ d["B"] @ x + b.mean(0) @ x)


def f(d: dict, x, z, idx):
    c, e = d["c"][idx], d["e"][idx]
    return (0.5 * z @ d["F"] @ z + 0.5 * x @ d["H"] @ x + x @ d["K"] @ z
            + c.mean(0) @ z + e.mean(0) @ x)


def _grad_y_g(d, x, y, idx):
    return jax.grad(g, argnums=2)(d, x, y, idx)


# ---------------------------------------------------------------------------- batches
def epoch_batches(rng: np.random.Generator, n: int, size: int, count: int) -> np.ndarray:
    """``count`` batches of ``size`` indices out of n: consecutive slices of one permutation per
    epoch (remainder dropped), as ``Oracles.sample_batch``. Shape (count, size). Drawn with
    numpy outside the compiled function: ``jax.random.permutation`` (sort-based) costs about
    13 ms per permutation of n = 32,768 on one CPU thread, a third of a SOBA iteration
    amortised, where numpy's costs 0.3 ms."""
    per_epoch = n // size
    epochs = -(-count // per_epoch)
    perms = np.stack([rng.permutation(n)[:per_epoch * size] for _ in range(epochs)])
    return perms.reshape(epochs * per_epoch, size)[:count]


# ------------------------------------------------------------------------------- SOBA
def soba_step(d, state, bg, bf, lr, outer_ratio, decay):
    x, y, v, t = state
    t = t + 1.0
    rho = lr / t**decay
    d_y, vjp = jax.vjp(lambda x_, y_: _grad_y_g(d, x_, y_, bg), x, y)
    hxy_v, hyy_v = vjp(v)
    fx, fy = jax.grad(f, argnums=(1, 2))(d, x, y, bf)
    return (x - rho / outer_ratio * (hxy_v + fx), y - rho * d_y, v - rho * (hyy_v + fy), t)


@jax.jit if available else (lambda fn: fn)
def run_soba_on_batches(d, x0, y0, batches_g, batches_f, lr=0.1, outer_ratio=1.0, decay=0.5):
    """SOBA from (x0, y0, v = 0) over the given batches (shapes (T, b)); returns (x, y, v)."""
    def body(state, batches):
        return soba_step(d, state, *batches, lr, outer_ratio, decay), None

    state = (x0, y0, jnp.zeros_like(y0), jnp.zeros((), x0.dtype))
    (x, y, v, _), _ = jax.lax.scan(body, state, (batches_g, batches_f))
    return x, y, v


def soba_batches(d: dict, rng: np.random.Generator, iterations: int, batch_size: int = 64):
    """The (LL, UL) batches of ``iterations`` SOBA steps, shapes (T, b)."""
    return (epoch_batches(rng, d["p"].shape[0], batch_size, iterations),
            epoch_batches(rng, d["c"].shape[0], batch_size, iterations))


# ---------------------------------------------------------------------------- StocBiO
def stocbio_step(d, state, b_inner, bf, b_neumann, b_jvp, lr, outer_ratio):
    x, y = state

    def inner(y_, idx):
        return y_ - lr * _grad_y_g(d, x, y_, idx), None

    y, _ = jax.lax.scan(inner, y, b_inner)
    fx, fy = jax.grad(f, argnums=(1, 2))(d, x, y, bf)

    def neumann(carry, idx):
        term, total = carry
        hvp = jax.jvp(lambda y_: _grad_y_g(d, x, y_, idx), (y,), (term,))[1]
        term = term - lr * hvp
        return (term, total + term), None

    (_, total), _ = jax.lax.scan(neumann, (fy, fy), b_neumann)
    v = lr * total
    _, vjp = jax.vjp(lambda x_: _grad_y_g(d, x_, y, b_jvp), x)
    (hxy_v,) = vjp(v)
    return x - lr / outer_ratio * (fx - hxy_v), y


@jax.jit if available else (lambda fn: fn)
def run_stocbio_on_batches(d, x0, y0, b_inner, b_f, b_neumann, b_jvp, lr=0.1, outer_ratio=1.0):
    """StocBiO from (x0, y0) over the given batches: b_inner (T, D, b), b_f (T, b),
    b_neumann (T, Q, b), b_jvp (T, b). Returns (x, y)."""
    def body(state, batches):
        return stocbio_step(d, state, *batches, lr, outer_ratio), None

    (x, y), _ = jax.lax.scan(body, (x0, y0), (b_inner, b_f, b_neumann, b_jvp))
    return x, y


def stocbio_batches(d: dict, rng: np.random.Generator, iterations: int, batch_size: int = 64,
                    inner_steps: int = 10, neumann_steps: int = 10):
    """The batches of ``iterations`` StocBiO steps as ``run_stocbio_on_batches`` takes them;
    the LL ones from one epoch stream in the order D inner, Q Neumann, one JVP per iteration."""
    per = inner_steps + neumann_steps + 1
    bg = epoch_batches(rng, d["p"].shape[0], batch_size, iterations * per)
    bg = bg.reshape(iterations, per, batch_size)
    bf = epoch_batches(rng, d["c"].shape[0], batch_size, iterations)
    return bg[:, :inner_steps], bf, bg[:, inner_steps:per - 1], bg[:, per - 1]
