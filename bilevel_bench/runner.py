"""One run: (problem instance, solver, hyperparameters, seed, device) -> run record.

Measurement protocol:

* the solver clock runs only inside ``init`` and ``step``; on CUDA the device is synchronised
  before the clock is read, so asynchronous kernels are not under-reported;
* evaluation happens at checkpoints, log-spaced both in iterations and in solver time
  (``checkpoints_per_decade`` of each), with the clock paused and oracle counting off; a due
  checkpoint waits while the evaluation time exceeds ``max_evaluation_ratio`` x the solver time
  (plus ``evaluation_allowance``), so that an expensive exact evaluation cannot multiply a run's
  wall time;
* the run stops at the target (time-, oracles- and iterations-to-target are those of the first
  checkpoint that meets it), at a budget (seconds, oracle cost, iterations), on divergence
  (NaN/inf in the iterate or the primary metric) or on an exception.

``execute`` runs in the current process; :mod:`bilevel_bench.executors` runs it in child processes
with a hard timeout, out-of-memory handling and thread pinning.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch

from bilevel_bench import registry
from bilevel_bench.oracles import OracleCounter, Oracles
from bilevel_bench.problem import BilevelProblem, Budget, reached
from bilevel_bench.provenance import git_revision, hardware, source_sha256, versions
from bilevel_bench.results import SCHEMA, SCHEMA_VERSION
from bilevel_bench.solver import Solver

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class RunTask:
    """A pure description of one run (picklable: it travels to worker processes)."""

    problem: str
    solver: str
    seed: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    budget: Budget | None = None  # None: the instance's default budget
    timeout: float | None = None  # hard wall-clock limit; None: derived from the budget
    ruleset: str = "default"
    dtype: str | None = None
    threads: int = 1
    checkpoints_per_decade: int = 20
    #: a due checkpoint waits while the evaluation time so far exceeds this multiple of the
    #: solver time plus ``evaluation_allowance`` seconds (problems with an expensive exact
    #: evaluation: the run then takes about (1 + ratio) x its budget, at the price of a coarser
    #: time-to-target; cheap evaluations stay within the allowance and are never deferred)
    max_evaluation_ratio: float = 1.0
    evaluation_allowance: float = 1.0

    def resolved_budget(self) -> Budget:
        return self.budget if self.budget is not None else registry.get_problem(
            self.problem).instance.budget

    def hard_timeout(self) -> float:
        """Wall-clock seconds after which the run is killed; the time spent evaluating at
        checkpoints is added to it as the run goes (the executors extend the deadline)."""
        if self.timeout is not None:
            return self.timeout
        seconds = self.resolved_budget().seconds
        return 3 * (seconds if seconds is not None else 600.0) + 60.0

    def run_id(self) -> str:
        """Stable identity of the run: same task on the same hardware class -> same id."""
        identity = {
            "problem": self.problem, "solver": self.solver, "seed": self.seed,
            "hyperparameters": self.hyperparameters, "device": self.device,
            "budget": asdict(self.resolved_budget()), "ruleset": self.ruleset,
            "dtype": self.dtype, "threads": self.threads,
            "hardware": hardware(self.device, self.threads)["class"],
        }
        blob = json.dumps(identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class _Clock:
    """Solver time: accumulated only between ``start`` and ``stop``; device-synchronised."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.elapsed = 0.0

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def timed(self, fn: Callable[[], Any]) -> Any:
        start = self._now()
        try:
            return fn()
        finally:
            self.elapsed += self._now() - start


class _Schedule:
    """Log-spaced checkpoints in iterations and in solver time."""

    def __init__(self, per_decade: int, first_time: float = 1e-3) -> None:
        self.factor = 10 ** (1.0 / per_decade)
        self.next_iteration = 1
        self.next_time = first_time

    def due(self, iteration: int, elapsed: float) -> bool:
        return iteration >= self.next_iteration or elapsed >= self.next_time

    def advance(self, iteration: int, elapsed: float) -> None:
        while self.next_iteration <= iteration:
            self.next_iteration = max(self.next_iteration + 1,
                                      math.ceil(self.next_iteration * self.factor))
        while self.next_time <= elapsed:
            self.next_time *= self.factor


def describe_solver(cls: type[Solver], spec: str, hyperparameters: dict[str, Any]) -> dict:
    path, sha = source_sha256(cls)
    return {
        "name": cls.name, "version": cls.version, "citation": cls.citation, "spec": spec,
        "hyperparameters": {**cls.defaults(), **hyperparameters},
        "needs": sorted(cls.needs), "handles": sorted(cls.handles),
        "source_file": path, "source_sha256": sha,
    }


def record_header(task: RunTask) -> dict[str, Any]:
    """The part of a record known before anything runs (used if the worker dies early)."""
    budget = task.resolved_budget()
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": task.run_id(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "problem": {"name": task.problem, "version": "unknown", "primary_metric": "unknown",
                    "params": {}},
        "solver": {"name": task.solver, "version": "unknown", "spec": task.solver,
                   "hyperparameters": dict(task.hyperparameters)},
        "ruleset": task.ruleset, "seed": task.seed,
        "device": {"type": task.device, "threads": task.threads},
        "hardware": hardware(task.device, task.threads), "versions": versions(),
        "git_revision": git_revision(),
        "budget": {**asdict(budget), "timeout": task.hard_timeout()},
        "status": "error", "error": None, "trace": [], "summary": {},
    }


def finish_record(header: dict, trace: list[dict], status: str, error: dict | None,
                  wall_time: float, evaluation_time: float = 0.0) -> dict[str, Any]:
    """Assemble a record from its header, trace and outcome; computes the summary."""
    problem = header["problem"]
    target, higher = problem.get("target"), problem.get("higher_is_better", False)
    metric = problem["primary_metric"]
    hit = next((row for row in trace if target is not None
                and reached(row["metrics"].get(metric, math.nan), target, higher)), None)
    last = trace[-1] if trace else {}
    summary = {
        "converged": hit is not None,
        "time_to_target": hit["time"] if hit else None,
        "oracles_to_target": hit["oracle_cost"] if hit else None,
        "iterations_to_target": hit["iteration"] if hit else None,
        "iterations": last.get("iteration", 0),
        "solver_time": last.get("time", 0.0),
        "oracle_cost": last.get("oracle_cost", 0.0),
        "wall_time": wall_time,
        "evaluation_time": evaluation_time,
        "final": dict(last.get("metrics", {})),
    }
    return {**header, "status": status, "error": error, "trace": trace, "summary": summary}


def error_info(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)[:2000],
            "traceback": "".join(traceback.format_exception(exc))[-8000:]}


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return "out of memory" in text.lower() or "can't allocate memory" in text


def prepare(task: RunTask) -> tuple[registry.ProblemEntry, BilevelProblem, type[Solver]]:
    """Resolve and check a task before running it: names, compatibility, hyperparameters."""
    entry = registry.get_problem(task.problem)
    cls = registry.get_solver(task.solver)
    dtype = DTYPES[task.dtype] if task.dtype else None
    problem = entry.make(seed=task.seed, device=task.device, dtype=dtype)
    reason = cls.can_solve(problem.features, problem.provides, task.device)
    if reason:
        raise ValueError(f"solver {cls.name!r} cannot run {task.problem!r}: it {reason}")
    cls(**task.hyperparameters)  # validates names early, with suggestions
    return entry, problem, cls


def start_solver(problem: BilevelProblem, cls: type[Solver], params: dict[str, Any],
                 seed: int) -> tuple[Solver, Oracles]:
    """The start of every run: seed torch, wrap the problem in a counted oracle view, draw the
    initial point with a seeded generator and ``init`` the solver (untimed here)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    oracles = Oracles(problem)
    x0, y0 = problem.init(generator)
    solver = cls(**params)
    solver.init(oracles, x0.clone(), y0.clone(), generator)
    return solver, oracles


def execute(task: RunTask, emit: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """Run one task in this process and return its record. Never raises for solver failures:
    they become the record's status. ``emit(kind, payload)`` streams ``("header", dict)``,
    ``("evaluation", seconds)`` and ``("checkpoint", row)`` events as they happen (used by the
    executors to survive kills and to keep evaluation time out of the hard timeout)."""
    emit = emit or (lambda kind, payload: None)
    started = time.perf_counter()
    header = record_header(task)
    trace: list[dict] = []
    evaluation_time = 0.0
    try:
        entry, problem, cls = prepare(task)
    except Exception as exc:
        return finish_record(header, trace, "error", error_info(exc),
                             time.perf_counter() - started)
    header["problem"] = {**problem.describe(), "target": entry.instance.target,
                         "formulation": problem.formulation}
    header["solver"] = describe_solver(cls, task.solver, task.hyperparameters)
    header["device"]["name"] = str(problem.device)
    emit("header", header)

    budget = task.resolved_budget()
    counter = OracleCounter()
    oracles = Oracles(problem, counter)
    clock = _Clock(problem.device)
    schedule = _Schedule(task.checkpoints_per_decade)
    metric, target = problem.primary_metric, entry.instance.target
    torch.manual_seed(task.seed)
    generator = torch.Generator().manual_seed(task.seed)
    x0, y0 = problem.init(generator)
    data_before = _checksums(problem)
    solver = cls(**task.hyperparameters)
    iteration = 0

    def checkpoint() -> tuple[str | None, dict | None]:
        """Evaluate the current solution; returns (stop status or None, error)."""
        nonlocal evaluation_time
        t0 = time.perf_counter()
        with counter.paused():
            x, y = check_solution(solver.solution(), problem)
            finite = bool(torch.isfinite(x).all() and torch.isfinite(y).all())
            metrics = problem.evaluate(x, y) if finite else {metric: math.nan}
        spent = time.perf_counter() - t0
        evaluation_time += spent
        emit("evaluation", spent)
        row = {"iteration": iteration, "time": clock.elapsed, **counter.snapshot(),
               "metrics": {k: float(v) for k, v in metrics.items()}}
        row["counts"] = {k: row.pop(k) for k in list(counter.counts)}
        trace.append(row)
        emit("checkpoint", row)
        schedule.advance(iteration, clock.elapsed)
        value = row["metrics"].get(metric, math.nan)
        if not finite or not math.isfinite(value):
            return "diverged", {"type": "Diverged", "message":
                                f"non-finite {'iterate' if not finite else metric} "
                                f"at iteration {iteration}", "traceback": ""}
        if reached(value, target, problem.higher_is_better):
            return "converged", None
        return None, None

    status, error = None, None
    try:
        clock.timed(lambda: solver.init(oracles, x0.clone(), y0.clone(), generator))
        status, error = checkpoint()
        while status is None:
            if _exhausted(budget, clock.elapsed, counter.oracle_cost, iteration):
                if trace[-1]["iteration"] != iteration:
                    status, error = checkpoint()
                status = status or "budget"
                break
            clock.timed(solver.step)
            iteration += 1
            if schedule.due(iteration, clock.elapsed) and \
                    evaluation_time <= task.max_evaluation_ratio * clock.elapsed \
                    + task.evaluation_allowance:
                status, error = checkpoint()
    except Exception as exc:
        status = "oom" if is_out_of_memory(exc) else "error"
        error = error_info(exc)
    changed = [k for k, v in _checksums(problem).items() if data_before.get(k) != v]
    if changed:
        error = error or {"type": "ProblemDataMutated", "traceback": "",
                          "message": f"the solver modified problem data {changed} in place"}
        status = "error"
    return finish_record(header, trace, status, error, time.perf_counter() - started,
                         evaluation_time)


class SolutionError(ValueError):
    """``solution()`` returned something that is not an (x, y) pair of the problem's shapes."""


def check_solution(out: Any, problem: BilevelProblem) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate what a solver's ``solution()`` returned; raise a SolutionError naming the fix."""
    if not (isinstance(out, tuple | list) and len(out) == 2
            and all(isinstance(t, torch.Tensor) for t in out)):
        raise SolutionError(f"solution() must return a pair (x, y) of tensors, got {out!r:.80}")
    for label, t, shape in (("x", out[0], problem.x_shape), ("y", out[1], problem.y_shape)):
        if t.shape != shape:
            raise SolutionError(f"solution() returned {label} of shape {tuple(t.shape)}; "
                                f"problem {problem.instance_name!r} expects {tuple(shape)}")
        if t.device != problem.device:
            raise SolutionError(f"solution() returned {label} on {t.device}; the problem "
                                f"lives on {problem.device}")
    return out[0].detach(), out[1].detach()


def _checksums(problem: BilevelProblem) -> dict[str, tuple[float, float]]:
    """Cheap per-tensor checksums of the problem's data (to catch in-place mutation)."""
    out = {}
    for key, t in problem.data_tensors().items():
        t = t.detach().double() if t.is_floating_point() else t.detach().to(torch.float64)
        out[key] = (float(t.sum()), float(t.abs().sum()))
    return out


def _exhausted(budget: Budget, seconds: float, cost: float, iterations: int) -> bool:
    return ((budget.seconds is not None and seconds >= budget.seconds)
            or (budget.oracle_cost is not None and cost >= budget.oracle_cost)
            or (budget.iterations is not None and iterations >= budget.iterations))
