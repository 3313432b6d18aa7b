"""The command line that reproduces a run: ``bilevel-bench run ...`` from its task.

Every record carries it (``record["reproduce"]``, set by :func:`bilevel_bench.runner.record_header`)
and ``bilevel-bench report`` writes it into ``reproduce.sh``. The command names the problem, the
solver spec (a path plugin without its directories: run it from the folder that holds the
file), the seeds, the device and threads, every limit of the budget that was set, the hard
timeout when one was given, and the ruleset: ``--ruleset reference`` / ``--ruleset tuned`` pick
their hyperparameters again (the record holds the ones used), hand-set hyperparameters (ruleset
``custom``) are written as ``--hp KEY=VALUE``. The same command on the same hardware class and
problem version gives the same run id (``bilevel-bench run`` skips a run already recorded).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

#: rulesets that ``run --ruleset`` chooses (``custom`` is ``--hp``; ``tuning`` are the trials of
#: ``tuned``, which ``--ruleset tuned`` runs again)
RULESET_OPTIONS = {"reference": "reference", "tuned": "tuned", "tuning": "tuned"}


def _number(value: Any) -> str:
    """A budget value as the shortest text that reads back as the same number."""
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def reproduce_command(task: Any, seeds: Sequence[int] | None = None) -> str:
    """The ``bilevel-bench run`` command line of ``task`` (a
    :class:`~bilevel_bench.runner.RunTask`), for its own seed or for ``seeds`` (consecutive
    seeds become ``--seeds N --seed-offset K``; others are one command each, joined by
    `` && ``). The results folder is left to the default (``--results results``)."""
    seeds = sorted(set(seeds)) if seeds else [task.seed]
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        return " && ".join(reproduce_command(task, [seed]) for seed in seeds)
    solver = task.solver.rsplit("/", 1)[-1]
    words = ["bilevel-bench", "run", "--problem", task.problem, "--solver", solver,
             "--seeds", str(len(seeds)), "--seed-offset", str(seeds[0])]
    if task.device != "cpu":
        words += ["--device", task.device]
    if task.threads != 1:
        words += ["--threads", str(task.threads)]
    budget = task.budget
    if budget is not None:
        for option, value in (("--budget-seconds", budget.seconds),
                              ("--budget-oracles", budget.oracle_cost),
                              ("--budget-iterations", budget.iterations)):
            if value is not None:
                words += [option, _number(value)]
    if task.timeout is not None:
        words += ["--timeout", _number(task.timeout)]
    if task.ruleset in RULESET_OPTIONS:
        words += ["--ruleset", RULESET_OPTIONS[task.ruleset]]
    elif task.ruleset == "custom" or (task.ruleset != "default" and task.hyperparameters):
        for key, value in sorted(task.hyperparameters.items()):
            words += ["--hp", f"{key}={value!r}"]
    return shlex.join(words)
