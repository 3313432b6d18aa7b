"""The canary check of protocol v3: no solver that does no bilevel work may reach a target.

A *canary* is a registered solver with ``canary = True`` (``baselines/canaries.py`` and
``direct-mixing``). :func:`check` runs one canary on one instance and seed, in-process, for a
number of **iterations** (never a CPU-time budget), and lets the evaluator pick the canary's
best value, which is generous to the canary:

* every configuration of the canary's :class:`~bilevel_bench.solver.Choice` hyperparameters is
  run (the data-blind grid: the evaluator picks the member);
* the iterate is evaluated at every iteration up to :data:`DENSE`, then at about
  :data:`SPARSE` log-spaced iterations up to the last (the zero-oracle random search is scored
  on each of its first :data:`DENSE` points); a checkpoint whose (x, y) equals the previous
  one's is not evaluated again;
* a checkpoint counts only if it passes the instance's LL gate, as in a run
  (:func:`bilevel_bench.runner.resolve_gate`), and is scored on the instance's ladder
  (:func:`bilevel_bench.runner.resolve_ladder`: the declared one or the default one from the
  seed's start).

The canary *fails the instance* when its best counted value meets the third rung from the top
(so the final target or any of the top three rungs); :func:`check` reports the value, the
configuration and iteration that gave it, and the rungs reached.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bilevel_bench import registry
from bilevel_bench.problem import BilevelProblem, reached
from bilevel_bench.runner import resolve_gate, resolve_ladder, start_solver
from bilevel_bench.solver import Choice, Solver

#: every iteration up to this one is evaluated
DENSE = 32
#: about this many log-spaced evaluations after :data:`DENSE`
SPARSE = 16
#: the rung, counted from the top, that no canary may reach (3: the top three rungs)
TOP_RUNGS = 3


@dataclass(frozen=True)
class CanaryOutcome:
    """One canary on one instance and seed. ``value``: its best primary metric over the
    checkpoints that pass the LL gate (NaN if none does); ``best_ungated``: the best over all
    checkpoints; ``where``: the configuration and iteration of ``value``; ``rungs_reached`` of
    ``rungs``; ``forbidden``: the rung it must not reach (the third from the top)."""

    instance: str
    canary: str
    seed: int
    value: float
    best_ungated: float
    where: str
    rungs_reached: int
    rungs: int
    target: float
    forbidden: float
    higher_is_better: bool
    iterations: int

    @property
    def fails(self) -> bool:
        """Whether the canary reached the forbidden rung (the instance must be reformulated)."""
        return reached(self.value, self.forbidden, self.higher_is_better)

    def message(self) -> str:
        """A sentence naming the instance, the canary and the value reached."""
        verb = "reaches" if self.fails else "misses"
        return (f"canary {self.canary!r} {verb} the top {TOP_RUNGS} rungs of {self.instance!r} "
                f"(seed {self.seed}): best gated value {self.value:.6g} at {self.where}; "
                f"rung {self.rungs - TOP_RUNGS + 1} of {self.rungs} is {self.forbidden:.6g}, "
                f"final target {self.target:.6g}; {self.rungs_reached} rungs reached")


def canaries() -> list[str]:
    """Names of the registered canary solvers."""
    return sorted(name for name, cls in registry.solvers().items() if cls.canary)


def configurations(cls: type[Solver]) -> list[dict[str, Any]]:
    """Every combination of the values of the solver's :class:`Choice` hyperparameters
    (``[{}]`` if it has none): the grid the evaluator picks the canary's best member from."""
    keys = [k for k, spec in cls.hyperparameters.items() if isinstance(spec.space, Choice)]
    values = [list(cls.hyperparameters[k].space.values) for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def checkpoints(iterations: int) -> list[int]:
    """Iterations at which the iterate is evaluated: 1..DENSE, then log-spaced, and the last."""
    dense = set(range(1, min(iterations, DENSE) + 1))
    if iterations > DENSE:
        ratio = (iterations / DENSE) ** (1.0 / SPARSE)
        dense |= {min(iterations, round(DENSE * ratio**k)) for k in range(1, SPARSE + 1)}
    dense.add(iterations)
    return sorted(dense)


def check(instance: str, canary: str, seed: int = 0, iterations: int = DENSE,
          problem: BilevelProblem | None = None) -> CanaryOutcome | str:
    """Run ``canary`` on ``instance`` for ``iterations`` iterations per configuration and
    return its outcome, or the reason it cannot run there (a string). ``problem``: the
    instance already built for ``seed`` (shared across canaries; canaries never modify it)."""
    entry = registry.get_problem(instance)
    cls = registry.get_solver(canary)
    problem = problem if problem is not None else entry.make(seed=seed)
    reason = cls.can_solve(problem.features, problem.provides, "cpu")
    if reason:
        return reason
    higher = problem.higher_is_better
    x0, y0 = problem.init(torch.Generator().manual_seed(seed))
    start = problem.evaluate(x0, y0)
    gate, ladder = resolve_gate(entry, problem, start), resolve_ladder(entry, problem, start)
    metric = problem.primary_metric
    worst = -math.inf if higher else math.inf
    best, best_ungated, where = worst, worst, "no gated checkpoint"
    marks = checkpoints(iterations)
    for config in configurations(cls):
        solver, _ = start_solver(problem, cls, config, seed)
        label = getattr(solver, "label", "") or ", ".join(f"{k}={v}" for k, v in config.items())
        seen: tuple[torch.Tensor, torch.Tensor] | None = None
        for k in range(1, iterations + 1):
            solver.step()
            if k not in marks:
                continue
            x, y = solver.solution()
            if seen is not None and torch.equal(seen[0], x) and torch.equal(seen[1], y):
                continue  # the same point as the last checkpoint: the same metrics
            seen = (x.detach().clone(), y.detach().clone())
            metrics = problem.evaluate(x, y)
            value = metrics.get(metric, math.nan)
            if not math.isfinite(value):
                continue
            if _better(value, best_ungated, higher):
                best_ungated = value
            if gate.passes(metrics, start) and _better(value, best, higher):
                best, where = value, f"iteration {k}" + (f" ({label})" if label else "")
    value = best if math.isfinite(best) else math.nan
    forbidden = ladder[max(len(ladder) - TOP_RUNGS, 0)]
    return CanaryOutcome(
        instance=instance, canary=canary, seed=seed, value=value,
        best_ungated=best_ungated if math.isfinite(best_ungated) else math.nan, where=where,
        rungs_reached=sum(reached(value, rung, higher) for rung in ladder), rungs=len(ladder),
        target=entry.instance.target, forbidden=forbidden, higher_is_better=higher,
        iterations=iterations)


def _better(value: float, than: float, higher: bool) -> bool:
    return value > than if higher else value < than


def check_all(instance: str, names: Sequence[str] | None = None, seed: int = 0,
              iterations: int = DENSE) -> dict[str, CanaryOutcome | str]:
    """:func:`check` for every canary (or ``names``) on one instance, built once."""
    problem = registry.get_problem(instance).make(seed=seed)
    return {name: check(instance, name, seed, iterations, problem)
            for name in (names if names is not None else canaries())}
