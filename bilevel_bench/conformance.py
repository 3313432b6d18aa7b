"""``check-solver`` and ``check-problem``: does a plugin follow the contract?
(scikit-learn's ``check_estimator`` idea)

``check_solver``

Runs in seconds on one instance of the ``toys`` suite with data and finite sums, plus one
with coupled constraints when the solver declares it handles them, and checks: the class
contract (attributes, capabilities, hyperparameter spaces);
``init``/``step``/``solution`` run; the solution is a pair of finite tensors with the problem's
shapes, dtype and device; ``solution`` has no side effects; the same seed gives the same
iterates; problem data is not modified; the evaluation half of the problem is never touched and
the solver keeps no reference to the problem object; oracle calls are counted; a draw from the
search space runs.

``check_problem`` builds each instance of a problem plugin and checks, in seconds: the class
contract; shapes, dtype and device of the initial point, of the oracles (``f``, ``g`` scalars,
``h`` of length ``n_constraints``, mini-batches) and of the projections; determinism under a seed
(data, fingerprints, initial point); the oracle/evaluation separation (``evaluate`` neither
changes the problem's data nor what the oracles return, and repeats itself); the evaluation's
metrics (the primary metric present and finite); the hypergradient against central finite
differences of ``ul_value`` when the evaluation reports ``hypergrad_norm`` and x is small; the
target and its ladder well formed and not already met at the initial point; and, when the family
declares a ``reference`` configuration (``{"solver": ..., "hyperparameters": {...},
"iterations": N}``, or such a dict per instance name), that it reaches the target.
"""

from __future__ import annotations

import math
import random
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from bilevel_bench import registry
from bilevel_bench.errors import BenchError, UnknownNameError
from bilevel_bench.oracles import Oracles
from bilevel_bench.problem import ORACLE_FEATURES, BilevelProblem, Instance, reached
from bilevel_bench.runner import SolutionError, check_solution, start_solver
from bilevel_bench.solver import Solver, validate_solver_class

STEPS = 5
SECONDS_PER_CHECK = 30


@dataclass
class Report:
    """The outcome of a conformance check: one (name, status, message) per check, status in
    ``PASS``, ``FAIL``, ``SKIP``; ``load_error`` when the plugin could not even be loaded."""

    subject: str
    results: list[tuple[str, str, str]] = field(default_factory=list)
    load_error: str = ""

    @property
    def solver(self) -> str:  # the name of older callers
        return self.subject

    @property
    def ok(self) -> bool:
        return (not self.load_error and bool(self.results)
                and all(status != "FAIL" for _, status, _ in self.results))

    def add(self, name: str, passed: bool, message: str = "") -> None:
        self.results.append((name, "PASS" if passed else "FAIL", message))

    def skip(self, name: str, message: str) -> None:
        self.results.append((name, "SKIP", message))

    def lines(self) -> list[str]:
        out = [f"{status}  {name}" + (f": {msg}" if msg else "")
               for name, status, msg in self.results]
        counts = {s: sum(status == s for _, status, _ in self.results)
                  for s in ("PASS", "FAIL", "SKIP")}
        out.append(f"{self.subject}: {counts['PASS']} passed, {counts['FAIL']} failed"
                   + (f", {counts['SKIP']} skipped" if counts["SKIP"] else ""))
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


def _oracle_problem(entry: registry.ProblemEntry, seed: int) -> BilevelProblem:
    """The problem as the runner's solver process holds it: its oracle half only (test data,
    exact LL solutions and the evaluation methods replaced by stand-ins that say what was
    touched), with ``evaluate`` trapped."""
    from bilevel_bench.sandbox import oracle_half

    problem = oracle_half(entry.make(seed=seed))[0]
    _trap_evaluation(problem)
    return problem


def _run(cls: type[Solver], entry: registry.ProblemEntry, seed: int, params: dict,
         steps: int = STEPS) -> tuple[Solver, BilevelProblem, Oracles, list]:
    problem = _oracle_problem(entry, seed)
    solver, oracles = start_solver(problem, cls, params, seed)
    iterates = []
    for _ in range(steps):
        solver.step()
        x, y = solver.solution()
        iterates.append((x.detach().clone(), y.detach().clone()))
    return solver, problem, oracles, iterates


def check_solver(spec: str, sandbox: bool = True) -> Report:
    """Run every check on the solver named by ``spec``; never raises for plugin faults. The
    checks in this process see only the oracle half of each problem; one more check runs the
    solver as the runner does (a fresh solver process holding the oracle half, the evaluation
    in another process; inside bubblewrap with ``sandbox`` where it is available, else
    contained without it, and the check's message says why)."""
    report = Report(spec)
    unsandboxed = ""
    if sandbox:
        from bilevel_bench.sandbox import bwrap_problem

        unsandboxed = bwrap_problem() or ""
        sandbox = not unsandboxed
    try:
        cls = registry.load_object(spec) if registry.is_path_spec(spec) else \
            registry.get_solver(spec)
    except BenchError as exc:
        report.load_error = str(exc)
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
        passed, message = _contained_run(spec, entry, sandbox)
        report.add(f"contained run [{entry.name}]", passed,
                   message + (f" ({unsandboxed})" if unsandboxed else ""))
    return report


def _contained_run(spec: str, entry: registry.ProblemEntry, sandbox: bool) -> tuple[bool, str]:
    """A short run through the runner's containment (:class:`~bilevel_bench.executors.
    LocalPool`): fails with the record's error (e.g. what evaluation-only part it touched)."""
    from bilevel_bench.executors import LocalPool, plugin_folders
    from bilevel_bench.problem import Budget
    from bilevel_bench.runner import RunTask

    task = RunTask(entry.name, spec, seed=0, budget=Budget(seconds=10.0, iterations=4 * STEPS),
                   timeout=60.0)
    records: list[dict] = []
    LocalPool(workers=1, sandbox=sandbox, visible=plugin_folders([spec])).map(
        [task], records.append)
    record = records[0]
    where = "in a bubblewrap sandbox" if sandbox else "without a sandbox"
    if record["status"] in ("error", "timeout", "oom"):
        error = record.get("error") or {}
        return False, (f"{record['status']} {where}: {error.get('type')}: "
                       f"{str(error.get('message'))[:500]}")
    return True, f"{record['status']} after {record['summary'].get('iterations')} iterations " \
                 f"{where}"


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
        problem = _oracle_problem(entry, 0)
        before = {k: v.clone() for k, v in problem.data_tensors().items()}
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


# ---------------------------------------------------------------------- problems
#: instances checked at most per call (a family may declare many)
MAX_INSTANCES = 8
#: largest x for the finite-difference hypergradient check (2 evaluations per coordinate)
FD_MAX_DIM = 16


def _problem_entries(spec: str) -> tuple[type, list[registry.ProblemEntry]]:
    """The family and instances named by ``spec``: an instance name, a family name, or a
    ``path/to/file.py:Class[:instance]`` / ``module:Class[:instance]`` spec. A family that
    breaks the class contract comes with no instances."""
    known = registry.problems()
    if spec in known:
        return known[spec].family, [known[spec]]
    family = [e for _, e in sorted(known.items()) if e.family.name == spec]
    if family:
        return family[0].family, family
    if ":" not in spec:
        registry.get_problem(spec)  # raises the unknown-name error with suggestions
    source, instance = spec, ""
    if spec.count(":") >= 2:
        source, _, instance = spec.rpartition(":")
    obj = registry.load_object(source)
    for cls in obj if isinstance(obj, list | tuple) else [obj]:
        if validate_problem_class(cls):
            return cls, []
    families = list(registry._families(obj, source))
    entries = [e for fam, src in families for e in registry.family_entries(fam, src).values()]
    if instance:
        chosen = [e for e in entries if e.name == instance]
        if not chosen:
            raise UnknownNameError(f"{source!r} declares no instance {instance!r}; it declares "
                                   + ", ".join(sorted(e.name for e in entries)))
        entries = chosen
    return families[0][0], entries


def check_problem(spec: str) -> Report:
    """Run every problem check on the instances named by ``spec``; never raises for plugin
    faults (a load failure is ``report.load_error``)."""
    report = Report(spec)
    try:
        family, entries = _problem_entries(spec)
    except BenchError as exc:
        report.load_error = str(exc)
        return report
    contract = validate_problem_class(family)
    label = getattr(family, "__name__", repr(family))
    report.add(f"class contract [{label}]", not contract, "; ".join(contract))
    if contract:
        return report
    for entry in entries[:MAX_INSTANCES]:
        for name, check in _problem_checks(entry):
            label = f"{name} [{entry.name}]"
            try:
                with _time_limit(SECONDS_PER_CHECK):
                    message = check()
            except _Skip as exc:
                report.skip(label, str(exc))
                continue
            except Exception as exc:  # a plugin fault is a failed check, not a crash
                message = f"raised {type(exc).__name__}: {exc}"
            report.add(label, not message, message or "")
            if name == "builds" and message:
                break  # nothing else can run on this instance
    if len(entries) > MAX_INSTANCES:
        report.skip("instances", f"checked the first {MAX_INSTANCES} of {len(entries)}; name "
                    "one instance to check it")
    return report


class _Skip(Exception):
    """A check that does not apply to this problem (reported as SKIP, with the reason)."""


def validate_problem_class(cls: object) -> list[str]:
    """Contract problems of a problem family class, as readable sentences (empty: fine)."""
    if not (isinstance(cls, type) and issubclass(cls, BilevelProblem)):
        return [f"{cls!r} is not a subclass of bilevel_bench.BilevelProblem"]
    problems: list[str] = []
    for attr in ("name", "version", "citation", "primary_metric"):
        value = getattr(cls, attr, "")
        if not isinstance(value, str) or not value.strip():
            problems.append(f"class attribute `{attr}` must be a non-empty string")
    if not set(cls.provides) <= ORACLE_FEATURES:
        problems.append(f"`provides` may only contain {sorted(ORACLE_FEATURES)}, "
                        f"got {sorted(cls.provides)}")
    if not cls.instances:
        problems.append("`instances` must declare at least one Instance")
    for name, inst in dict(cls.instances).items():
        if not isinstance(inst, Instance):
            problems.append(f"instance {name!r} must be an Instance, got {inst!r:.60}")
        elif not (isinstance(inst.target, int | float) and math.isfinite(inst.target)):
            problems.append(f"instance {name!r}: target must be a finite number")
        elif any(c.isspace() for c in name) or ":" in name:
            problems.append(f"instance name {name!r} must not contain white space or ':'")
    for method in ("f", "g", "init", "evaluate"):
        if getattr(cls, method) is getattr(BilevelProblem, method):
            problems.append(f"method `{method}` is not implemented")
    return problems


def _scalar(value: object, what: str, problem: BilevelProblem) -> str:
    if not isinstance(value, torch.Tensor):
        return f"{what} returned {type(value).__name__}, not a tensor"
    if value.numel() != 1 or value.dim() > 1:
        return f"{what} returned shape {tuple(value.shape)}, expected a scalar"
    if value.dtype != problem.dtype:
        return f"{what} is {value.dtype}, expected the problem's {problem.dtype}"
    if not torch.isfinite(value).all():
        return f"{what} is not finite at the initial point"
    return ""


def _problem_checks(entry: registry.ProblemEntry) -> list[tuple[str, Callable[[], str]]]:
    state: dict[str, object] = {}

    def start() -> tuple[BilevelProblem, torch.Tensor, torch.Tensor]:
        if "problem" not in state:
            problem = entry.make(seed=0)
            x0, y0 = problem.init(torch.Generator().manual_seed(0))
            state.update(problem=problem, x0=x0, y0=y0)
        return state["problem"], state["x0"], state["y0"]  # type: ignore[return-value]

    def builds() -> str:
        problem, x0, y0 = start()
        for label, shape in (("x_shape", getattr(problem, "x_shape", None)),
                             ("y_shape", getattr(problem, "y_shape", None))):
            if not isinstance(shape, torch.Size):
                return f"`{label}` must be a torch.Size set in __init__, got {shape!r:.40}"
        for label, t, shape in (("x0", x0, problem.x_shape), ("y0", y0, problem.y_shape)):
            if not isinstance(t, torch.Tensor):
                return f"init() must return a pair of tensors; {label} is {type(t).__name__}"
            if t.shape != shape or t.dtype != problem.dtype or t.device != problem.device:
                return (f"init() returned {label} {tuple(t.shape)} {t.dtype} on {t.device}; "
                        f"expected {tuple(shape)} {problem.dtype} on {problem.device}")
            if not torch.isfinite(t).all():
                return f"init() returned a non-finite {label}"
        try:
            problem.describe()
        except Exception as exc:
            return f"describe() (the problem part of a run record) raised {exc!r:.80}"
        return ""

    def oracles() -> str:
        problem, x0, y0 = start()
        for level in ("f", "g"):
            xr, yr = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
            value = getattr(problem, level)(xr, yr)
            message = _scalar(value, f"{level}(x0, y0)", problem)
            if message:
                return message
            grads = torch.autograd.grad(value, (xr, yr), allow_unused=True)
            if level == "g" and grads[1] is None:
                return "g does not depend on y (autograd): the lower level has no variable"
            n = dict(problem.n_samples).get(level)
            if n:
                batch = torch.arange(min(4, int(n)), device=problem.device)
                message = _scalar(getattr(problem, level)(x0, y0, batch),
                                  f"{level}(x0, y0, batch)", problem)
                if message:
                    return message
        if problem.n_constraints:
            h = problem.h(x0, y0)
            if not isinstance(h, torch.Tensor) or h.shape != (problem.n_constraints,):
                return (f"h(x0, y0) must be a vector of length n_constraints = "
                        f"{problem.n_constraints}, got {getattr(h, 'shape', h)!r}")
        for label, projected, t in (("project_x", problem.project_x(x0), x0),
                                    ("project_y", problem.project_y(x0, y0), y0)):
            if projected.shape != t.shape or projected.dtype != t.dtype:
                return f"{label} changed the shape or dtype of its argument"
        return ""

    def deterministic() -> str:
        a, b = entry.make(seed=3), entry.make(seed=3)
        da, db = a.data_tensors(), b.data_tensors()
        if da.keys() != db.keys() or any(not _same(da[k], db[k]) for k in da):
            return "two builds with the same seed hold different data"
        if a.data_fingerprints() != b.data_fingerprints():
            return "two builds with the same seed report different data fingerprints"
        (xa, ya), (xb, yb) = (p.init(torch.Generator().manual_seed(3)) for p in (a, b))
        if not (_same(xa, xb) and _same(ya, yb)):
            return ("init() differs under the same seed: draw randomness only from the "
                    "generator passed to init (and the seed passed to __init__)")
        return ""

    def separation() -> str:
        problem, x0, y0 = start()
        before = {k: v.clone() for k, v in problem.data_tensors().items()}
        values = (problem.f(x0, y0).detach().clone(), problem.g(x0, y0).detach().clone())
        first = problem.evaluate(x0.clone(), y0.clone())
        second = problem.evaluate(x0.clone(), y0.clone())
        changed = [k for k, v in problem.data_tensors().items()
                   if k not in before or not torch.equal(v, before[k])]
        if changed:
            return (f"evaluate() changed the public data {changed}: keep its caches in "
                    "attributes starting with '_'")
        after = (problem.f(x0, y0).detach(), problem.g(x0, y0).detach())
        if not all(_same(a, b) for a, b in zip(values, after, strict=True)):
            return "f or g returns other values after evaluate(): the halves share state"
        if not isinstance(first, dict) or not all(isinstance(k, str) for k in first):
            return f"evaluate() must return a dict of metric name -> float, got {first!r:.60}"
        if first.keys() != second.keys() or any(
                not (first[k] == second[k] or (_nan(first[k]) and _nan(second[k])))
                for k in first):
            return "evaluate() gives different metrics for the same (x, y)"
        state["metrics"] = first
        return ""

    def metrics() -> str:
        problem, x0, y0 = start()
        found = state.get("metrics") or problem.evaluate(x0, y0)
        assert isinstance(found, dict)
        if problem.primary_metric not in found:
            return (f"evaluate() lacks the primary metric {problem.primary_metric!r} "
                    f"(it returned {sorted(found)})")
        bad = [k for k, v in found.items() if not isinstance(v, int | float)]
        if bad:
            return f"metrics {bad} are not plain numbers (use float(...))"
        if not math.isfinite(found[problem.primary_metric]):
            return f"{problem.primary_metric} is not finite at the initial point"
        return ""

    def hypergradient() -> str:
        problem, x0, _ = start()
        found = state.get("metrics") or problem.evaluate(x0, state["y0"])
        assert isinstance(found, dict)
        if "ul_value" not in found or "hypergrad_norm" not in found:
            raise _Skip("evaluate() does not report both ul_value and hypergrad_norm")
        dim = x0.numel()
        if dim > FD_MAX_DIM:
            raise _Skip(f"x has {dim} > {FD_MAX_DIM} coordinates (finite differences too "
                        "costly here)")
        y0 = state["y0"]
        x = x0.detach().to(torch.float64)
        eps = 1e-5 * max(1.0, float(x.abs().max()))
        grad = torch.zeros_like(x).reshape(-1)
        for i in range(dim):
            step = torch.zeros_like(grad)
            step[i] = eps
            step = step.reshape(x.shape).to(problem.dtype)
            plus = problem.evaluate(x0 + step, y0)["ul_value"]
            minus = problem.evaluate(x0 - step, y0)["ul_value"]
            grad[i] = (plus - minus) / (2 * eps)
        expected = float(problem.gradient_mapping(x0, grad.reshape(x.shape).to(problem.dtype))
                         .norm())
        reported = float(found["hypergrad_norm"])
        if not math.isclose(reported, expected, rel_tol=1e-3, abs_tol=1e-5):
            return (f"hypergrad_norm {reported:.6g} at x0, but central finite differences of "
                    f"ul_value give {expected:.6g}")
        return ""

    def target() -> str:
        problem, x0, y0 = start()
        inst = entry.instance
        ladder = getattr(inst, "ladder", None)
        if ladder is not None:
            from bilevel_bench import problem as problem_module

            check = getattr(problem_module, "check_ladder", None)
            if check is not None:
                try:
                    check(entry.name, ladder, inst.target, problem.higher_is_better)
                except ValueError as exc:
                    return str(exc)
        found = state.get("metrics") or problem.evaluate(x0, y0)
        assert isinstance(found, dict)
        start_value = float(found.get(problem.primary_metric, math.nan))
        if reached(start_value, inst.target, problem.higher_is_better):
            return (f"the initial point already meets the target ({problem.primary_metric} = "
                    f"{start_value:g}, target {inst.target:g}): nothing to solve")
        return ""

    def reachable() -> str:
        reference = _reference(entry)
        if reference is None:
            raise _Skip("no `reference` configuration declared on the family")
        return _reach(entry, reference)

    return [("builds", builds), ("oracles: shapes, dtype, batches, projections", oracles),
            ("deterministic under a seed", deterministic),
            ("oracle/evaluation separation", separation),
            ("evaluation metrics", metrics),
            ("hypergradient vs finite differences", hypergradient),
            ("target (and ladder) well formed", target),
            ("target reachable by the reference configuration", reachable)]


def _nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _reference(entry: registry.ProblemEntry) -> dict | None:
    reference = getattr(entry.family, "reference", None)
    if isinstance(reference, dict) and entry.name in reference:
        reference = reference[entry.name]
    if isinstance(reference, dict) and "solver" in reference:
        return reference
    return None


def _reach(entry: registry.ProblemEntry, reference: dict) -> str:
    cls = registry.get_solver(str(reference["solver"]))
    params = dict(reference.get("hyperparameters", {}))
    iterations = int(reference.get("iterations", 1000))
    problem = entry.make(seed=0)
    solver, _ = start_solver(problem, cls, params, 0)
    every = max(1, iterations // 50)
    value = math.nan
    for k in range(1, iterations + 1):
        solver.step()
        if k % every == 0 or k == iterations:
            x, y = check_solution(solver.solution(), problem)
            value = float(problem.evaluate(x, y)[problem.primary_metric])
            if reached(value, entry.instance.target, problem.higher_is_better):
                return ""
    return (f"{cls.name} with {params or 'its defaults'} did not reach the target "
            f"{entry.instance.target:g} in {iterations} iterations "
            f"({problem.primary_metric} = {value:g})")
