"""One run: (problem instance, solver, hyperparameters, seed, device) -> run record.

Measurement protocol (version 2):

* **clocks.** The solver clock runs only inside ``init`` and ``step`` and reads the CPU time of
  the solver process (``time.process_time``: all its threads, not the neighbours'), so a
  budget in seconds stops a run after the same work on a quiet or a busy machine; on CUDA it
  reads the device-synchronised wall time instead. Wall time inside ``init``/``step`` is
  recorded beside it (``wall_time``), never used to stop anything. The oracle clock is the
  counted oracle cost (:mod:`bilevel_bench.oracles`). Before the clock starts, the problem's
  oracles are warmed up (:func:`warm_up`: first autograd calls, uncounted), so a fresh process
  does not pay one-time costs on its clock.
* **checkpoints** are log-spaced in *iterations only* (``checkpoints_per_decade``; an instance
  may set fewer), so which checkpoint first meets a target, and its iteration and oracle cost,
  are the same on any machine. Evaluation is untimed, uncounted, and never deferred.
* **target ladder.** Before ``init`` the seeded initial point (x0, y0) is evaluated once; the
  instance's ladder (declared, or :func:`~bilevel_bench.problem.default_ladder` from that
  start value to the final target) is recorded, and so is the first checkpoint that meets each
  rung (iteration, oracle cost, solver time, wall time).
* **LL gate.** A checkpoint counts for a rung only if it passes the instance's
  :class:`~bilevel_bench.problem.LLGate` (the lower level solved to a stated tolerance, or a
  metric computed from x with an exact y*(x)).
* the run stops at the final target (``converged``), at a budget (solver seconds, oracle cost,
  iterations: ``budget``), on divergence (NaN/inf in the iterate or the primary metric) or on
  an exception.

``execute`` runs in the current process; :mod:`bilevel_bench.executors` runs it in child processes
with a hard timeout, out-of-memory handling and thread pinning.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch

from bilevel_bench import registry, sandbox
from bilevel_bench.oracles import OracleCounter, Oracles
from bilevel_bench.problem import (
    DEFAULT_LL_GAP_GATE,
    BilevelProblem,
    Budget,
    LLGate,
    check_ladder,
    default_ladder,
    reached,
)
from bilevel_bench.provenance import git_revision, hardware, source_identity, versions
from bilevel_bench.reproduce import reproduce_command
from bilevel_bench.results import SCHEMA, SCHEMA_VERSION, ladder_hits
from bilevel_bench.sandbox import safe_str
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
    timeout: float | None = None  # hard limit in solver CPU seconds; None: from the budget
    ruleset: str = "default"
    dtype: str | None = None
    threads: int = 1
    #: checkpoints per decade of iterations; ``None``: the instance's, else 20
    checkpoints_per_decade: int | None = None

    def resolved_budget(self) -> Budget:
        return self.budget if self.budget is not None else registry.get_problem(
            self.problem).instance.budget

    def hard_timeout(self) -> float:
        """CPU seconds of the solver process (and its descendants) after which the run is
        killed: 3 x its budget in seconds + 60, or 600 for a work budget (oracle cost,
        iterations); the executors add a wall-clock backstop (executors.WALL_BACKSTOP)."""
        if self.timeout is not None:
            return self.timeout
        seconds = self.resolved_budget().seconds
        return 3 * seconds + 60.0 if seconds is not None else 600.0

    def run_id(self) -> str:
        """Stable identity of the run: same task on the same hardware class and the same
        version of the problem family -> same id (a new version is a new run: resume re-runs
        it instead of keeping a record of other data or another target)."""
        try:
            problem_version = registry.get_problem(self.problem).family.version
        except Exception:  # unknown or broken problem: its run ends as an error record
            problem_version = "unknown"
        identity = {
            "problem": self.problem, "problem_version": problem_version,
            "solver": self.solver, "seed": self.seed,
            "hyperparameters": self.hyperparameters, "device": self.device,
            "budget": asdict(self.resolved_budget()), "ruleset": self.ruleset,
            "dtype": self.dtype, "threads": self.threads,
            "hardware": hardware(self.device, self.threads)["class"],
        }
        blob = json.dumps(identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class SolverClock:
    """Solver time, accumulated only inside :meth:`timed`.

    ``elapsed`` is the budget clock: the CPU time of this process (``time.process_time``, all
    its threads) on CPU, the synchronised wall time on CUDA (kernels are asynchronous; the
    device is synchronised before each reading). ``wall`` is the wall time inside the same
    sections, recorded beside it. ``cpu_time`` is injectable (tests simulate slower machines).
    """

    def __init__(self, device: torch.device,
                 cpu_time: Callable[[], float] = time.process_time) -> None:
        self.cuda = device.type == "cuda"
        self.cpu_time = cpu_time
        self.elapsed = 0.0
        self.wall = 0.0

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def timed(self, fn: Callable[[], Any]) -> Any:
        self._sync()
        wall0, cpu0 = time.perf_counter(), self.cpu_time()
        try:
            return fn()
        finally:
            self._sync()
            wall = time.perf_counter() - wall0
            self.wall += wall
            self.elapsed += wall if self.cuda else self.cpu_time() - cpu0


class IterationSchedule:
    """Checkpoints log-spaced in iterations only (machine-independent): every iteration up to
    ``per_decade``, then ``per_decade`` per decade."""

    def __init__(self, per_decade: int) -> None:
        if per_decade < 1:
            raise ValueError(f"checkpoints per decade must be at least 1, got {per_decade}")
        self.factor = 10 ** (1.0 / per_decade)
        self.next_iteration = 1

    def due(self, iteration: int) -> bool:
        return iteration >= self.next_iteration

    def advance(self, iteration: int) -> None:
        while self.next_iteration <= iteration:
            self.next_iteration = max(self.next_iteration + 1,
                                      math.ceil(self.next_iteration * self.factor))


def resolve_gate(entry: registry.ProblemEntry, problem: BilevelProblem,
                 start: dict[str, float]) -> LLGate:
    """The LL gate of an instance: its own, else its family's, else ``ll_gap`` (when the
    evaluation reports it), else none (stated as undeclared)."""
    gate = entry.instance.ll_gate or type(problem).ll_gate
    if gate is not None:
        return gate
    if "ll_gap" in start:
        return DEFAULT_LL_GAP_GATE
    return LLGate(None, why="not declared by the family, which reports no ll_gap")


def resolve_ladder(entry: registry.ProblemEntry, problem: BilevelProblem,
                   start: dict[str, float]) -> tuple[float, ...]:
    """The instance's declared ladder, or the default one from its value at (x0, y0)."""
    target, higher = entry.instance.target, problem.higher_is_better
    if entry.instance.ladder is not None:
        return check_ladder(entry.name, entry.instance.ladder, target, higher)
    return default_ladder(start.get(problem.primary_metric, math.nan), target, higher)


def describe_solver(cls: type[Solver], spec: str, hyperparameters: dict[str, Any]) -> dict:
    """The solver part of a record. Its source is identified by package (or file) name,
    package version and sha256 of the defining file, never by an absolute path."""
    source = source_identity(cls)
    return {
        "name": cls.name, "version": cls.version, "citation": cls.citation,
        "spec": source.get("spec", spec),
        "hyperparameters": {**cls.defaults(), **hyperparameters},
        "needs": sorted(cls.needs), "handles": sorted(cls.handles),
        "canary": bool(cls.canary),  # does no bilevel work: a reference line, never ranked
        "source": source, "source_sha256": source.get("sha256"),
    }


def record_header(task: RunTask) -> dict[str, Any]:
    """The part of a record known before anything runs (used if the worker dies early)."""
    budget = task.resolved_budget()
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": task.run_id(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "problem": {"name": task.problem, "version": "unknown", "primary_metric": "unknown",
                    "params": {}},
        "solver": {"name": _spec_name(task.solver), "version": "unknown",
                   "spec": _spec_name(task.solver),
                   "hyperparameters": dict(task.hyperparameters)},
        "ruleset": task.ruleset, "seed": task.seed,
        "device": {"type": task.device, "threads": task.threads},
        "hardware": hardware(task.device, task.threads), "versions": versions(),
        "git_revision": git_revision(),
        "budget": {**asdict(budget), "timeout": task.hard_timeout()},
        "task": task_fields(task), "reproduce": reproduce_command(task),
        "status": "error", "error": None, "trace": [], "summary": {},
    }


def task_fields(task: RunTask) -> dict[str, Any]:
    """The task of a record (to re-execute it: ``bilevel-bench verify``), with the solver spec
    stripped of directories like the rest of the record."""
    fields = asdict(task)
    fields["solver"] = _spec_name(task.solver)
    fields["budget"] = asdict(task.resolved_budget())
    return fields


def task_from_record(record: dict[str, Any]) -> RunTask:
    """The task a record was run from (its ``task`` field; for older records, rebuilt from
    the problem, solver, seed, hyperparameters, device, budget and ruleset fields)."""
    fields = record.get("task")
    if not isinstance(fields, dict):
        budget = dict(record.get("budget") or {})
        fields = {"problem": record["problem"]["name"], "solver": record["solver"].get(
                      "spec", record["solver"]["name"]), "seed": record["seed"],
                  "hyperparameters": record["solver"].get("hyperparameters", {}),
                  "device": record["device"].get("type", "cpu"), "budget": budget,
                  "timeout": budget.get("timeout"), "ruleset": record.get("ruleset", "default"),
                  "threads": record["device"].get("threads", 1),
                  "checkpoints_per_decade": record.get("checkpoints_per_decade")}
    known = {f for f in RunTask.__dataclass_fields__}
    fields = {k: v for k, v in fields.items() if k in known}
    budget = fields.get("budget")
    if isinstance(budget, dict):
        fields["budget"] = Budget(**{k: budget.get(k) for k in ("seconds", "oracle_cost",
                                                                 "iterations")})
    fields["hyperparameters"] = dict(fields.get("hyperparameters") or {})
    return RunTask(**fields)


def _spec_name(spec: str) -> str:
    """A solver spec without the directories of a path plugin (records hold no local paths)."""
    return spec.rsplit("/", 1)[-1] if "/" in spec else spec


def finish_record(header: dict, trace: list[dict], status: str, error: dict | None,
                  wall_time: float, evaluation_time: float = 0.0) -> dict[str, Any]:
    """Assemble a record from its header, trace and outcome; computes the summary (the final
    target's first hit and every rung's, counting only checkpoints that pass the LL gate)."""
    problem = header["problem"]
    target, higher = problem.get("target"), problem.get("higher_is_better", False)
    metric = problem["primary_metric"]
    ladder = list(problem.get("ladder") or ([] if target is None else [target]))
    hits = ladder_hits(trace, metric, ladder, higher)
    hit = hits[-1] if hits else None
    last = trace[-1] if trace else {}
    summary = {
        "converged": hit is not None,
        "time_to_target": hit["time"] if hit else None,
        "oracles_to_target": hit["oracle_cost"] if hit else None,
        "iterations_to_target": hit["iteration"] if hit else None,
        "rungs": len(ladder),
        "rungs_reached": sum(h is not None for h in hits),
        "ladder_hits": hits,
        "iterations": last.get("iteration", 0),
        "solver_time": last.get("time", 0.0),
        "solver_wall_time": last.get("wall_time", 0.0),
        "oracle_cost": last.get("oracle_cost", 0.0),
        "wall_time": wall_time,
        "evaluation_time": evaluation_time,
        "final": dict(last.get("metrics", {})),
        "start": dict(header.get("start_metrics") or {}),
    }
    return {**header, "status": status, "error": error, "trace": trace, "summary": summary}


def error_info(exc: BaseException) -> dict[str, str]:
    """Type, message and traceback of an exception, even one whose ``__str__`` raises."""
    try:
        kind = type(exc).__name__
    except BaseException:  # noqa: BLE001
        kind = "<unknown exception type>"
    try:
        trace = "".join(traceback.format_exception(exc))[-8000:]
    except BaseException:  # noqa: BLE001
        trace = f"{kind}: {safe_str(exc)} (traceback unavailable)"
    return {"type": str(kind)[:200], "message": safe_str(exc)[:2000], "traceback": trace}


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = safe_str(exc)
    return "out of memory" in text.lower() or "can't allocate memory" in text


def prepare(task: RunTask, problem: BilevelProblem | None = None
            ) -> tuple[registry.ProblemEntry, BilevelProblem, type[Solver]]:
    """Resolve and check a task before running it: names, compatibility, hyperparameters.
    ``problem``: an instance already built for the task (e.g. its oracle half)."""
    entry = registry.get_problem(task.problem)
    cls = registry.get_solver(task.solver)
    if problem is None:
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


class Evaluation:
    """The evaluator half of a run (trusted code only: no solver is imported here). Builds the
    full problem, evaluates the seeded start (ladder, gate), scores each iterate a solver
    streams (:meth:`score`: shape, dtype, device and finiteness checked, then ``evaluate``
    untimed and uncounted) and assembles the record (:meth:`finish`). ``emit`` streams
    ``("header", dict)``, ``("evaluation", seconds)`` and ``("checkpoint", row)`` events."""

    def __init__(self, task: RunTask, emit: Callable[[str, Any], None] | None = None,
                 problem: BilevelProblem | None = None) -> None:
        self.task = task
        self.emit = emit or (lambda kind, payload: None)
        self.started = time.perf_counter()
        self.header = record_header(task)
        self.trace: list[dict] = []
        self.evaluation_time = 0.0
        self.failure: dict | None = None  # set when the run cannot start
        self.verdict: tuple[str, dict | None] | None = None  # the evaluator's stop decision
        self.run: sandbox.RunUsage | None = None  # the contained run's solver process
        self.start_cpu: float | None = None  # its CPU seconds when it reported, before solver code
        try:
            self.entry = registry.get_problem(task.problem)
            dtype = DTYPES[task.dtype] if task.dtype else None
            self.problem = problem if problem is not None else self.entry.make(
                seed=task.seed, device=task.device, dtype=dtype)
            x0, y0 = seeded_start(self.problem, task.seed)[1:]
            _, self.start = self.evaluate(x0.detach(), y0.detach())
            self.ladder = resolve_ladder(self.entry, self.problem, self.start)
            self.gate = resolve_gate(self.entry, self.problem, self.start)
        except Exception as exc:
            self.failure = error_info(exc)
            return
        problem = self.problem
        self.header["problem"] = {**describe_problem(problem, task),
                                  "target": self.entry.instance.target,
                                  "ladder": list(self.ladder), "ll_gate": self.gate.as_dict(),
                                  "formulation": problem.formulation}
        self.header["start_metrics"] = self.start
        self.header["device"]["name"] = str(problem.device)
        self.header["checkpoints_per_decade"] = self.per_decade()
        self.emit("header", self.header)

    def per_decade(self) -> int:
        return self.task.checkpoints_per_decade or self.entry.instance.checkpoints_per_decade \
            or 20

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[bool, dict[str, float]]:
        t0 = time.perf_counter()
        finite = bool(torch.isfinite(x).all() and torch.isfinite(y).all())
        metric = self.problem.primary_metric
        metrics = self.problem.evaluate(x, y) if finite else {metric: math.nan}
        spent = time.perf_counter() - t0
        self.evaluation_time += spent
        self.emit("evaluation", spent)
        return finite, {str(k): float(v) for k, v in metrics.items()}

    def set_solver(self, description: dict[str, Any], isolation: dict | None = None) -> None:
        """The solver's description and the isolation of its process. A solver process
        reports its isolation first, before any solver code runs; later reports cannot change
        it. The first report is also when the solver process's start-up CPU is read from
        outside it (:meth:`clock_check`)."""
        self.header["solver"] = description
        if isolation is not None and "isolation" not in self.header:
            self.header["isolation"] = isolation
        run = sandbox.latest_run()
        if self.run is None and run is not None and run.forked >= self.started:
            self.run, self.start_cpu = run, sandbox.process_cpu(run.pid)
        self.emit("header", self.header)

    def score(self, point: dict[str, Any], x: torch.Tensor, y: torch.Tensor) -> str | None:
        """Evaluate one streamed iterate with its clocks and counts (``point``: iteration,
        time, wall_time, counts, oracle_cost, samples); returns a stop status or None."""
        try:
            x, y = check_solution((x, y), self.problem)
            finite, metrics = self.evaluate(x, y)
        except Exception as exc:
            self.verdict = ("error", error_info(exc))
            return "error"
        gated = self.gate.passes(metrics, self.start)
        row = {"iteration": point["iteration"], "time": point["time"],
               "wall_time": point["wall_time"], "oracle_cost": point["oracle_cost"],
               "samples": point["samples"], "gate": gated, "metrics": metrics,
               "counts": dict(point["counts"])}
        self.trace.append(row)
        self.emit("checkpoint", row)
        metric = self.problem.primary_metric
        value = metrics.get(metric, math.nan)
        if not finite or not math.isfinite(value):
            self.verdict = ("diverged", {
                "type": "Diverged", "traceback": "",
                "message": f"non-finite {'iterate' if not finite else metric} at iteration "
                           f"{point['iteration']}"})
        elif gated and reached(value, self.entry.instance.target, self.problem.higher_is_better):
            self.verdict = ("converged", None)
        return self.verdict[0] if self.verdict else None

    def finish(self, status: str | None, error: dict | None) -> dict[str, Any]:
        """The record: the evaluator's verdict, unless the solver side reports an error of its
        own after it (a solver that modified the problem's data)."""
        if self.failure is not None:
            status, error = "error", self.failure
        elif self.verdict is not None and not (error and error.get("type") ==
                                               "ProblemDataMutated"):
            status, error = self.verdict
        record = finish_record(self.header, self.trace, status or "error", error,
                               time.perf_counter() - self.started, self.evaluation_time)
        if self.run is not None:
            self.clock_check(record)
        return record

    def clock_check(self, record: dict[str, Any]) -> None:
        """The solver process's CPU seconds measured from outside it, beside the solver time it
        reported (``summary.solver_cpu_external``, ``summary.clock_check``; the figures in
        ``isolation.clock_check``). External: the kernel's accounting of every process of the
        run at reaping (:class:`~bilevel_bench.sandbox.RunUsage`), less the start-up CPU read
        when the solver process first reported (problem built, no solver code run yet). A
        record is flagged when the external figure exceeds the reported one by more than
        ``OFF_CLOCK_ALLOWANCE_SECONDS + OFF_CLOCK_ALLOWANCE_RATIO x reported``: work hidden
        off the clock (at import, in ``__init__``, in a thread while the evaluator scores, in
        a child process). The budget still stops runs on the in-process clock."""
        summary = record["summary"]
        run = self.run
        assert run is not None
        if run.cpu is None or self.start_cpu is None:
            summary["solver_cpu_external"] = None
            summary["clock_check"] = "not measured (the run's processes were not reaped)"
            return
        external = max(run.cpu - self.start_cpu, 0.0)
        reported = float(summary.get("solver_time") or 0.0)
        allowance = (sandbox.OFF_CLOCK_ALLOWANCE_SECONDS
                     + sandbox.OFF_CLOCK_ALLOWANCE_RATIO * reported)
        summary["solver_cpu_external"] = external
        if self.problem.device.type == "cuda":
            verdict = "not compared (on CUDA the solver clock is wall time)"
        elif record["status"] not in ("budget", "converged", "diverged"):
            verdict = "not compared (the run did not end at a checkpoint)"
        elif external > reported + allowance:
            verdict = (f"flagged: {external:.2f} CPU s measured outside the solver process "
                       f"after start-up, {reported:.2f} s on its own clock (allowance "
                       f"{allowance:.2f} s): work done off the clock")
        else:
            verdict = "ok"
        summary["clock_check"] = verdict
        record.setdefault("isolation", {})["clock_check"] = {
            "solver_cpu_external": external, "solver_time": reported,
            "start_up_cpu": self.start_cpu, "allowance": allowance, "verdict": verdict}


class DirectLink:
    """The solver half talking to an :class:`Evaluation` in the same process."""

    def __init__(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        self.ended: tuple[str, dict | None] | None = None

    def describe(self, description: dict[str, Any], isolation: dict | None = None) -> None:
        self.evaluation.set_solver(description, isolation)

    def checkpoint(self, point: dict[str, Any], x: torch.Tensor, y: torch.Tensor) -> str | None:
        return self.evaluation.score(point, x, y)

    def end(self, status: str, error: dict | None) -> None:
        self.ended = (status, error)


def seeded_start(problem: BilevelProblem, seed: int
                 ) -> tuple[torch.Generator, torch.Tensor, torch.Tensor]:
    """Seed torch and draw the initial point (x0, y0) with a seeded generator (identical in the
    solver process and in the evaluator)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x0, y0 = problem.init(generator)
    return generator, x0, y0


def solve(task: RunTask, link: Any, cpu_time: Callable[[], float] = time.process_time,
          problem: BilevelProblem | None = None, isolation: dict | None = None) -> None:
    """The solver half of a run (in the solver process): resolve the solver, build the problem
    (or take ``problem``: its oracle half in a solver process), then ``init``/``step`` on the
    clock and, at each checkpoint, ``solution()`` on the clock and under the counter; stream
    the iterate to ``link`` (``describe``, ``checkpoint`` -> stop status or None, ``end``).
    In a solver process (forked by :class:`~bilevel_bench.sandbox.Template`), the process is
    confined first (:func:`~bilevel_bench.sandbox.confine_solver_process`: data files
    unreadable, no problem rebuilt) and reports its isolation before any solver code runs."""
    isolation = dict(isolation or {})
    if problem is not None:
        warm_up(problem)
    if problem is not None and sandbox.in_solver_process():
        try:
            isolation.update(sandbox.confine_solver_process())
        except Exception as exc:
            link.end("error", error_info(exc))
            return
        name = _spec_name(task.solver)
        link.describe({"name": name, "version": "unknown", "spec": name,
                       "hyperparameters": dict(task.hyperparameters)}, isolation)
    try:
        entry, problem, cls = prepare(task, problem)
        link.describe(describe_solver(cls, task.solver, task.hyperparameters), isolation)
        per_decade = task.checkpoints_per_decade or entry.instance.checkpoints_per_decade or 20
    except Exception as exc:
        link.end("error", error_info(exc))
        return
    budget = task.resolved_budget()
    counter = OracleCounter()
    oracles = Oracles(problem, counter)
    clock = SolverClock(problem.device, cpu_time)
    schedule = IterationSchedule(per_decade)
    generator, x0, y0 = seeded_start(problem, task.seed)
    data_check = DataChecksum(problem)
    solver = cls(**task.hyperparameters)
    iteration = 0
    last = -1

    def checkpoint() -> str | None:
        nonlocal last
        x, y = check_solution(clock.timed(solver.solution), problem)  # timed and counted
        point = {"iteration": iteration, "time": clock.elapsed, "wall_time": clock.wall,
                 **counter.snapshot()}
        point["counts"] = {k: point.pop(k) for k in list(counter.counts)}
        last = iteration
        verdict = link.checkpoint(point, x, y)
        schedule.advance(iteration)
        return verdict

    status, error = None, None
    try:
        clock.timed(lambda: solver.init(oracles, x0.clone(), y0.clone(), generator))
        status = checkpoint()
        while status is None:
            if _exhausted(budget, clock.elapsed, counter.oracle_cost, iteration):
                if last != iteration:
                    status = checkpoint()
                status = status or "budget"
                break
            clock.timed(solver.step)
            iteration += 1
            if schedule.due(iteration):
                status = checkpoint()
    except (Exception, SystemExit) as exc:  # a solver that calls exit() is an error too
        status = "oom" if is_out_of_memory(exc) else "error"
        error = error_info(exc)
    changed = data_check.changed()
    if changed:
        error = {"type": "ProblemDataMutated", "traceback": "",
                 "message": f"the solver modified problem data {changed} in place"}
        status = "error"
    link.end(status, error)


def warm_up(problem: BilevelProblem) -> None:
    """First calls before the solver clock starts: a value, a gradient and Hessian- and
    Jacobian-vector products of ``f`` and ``g`` (two samples of a finite sum) and the
    constraint Jacobian, at a throw-away initial point, uncounted, on the problem's own code
    (no solver code runs). A fresh solver process otherwise pays one-time costs on its clock
    (lazy initialisation in torch's autograd engine: ~0.3 s on the first Hessian-vector
    product on quadratic-benchopt) that a warm process does not. Called before the solver
    process is confined and reports its start-up CPU, so it is not counted as work off the
    clock either. The global RNG is reseeded after it (:func:`seeded_start`); failures are
    ignored (the run then meets them on the clock, as before)."""
    oracles = Oracles(problem)
    oracles.counter.active = False
    try:
        generator = torch.Generator().manual_seed(0)
        x, y = (t.detach() for t in problem.init(generator))
        for level in ("f", "g"):
            n = oracles.n_samples.get(level)
            batch = torch.arange(min(2, int(n)), device=problem.device) if n else None
            _, product = oracles.hvp_operator(level, x, y, batch)
            product(torch.ones_like(y), "y")
            product(torch.ones_like(y), "x")
        if problem.n_constraints:
            oracles.jacobian_h(x, y)
        if problem.device.type == "cuda":
            torch.cuda.synchronize()
    except Exception:  # noqa: BLE001 - a warm-up never fails a run
        pass


def execute(task: RunTask, emit: Callable[[str, Any], None] | None = None,
            cpu_time: Callable[[], float] = time.process_time) -> dict[str, Any]:
    """Run one task in this process and return its record (no isolation: the solver shares the
    problem object with the evaluation; the executors run the two halves in separate processes,
    see :mod:`bilevel_bench.sandbox`). Never raises for solver failures: they become the
    record's status. ``emit(kind, payload)`` streams ``("header", dict)``,
    ``("evaluation", seconds)`` and ``("checkpoint", row)`` events as they happen.
    ``cpu_time`` is the solver clock's time source (see :class:`SolverClock`)."""
    evaluation = Evaluation(task, emit)
    if evaluation.failure is not None:
        return evaluation.finish("error", evaluation.failure)
    link = DirectLink(evaluation)
    solve(task, link, cpu_time, problem=evaluation.problem,
          isolation={"solver_process": "shared with the evaluation (in-process run)"})
    status, error = link.ended or ("error", None)
    return evaluation.finish(status, error)


class SolutionError(ValueError):
    """``solution()`` returned something that is not an (x, y) pair of the problem's shapes."""


def check_solution(out: Any, problem: BilevelProblem) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate what a solver's ``solution()`` returned (a pair of tensors of the problem's
    shapes, dtype and device); raise a SolutionError naming the fix."""
    if not (isinstance(out, tuple | list) and len(out) == 2
            and all(isinstance(t, torch.Tensor) for t in out)):
        raise SolutionError(f"solution() must return a pair (x, y) of tensors, got "
                            f"{safe_str(type(out).__name__)}")
    for label, t, shape in (("x", out[0], problem.x_shape), ("y", out[1], problem.y_shape)):
        if t.shape != shape:
            raise SolutionError(f"solution() returned {label} of shape {tuple(t.shape)}; "
                                f"problem {problem.instance_name!r} expects {tuple(shape)}")
        if t.dtype != problem.dtype:
            raise SolutionError(f"solution() returned {label} of dtype {t.dtype}; the problem "
                                f"is {problem.dtype} (return the iterate in the problem's dtype)")
        if t.device != problem.device:
            raise SolutionError(f"solution() returned {label} on {t.device}; the problem "
                                f"lives on {problem.device}")
    return out[0].detach(), out[1].detach()


#: public problem tensors up to this many elements are checksummed whole; larger ones at this
#: many positions drawn afresh for each run (a run at d = 10,000 reads ~1 MB, not 1.6 GB)
CHECKSUM_SAMPLE = 1 << 16


class DataChecksum:
    """Cheap detection of in-place changes to a problem's public tensors (``data_tensors``)
    during a run: shape, sum and absolute sum of each tensor, taken whole when small and at
    :data:`CHECKSUM_SAMPLE` random positions (drawn from ``os.urandom`` per run) when large.
    Catches a solver that scales, shifts or overwrites its data by accident; a change to a few
    elements of a large tensor can go unnoticed (the evaluation never uses the solver
    process's copy, so this guards honest mistakes, not the evaluation)."""

    def __init__(self, problem: BilevelProblem) -> None:
        self.problem = problem
        generator = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        self.positions: dict[str, tuple[int, torch.Tensor]] = {}
        for key, t in problem.data_tensors().items():
            n = t.numel()
            if n > CHECKSUM_SAMPLE and t.layout == torch.strided and t.is_contiguous():
                self.positions[key] = (n, torch.randint(n, (CHECKSUM_SAMPLE,),
                                                        generator=generator).to(t.device))
        self.before = self.sums()

    def sums(self) -> dict[str, tuple]:
        out = {}
        for key, t in self.problem.data_tensors().items():
            t = t.detach()
            shape = tuple(t.shape)
            if key in self.positions:
                n, index = self.positions[key]
                if t.layout != torch.strided or not t.is_contiguous() or t.numel() != n:
                    out[key] = (shape, "replaced")
                    continue
                t = t.reshape(-1)[index]
            t = t.double() if t.is_floating_point() else t.to(torch.float64)
            out[key] = (shape, float(t.sum()), float(t.abs().sum()))
        return out

    def changed(self) -> list[str]:
        """Keys of the tensors that changed since the run started."""
        return [k for k, v in self.sums().items() if self.before.get(k) != v]


#: data fingerprints per (instance, seed, device, dtype) in this evaluator process
_FINGERPRINTS: dict[tuple, dict[str, str]] = {}


def describe_problem(problem: BilevelProblem, task: RunTask) -> dict[str, Any]:
    """``problem.describe()`` with its data fingerprints computed once per (instance, seed,
    device, dtype) in this process (hashing the data of a large instance costs more than a
    short run)."""
    key = (task.problem, task.seed, str(problem.device), str(problem.dtype),
           type(problem).version)
    fingerprints = _FINGERPRINTS.get(key)
    if fingerprints is None:
        fingerprints = dict(problem.data_fingerprints())
        if len(_FINGERPRINTS) >= 256:
            _FINGERPRINTS.clear()
        _FINGERPRINTS[key] = fingerprints
    try:
        problem.data_fingerprints = lambda: dict(fingerprints)  # type: ignore[method-assign]
    except AttributeError:  # an object that takes no attributes: hash again
        return problem.describe()
    try:
        return problem.describe()
    finally:
        del problem.data_fingerprints


def _exhausted(budget: Budget, seconds: float, cost: float, iterations: int) -> bool:
    return ((budget.seconds is not None and seconds >= budget.seconds)
            or (budget.oracle_cost is not None and cost >= budget.oracle_cost)
            or (budget.iterations is not None and iterations >= budget.iterations))
