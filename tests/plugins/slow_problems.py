"""A file-plugin problem whose exact evaluation is slow (runner tests)."""

from __future__ import annotations

import time

from bilevel_bench.problem import Budget, Instance
from bilevel_bench.problems.toys import PBGDFreeCounterexample


class SlowEvaluation(PBGDFreeCounterexample):
    """The PBGD-Free counter-example with an evaluation that takes 50 ms."""

    name = "slow-evaluation"
    instances = {"slow-evaluation": Instance({}, target=-1.0, budget=Budget(seconds=0.5))}

    def evaluate(self, x, y):
        time.sleep(0.05)
        return super().evaluate(x, y)
