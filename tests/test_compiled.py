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


@pytest.mark.parametrize("problem", ["quadratic-small", "quadratic-benchopt"])
def test_compiled_soba_counts_and_iterates_match_eager(problem):
    eager, eager_oracles, *_ = run_ours("soba", 12, problem)
    fast, fast_oracles, *_ = run_ours("soba", 12, problem, compiled=True)
    assert fast.compiled and fast._fast is not None  # the compiled path ran, no fallback
    assert fast_oracles.counter.snapshot() == eager_oracles.counter.snapshot()
    for a, b in ((fast.x, eager.x), (fast.y, eager.y), (fast.v, eager.v)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
