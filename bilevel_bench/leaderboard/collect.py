"""Read run records for the leaderboard: rows, primary-metric traces, descriptions, rejects.

Only files are read — no solver or problem code is imported. A file that is not valid JSON, has
a foreign schema, an unknown schema version, or breaks while being summarised is *skipped* with
its reason (never a crash); a second file with an already-seen run id is skipped as a duplicate.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bilevel_bench.results import iter_records, summary_row

#: a record's problem version before the problem was built (the run failed early)
UNKNOWN = "unknown"


@dataclass
class Trace:
    """The primary metric of one run against both clocks."""

    time: np.ndarray
    oracles: np.ndarray
    value: np.ndarray


@dataclass
class Collection:
    """Everything the site shows: one row per valid run (``frame``, with ``trace`` indexing
    ``traces`` and provenance columns), problem and solver descriptions, skipped files."""

    frame: pd.DataFrame
    traces: list[Trace]
    problems: dict[tuple[str, str], dict[str, Any]]
    solvers: dict[tuple[str, str], dict[str, Any]]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def version_key(version: str) -> tuple:
    """Order versions naturally ("1.10" after "1.9"); ``unknown`` before everything."""
    if version == UNKNOWN:
        return ((-1, ""),)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                 for p in re.findall(r"\d+|[^\d.]+", str(version)))


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _trace(record: dict[str, Any]) -> Trace:
    metric = record["problem"]["primary_metric"]
    table = [(r.get("time"), r.get("oracle_cost"), r["metrics"].get(metric))
             for r in record["trace"]]
    try:
        values = np.array(table, dtype=float).reshape(-1, 3)
    except (TypeError, ValueError):  # None or text somewhere: convert one by one
        values = np.array([[_float(v) for v in row] for row in table]).reshape(-1, 3)
    return Trace(values[:, 0].copy(), values[:, 1].copy(), values[:, 2].copy())


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row = summary_row(record)
    hw, solver = record["hardware"], record["solver"]
    row["ruleset"] = str(row["ruleset"])
    row["hardware_class"] = str(row["hardware_class"]) if row["hardware_class"] else "unknown"
    git = record.get("git_revision") or {}
    row.update({
        "hyperparameters": json.dumps(solver.get("hyperparameters", {}), sort_keys=True,
                                      default=str),
        "source_sha256": _text(solver.get("source_sha256")),
        # provenance values are grouped on: text, so that mixed types never break sorting
        **{key: _text(hw.get(key)) for key in ("cpu", "gpu", "cores", "memory_gb")},
        "library_versions": ", ".join(f"{k} {v}" for k, v in sorted(record["versions"].items())
                                      if k != "platform"),
        "platform": record["versions"].get("platform"),
        "git_commit": (git.get("commit") or "")[:12] + ("+dirty" if git.get("dirty") else "")
        if isinstance(git, dict) else str(git),
        "created": str(record.get("created")),
    })
    return row


def collect(inputs: Sequence[str | Path]) -> Collection:
    """Read every ``*.json`` under the input directories."""
    rows: list[dict[str, Any]] = []
    traces: list[Trace] = []
    skipped: list[tuple[str, str]] = []
    problems: dict[tuple[str, str], dict[str, Any]] = {}
    solvers: dict[tuple[str, str], dict[str, Any]] = {}
    seen: dict[str, str] = {}
    for root in map(Path, inputs):
        for path, record, reason in iter_records(root):
            shown = str(Path(root.name) / path.relative_to(root))
            if record is None:
                skipped.append((shown, reason))
                continue
            run_id = record["run_id"]
            if run_id in seen:
                skipped.append((shown, f"duplicate of run id {run_id} already read from "
                                       f"{seen[run_id]}"))
                continue
            try:
                row, trace = _row(record), _trace(record)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                skipped.append((shown, f"malformed record: {type(exc).__name__}: {exc}"))
                continue
            seen[run_id] = shown
            row["trace"], row["path"] = len(traces), shown
            rows.append(row)
            traces.append(trace)
            problem, solver = record["problem"], record["solver"]
            problems.setdefault((problem["name"], problem["version"]), problem)
            solvers.setdefault((solver["name"], solver["version"]), solver)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["converged"] = frame["converged"].astype(bool)
    return Collection(frame, traces, problems, solvers, skipped)
