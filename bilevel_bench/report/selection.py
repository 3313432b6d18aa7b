"""Which records a report shows, and how they split into comparable groups.

Records are read with :func:`bilevel_bench.results.load_results` (one row per run) and
:func:`bilevel_bench.results.iter_records` (the full records: traces, citations, tasks).
The tuning trials (ruleset ``tuning``) are never shown, as on the site. A *group* is one task
(the problem's practitioner task), one ruleset and one hardware class: solver times are
comparable only on one hardware class and rulesets are never mixed; inside a group every
(problem, version) is its own section, so records of two versions of a problem are never
aggregated. :attr:`Selection.notes` says, in sentences, what was separated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bilevel_bench.errors import BenchError
from bilevel_bench.leaderboard.build import UNRANKED
from bilevel_bench.leaderboard.collect import version_key
from bilevel_bench.leaderboard.views import RULESET_ORDER, TASKS, annotate, registry_problems
from bilevel_bench.metrics import per_instance
from bilevel_bench.results import iter_records, load_results


class ReportError(BenchError):
    """Records that cannot make a report (none valid, nothing left after the filters)."""


@dataclass(frozen=True)
class Group:
    """One table and one ECDF figure: a task under one ruleset on one hardware class."""

    task: str
    ruleset: str
    hardware: str
    instances: tuple[tuple[str, str], ...]  # (problem, version), name order, newest first

    @property
    def title(self) -> str:
        return f"{self.task}, ruleset {self.ruleset}, hardware class {self.hardware}"


@dataclass
class Selection:
    """The runs of a report: ``frame`` (annotated rows, :func:`~bilevel_bench.leaderboard.views
    .annotate`), ``instances`` (:func:`~bilevel_bench.metrics.per_instance` of it), the full
    ``records`` by run id, the problem descriptions by (name, version), the registry's
    metadata of official problems (``meta``), the comparable ``groups``, the sentences saying
    what was separated (``notes``) and the files that are not run records (``skipped``)."""

    frame: pd.DataFrame
    instances: pd.DataFrame
    records: dict[str, dict[str, Any]]
    problems: dict[tuple[str, str], dict[str, Any]]
    meta: dict[str, dict[str, Any]]
    groups: list[Group]
    solvers: list[str]
    notes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def runs(self, group: Group, instance: tuple[str, str] | None = None) -> pd.DataFrame:
        """The rows of a group (of one of its instances)."""
        f = self.frame
        mask = (f["task"] == group.task) & (f["ruleset"] == group.ruleset) \
            & (f["hardware_class"] == group.hardware)
        if instance is not None:
            mask &= (f["problem"] == instance[0]) & (f["problem_version"] == instance[1])
        else:
            mask &= pd.Series(list(zip(f["problem"], f["problem_version"], strict=True)),
                              index=f.index).isin(group.instances)
        return f[mask]


def _names(values: Sequence[str]) -> str:
    return ", ".join(sorted(values))


def select(inputs: Sequence[str | Path], solvers: Sequence[str] | None = None,
           tasks: Sequence[str] | None = None) -> Selection:
    """Read the records under ``inputs`` and keep those of ``solvers`` and ``tasks`` (all when
    ``None``); raises :class:`ReportError` when nothing usable is left, saying what is missing."""
    shown = " ".join(str(p) for p in inputs)
    frame = load_results(*inputs, warn=False)
    skipped = list(frame.attrs.get("skipped", []))
    if frame.empty:
        example = f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise ReportError(f"no valid run records in {shown}: {len(skipped)} .json file(s) are "
                          f"not run records{example}; name a folder that `bilevel-bench run "
                          "--results DIR` wrote to")
    frame = frame.drop_duplicates("run_id").sort_values("run_id", kind="stable")
    frame = frame[~frame["ruleset"].isin(UNRANKED)]
    if frame.empty:
        raise ReportError(f"the records in {shown} are all tuning trials (ruleset tuning): "
                          "name the folder of the evaluation runs")
    if solvers:
        missing = [name for name in solvers if name not in set(frame["solver"])]
        if missing:
            raise ReportError(f"--solver {_names(missing)}: no run records of it in {shown} "
                              f"(recorded: {_names(set(frame['solver']))})")
        frame = frame[frame["solver"].isin(solvers)]
    records: dict[str, dict[str, Any]] = {}
    wanted_ids = set(frame["run_id"])
    for _path, record, _reason in iter_records(*inputs):
        if record is not None and record["run_id"] in wanted_ids:
            records.setdefault(record["run_id"], record)
    problems: dict[tuple[str, str], dict[str, Any]] = {}
    for run_id in sorted(records):
        info = records[run_id]["problem"]
        problems.setdefault((info["name"], str(info["version"])), dict(info))
    frame = annotate(frame.reset_index(drop=True), problems)
    if tasks:
        missing = [t for t in tasks if t not in set(frame["task"])]
        if missing:
            raise ReportError(f"--task {_names(missing)}: no run records of it in {shown} "
                              f"(recorded tasks: {_names(set(frame['task']))})")
        frame = frame[frame["task"].isin(tasks)].reset_index(drop=True)
    meta = registry_problems() or {}
    return Selection(frame, per_instance(frame), records, problems, meta, _groups(frame),
                     sorted(set(frame["solver"])), _notes(frame), skipped)


def _groups(frame: pd.DataFrame) -> list[Group]:
    order = list(TASKS)
    out = []
    keys = frame.groupby(["task", "ruleset", "hardware_class"]).groups
    for task, ruleset, hardware in sorted(keys, key=lambda k: (
            order.index(k[0]) if k[0] in order else len(order), k[0],
            RULESET_ORDER.get(k[1], len(RULESET_ORDER)), k[1], k[2])):
        part = frame.loc[keys[(task, ruleset, hardware)]]
        pairs = set(zip(part["problem"], part["problem_version"], strict=True))
        newest_first = sorted(pairs, key=lambda pv: version_key(pv[1]), reverse=True)
        instances = sorted(newest_first, key=lambda pv: pv[0])
        out.append(Group(task, ruleset, hardware, tuple(instances)))
    return out


def _notes(frame: pd.DataFrame) -> list[str]:
    """Sentences saying what the report keeps apart."""
    notes = []
    hardware = sorted(set(frame["hardware_class"]))
    if len(hardware) > 1:
        counts = frame["hardware_class"].value_counts()
        notes.append(f"The records come from {len(hardware)} hardware classes ("
                     + "; ".join(f"{h}: {counts[h]} runs" for h in hardware)
                     + "): each has its own tables and figures, never aggregated (solver times "
                     "compare only on one hardware class).")
    for problem, versions in frame.groupby("problem")["problem_version"]:
        found = sorted(set(versions), key=version_key)
        if len(found) > 1:
            notes.append(f"Problem {problem} has records of versions {', '.join(found)}: each "
                         "version is its own section and figure, never aggregated (a new "
                         "version changes the data, formulation or target).")
    rulesets = sorted(set(frame["ruleset"]), key=lambda r: RULESET_ORDER.get(r, 99))
    if len(rulesets) > 1:
        notes.append(f"Rulesets {', '.join(rulesets)} are separate tables: hyperparameters "
                     "chosen by different rules are never ranked together.")
    return notes
