"""File-plugin problems for the runner tests: a slow exact evaluation, an LL gate."""

from __future__ import annotations

import time

from bilevel_bench.problem import Budget, Instance, LLGate
from bilevel_bench.problems.quadratic import Quadratic
from bilevel_bench.problems.toys import PBGDFreeCounterexample


class SlowEvaluation(PBGDFreeCounterexample):
    """The PBGD-Free counter-example with an evaluation that takes 50 ms."""

    name = "slow-evaluation"
    instances = {"slow-evaluation": Instance({}, target=-1.0, budget=Budget(seconds=0.5))}

    def evaluate(self, x, y):
        time.sleep(0.05)
        return super().evaluate(x, y)


class GatedQuadratic(Quadratic):
    """quadratic-small whose checkpoints count only when the LL is solved to 1e-8 of its
    gap at the start (the runner's LL-gate tests): ul_gap is exact whatever y is, so the
    gate alone decides."""

    name = "gated-quadratic"
    ll_gate = LLGate("ll_gap", rtol=1e-8, atol=0.0)
    instances = {"gated-quadratic": Instance(dict(Quadratic.instances["quadratic-small"].params),
                                             target=1e-3)}
