"""Read run records for the leaderboard: rows, primary-metric traces, descriptions, rejects.

No solver code is imported. A file that is not valid JSON, has a foreign schema, an unknown
schema version, or breaks while being summarised is *skipped* with its reason (never a crash); a
second file with an already-seen run id is skipped as a duplicate.

The metadata of a known instance (target, ladder, LL gate, version, suites, description) comes
from the builder's registry (the official distribution's instances only,
:func:`official_instances`), never from records: a record that disagrees with it is skipped
with the reason, and the ladder hits, success and times-to-target are recomputed from its
trace with the official ladder and gate. Instances the registry does not know (submitted
plugins, other versions) are shown as "unofficial" with what their records say.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bilevel_bench.leaderboard.cache import RecordCache, fingerprint, gc_paused
from bilevel_bench.leaderboard.why import explain_record
from bilevel_bench.metrics import HIT_FIELDS, hit_costs
from bilevel_bench.problem import DEFAULT_LL_GAP_GATE, LLGate, default_ladder
from bilevel_bench.results import (
    ResultsError,
    ladder_hits,
    parse_record,
    read_record_bytes,
    record_files,
    summary_row,
)

#: a record's problem version before the problem was built (the run failed early)
UNKNOWN = "unknown"


@dataclass
class Trace:
    """The primary metric of one run against both clocks: ``points`` has one row (time,
    oracle cost, value) per checkpoint (one array: a cached trace loads as one object)."""

    points: np.ndarray

    @property
    def time(self) -> np.ndarray:
        return self.points[:, 0]

    @property
    def oracles(self) -> np.ndarray:
        return self.points[:, 1]

    @property
    def value(self) -> np.ndarray:
        return self.points[:, 2]


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


def as_float(value: Any) -> float:
    """``value`` as a float (numbers and numeric text), NaN for anything else."""
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
        values = np.array([[as_float(v) for v in row] for row in table]).reshape(-1, 3)
    return Trace(values)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row = summary_row(record)
    hw, solver = record["hardware"], record["solver"]
    row["ruleset"] = str(row["ruleset"])
    row["canary"] = solver.get("canary") is True  # a reference line, never ranked
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


def official_instances() -> dict[str, dict[str, Any]]:
    """Instance name -> official metadata, from the registry's instances of the official
    distribution (``bilevel_bench.problems``; not the builder's other installed plugins)."""
    from bilevel_bench import registry

    out = {}
    for name, entry in registry.problems().items():
        if not entry.source.startswith("bilevel_bench."):
            continue
        family, instance = entry.family, entry.instance
        gate = instance.ll_gate or family.ll_gate
        out[name] = {
            "name": name, "family": family.name, "version": str(family.version),
            "target": float(instance.target),
            "declared_ladder": None if instance.ladder is None else
            [float(v) for v in instance.ladder],
            "suites": list(instance.suites), "description": instance.description,
            "primary_metric": family.primary_metric,
            "higher_is_better": bool(family.higher_is_better), "citation": family.citation,
            "formulation": family.formulation, "gate": gate, "official": True,
        }
    return out


def official_suites() -> dict[str, list[str]]:
    """Suite name -> instance names, from the official instances only."""
    table: dict[str, list[str]] = {}
    for name, info in official_instances().items():
        for suite in info["suites"]:
            table.setdefault(suite, []).append(name)
    return table


def _same(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-300)
    except (TypeError, ValueError):
        return False


def _officialise(record: dict[str, Any], row: dict[str, Any],
                 official: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check a record of a known instance against the registry and recompute its outcome with
    the official ladder and gate; returns (reason to skip or "", problem metadata)."""
    problem = record["problem"]
    metric, higher = official["primary_metric"], official["higher_is_better"]
    target = official["target"]
    if problem.get("primary_metric") != metric or bool(problem.get("higher_is_better")) != higher:
        return (f"its primary metric ({problem.get('primary_metric')}, higher is better: "
                f"{problem.get('higher_is_better')}) is not the registry's ({metric}, "
                f"{higher})"), {}
    if not _same(problem.get("target"), target):
        return f"its target {problem.get('target')!r} is not the registry's {target:g}", {}
    start = record.get("start_metrics") or (record.get("summary") or {}).get("start") or {}
    if official["declared_ladder"] is not None:
        ladder = official["declared_ladder"]
    elif record.get("migrated_from") == 1:
        ladder = [target]
    else:
        ladder = list(default_ladder(as_float(start.get(metric)), target, higher))
    recorded = problem.get("ladder") or []
    if len(recorded) != len(ladder) or not all(_same(a, b) for a, b in zip(recorded, ladder,
                                                                          strict=False)):
        return "its target ladder is not the registry's for its start value", {}
    gate: LLGate | None = official["gate"]
    if gate is None and "ll_gap" in start:
        gate = DEFAULT_LL_GAP_GATE
    trace = [dict(r, gate=gate.passes(r["metrics"], start)) if gate is not None else r
             for r in record["trace"]]
    hits = ladder_hits(trace, metric, ladder, higher)
    final = hits[-1] if hits else None
    if record["status"] == "converged" and final is None:
        return "it says converged, but its trace does not reach the official target", {}
    row.update({
        "target": target, "target_ladder": ladder, "rungs": len(ladder),
        "rungs_reached": sum(h is not None for h in hits), "ladder_hits": hits,
        "converged": final is not None,
        "time_to_target": final["time"] if final else None,
        "oracles_to_target": final["oracle_cost"] if final else None,
        "iterations_to_target": final["iteration"] if final else None,
    })
    gate_dict = gate.as_dict() if gate is not None else problem.get("ll_gate")
    row["why_kind"], row["why"] = explain_record(record, trace, gate_dict, row)
    info = {**problem, **{k: v for k, v in official.items() if k not in ("gate",
                                                                          "declared_ladder")},
            "ladder": ladder, "ll_gate": gate_dict}
    return "", info


def verifications(root: Path) -> dict[str, dict[str, Any]]:
    """run id -> the entry of a ``verification.json`` (written by ``bilevel-bench verify``)
    found under ``root``; unreadable files are ignored (their runs stay self-reported)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(root.rglob("*verification.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        entries = data.get("records") if isinstance(data, dict) else None
        if isinstance(entries, dict):
            out.update({str(k): v for k, v in entries.items() if isinstance(v, dict)})
    return out


def verification_of(entry: dict[str, Any] | None, digest: str) -> str:
    """``verified`` only when ``verify`` re-executed the run and the record file is the one it
    checked (``digest``, the sha256 of the file's bytes); ``failed`` when re-execution
    disagreed; else ``self-reported``."""
    if not entry or entry.get("sha256") != digest:
        return "self-reported"
    return {"verified": "verified", "failed": "failed"}.get(entry.get("verdict"),
                                                           "self-reported")


@dataclass
class Summary:
    """What one record file contributes, a function of its bytes and the official metadata
    (cached by its sha256, :mod:`~bilevel_bench.leaderboard.cache`): its run id (None when it
    is not a readable record), the reason to skip it ("" when usable), its row and trace and
    the (name, version) keys and descriptions of its problem and solver."""

    run_id: str | None
    reason: str = ""
    row: dict[str, Any] | None = None
    trace: Trace | None = None
    problem: tuple[str, str] | None = None
    problem_info: dict[str, Any] | None = None
    solver: tuple[str, str] | None = None
    solver_info: dict[str, Any] | None = None


def summarise(blob: bytes, official: dict[str, dict[str, Any]]) -> Summary:
    """Parse and check one record file's bytes, and summarise it (:class:`Summary`)."""
    record, reason = parse_record(blob)
    if record is None:
        return Summary(None, reason)
    run_id, problem, solver = record["run_id"], record["problem"], record["solver"]
    known = official.get(problem["name"])
    try:
        row, trace = _row(record), _trace(record)
        if known is not None and known["version"] == str(problem["version"]):
            why, info = _officialise(record, row, known)
            if why:
                return Summary(run_id, f"disagrees with the registry: {why}")
        else:
            info = {**problem, "official": False, "label": "unofficial"}
            row["why_kind"], row["why"] = explain_record(record, record["trace"],
                                                         problem.get("ll_gate"), row)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Summary(run_id, f"malformed record: {type(exc).__name__}: {exc}")
    row["official"] = bool(info.get("official"))
    hits = row.pop("ladder_hits")  # every ranking reads the costs, computed once per record
    for clock in HIT_FIELDS:
        row[f"rung_costs_{clock}"] = hit_costs(hits, clock)
    return Summary(run_id, "", row, trace, (problem["name"], problem["version"]), info,
                   (solver["name"], solver["version"]), solver)


def _share(summary: Summary, problems: dict, solvers: dict) -> None:
    """Point the summary's descriptions at equal ones already read (one object, cached once)."""
    for attr, key, seen in (("problem_info", summary.problem, problems),
                            ("solver_info", summary.solver, solvers)):
        known = seen.get(key)
        if known is not None and known == getattr(summary, attr):
            setattr(summary, attr, known)


def cache_key(official: dict[str, dict[str, Any]]) -> str:
    """The fingerprint of every :class:`Summary`: the official metadata and the code that
    reads, checks and summarises records."""
    from bilevel_bench import metrics, problem, results
    from bilevel_bench.leaderboard import why

    return fingerprint(official, [sys.modules[__name__], why, results, problem, metrics])


@gc_paused()  # millions of small acyclic objects: JSON, unpickled summaries, rows
def collect(inputs: Sequence[str | Path],
            official: dict[str, dict[str, Any]] | None = None,
            cache: str | Path | None = None) -> Collection:
    """Read every ``*.json`` under the input directories; ``official`` is the registry's
    metadata (default :func:`official_instances`; ``{}`` trusts nothing as official).
    ``cache``: a folder that keeps each file's :class:`Summary` by the sha256 of its bytes
    for the next build (:mod:`~bilevel_bench.leaderboard.cache`); None reads everything."""
    official = official_instances() if official is None else official
    store = RecordCache(cache, cache_key(official)) if cache is not None else None
    rows: list[dict[str, Any]] = []
    traces: list[Trace] = []
    skipped: list[tuple[str, str]] = []
    problems: dict[tuple[str, str], dict[str, Any]] = {}
    solvers: dict[tuple[str, str], dict[str, Any]] = {}
    seen: dict[str, str] = {}
    for root in map(Path, inputs):
        if not root.exists():
            raise ResultsError(f"results directory {str(root)!r} does not exist")
        verdicts = verifications(root)
        for relative in record_files(root):
            shown = os.path.join(root.name, relative)
            blob, reason = read_record_bytes(os.path.join(root, relative), root)
            if blob is None:
                skipped.append((shown, reason))
                continue
            digest = hashlib.sha256(blob).hexdigest()
            summary = store.get(digest) if store is not None else None
            if summary is None:
                summary = summarise(blob, official)
                if store is not None:  # equal descriptions stored once
                    _share(summary, problems, solvers)
                    store.put(digest, summary)
            run_id = summary.run_id
            if run_id is None:
                skipped.append((shown, summary.reason))
                continue
            if run_id in seen:
                skipped.append((shown, f"duplicate of run id {run_id} already read from "
                                       f"{seen[run_id]}"))
                continue
            if summary.reason:
                skipped.append((shown, summary.reason))
                continue
            row = dict(summary.row)
            row["verification"] = verification_of(verdicts.get(run_id), digest)
            seen[run_id] = shown
            row["trace"], row["path"] = len(traces), shown
            rows.append(row)
            traces.append(summary.trace)
            problems.setdefault(summary.problem, summary.problem_info)
            solvers.setdefault(summary.solver, summary.solver_info)
    if store is not None:
        store.save()
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["converged"] = frame["converged"].astype(bool)
        text = frame.select_dtypes(include="string").columns
        frame[text] = frame[text].astype(object)
    return Collection(frame, traces, problems, solvers, skipped)
