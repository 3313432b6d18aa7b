"""``check-solver``: does a plugin follow the contract? (scikit-learn's ``check_estimator`` idea)

Runs in seconds on one instance of the ``toys`` suite with data and finite sums, plus one
with coupled constraints when the solver declares it handles them, and checks: the class
contract (attributes, capabilities, hyperparameter spaces);
``init``/``step``/``solution`` run; the solution is a pair of finite tensors with the problem's
shapes, dtype and device; ``solution`` has no side effects; the same seed gives the same
iterates; problem data is not modified; the evaluation half of the problem is never touched and
the solver keeps no reference to the problem object; oracle calls are counted; a draw from the
search space runs.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from bilevel_bench import registry
from bilevel_bench.errors import BenchError
from bilevel_bench.oracles import Oracles
from bilevel_bench.problem import BilevelProblem
from bilevel_bench.runner import SolutionError, check_solution, start_solver
from bilevel_bench.solver import Solver, validate_solver_class

STEPS = 5
SECONDS_PER_CHECK = 30


@dataclass
class Report:
    solver: str
    results: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(passed for _, passed, _ in self.results)

    def add(self, name: str, passed: bool, message: str = "") -> None:
        self.results.append((name, passed, message))

    def lines(self) -> list[str]:
        out = [f"{'PASS' if ok else 'FAIL'}  {name}" + (f": {msg}" if msg else "")
               for name, ok, msg in self.results]
        failed = sum(not ok for _, ok, _ in self.results)
        out.append(f"{self.solver}: {len(self.results) - failed} passed, {failed} failed")
        return out


class _EvaluationAccessed(Exception):
    pass


@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    def expire(signum, frame):
        raise TimeoutError(f"did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise-equal values, NaN equal to NaN."""
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))


def _trap_evaluation(problem: BilevelProblem) -> None:
    def trap(*args, **kwargs):
        raise _EvaluationAccessed("the solver called problem.evaluate (test data / y*(x))")
    problem.evaluate = trap  # type: ignore[method-assign]


def _run(cls: type[Solver], entry: registry.ProblemEntry, seed: int, params: dict,
         steps: int = STEPS) -> tuple[Solver, BilevelProblem, Oracles, list]:
    problem = entry.make(seed=seed)
    _trap_evaluation(problem)
    solver, oracles = start_solver(problem, cls, params, seed)
    iterates = []
    for _ in range(steps):
        solver.step()
        x, y = solver.solution()
        iterates.append((x.detach().clone(), y.detach().clone()))
    return solver, problem, oracles, iterates


def check_solver(spec: str) -> Report:
    """Run every check on the solver named by ``spec``; never raises for plugin faults."""
    report = Report(spec)
    try:
        cls = registry.load_object(spec) if registry.is_path_spec(spec) else \
            registry.get_solver(spec)
    except BenchError as exc:
        report.add("load", False, str(exc))
        return report
    report.add("load", True)
    contract = validate_solver_class(cls)
    report.add("class contract", not contract, "; ".join(contract))
    if contract:
        return report
    entries = [registry.get_problem(n) for n in registry.suites().get("toys", [])]
    usable = [e for e in entries if not cls.can_solve(e.features(), e.family.provides, "cpu")]
    if not usable:
        report.add("problems", False, "no instance of the `toys` suite matches the solver's "
                   "declared capabilities (needs/handles)")
        return report
    # one instance with coupled constraints (if handled) and one without, preferring one with
    # data tensors and finite sums (it reveals data mutation and mini-batch handling)
    coupled = sorted((e for e in usable if e.features()), key=lambda e: e.name)
    plain = sorted((e for e in usable if not e.features()),
                   key=lambda e: (not e.make().data_tensors(), e.name))
    for entry in coupled[:1] + plain[:1]:
        for name, check in _checks(cls, entry):
            label = f"{name} [{entry.name}]"
            try:
                with _time_limit(SECONDS_PER_CHECK):
                    message = check()
                report.add(label, not message, message or "")
            except _EvaluationAccessed as exc:
                report.add(label, False, str(exc))
            except Exception as exc:  # a plugin fault is a failed check, not a crash
                report.add(label, False, f"raised {type(exc).__name__}: {exc}")
    return report


def _checks(cls: type[Solver], entry: registry.ProblemEntry) -> list[tuple[str, Callable]]:
    defaults = cls.defaults()

    def runs_and_shapes() -> str:
        solver, problem, _, _ = _run(cls, entry, 0, defaults)
        try:
            x, y = check_solution(solver.solution(), problem)
        except SolutionError as exc:
            return str(exc)
        for label, t in (("x", x), ("y", y)):
            if t.dtype != problem.dtype:
                return f"{label} is {t.dtype}, expected the problem's {problem.dtype}"
            if not torch.isfinite(t).all():
                return f"{label} is not finite after {STEPS} steps with the defaults"
        return ""

    def solution_is_pure() -> str:
        solver, _, oracles, _ = _run(cls, entry, 0, defaults)
        before = oracles.counter.oracle_cost
        (x1, y1), (x2, y2) = solver.solution(), solver.solution()
        if not (_same(x1, x2) and _same(y1, y2)):
            return "two calls of solution() returned different values"
        if oracles.counter.oracle_cost != before:
            return "solution() made oracle calls: it must only return the current iterate"
        return ""

    def deterministic() -> str:
        a = _run(cls, entry, 3, defaults)[3]
        b = _run(cls, entry, 3, defaults)[3]
        for k, ((xa, ya), (xb, yb)) in enumerate(zip(a, b, strict=True)):
            if not (_same(xa, xb) and _same(ya, yb)):
                return (f"same seed, different iterates at step {k + 1}: draw randomness "
                        "only from the generator passed to init")
        return ""

    def no_mutation_no_leak() -> str:
        problem = entry.make(seed=0)
        before = {k: v.clone() for k, v in problem.data_tensors().items()}
        _trap_evaluation(problem)
        solver, oracles = start_solver(problem, cls, defaults, 0)
        for _ in range(STEPS):
            solver.step()
        changed = [k for k, v in problem.data_tensors().items()
                   if not torch.equal(v, before[k])]
        if changed:
            return f"problem data {changed} was modified in place"
        leaked = [k for k, v in vars(solver).items() if isinstance(v, BilevelProblem)]
        if leaked:
            return (f"the solver keeps the problem object in {leaked}: use only the Oracles "
                    "view passed to init (evaluation data is off limits)")
        if oracles.counter.oracle_cost <= 0:
            return (f"no counted oracle calls in {STEPS} steps: call f/g/h through the Oracles "
                    "view, not on copies of the data")
        return ""

    def search_space_draw() -> str:
        params = cls.sample_hyperparameters(random.Random(0))
        _run(cls, entry, 0, params, steps=2)
        return ""

    return [("runs, shapes, dtype, device", runs_and_shapes),
            ("solution() is side-effect free", solution_is_pure),
            ("deterministic under a seed", deterministic),
            ("no data mutation, no evaluation access, counted", no_mutation_no_leak),
            ("search-space draw runs", search_space_draw)]
