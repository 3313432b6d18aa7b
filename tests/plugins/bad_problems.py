"""Deliberately broken problem plugins: each breaks one rule that check-problem must catch.
They all derive from the README's example (examples/my_problem.py), which passes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from bilevel_bench import Instance

_spec = importlib.util.spec_from_file_location(
    "bilevel_bench_example_problem", Path(__file__).parents[2] / "examples" / "my_problem.py")
assert _spec is not None and _spec.loader is not None
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)
RidgeBilevel = _example.RidgeBilevel


def _instance(name: str, **changes) -> dict[str, Instance]:
    base = RidgeBilevel.instances["ridge-example"]
    fields = {"params": base.params, "target": base.target, "budget": base.budget,
              "suites": (), "description": base.description, **changes}
    return {name: Instance(**fields)}


class UnseededInit(RidgeBilevel):
    instances = _instance("bad-unseeded")
    reference = None

    def init(self, generator):
        return torch.randn(self.x_shape, dtype=self.dtype), torch.randn(self.y_shape,
                                                                         dtype=self.dtype)


class EvaluationMutates(RidgeBilevel):
    instances = _instance("bad-mutates")
    reference = None

    def evaluate(self, x, y):
        self.b.mul_(1.0001)  # the oracles would now see other data
        return super().evaluate(x, y)


class WrongHypergradient(RidgeBilevel):
    instances = _instance("bad-hypergrad")
    reference = None

    def evaluate(self, x, y):
        metrics = super().evaluate(x, y)
        metrics["hypergrad_norm"] *= 2.0
        return metrics


class TargetAlreadyMet(RidgeBilevel):
    instances = _instance("bad-target", target=1e9)
    reference = None


class MissingPrimaryMetric(RidgeBilevel):
    instances = _instance("bad-metric")
    primary_metric = "test_accuracy"
    reference = None


class NonScalarObjective(RidgeBilevel):
    instances = _instance("bad-scalar")
    reference = None

    def g(self, x, y, batch=None):
        return 0.5 * (y - self.A @ x) ** 2  # forgot the sum


class UnreachableTarget(RidgeBilevel):
    instances = _instance("bad-unreachable")
    reference = {"solver": "aid-cg", "hyperparameters": {"outer_lr": 1e-3}, "iterations": 5}


class NoInstances(RidgeBilevel):
    instances = {}


class ClashingInstance(RidgeBilevel):
    """Reuses an official instance name."""

    instances = _instance("quadratic-small")
