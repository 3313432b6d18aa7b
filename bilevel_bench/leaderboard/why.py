"""Why a run did not reach its final target, in one line a reader can act on.

:func:`explain` reads one record (once, when it is summarised; the summary is cached) and
returns ``(kind, text)``: ``kind`` is one of :data:`KINDS` (``""`` for a run that reached its
final target) and ``text`` says by how much or why, e.g.

* ``target missed: best gated ul_gap 0.012 vs target 0.001 (2 of 3 rungs)``;
* ``LL gate missed: ul_value 0.16 meets the target 0.35 at iteration 400, but the LL gate
  failed there: ll_gap 0.101 > bound 0.1 (gate: ll_gap <= 0.1)``, or ``LL gate missed at
  every checkpoint: its smallest ll_gap 0.101 > bound 0.1 (...)``;
* ``diverged: ul_gap non-finite from iteration 120``;
* ``error: ValueError: ...`` / ``timeout: ...`` / ``out of memory: ...``.

A solver that did not run an instance has no record: views say why from its declared
capabilities (:func:`~bilevel_bench.leaderboard.views.applicability`). Every text here comes
from a record and is escaped where it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: kind -> label, in the order cells list them
KINDS = {"target": "target missed", "gate": "LL gate missed", "diverged": "diverged",
         "error": "error", "timeout": "timeout", "oom": "out of memory"}
#: longest error message kept (the record keeps it whole)
MAX_MESSAGE = 240


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def short(value: float) -> str:
    """A value with 4 significant digits (a target near F* may need them)."""
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def gate_bound(gate: Mapping[str, Any] | None, start: Mapping[str, Any]) -> float:
    """The bound a gated metric must not exceed (:class:`bilevel_bench.problem.LLGate`)."""
    if not gate or not gate.get("metric"):
        return math.inf
    bound = _num(gate.get("atol")) if math.isfinite(_num(gate.get("atol"))) else 0.0
    rtol, reference = _num(gate.get("rtol")), _num(start.get(gate["metric"]))
    if rtol and math.isfinite(rtol) and math.isfinite(reference):
        bound = max(bound, rtol * abs(reference))
    return bound


def _message(error: Any) -> str:
    text = " ".join(str(error or "").split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


def explain(status: str, error: Any, trace: Sequence[Mapping[str, Any]], metric: str,
            higher: bool, target: float, gate: Mapping[str, Any] | None,
            start: Mapping[str, Any], rungs: int, reached: int, converged: bool
            ) -> tuple[str, str]:
    """``(kind, text)`` of one run (see the module docstring). ``trace``: the checkpoints with
    their ``gate`` flags (the official ones where the site recomputed them); ``gate``: the LL
    gate as a record stores it (``metric``, ``rtol``, ``atol``, ``description``)."""
    if converged:
        return "", ""
    sign = -1.0 if higher else 1.0
    best_gated = best_any = math.inf  # in "lower is better" units
    hit_row: Mapping[str, Any] | None = None
    first_bad: Any = None
    for row in trace:
        value = _num((row.get("metrics") or {}).get(metric))
        if not math.isfinite(value):
            if first_bad is None:
                first_bad = row.get("iteration")
            continue
        key = sign * value
        if row.get("gate", True):
            best_gated = min(best_gated, key)
        best_any = min(best_any, key)
        if hit_row is None and key <= sign * target and not row.get("gate", True):
            hit_row = row
    gated = sign * best_gated if math.isfinite(best_gated) else math.nan
    goal = f"target {short(target)}"
    if math.isfinite(gated):
        where = f"best gated {metric} {short(gated)} vs {goal} ({reached} of {rungs} rungs)"
    else:
        where = f"no checkpoint passed the LL gate ({goal})" if math.isfinite(best_any) \
            else f"no finite {metric} ({goal})"
    if status in ("error", "timeout", "oom"):
        message = _message(error)
        return status, f"{KINDS[status]}: {message or 'no message recorded'}; {where}"
    if status == "diverged" or (first_bad is not None and not math.isfinite(_num(
            ((trace[-1] if trace else {}).get("metrics") or {}).get(metric)))):
        at = f" from iteration {first_bad}" if first_bad is not None else ""
        verdict = "" if first_bad is not None else " (the solver's own verdict)"
        message = _message(error)
        return "diverged", (f"diverged: {metric} non-finite{at}{verdict}"
                            + (f": {message}" if message else ""))
    if hit_row is not None:
        name = str((gate or {}).get("metric"))
        value = _num((hit_row.get("metrics") or {}).get(name))
        bound = gate_bound(gate, start)
        rule = (gate or {}).get("description") or f"{name} <= {short(bound)}"
        return "gate", (f"LL gate missed: {metric} {short(_num(hit_row['metrics'][metric]))} "
                        f"meets the {goal} at iteration {hit_row.get('iteration')}, but the LL "
                        f"gate failed there: {name} {short(value)} > bound {short(bound)} "
                        f"(gate: {rule}); {where}")
    if not math.isfinite(best_gated) and math.isfinite(best_any) and gate and gate.get("metric"):
        name = str(gate["metric"])
        values = [_num((row.get("metrics") or {}).get(name)) for row in trace]
        smallest = min((v for v in values if math.isfinite(v)), default=math.nan)
        rule = gate.get("description") or f"{name} <= {short(gate_bound(gate, start))}"
        return "gate", (f"LL gate missed at every checkpoint: its smallest {name} "
                        f"{short(smallest)} > bound {short(gate_bound(gate, start))} (gate: "
                        f"{rule}); best {metric} without the gate {short(sign * best_any)} "
                        f"vs {goal}")
    return "target", f"target missed: {where}"


def explain_record(record: Mapping[str, Any], trace: Sequence[Mapping[str, Any]],
                   gate: Mapping[str, Any] | None, row: Mapping[str, Any]) -> tuple[str, str]:
    """:func:`explain` of a record whose summary row (``rungs``, ``rungs_reached``,
    ``converged``, ``target``) the site has computed (the official ladder where known)."""
    problem, summary = record["problem"], record.get("summary") or {}
    start = record.get("start_metrics") or summary.get("start") or {}
    return explain(str(record["status"]), record.get("error"), trace,
                   str(problem["primary_metric"]), bool(problem.get("higher_is_better")),
                   _num(row.get("target")), gate, start, int(row.get("rungs") or 0),
                   int(row.get("rungs_reached") or 0), bool(row.get("converged")))
