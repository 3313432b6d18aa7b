"""A matrix of runs: problems x solvers x seeds -> run records on disk, resumable.

``plan`` expands names into :class:`~bilevel_bench.runner.RunTask` objects, keeping only the
combinations a solver can handle (by declared capabilities); ``run_matrix`` executes the tasks
not yet recorded in the results directory and writes each record atomically as it finishes, so
a crash or a kill loses nothing already recorded and the next call resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bilevel_bench import registry
from bilevel_bench.problem import Budget
from bilevel_bench.results import ensure_writable, recorded_run_ids, write_record
from bilevel_bench.runner import RunTask


@dataclass
class Plan:
    tasks: list[RunTask]
    skipped: list[tuple[str, str, str]]  # (problem, solver, reason) not compatible


def plan(
    problems: Sequence[str],
    solvers: Sequence[str],
    seeds: Sequence[int],
    device: str = "cpu",
    budget: dict[str, Any] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    threads: int = 1,
    timeout: float | None = None,
    dtype: str | None = None,
) -> Plan:
    """Tasks for every compatible (problem, solver, seed); ``budget`` overrides the instances'
    default budgets field by field."""
    tasks, skipped = [], []
    solver_classes = {spec: registry.get_solver(spec) for spec in solvers}
    for cls in solver_classes.values():
        cls(**(hyperparameters or {}))  # unknown names fail here, before anything runs
    for name in problems:
        entry = registry.get_problem(name)
        features = entry.features()
        for spec, cls in solver_classes.items():
            reason = cls.can_solve(features, entry.family.provides, device)
            if reason:
                skipped.append((name, cls.name, reason))
                continue
            run_budget: Budget = entry.instance.budget.merged(**(budget or {}))
            for seed in seeds:
                tasks.append(RunTask(
                    problem=name, solver=spec, seed=seed, device=device, budget=run_budget,
                    hyperparameters=dict(hyperparameters or {}), threads=threads,
                    timeout=timeout, dtype=dtype))
    return Plan(tasks, skipped)


def run_matrix(
    tasks: Sequence[RunTask],
    results_dir: str | Path,
    executor: Any,
    resume: bool = True,
    on_record: Callable[[dict, Path], None] | None = None,
) -> list[str]:
    """Run the tasks not yet recorded; returns the run ids that were skipped as recorded."""
    directory = ensure_writable(results_dir)
    done = recorded_run_ids(directory) if resume else set()
    todo = [t for t in tasks if t.run_id() not in done]
    skipped = [t.run_id() for t in tasks if t.run_id() in done]

    def save(record: dict) -> None:
        path = write_record(directory, record)
        if on_record is not None:
            on_record(record, path)

    executor.map(todo, save)
    return skipped
