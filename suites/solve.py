"""asv benchmarks: every registered solver on every problem instance of a suite.

Parameters are ``problem`` (the instances of ``BILEVEL_BENCH_ASV_SUITE``, default ``toys``) and
``solver`` (``BILEVEL_BENCH_ASV_SOLVERS``, a comma-separated list of registered names or
``path/to/file.py:Class`` specs; default: every registered solver, installed plugins included).
A relative file spec is resolved against the folder asv was launched from (``$PWD``; asv runs
the benchmarks from a temporary folder), then the repository root. Solvers appear under their
``name`` (a file plugin too, not its path). A solver whose optional library is not installed is
skipped (``n/a``) like an incompatible combination; the reason names the install command.

One solve per combination serves every figure: the module-level :func:`setup_cache` runs each
compatible combination once through the runner (``bilevel_bench.runner.execute``, seed 0, the
instance's budget capped at ``BILEVEL_BENCH_ASV_SECONDS`` seconds of solver time, default 1) and
keeps its summary. Then

* ``SolveToTarget.time_solve`` times a bare solve to target: ``init`` plus the recorded number of
  iterations to target, without checkpoint evaluation (same seed, so the same trajectory);
* ``SolveToTarget.peakmem_solve`` is the peak memory of that solve;
* ``SolveFigures.track_oracles_to_target`` is the oracle cost at the target (full-batch
  equivalent oracle calls, as in run records);
* ``SolveFigures.track_final_gap`` is the final ``ul_gap`` (clipped below at ``GAP_FLOOR`` so it
  stays positive, for asv's log plots).

All figures are lower-is-better. A combination the solver cannot handle (declared capabilities,
:meth:`bilevel_bench.solver.Solver.can_solve`) is skipped (asv shows ``n/a``), as are the timings
of a run that did not reach the target within the budget: it has no time to target, and its
``track_oracles_to_target`` is NaN (``n/a``). ``track_final_gap`` is NaN when the run diverged or
the problem does not report ``ul_gap``. A run that ended in an error fails its benchmarks (and
``asv run`` exits non-zero): that is a solver or problem bug, not a skip.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bilevel_bench import matrix, registry, runner
from bilevel_bench.oracles import Oracles
from bilevel_bench.problem import BilevelProblem
from bilevel_bench.solver import Solver

#: the lowest value ``track_final_gap`` reports (asv plots track figures on a log scale)
GAP_FLOOR = 1e-12
SEED = 0
FAILED = ("error", "oom", "timeout")


@dataclass(frozen=True)
class Config:
    """What the benchmarks run, read from environment variables at import time."""

    suite: str
    solvers: tuple[str, ...]  # specs: registered names or absolute path/to/file.py:Class
    seconds: float
    device: str

    @classmethod
    def from_environment(cls) -> Config:
        """Read ``BILEVEL_BENCH_ASV_{SUITE,SOLVERS,SECONDS,DEVICE}``."""
        names = os.environ.get("BILEVEL_BENCH_ASV_SOLVERS", "")
        solvers = tuple(resolve_spec(s.strip()) for s in names.split(",") if s.strip())
        return cls(
            suite=os.environ.get("BILEVEL_BENCH_ASV_SUITE", "toys"),
            solvers=solvers or tuple(sorted(registry.solvers())),
            seconds=float(os.environ.get("BILEVEL_BENCH_ASV_SECONDS", "1")),
            device=os.environ.get("BILEVEL_BENCH_ASV_DEVICE", "cpu"),
        )

    def names(self) -> dict[str, str]:
        """Display name (the solver's ``name``; the parameter asv shows) -> spec."""
        table: dict[str, str] = {}
        for spec in self.solvers:
            cls = registry.get_solver(spec)  # unknown names fail at discovery, clearly
            name = cls.name if registry.is_path_spec(spec) else spec
            if name in table:
                raise ValueError(f"BILEVEL_BENCH_ASV_SOLVERS names {name!r} twice "
                                 f"({table[name]} and {spec})")
            table[name] = spec
        return table

    def task(self, problem: str, solver: str) -> runner.RunTask | str:
        """The run task of one combination (solver by display name or spec), or the reason
        the solver cannot run it."""
        spec = SPECS.get(solver, solver)
        plan = matrix.plan([problem], [spec], [SEED], device=self.device,
                           budget={"seconds": self.seconds})
        return plan.tasks[0] if plan.tasks else plan.skipped[0][2]


#: the repository root (suites/ lives in it)
REPO = Path(__file__).resolve().parents[1]


def resolve_spec(spec: str) -> str:
    """A registered name as is; a ``path/to/file.py:Class`` spec with an absolute path: a
    relative path is looked up from the launch folder (``$BILEVEL_BENCH_ASV_CWD``, else
    ``$PWD``), the current folder, then the repository root."""
    if not registry.is_path_spec(spec):
        return spec
    path, sep, attr = spec.rpartition(":")
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return spec
    bases = [Path(os.environ[var]) for var in ("BILEVEL_BENCH_ASV_CWD", "PWD")
             if os.environ.get(var)]
    for base in [*bases, Path.cwd(), REPO]:
        if (base / candidate).is_file():
            return f"{(base / candidate).resolve()}{sep}{attr}"
    raise FileNotFoundError(
        f"BILEVEL_BENCH_ASV_SOLVERS: plugin file {path!r} not found from "
        f"{', '.join(str(b) for b in [*bases, REPO])}; give a path from where you run asv")


CONFIG = Config.from_environment()
PROBLEMS = list(registry.get_suite(CONFIG.suite))
#: display name -> spec
SPECS = CONFIG.names()
SOLVERS = list(SPECS)


def setup_cache() -> dict[tuple[str, str], dict[str, Any]]:
    """Run every compatible combination once; keep what the benchmarks need of each record."""
    cache: dict[tuple[str, str], dict[str, Any]] = {}
    for problem in PROBLEMS:
        for solver in SOLVERS:
            task = CONFIG.task(problem, solver)
            if isinstance(task, str):
                cache[problem, solver] = {"skip": task}
                continue
            record = runner.execute(task)
            cache[problem, solver] = {
                "status": record["status"], "error": record["error"], **record["summary"]}
    return cache


# one solve per combination, however long the matrix: allow its budgets plus evaluation
setup_cache.timeout = len(PROBLEMS) * len(SOLVERS) * (3 * CONFIG.seconds + 30)


@dataclass
class Start:
    """A problem instance and its initial point, as the runner builds them for one seed."""

    problem: BilevelProblem
    solver: type[Solver]
    hyperparameters: dict[str, Any]
    x0: torch.Tensor
    y0: torch.Tensor
    generator_state: torch.Tensor
    seed: int

    @classmethod
    def of(cls, task: runner.RunTask) -> Start:
        """Build the problem and initial point exactly as :func:`runner.execute` does."""
        _entry, problem, solver = runner.prepare(task)
        torch.manual_seed(task.seed)
        generator = torch.Generator().manual_seed(task.seed)
        x0, y0 = problem.init(generator)
        return cls(problem, solver, dict(task.hyperparameters), x0, y0,
                   generator.get_state(), task.seed)

    def solve(self, iterations: int) -> Solver:
        """A bare solve: ``init`` and ``iterations`` steps, no clock, no checkpoints."""
        torch.manual_seed(self.seed)
        generator = torch.Generator()
        generator.set_state(self.generator_state)
        solver = self.solver(**self.hyperparameters)
        solver.init(Oracles(self.problem), self.x0.clone(), self.y0.clone(), generator)
        for _ in range(iterations):
            solver.step()
        if self.problem.device.type == "cuda":
            torch.cuda.synchronize()
        return solver


def cached_run(cache: dict, problem: str, solver: str) -> dict[str, Any]:
    """The cached summary of a combination; skips (``NotImplementedError``) incompatible ones
    and fails on runs that ended in an error."""
    run = cache.get((problem, solver))
    if run is None:
        raise NotImplementedError(f"{solver} on {problem} was not run (parameters changed?)")
    if "skip" in run:
        raise NotImplementedError(f"{solver} cannot run {problem}: it {run['skip']}")
    if run["status"] in FAILED:
        error = run["error"] or {}
        raise RuntimeError(f"{solver} on {problem} ended with status {run['status']}: "
                           f"{error.get('type')}: {error.get('message')}")
    return run


class _Combination:
    """Common parameters and setup of the benchmarks over (problem, solver)."""

    params = [PROBLEMS, SOLVERS]
    param_names = ["problem", "solver"]
    timeout = 3 * CONFIG.seconds + 120

    def setup(self, cache: dict, problem: str, solver: str) -> None:
        self.run = cached_run(cache, problem, solver)


class SolveToTarget(_Combination):
    """Wall time and peak memory of a solve to target (bare: no evaluation, no clock)."""

    number = 1
    repeat = (1, 5, 10.0)
    warmup_time = 0.0

    def setup(self, cache: dict, problem: str, solver: str) -> None:
        super().setup(cache, problem, solver)
        if not self.run["converged"]:
            raise NotImplementedError(
                f"{solver} did not reach the target of {problem} within the budget "
                f"(status {self.run['status']}): no time to target")
        task = CONFIG.task(problem, solver)
        assert not isinstance(task, str)
        self.start = Start.of(task)
        self.iterations = int(self.run["iterations_to_target"])

    def time_solve(self, cache: dict, problem: str, solver: str) -> None:
        """Seconds for ``init`` plus the iterations to target."""
        self.start.solve(self.iterations)

    def peakmem_solve(self, cache: dict, problem: str, solver: str) -> None:
        """Peak resident memory of the process during the solve."""
        self.start.solve(self.iterations)


class SolveFigures(_Combination):
    """Hardware-independent figures of the cached solve (lower is better)."""

    def track_oracles_to_target(self, cache: dict, problem: str, solver: str) -> float:
        """Oracle cost (full-batch-equivalent calls) to reach the target; NaN if not reached."""
        value = self.run["oracles_to_target"]
        return math.nan if value is None else max(float(value), GAP_FLOOR)

    track_oracles_to_target.unit = "oracle calls"

    def track_final_gap(self, cache: dict, problem: str, solver: str) -> float:
        """Final ``ul_gap`` (floored at ``GAP_FLOOR``); NaN if diverged or not reported."""
        value = float(self.run["final"].get("ul_gap", math.nan))
        return max(value, GAP_FLOOR) if math.isfinite(value) else math.nan

    track_final_gap.unit = "ul_gap"
