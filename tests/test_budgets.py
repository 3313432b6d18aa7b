"""Budgets are work, so verdicts are the same on every machine (protocol v3, issue 28)."""

from __future__ import annotations

import pytest

from bilevel_bench.matrix import plan
from bilevel_bench.problem import Budget
from bilevel_bench.registry import problems
from bilevel_bench.runner import RunTask

#: instances whose budget is device time: the GPU tier of the LLM problems
DEVICE_TIME = {"llm-safety-smollm2", "llm-representation-smollm2"}


@pytest.mark.parametrize("name", sorted(set(problems()) - DEVICE_TIME))
def test_every_instance_stops_on_work_not_seconds(name):
    budget = problems()[name].instance.budget
    assert budget.seconds is None, f"{name}: a budget in CPU seconds depends on the machine"
    assert budget.oracle_cost is not None and budget.iterations is not None


def test_budget_scale_multiplies_the_work_and_overrides_still_apply():
    task = plan(["quadratic-small"], ["aid-cg"], [0], budget_scale=0.25).tasks[0]
    assert task.budget == Budget(seconds=None, oracle_cost=7.5e3, iterations=5_000)
    task = plan(["quadratic-small"], ["aid-cg"], [0], budget_scale=0.25,
                budget={"seconds": 2.0}).tasks[0]
    assert task.budget.seconds == 2.0 and task.budget.oracle_cost == 7.5e3
    assert Budget(seconds=1.0, oracle_cost=None, iterations=3).scaled(0.5) == \
        Budget(seconds=0.5, oracle_cost=None, iterations=2)


def test_the_hard_limit_is_cpu_seconds_derived_from_the_budget():
    assert RunTask("quadratic-small", "aid-cg").hard_timeout() == 600.0  # a work budget
    assert RunTask("quadratic-small", "aid-cg", budget=Budget(seconds=2.0)).hard_timeout() == 66.0
    assert RunTask("quadratic-small", "aid-cg", timeout=5.0).hard_timeout() == 5.0
