"""Fast paths against references: the JAX reference implementation of SOBA and StocBiO
(benchmarks/jax_reference.py, skipped without jax) replays our runs' mini-batches to the same
iterates."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bilevel_bench.oracles import Oracles
from bilevel_bench.registry import get_problem, get_solver

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_ours(solver_name: str, steps: int, problem: str = "quadratic-benchopt", seed: int = 0,
             record: bool = False, **attributes):
    """Our solver after ``steps`` steps, its oracles, (x0, y0) and the batches it drew."""
    instance = get_problem(problem).make(seed=seed)
    oracles = Oracles(instance)
    recorded: dict[str, list] = {"f": [], "g": []}
    if record:
        draw = oracles.sample_batch

        def sample_batch(level, size, generator):
            out = draw(level, size, generator)
            recorded[level].append(out.clone())
            return out

        oracles.sample_batch = sample_batch
    generator = torch.Generator().manual_seed(seed)
    x0, y0 = instance.init(generator)
    solver = get_solver(solver_name)()
    for key, value in attributes.items():
        setattr(solver, key, value)
    solver.init(oracles, x0, y0, generator)
    for _ in range(steps):
        solver.step()
    return solver, oracles, instance, (x0, y0), recorded


def jax_reference():
    pytest.importorskip("jax")
    spec = importlib.util.spec_from_file_location("jax_reference", BENCHMARKS / "jax_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("jax_reference", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, steps", [("soba", 20), ("stocbio", 3)])
def test_jax_reference_replays_our_iterates(name, steps):
    jr = jax_reference()
    solver, _, instance, (x0, y0), rec = run_ours(name, steps, record=True)
    data = jr.problem_data(instance)
    x0, y0 = x0.numpy(), y0.numpy()
    bg, bf = (torch.stack(rec[k]).numpy() for k in ("g", "f"))
    if name == "soba":
        out = jr.run_soba_on_batches(data, x0, y0, bg, bf)
        ours = (solver.x, solver.y, solver.v)
    else:
        bg = bg.reshape(steps, solver.inner_steps + solver.neumann_steps + 1, -1)
        out = jr.run_stocbio_on_batches(data, x0, y0, bg[:, :solver.inner_steps], bf,
                                        bg[:, solver.inner_steps:-1], bg[:, -1])
        ours = (solver.x, solver.y)
    for a, b in zip(out, ours, strict=True):
        np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=0, atol=1e-10)


STATE = {"soba": ("x", "y", "v"), "stocbio": ("x", "y"), "aid-cg": ("x", "y", "v"),
         "aid-neumann": ("x", "y", "v")}


@pytest.mark.parametrize("name, problem, steps", [
    ("soba", "quadratic-small", 12), ("soba", "quadratic-benchopt", 12),
    ("stocbio", "quadratic-small", 4), ("stocbio", "quadratic-benchopt", 4),
    ("aid-cg", "quadratic-small", 6), ("aid-neumann", "quadratic-small", 6),
    # a singular LL Hessian: CG stops early, the compiled step counts the products it made
    ("aid-cg", "bome-toy", 6),
])
def test_compiled_counts_and_iterates_match_eager(name, problem, steps):
    eager, eager_oracles, *_ = run_ours(name, steps, problem)
    fast, fast_oracles, *_ = run_ours(name, steps, problem, compiled=True)
    assert fast.compiled and fast._fast is not None and fast._fast.fn is not None  # no fallback
    assert fast_oracles.counter.snapshot() == eager_oracles.counter.snapshot()
    for attr in STATE[name]:
        torch.testing.assert_close(getattr(fast, attr), getattr(eager, attr), rtol=0, atol=1e-10)


def test_compiled_cg_counts_the_products_it_made():
    from bilevel_bench_baselines.inner_loops import conjugate_gradient, conjugate_gradient_masked

    matrix = torch.diag(torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64))  # singular
    calls = []

    def operator(u):
        calls.append(1)
        return matrix @ u

    rhs = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    start = torch.zeros(3, dtype=torch.float64)
    for steps in (1, 2, 5):
        calls.clear()
        expected = conjugate_gradient(operator, rhs, start, steps)
        eager_products = len(calls)
        v, products = conjugate_gradient_masked(operator, rhs, start, steps)
        assert int(products) == eager_products
        torch.testing.assert_close(v, expected, rtol=0, atol=1e-14)


def test_compiled_step_falls_back_to_eager_with_a_warning(monkeypatch):
    from bilevel_bench_baselines import compiled

    def broken(fn, example_args):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(compiled, "compile_function", broken)
    eager, eager_oracles, *_ = run_ours("stocbio", 3, "quadratic-small")
    with pytest.warns(RuntimeWarning, match="compiled step failed"):
        fast, fast_oracles, *_ = run_ours("stocbio", 3, "quadratic-small", compiled=True)
    assert not fast.compiled
    assert fast_oracles.counter.snapshot() == eager_oracles.counter.snapshot()
    torch.testing.assert_close(fast.x, eager.x, rtol=0, atol=0)
