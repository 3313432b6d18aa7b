"""A matrix of runs: problems x solvers x seeds -> run records on disk, resumable.

``plan`` expands names into :class:`~bilevel_bench.runner.RunTask` objects, keeping only the
combinations a solver can handle (by declared capabilities); ``run_matrix`` executes the tasks
not yet recorded in the results directory and writes each record atomically as it finishes, so
a crash or a kill loses nothing already recorded and the next call resumes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bilevel_bench import registry
from bilevel_bench.problem import Budget
from bilevel_bench.results import ensure_writable, read_record, recorded_run_ids, write_record
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
    budget_scale: float = 1.0,
) -> Plan:
    """Tasks for every compatible (problem, solver, seed); the instances' default budgets are
    multiplied by ``budget_scale``, then ``budget`` overrides them field by field."""
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
            run_budget: Budget = entry.instance.budget.scaled(budget_scale).merged(
                **(budget or {}))
            for seed in seeds:
                tasks.append(RunTask(
                    problem=name, solver=spec, seed=seed, device=device, budget=run_budget,
                    hyperparameters=dict(hyperparameters or {}), threads=threads,
                    timeout=timeout, dtype=dtype))
    return Plan(tasks, skipped)


class Claims:
    """Per-run locks in ``<results>/.locks`` (``fcntl.flock``, released by the kernel if the
    process dies), so that several ``run`` commands on one results folder share the work: a
    task is taken only by the command that locks it, and only if it is still unrecorded."""

    def __init__(self, directory: Path) -> None:
        self.folder = directory / ".locks"
        self.folder.mkdir(exist_ok=True)
        self.held: dict[str, int] = {}

    def take(self, run_id: str) -> bool:
        import fcntl

        fd = os.open(self.folder / f"{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.held[run_id] = fd
        return True

    def release(self, run_id: str) -> None:
        fd = self.held.pop(run_id, None)
        if fd is not None:
            os.close(fd)  # closing releases the lock; the file stays (unlinking would race)

    def release_all(self) -> None:
        for run_id in list(self.held):
            self.release(run_id)


def run_matrix(
    tasks: Sequence[RunTask],
    results_dir: str | Path,
    executor: Any,
    resume: bool = True,
    on_record: Callable[[dict, Path], None] | None = None,
) -> list[str]:
    """Run the tasks not yet recorded; returns the run ids that were skipped as recorded
    (valid records already there, re-read: a truncated or invalid one is set aside in
    ``.rejected/`` and run again). Tasks are claimed one at a time as the executor asks for
    them (:class:`Claims`): a task that another command is running, or has recorded meanwhile,
    is left to it."""
    directory = ensure_writable(results_dir)
    done = recorded_run_ids(directory) if resume else set()
    skipped = [t.run_id() for t in tasks if t.run_id() in done]
    claims = Claims(directory)

    def claimed() -> Iterator[RunTask]:
        for task in tasks:
            run_id = task.run_id()
            if run_id in done or not claims.take(run_id):
                continue
            if resume and any(read_record(p, directory)[0] is not None
                              for p in directory.glob(f"*__{run_id}.json")):
                claims.release(run_id)  # recorded by another command meanwhile
                continue
            yield task

    def save(record: dict) -> None:
        try:
            path = write_record(directory, record)
        finally:
            claims.release(str(record.get("run_id")))
        if on_record is not None:
            on_record(record, path)

    try:
        executor.map(claimed(), save)
    finally:
        claims.release_all()
    return skipped
