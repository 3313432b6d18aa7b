"""Synthetic but schema-valid run records, for the site's tests and build-time benchmark.

A run's primary metric decays geometrically from 1 at rate ``speed`` per second of solver time;
it converges when it crosses the target. Nothing here is a measurement: never mix these records
with real ones.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from bilevel_bench.results import SCHEMA, SCHEMA_VERSION, record_filename


def synthetic_record(problem: str, solver: str, seed: int, *, speed: float = 1.0,
                     ruleset: str = "default", hardware_class: str = "cpu:synthetic|threads=1",
                     problem_version: str = "1", target: float = 1e-3, budget: float = 10.0,
                     checkpoints: int = 30, rng: np.random.Generator | None = None,
                     task: str = "quadratics", n_constraints: int = 0, diverge: bool = False,
                     status: str | None = None, handles: tuple[str, ...] = (),
                     error: str | None = None, canary: bool = False, gated: bool = True
                     ) -> dict[str, Any]:
    """One record; ``speed`` (per solver second) sets how fast the gap closes. ``diverge``:
    the metric becomes NaN after the first third of the run (status ``status`` or
    ``diverged``); ``status`` forces the recorded status, ``error`` its message. ``canary``:
    the solver says it is a canary (a reference line). ``gated=False``: no checkpoint passes
    the LL gate (its ll_gap stays above the gate's bound, 1), so no rung counts."""
    key = hashlib.sha256(repr((problem, problem_version, solver, seed, ruleset,
                               hardware_class)).encode())
    rng = rng or np.random.default_rng(int(key.hexdigest()[:8], 16))
    noise = float(np.exp(rng.normal(0.0, 0.2)))
    times = np.geomspace(1e-3, budget, checkpoints)
    values = np.exp(-speed * noise * times)
    if diverge:
        values[checkpoints // 3:] = np.nan
    hit = int(np.argmax(values <= target)) if gated and (values <= target).any() else None
    last = checkpoints if hit is None else hit + 1
    ladder = [target * 1e3, target * 10, target]
    trace = [{"iteration": 10 * k, "time": float(t), "oracle_cost": float(1000 * t),
              "samples": 0, "counts": {"f_grad": float(500 * t), "g_grad": float(500 * t)},
              "gate": gated,
              "metrics": {"ul_gap": float(v), "ll_gap": float(v / 2) if gated else 1.01,
                          "constraint_violation": 0.0, "test_accuracy": float(1 - v / 3)}}
             for k, (t, v) in enumerate(zip(times[:last], values[:last], strict=True))]
    end = trace[-1]
    converged = hit is not None
    run_id = hashlib.sha256(repr((key.hexdigest(), budget, diverge, status, task, error,
                                  gated)).encode()).hexdigest()[:16]
    hits = []
    for rung in ladder:
        first = next((r for r in trace if r["metrics"]["ul_gap"] <= rung and r["gate"]),
                     None)
        hits.append(None if first is None else {
            "target": rung, "iteration": first["iteration"], "oracle_cost": first["oracle_cost"],
            "time": first["time"], "wall_time": first["time"]})
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": run_id,
        "created": "2026-01-01T00:00:00+00:00",
        "problem": {"name": problem, "family": problem.split("-")[0], "version": problem_version,
                    "params": {"n": 10}, "primary_metric": "ul_gap", "higher_is_better": False,
                    "target": target, "citation": "Synthetic, arXiv:0000.00000",
                    "formulation": "min_x f(x, y*(x)), y*(x) = argmin_y g(x, y)",
                    "dataset_fingerprints": {"train": "0" * 16}, "x_dim": 10, "y_dim": 10,
                    "n_constraints": n_constraints, "task": task, "ladder": ladder,
                    "ll_gate": {"metric": "ll_gap", "rtol": 0.0, "atol": 1.0,
                                "description": "synthetic"}},
        "solver": {"name": solver, "version": "1.0", "citation": "Synthetic solver",
                   "spec": solver, "hyperparameters": {"lr": 0.1}, "needs": [],
                   "handles": list(handles), "source_file": None, "source_sha256": "a" * 64,
                   **({"canary": True} if canary else {})},
        "ruleset": ruleset, "seed": seed,
        "device": {"type": "cpu", "name": "cpu", "threads": 1},
        "hardware": {"cpu": "synthetic", "cores": 2, "memory_gb": 8.0, "gpu": None,
                     "threads": 1, "class": hardware_class},
        "versions": {"python": "3.11", "torch": "2.13", "numpy": "2.0",
                     "bilevel_bench": "0.1.0", "platform": "synthetic"},
        "git_revision": {"commit": "0" * 40, "dirty": False},
        "budget": {"seconds": budget, "oracle_cost": None, "iterations": None, "timeout": 60.0},
        "status": status or ("diverged" if diverge else "converged" if converged else "budget"),
        "error": error, "trace": trace,
        "summary": {"converged": converged,
                    "time_to_target": end["time"] if converged else None,
                    "oracles_to_target": end["oracle_cost"] if converged else None,
                    "iterations_to_target": end["iteration"] if converged else None,
                    "iterations": end["iteration"], "solver_time": end["time"],
                    "oracle_cost": end["oracle_cost"], "wall_time": end["time"] * 1.1,
                    "evaluation_time": 0.01, "final": dict(end["metrics"]),
                    "start": {"ul_gap": 1.0, "ll_gap": 0.5},
                    "rungs": len(ladder), "rungs_reached": sum(h is not None for h in hits),
                    "ladder_hits": hits},
    }


def write_synthetic(directory: str | Path, problems: int, solvers: int, seeds: int,
                    rulesets: tuple[str, ...] = ("default",),
                    hardware: tuple[str, ...] = ("cpu:synthetic|threads=1",),
                    first_seed: int = 0) -> int:
    """Write problems x solvers x seeds x rulesets records (seeds ``first_seed`` on, spread
    over ``hardware``); returns the number written. Solver k is ``2**(k/4)`` times slower than
    solver 0."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    count = 0
    for p in range(problems):
        difficulty = math.exp(rng.normal(0.0, 0.5))
        for s in range(solvers):
            for ruleset in rulesets:
                for seed in range(first_seed, first_seed + seeds):
                    record = synthetic_record(
                        f"problem-{p:02d}", f"solver-{s:02d}", seed,
                        speed=2.0 / difficulty / 2 ** (s / 4), ruleset=ruleset,
                        hardware_class=hardware[seed % len(hardware)], rng=rng)
                    # plain writes: write_record's fsync per file is for real results
                    path = Path(directory) / record_filename(record)
                    path.write_text(json.dumps(record), encoding="utf-8")
                    count += 1
    return count
