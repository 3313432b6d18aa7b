"""``reproduce.sh``: the exact commands that regenerate a report's records.

Each record's task (:func:`bilevel_bench.runner.task_from_record`) gives its command
(:func:`bilevel_bench.reproduce.reproduce_command`); tasks that differ only in the seed are one
command (consecutive seeds as ``--seeds N --seed-offset K``). Above each command a comment
names the instance, the solver's version and the hyperparameters the records used; the header
lists the versions (bilevel_bench, Python, torch, numpy), git revisions and hardware classes
the records were made with. Times compare only on the same hardware class; oracle counts and
the run ids are the same on any machine of that class.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bilevel_bench.reproduce import reproduce_command

HEADER = """#!/usr/bin/env bash
# Regenerates the {runs} run records of this report (written by `bilevel-bench report`).
# Usage: bash reproduce.sh [RESULTS_DIR]   (default ./results; runs already recorded there are
# skipped, so the script resumes after an interruption)
#
# The records were made with:
{environment}
# Run on the same hardware class for comparable solver times; oracle counts and targets do not
# depend on the machine. A path plugin (FILE.py:Class) is named as the records name it: run the
# script from the folder that holds FILE.py.
set -euo pipefail
RESULTS=${{1:-results}}
command -v bilevel-bench >/dev/null || {{
  echo "reproduce.sh: bilevel-bench is not installed (pip install bilevel-bench=={version})" >&2
  exit 1
}}
"""


def _counted(values: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return "; ".join(f"{v} ({n} records)" if len(counts) > 1 else v
                     for v, n in sorted(counts.items()))


def environment(records: Sequence[dict[str, Any]]) -> list[str]:
    """Comment lines naming the versions, git revisions and hardware classes of ``records``."""
    lines = []
    for key in ("bilevel_bench", "python", "torch", "numpy"):
        lines.append(f"#   {key}: "
                     + _counted([str(r["versions"].get(key, "unknown")) for r in records]))
    revisions = []
    for r in records:
        git = r.get("git_revision") or {}
        commit = (git.get("commit") or "unknown")[:12] if isinstance(git, dict) else str(git)
        revisions.append(commit + (" (uncommitted changes)" if isinstance(git, dict)
                                   and git.get("dirty") else ""))
    lines.append("#   git revision: " + _counted(revisions))
    lines.append("#   hardware class: "
                 + _counted([str(r["hardware"].get("class") or "unknown") for r in records]))
    return lines


def script(records: Sequence[dict[str, Any]]) -> str:
    """The text of ``reproduce.sh`` for ``records`` (their order does not matter)."""
    from bilevel_bench.runner import task_from_record

    groups: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r["run_id"]):
        task = task_from_record(record)
        key = json.dumps([task.problem, task.solver, task.ruleset,
                          reproduce_command(replace(task, seed=0)),
                          record["problem"].get("version"),
                          record["hardware"].get("class")], default=str)
        entry = groups.setdefault(key, {"task": task, "seeds": set(), "record": record})
        entry["seeds"].add(task.seed)
    version = _counted([str(r["versions"].get("bilevel_bench", "unknown")) for r in records])
    out = [HEADER.format(runs=len(records), environment="\n".join(environment(records)),
                         version=version.split(" ")[0])]
    for key in sorted(groups, key=lambda k: (json.loads(k)[:3], k)):
        entry = groups[key]
        record, task = entry["record"], entry["task"]
        hyper = record["solver"].get("hyperparameters") or {}
        seeds = sorted(entry["seeds"])
        out.append(f"# {record['problem']['name']} v{record['problem'].get('version')}, "
                   f"{record['solver']['name']} {record['solver'].get('version')}, ruleset "
                   f"{task.ruleset}, hardware class {record['hardware'].get('class')}: "
                   f"seeds {', '.join(map(str, seeds))}")
        out.append("#   hyperparameters: " + (", ".join(f"{k}={v!r}" for k, v in
                                                        sorted(hyper.items())) or "defaults"))
        out.append(reproduce_command(task, seeds) .replace(" && ", ' --results "$RESULTS" && ')
                   + ' --results "$RESULTS"')
        out.append("")
    return "\n".join(out)
