"""Views of the site: one ranking of comparable runs, per task (or suite), ruleset and budget.

A :class:`View` never mixes budgets, rulesets or problem versions (the newest version of each
problem is ranked; older ones stay on the problem pages); the oracle-cost clock pools hardware
classes (oracle counts do not depend on the machine), the solver-time clock is one panel per
hardware class. Every solver is scored over the union of the panel's instances
(:func:`ladder_ranking`: an instance it did not run counts 0; the table says how many it ran),
ordered by solved fraction then ECDF area, with rank labels from paired comparisons. The
instance x solver matrix tells apart, per cell, *not applicable* (the solver's declared
capabilities exclude the problem), *not run* (both shown as "n/a", counting 0), *failed* (budget
exhausted, error, timeout, out of memory), *diverged* (a non-finite metric, or the solver's own
verdict) and the runs that reached the final target. Each view carries a short summary generated
from its data.

Problem metadata that records do not carry (the family's paper metric, the oracles it provides,
whether f depends on x) and the set of *official* problems come from the registry
(:func:`registry_problems`); records of problems the registry does not know are shown under
"unofficial" and never enter a task view.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from bilevel_bench.leaderboard.collect import as_float
from bilevel_bench.leaderboard.plots import Series, line_plot
from bilevel_bench.leaderboard.tables import Column, Table, fmt, slug, solver_href
from bilevel_bench.leaderboard.why import KINDS
from bilevel_bench.metrics import (
    CANARY_LABEL,
    canary_rows,
    ecdf,
    ecdf_axis,
    ladder_cube,
    ladder_ranking,
    without_canaries,
)

#: task name -> short page key, in the order the site lists them; "coupled" is the cross-cutting
#: view of every instance with coupled constraints
TASKS = {
    "SVM hyperparameter optimisation": "svm",
    "data cleaning and reweighting": "cleaning",
    "LLM safety data selection": "llm-safety",
    "LLM representation fine-tuning": "llm-representation",
    "coupled-constraint tasks": "coupled",
    "network design with coupled constraints": "network",
    "closed-form toys": "toys",
    "quadratics": "quadratics",
}
COUPLED = "coupled-constraint tasks"
RULESET_ORDER = {"default": 0, "reference": 1, "tuned": 2, "custom": 3}
FAILED = ("budget", "error", "timeout", "oom")
OUTCOME_LABELS = {"converged": "reached target", "failed": "failed", "diverged": "diverged"}


def registry_problems() -> dict[str, dict[str, Any]] | None:
    """Official problem metadata from the registry (instance name -> task, paper metric, ...),
    or ``None`` when the registry cannot be read."""
    try:
        from bilevel_bench import registry

        entries = registry.problems()
    except Exception:  # noqa: BLE001 - the site still builds from the records alone
        return None
    out = {}
    for name, entry in entries.items():
        family = entry.family
        out[name] = {"family": family.name, "version": str(family.version),
                     "task": getattr(family, "task", "other"),
                     "paper_metric": getattr(family, "paper_metric", None),
                     "provides": sorted(family.provides),
                     "ul_depends_on_x": bool(getattr(family, "ul_depends_on_x", True)),
                     "suites": list(entry.instance.suites)}
    return out


# ------------------------------------------------------------------------ run outcomes
def outcome(status: str, final: Any) -> str:
    """converged | failed | diverged of one run: a non-finite final primary metric is a
    divergence whatever the status says."""
    try:
        value = float(final)
    except (TypeError, ValueError):
        value = math.nan
    if status == "diverged" or (status in ("converged", "budget") and not math.isfinite(value)):
        return "diverged"
    return "converged" if status == "converged" else "failed"


def annotate(frame: pd.DataFrame, problems: Mapping[tuple[str, str], dict[str, Any]]
             ) -> pd.DataFrame:
    """Add ``final_primary``, ``outcome``, ``task``, ``n_constraints``, ``budget_key`` and
    ``budget_label`` columns to a collected frame."""
    if frame.empty:
        return frame
    out = frame.copy()
    primary = pd.Series(None, index=out.index, dtype=object)
    for metric in out["primary_metric"].unique():
        if f"final_{metric}" in out:
            mine = out["primary_metric"] == metric
            primary[mine] = out.loc[mine, f"final_{metric}"].astype(object)
    out["final_primary"] = pd.to_numeric(primary, errors="coerce")
    out["outcome"] = [outcome(s, v) for s, v in zip(out["status"], out["final_primary"],
                                                    strict=True)]
    info = [problems.get((p, v), {}) for p, v in zip(out["problem"], out["problem_version"],
                                                    strict=True)]
    out["task"] = [str(i.get("task") or "other") for i in info]
    out["n_constraints"] = [int(i.get("n_constraints") or 0) for i in info]
    keys = [(_f(s), _f(o), _f(i)) for s, o, i in zip(
        out["budget_seconds"], out["budget_oracles"], out["budget_iterations"], strict=True)]
    out["budget_key"] = keys
    out["budget_label"] = [budget_label(k) for k in keys]
    return out


def _f(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def budget_label(key: tuple[float | None, float | None, float | None]) -> str:
    seconds, oracles, iterations = key
    parts = ([f"{seconds:g} s solver CPU"] if seconds is not None else []) + \
        ([f"{oracles:g} oracle cost"] if oracles is not None else []) + \
        ([f"{iterations:g} iterations"] if iterations is not None else [])
    return " + ".join(parts) or "no budget recorded"


def status_mix(statuses: Sequence[str]) -> str:
    counts = Counter(statuses)
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def applicability(solver: Mapping[str, Any], problem: Mapping[str, Any],
                  meta: Mapping[str, Any] | None) -> str:
    """Why a solver cannot run a problem, from its declared capabilities (empty: it can)."""
    needs, handles = set(solver.get("needs") or []), set(solver.get("handles") or [])
    if int(problem.get("n_constraints") or 0) > 0 and "coupled_constraints" not in handles:
        return "does not handle coupled constraints"
    provides = set((meta or {}).get("provides") or ["second_order"])
    if meta is not None and meta.get("ul_depends_on_x", True):
        provides.add("ul_x_gradient")
    if meta is not None and "ul_x_gradient" in needs and "ul_x_gradient" not in provides:
        return "needs f to depend on x"
    missing = needs - provides - {"ul_x_gradient"}
    if missing:
        return f"needs {', '.join(sorted(missing))} oracles"
    return ""


# ------------------------------------------------------------------------ views
@dataclass
class Panel:
    """One clock of a view: its ranking and ECDF plot."""

    clock: str
    hardware: str | None
    ranking: pd.DataFrame
    table: Table
    plot: Markup

    @property
    def label(self) -> str:
        return "oracle cost (all hardware)" if self.clock == "oracles" else \
            f"solver CPU time on {self.hardware}"


@dataclass
class View:
    scope_kind: str  # task | suite | unofficial
    scope: str
    ruleset: str
    budget: str
    frame: pd.DataFrame = field(repr=False)
    panels: list[Panel] = field(default_factory=list)
    matrix: Table | None = None
    budget_matrix: Table | None = None
    summary: list[str] = field(default_factory=list)
    versions: list[tuple[str, str]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    hardware: list[str] = field(default_factory=list)
    seeds: str = ""
    key: str = ""
    #: (problem, recorded version, current version) of the scope's records never ranked here
    older: list[tuple[str, str, str]] = field(default_factory=list)
    #: False when fewer than two solvers (canaries aside) ran a common instance: no ranking
    ranked: bool = True

    @property
    def href(self) -> str:
        return f"view-{self.key}.html"

    @property
    def title(self) -> str:
        what = self.scope if self.scope_kind != "suite" else f"suite {self.scope}"
        return f"{what} · {self.ruleset} ruleset · budget {self.budget}"

    @property
    def leaders(self) -> list[str]:
        if not self.ranked or not self.panels or self.panels[0].ranking.empty:
            return []
        table = self.panels[0].ranking
        return table.loc[table["rank"] == table["rank"].min(), "solver"].tolist()

    @property
    def instances(self) -> int:
        return len(self.versions)

    @property
    def solvers(self) -> int:
        return int(self.frame["solver"].nunique())


def current_versions(frame: pd.DataFrame, meta: Mapping[str, Mapping[str, Any]] | None
                     ) -> dict[str, str]:
    """Problem -> the version that is ranked: the registry's current version where the registry
    declares one (records of any other version are "older versions", never ranked, even when
    no record of the current version exists), else the newest version recorded."""
    from bilevel_bench.leaderboard.collect import version_key

    out = {}
    for problem, versions in frame.groupby("problem")["problem_version"]:
        declared = ((meta or {}).get(problem) or {}).get("version")
        out[problem] = str(declared) if declared is not None else \
            max(versions.unique(), key=version_key)
    return out


def comparable(part: pd.DataFrame) -> bool:
    """Whether a view can rank: at least two solvers (canaries aside) ran a common
    instance."""
    ranked = without_canaries(part)
    if ranked.empty:
        return False
    return bool(ranked.groupby(["problem", "problem_version"])["solver"].nunique().max() >= 2)


def split_budgets(part: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Groups of runs that share budgets: one group when every instance was run under one
    budget (instances may differ: the label lists them), else one group per budget."""
    per_instance = part.groupby("problem")["budget_key"].agg(lambda s: sorted(set(s), key=str))
    if all(len(keys) == 1 for keys in per_instance):
        keys = {k[0] for k in per_instance}
        if len(keys) == 1:
            return [(budget_label(next(iter(keys))), part)]
        units = ("s solver CPU", "oracle cost", "iterations")
        parts = []
        for c, unit in enumerate(units):
            values = sorted({k[c] for k in keys if k[c] is not None})
            if len(values) == 1 and all(k[c] is not None for k in keys):
                parts.append(f"{values[0]:g} {unit}")
            elif values:
                parts.append(f"{values[0]:g} to {values[-1]:g} {unit} (per instance)")
        label = " + ".join(parts)
        return [(label, part)]
    return [(budget_label(k), part[part["budget_key"] == k])
            for k in sorted(set(part["budget_key"]), key=str)]


def scopes(frame: pd.DataFrame, official: set[str] | None,
           suites: Mapping[str, Sequence[str]] | None) -> list[tuple[str, str, list[str]]]:
    """(kind, name, problems) of every view scope: tasks (coupled constraints as one more), the
    registry's suites, and the unofficial problems."""
    if frame.empty:
        return []
    known = frame if official is None else frame[frame["problem"].isin(official)]
    out: list[tuple[str, str, list[str]]] = []
    by_task = known.groupby("task")["problem"].agg(lambda s: sorted(set(s))).to_dict()
    coupled = sorted(set(known.loc[known["n_constraints"] > 0, "problem"]))
    if coupled:
        by_task[COUPLED] = coupled
    order = list(TASKS)
    seen: set[tuple[str, ...]] = set()
    for task in sorted(by_task, key=lambda t: (order.index(t) if t in order else len(order), t)):
        problems = tuple(by_task[task])
        if task != COUPLED and problems in seen | {tuple(coupled)}:
            continue  # e.g. network design = the coupled view: shown once
        seen.add(problems)
        out.append(("task", task, list(problems)))
    present = set(known["problem"])
    shown: set[tuple[str, ...]] = set()
    for name, problems in sorted((suites or {}).items()):
        inside = tuple(sorted(set(problems) & present))
        if inside and inside not in shown:
            shown.add(inside)
            out.append(("suite", name, list(inside)))
    if official is not None:
        unofficial = sorted(set(frame["problem"]) - official)
        if unofficial:
            out.append(("unofficial", "unofficial problems", unofficial))
    return out


def build_views(frame: pd.DataFrame, problems: Mapping[tuple[str, str], dict[str, Any]],
                solvers: Mapping[tuple[str, str], dict[str, Any]],
                meta: Mapping[str, dict[str, Any]] | None,
                suites: Mapping[str, Sequence[str]] | None, *, n_boot: int = 1000,
                seed: int = 0, highlight: Sequence[str] = (),
                newest: Mapping[str, str] | None = None) -> list[View]:
    """Every view of the (annotated, ranked-rulesets-only) frame."""
    if frame.empty:
        return []
    newest = newest or current_versions(frame, meta)
    current = frame["problem_version"] == frame["problem"].map(newest)
    ranked = frame[current]
    older = frame.loc[~current, ["problem", "problem_version"]].drop_duplicates()
    official = set(meta) if meta is not None else None
    solver_info = {name: info for (name, _v), info in sorted(solvers.items())}
    views: list[View] = []
    for kind, name, members in scopes(ranked, official, suites):
        sub = ranked[ranked["problem"].isin(members)]
        for ruleset in sorted(sub["ruleset"].unique(), key=lambda r: (RULESET_ORDER.get(r, 9),
                                                                      r)):
            for budget, part in split_budgets(sub[sub["ruleset"] == ruleset]):
                view = View(kind, name, ruleset, budget, part.reset_index(drop=True))
                view.key = slug(kind, name, ruleset, budget)
                _fill(view, problems, solver_info, meta, n_boot, seed, highlight,
                      ranked[ranked["problem"].isin(members)])
                view.older = sorted(
                    (p, v, newest[p]) for p, v in zip(older["problem"], older[
                        "problem_version"], strict=True) if p in members)
                views.append(view)
    for view in views:
        view.summary = summarise(view, [v for v in views if v is not view
                                        and (v.scope_kind, v.scope) == (view.scope_kind,
                                                                        view.scope)])
    return views


def _seeds(frame: pd.DataFrame) -> str:
    per = frame.groupby(["problem", "solver"])["seed"].nunique()
    seeds = sorted(frame["seed"].unique())
    span = f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else f"{seeds[0]}"
    if per.min() == per.max():
        return f"{per.min()} per solver and instance (seeds {span})"
    return f"{per.min()} to {per.max()} per solver and instance (seeds {span})"


def _fill(view: View, problems, solver_info, meta, n_boot, seed, highlight,
          scope_frame: pd.DataFrame) -> None:
    part = view.frame
    view.versions = sorted({(p, v) for p, v in zip(part["problem"], part["problem_version"],
                                                   strict=True)})
    view.hardware = sorted(part["hardware_class"].unique())
    view.seeds = _seeds(part)
    view.ranked = comparable(part)
    paper = [str(m) for m in ((meta or {}).get(p, {}).get("paper_metric")
                              for p, _ in view.versions) if m]
    outcomes = outcome_metrics(part, paper)
    view.panels.append(_panel(part, "oracles", None, n_boot, seed, highlight, view.ranked,
                              outcomes))
    for hardware in view.hardware:
        view.panels.append(_panel(part[part["hardware_class"] == hardware], "time", hardware,
                                  n_boot, seed, highlight, view.ranked, outcomes))
    # every solver run in this scope under this ruleset (any budget) is a row of the matrix
    everyone = sorted(set(scope_frame.loc[scope_frame["ruleset"] == view.ruleset, "solver"]))
    order = view.panels[0].ranking["solver"].tolist()
    rows_solvers = order + [s for s in everyone if s not in order] + \
        [s for s in sorted(solver_info) if s not in order and s not in everyone
         and any(applicability(solver_info[s], problems.get(pv, {}),
                               (meta or {}).get(pv[0]) if meta else None)
                 for pv in view.versions)]
    view.failures, why = failures(part, view.key)
    cube = ladder_cube(part, "oracles", view.versions, rows_solvers)
    tallies = {key: Counter(group) for key, group in part.groupby(["problem", "solver"])[
        "outcome"]}
    rows = []
    for j, solver in enumerate(rows_solvers):
        row: dict[str, Any] = {"solver": solver, "solver_href": solver_href(solver)}
        for i, (problem, version) in enumerate(view.versions):
            outs = tallies.get((problem, solver))
            if outs:
                area = float(np.nanmean(cube.runs[i, j, :cube.counts[i, j]]))
                marks = []
                if outs.get("diverged"):
                    marks.append(f"{outs['diverged']} diverged")
                if outs.get("failed"):
                    marks.append(f"{outs['failed']} failed")
                text = f"{area:.2f}" + (f" ({', '.join(marks)})" if marks else "")
                row[f"cell:{problem}"] = text
                href, tip = why.get((problem, solver), (None, None))
                row[f"why:{problem}"] = href
                row[f"tip:{problem}"] = tip or f"all {sum(outs.values())} runs reached the " \
                    "final target"
            else:
                info = solver_info.get(solver, {})
                reason = applicability(info, problems.get((problem, version), {}),
                                       (meta or {}).get(problem) if meta else None)
                row[f"cell:{problem}"] = f"n/a: {reason or 'not run'} (counts 0)"
                row[f"tip:{problem}"] = (f"not run: {reason} (its declared capabilities)"
                                         if reason else "not run: no record of this solver "
                                         "on this instance (it could run it)") + \
                    "; counts 0 in the ranking"
        rows.append(row)
    view.matrix = Table(
        f"matrix-{view.key}", "Per instance: ECDF area (oracle clock, mean over seeds), "
        "failed and diverged runs; n/a: the solver's declared capabilities exclude the "
        "problem, or it has no record there (not run); an n/a instance counts 0 in the ranking",
        [Column("solver", "Solver", link="solver_href"),
         *[Column(f"cell:{p}", p, link=f"why:{p}", title=f"tip:{p}")
           for p, _ in view.versions]], rows,
        note="Hover a cell for why its runs failed; click it for every run's reason.")
    view.budget_matrix = budget_matrix(view, rows_solvers[:len(order)] + [
        s for s in rows_solvers[len(order):] if (part["solver"] == s).any()], outcomes)


def failures(part: pd.DataFrame, key: str
             ) -> tuple[list[dict[str, Any]], dict[tuple[str, str], tuple[str, str]]]:
    """Why the runs of a view did not reach their final target: one entry per (instance,
    solver) with such runs (``id``, ``problem``, ``solver``, ``counts`` by kind and ``runs``,
    (seed, reason) pairs, from the records' ``why``), and per (instance, solver) the
    matrix cell's (link to the entry, tooltip)."""
    if "why_kind" not in part:
        return [], {}
    bad = part[part["why_kind"].fillna("").astype(bool)]
    if bad.empty:
        return [], {}
    bad = bad.sort_values(["problem", "solver", "seed"], kind="stable")
    kinds = bad.groupby(["problem", "solver"], sort=False)["why_kind"].value_counts(sort=False)
    counts: dict[tuple[str, str], list[str]] = {}
    for (problem, solver, kind), n in kinds.items():
        counts.setdefault((problem, solver), []).append(f"{n} {KINDS.get(kind, kind)}")
    entries, cells = [], {}
    for (problem, solver), group in bad.groupby(["problem", "solver"], sort=False):
        anchor = f"why-{slug(key, problem, solver)}"
        runs = list(zip(group["seed"].tolist(), group["why"].tolist(), strict=True))
        summary = ", ".join(counts[(problem, solver)])
        first = f"seed {runs[0][0]}: {runs[0][1]}"
        tip = f"{summary} — {first}" + (f" (and {len(runs) - 1} more: click)"
                                         if len(runs) > 1 else "")
        entries.append({"id": anchor, "problem": problem, "solver": solver,
                        "counts": summary, "runs": runs})
        cells[(problem, solver)] = (f"#{anchor}", tip)
    return entries, cells


#: final metrics that are task outcomes a practitioner cares about (reported, never ranked):
#: test metrics, refusal rates on held-out prompts, profit
OUTCOME_PREFIXES = ("test_", "refusal_rate", "heldout_", "profit", "helpfulness")
REPORTED = "reported, not ranked"


def outcome_metrics(part: pd.DataFrame, paper: Sequence[str] = ()) -> list[str]:
    """The task outcomes the records of a view report (``final_<name>`` columns with a value):
    the instances' papers' metrics first, then :data:`OUTCOME_PREFIXES`, never a primary
    metric (ranked already)."""
    primary = set(part["primary_metric"].unique())
    present = [c.removeprefix("final_") for c in part.columns
               if c.startswith("final_") and c != "final_primary"]
    wanted = [m for m in present if m not in primary
              and (m in paper or m.startswith(OUTCOME_PREFIXES))]
    present_cols = [m for m in wanted if part[f"final_{m}"].notna().any()]
    return sorted(present_cols, key=lambda m: (m not in paper, m))


def at_budget(part: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The fixed-budget values: per (solver, problem), the median over seeds of the final
    primary metric (``primary``) and of each task outcome in ``metrics`` (NaN where no run has
    a finite value). One vectorised group-by."""
    columns = {"primary": part["final_primary"],
               **{m: part[f"final_{m}"] for m in metrics}}
    values = pd.DataFrame({k: pd.to_numeric(v, errors="coerce") for k, v in columns.items()})
    values = values.where(np.isfinite(values))
    return values.groupby([part["solver"], part["problem"]]).median()


def _reported(per: pd.DataFrame, solvers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per solver, the median over the instances it ran of :func:`at_budget`'s seed medians
    ('diverged' for a primary metric without any finite value) and the instances counted."""
    if per.empty:
        return {}
    over = per.groupby(level=0).median()
    ran = per.groupby(level=0).size()
    out = {}
    for solver in solvers:
        if solver not in over.index:
            continue
        row = over.loc[solver]
        out[solver] = {f"out:{k}": (float(v) if pd.notna(v) else
                                    ("diverged" if k == "primary" else None))
                       for k, v in row.items()}
        out[solver]["final"] = out[solver].pop("out:primary")
        out[solver]["final_n"] = int(ran[solver])
    return out


def _panel(part: pd.DataFrame, clock: str, hardware: str | None, n_boot: int, seed: int,
           highlight: Sequence[str], ranked: bool = True, outcomes: Sequence[str] = ()
           ) -> Panel:
    """One clock of a view: the ranking table (``ranked=False``: scores without ranks),
    the fixed-budget values beside it (reported, not ranked) and the ECDF plot with the best
    canary as a reference line."""
    instances = sorted(set(zip(part["problem"], part["problem_version"], strict=True)))
    table, _ = ladder_ranking(part, clock, instances=instances, n_boot=n_boot, seed=seed)
    stats = part.groupby("solver").agg(
        runs=("run_id", "size"), reached=("converged", "mean"),
        diverged=("outcome", lambda s: int((s == "diverged").sum())),
        failed=("outcome", lambda s: int((s == "failed").sum())),
        statuses=("status", lambda s: status_mix(list(s))),
        verified=("verification", lambda s: int((s == "verified").sum()))
        if "verification" in part else ("run_id", lambda s: 0))
    metrics = sorted(part["primary_metric"].unique())
    reported = _reported(at_budget(part, outcomes), list(stats.index))
    canaries = part[canary_rows(part)]
    shown = table.to_dict("records")
    if not ranked:
        shown = [{**rec, "rank": None, "tied": False} for rec in shown]
    lines = pd.DataFrame()
    if len(canaries):  # reference lines after the ranked solvers, never ranked
        lines, _ = ladder_ranking(canaries, clock, instances=instances, n_boot=0,
                                  include_canaries=True)
        lines = lines.sort_values(["solved_fraction", "score"], ascending=False,
                                  kind="stable")
        shown += [{**rec, "rank": CANARY_LABEL, "tied": False} for rec in
                  lines.to_dict("records")]
    rows = []
    for rec in shown:
        s = stats.loc[rec["solver"]]
        rows.append({**rec, "solver_href": solver_href(rec["solver"]),
                     "success": float(s["reached"]),
                     "outcomes": _outcomes(int(s["runs"]), int(s["reached"] * s["runs"] + 0.5),
                                           int(s["failed"]), int(s["diverged"])),
                     "statuses": s["statuses"], "runs": int(s["runs"]),
                     "verified": (f"{int(s['verified'])} of {int(s['runs'])} verified"
                                  if s["verified"] else "self-reported"),
                     **reported.get(rec["solver"], {}),
                     "ran": f"{rec['instances']} of {rec['instances_total']}"})
    unit = "oracle cost" if clock == "oracles" else f"solver CPU s, {hardware}"
    over = "the median over the instances the solver ran of the median over seeds of the " \
        "value at the end of the budget (instances' scales differ: per instance in the " \
        "fixed-budget table below)"
    columns = [
        Column("rank", "Rank", "rank",
               tip="1 + the number of solvers significantly ahead (paired bootstrap over "
                   "instances and seeds, one-sided, Holm-corrected at 5%); = marks a tie"
                   if ranked else "not ranked: fewer than two solvers ran a common instance"),
        Column("solver", "Solver", link="solver_href"),
        Column("solved_fraction", "Solved [95% CI]", "ci", "solved_fraction_lo",
               "solved_fraction_hi",
               tip="fraction of (instance, seed) pairs reaching the final target, over every "
                   "instance of the view (not run = 0); ranks first"),
        Column("score", "ECDF area [95% CI]", "ci", "score_lo", "score_hi",
               tip="area under the target-ladder ECDF (log budget axis), mean over every "
                   "instance of the view (not run = 0); breaks ties of the solved fraction"),
        Column("ran", "Instances run", tip="instances with a record, of the view's"),
        Column("outcomes", "Outcomes", tip="reached the final target / failed (budget, error, "
                                           "timeout, oom) / diverged, out of all runs"),
    ]
    if len(metrics) == 1:
        columns.append(Column("final", f"{metrics[0]} at budget †", "num",
                              tip=f"{REPORTED}: {over}; 'diverged' when no run has a finite "
                                  "value"))
    columns += [Column(f"out:{m}", f"{m} †", "num", detail=k >= 1,
                       tip=f"task outcome, {REPORTED}: {over}")
                for k, m in enumerate(outcomes)]
    columns += [
        Column("success", "Success", "pct", detail=True, tip="runs reaching the final target"),
        Column("mean_rank", "Mean rank [CI]", "ci", "mean_rank_lo", "mean_rank_hi",
               detail=True, tip="average rank by (solved fraction, ECDF area) over every "
                                "instance of the view (not run = last)"),
        Column("rungs_reached", "Rungs reached", "pct", detail=True),
        Column("solved", "Solved", "int", detail=True,
               tip="instances where more than half the seeds reach the final target"),
        Column("runs", "Runs", "int", detail=True),
        Column("statuses", "Statuses", detail=True),
        Column("verified", "Verification", detail=True,
               tip="runs re-executed by `bilevel-bench verify` with identical results; the "
                   "others are self-reported"),
    ]
    tid = f"rank-{slug(clock, hardware, *sorted(part['run_id'])[:3], len(part))}"
    title = f"Ranking by solved fraction, then ECDF area — {unit}" if ranked else \
        f"Scores, not ranked (fewer than two solvers ran a common instance) — {unit}"
    note = f"† {REPORTED} (fixed budget): {over}." if len(metrics) == 1 or outcomes else ""
    out = Table(tid, title, columns, rows, note=note)
    best = str(lines["solver"].iloc[0]) if len(lines) else None  # lines: best first
    return Panel(clock, hardware, table, out,
                 _ecdf_plot(part, clock, table, stats, highlight, best))


def budget_matrix(view: View, solvers: Sequence[str], outcomes: Sequence[str]) -> Table:
    """The fixed-budget view per instance: per solver and instance the median over seeds of
    the final primary metric and of the instance's first task outcome (reported, not
    ranked)."""
    per = at_budget(view.frame, outcomes)
    shown = {}
    for problem, _version in view.versions:
        metric = str(view.frame.loc[view.frame["problem"] == problem,
                                    "primary_metric"].iloc[0])
        here = per.xs(problem, level="problem") if problem in per.index.get_level_values(
            "problem") else per.iloc[:0]
        extra = next((m for m in outcomes if here[m].notna().any()), None)
        shown[problem] = (metric, extra, here)
    rows = []
    for solver in solvers:
        row: dict[str, Any] = {"solver": solver, "solver_href": solver_href(solver)}
        for problem, (_metric, extra, here) in shown.items():
            if solver not in here.index:
                row[f"at:{problem}"] = "not run"
                continue
            value = here.loc[solver, "primary"]
            text = fmt(value) if pd.notna(value) else "diverged"
            if extra is not None:
                text += f" · {fmt(here.loc[solver, extra])}"
            row[f"at:{problem}"] = text
        rows.append(row)
    columns = [Column("solver", "Solver", link="solver_href"),
               *[Column(f"at:{p}", f"{p}: {metric}" + (f" · {extra}" if extra else ""))
                 for p, (metric, extra, _) in shown.items()]]
    return Table(f"budget-{view.key}", f"At the budget, per instance ({REPORTED})", columns,
                 rows, note="Fixed-budget view: the median over seeds of the final primary "
                 "metric (and of the instance's first task outcome, after ·) at the end of the "
                 "budget; 'diverged' when no run has a finite value. Reported beside the "
                 "ranking, never used to rank.")


def _outcomes(runs: int, reached: int, failed: int, diverged: int) -> str:
    parts = [f"{reached} ✓"]
    if failed:
        parts.append(f"{failed} failed")
    if diverged:
        parts.append(f"{diverged} diverged")
    return f"{' · '.join(parts)} / {runs}"


#: how the best canary's reference line is drawn in ECDF plots
CANARY_STYLE = {"color": "#8c8c8c", "dash": "3 3"}


def _ecdf_plot(frame: pd.DataFrame, clock: str, table: pd.DataFrame, stats: pd.DataFrame,
               highlight: Sequence[str], canary: str | None = None) -> Markup:
    """The ECDF of every ranked solver, and of the best canary (``canary``) as a grey dashed
    reference line, always drawn."""
    low, high = ecdf_axis(frame, clock)
    budgets = np.geomspace(low, high, 61)
    curves = ecdf(frame, clock, budgets)
    series = []
    for solver in table["solver"]:
        if solver not in curves:
            continue
        div = int(stats.loc[solver, "diverged"]) if solver in stats.index else 0
        runs = int(stats.loc[solver, "runs"]) if solver in stats.index else 0
        series.append(Series(solver, budgets, curves[solver], step=True,
                             note=f"({div}/{runs} diverged)" if div else "",
                             visible=solver in highlight))
    if canary is not None and canary in curves:
        series.append(Series(f"best canary: {canary}", budgets, curves[canary], step=True,
                             note="(reference)", visible=True, key=canary, **CANARY_STYLE))
    unit = "solver CPU seconds" if clock == "time" else "oracle cost"
    note = "best first; (k/n diverged): runs that diverged" + (
        "; grey dashes: the best canary (no bilevel work, never ranked)" if canary else "")
    return Markup(line_plot(series, title=f"Target-ladder ECDF ({clock} clock)",
                            xlabel=f"budget ({unit}, log scale)", xlog=True,
                            ylabel="fraction of (instance, rung) pairs",
                            xlim=(low, high), ylim=(0.0, 1.0), note=note))


# ------------------------------------------------------------------------ summaries
def _name_list(names: Sequence[str]) -> str:
    names = list(names)
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def summarise(view: View, siblings: Sequence[View]) -> list[Markup]:
    """A few sentences from the data: who leads, by how much, under which ruleset, how
    robust across seeds, which solvers diverge with their defaults (escaped HTML)."""
    out: list[Markup] = []
    table = view.panels[0].ranking
    if table.empty:
        return [Markup("No solver has a scored run in this view.")]
    if not view.ranked:
        return [Markup("Fewer than two solvers (canaries aside) ran a common instance: this "
                       "view does not rank them ({}). Their scores are listed without a "
                       "rank.").format(_name_list(table["solver"].tolist()))]
    top = table.iloc[0]
    leaders = view.leaders
    if len(leaders) == 1:
        rest = table[table["rank"] > top["rank"]]
        lead = Markup("<b>{}</b> leads on the oracle clock: final target reached in {:.0%} "
                      "of (instance, seed) pairs, ECDF area {:.2f} [{:.2f}, {:.2f}]").format(
            top["solver"], top["solved_fraction"], top["score"], top["score_lo"],
            top["score_hi"])
        if len(rest):
            nxt = rest.iloc[0]
            lead += Markup("; ahead of {} ({:.0%}, {:.2f}) in the paired test (bootstrap over "
                           "instances and seeds, Holm-corrected).").format(
                nxt["solver"], nxt["solved_fraction"], nxt["score"])
        else:
            lead += Markup("; it is the only solver scored.")
        out.append(lead)
    else:
        out.append(Markup("<b>{}</b> share the lead on the oracle clock (ECDF areas {}; "
                          "no paired test separates them: a tie).").format(
            _name_list(leaders), ", ".join(f"{v:.2f}" for v in table["score"][:len(leaders)])))
    rob = []
    for solver in leaders[:3]:
        runs = view.frame[view.frame["solver"] == solver]
        cube = ladder_cube(runs, "oracles")
        spread = [np.nanstd(cube.runs[i, 0, :cube.counts[i, 0]])
                  for i in range(len(cube.instances)) if cube.counts[i, 0] > 1]
        text = f"{solver}: {int(runs['converged'].sum())} of {len(runs)} runs reach the " \
               "final target"
        if spread:
            text += f", its ECDF area varies by ±{float(np.mean(spread)):.2f} across seeds"
        rob.append(text)
    out.append(Markup("Robustness — {}.").format("; ".join(rob)))
    others = [f"{v.ruleset} ruleset (budget {v.budget}): {_name_list(v.leaders)}"
              for v in siblings if v.ruleset != view.ruleset and v.leaders]
    if others:
        out.append(Markup("Leaders under the other rulesets — {}.").format("; ".join(others)))
    # divergence under this view's own ruleset (its hyperparameters), all budgets of the scope
    same = [view] + [v for v in siblings if v.ruleset == view.ruleset]
    frame = pd.concat([v.frame[["run_id", "solver", "outcome"]] for v in same]
                      ).drop_duplicates("run_id")
    div = (frame["outcome"] == "diverged").groupby(frame["solver"]).agg(["sum", "size"])
    div = div[div["sum"] > 0].sort_values(["sum"], ascending=False, kind="stable")
    config = "their default hyperparameters" if view.ruleset == "default" else \
        f"the {view.ruleset} ruleset's hyperparameters"
    if len(div):
        out.append(Markup("Diverge with {}: {}.").format(config, ", ".join(
            f"{s} ({int(r['sum'])} of {int(r['size'])} runs)" for s, r in div.iterrows())))
    else:
        out.append(Markup("No run diverges with {} in this view.").format(config))
    nothing = table.loc[table["score"] == 0, "solver"].tolist()
    if nothing:
        out.append(Markup("Reached no rung within the budget: {}.").format(_name_list(nothing)))
    return out


# ------------------------------------------------------------------------ solver pages
def _ahead(mine: tuple[float, float], others: Iterable[tuple[float, float]]) -> int:
    """How many (solved fraction, area) keys are strictly ahead of ``mine``
    (lexicographically, up to 1e-12)."""
    return sum(k[0] > mine[0] + 1e-12 or (abs(k[0] - mine[0]) <= 1e-12
                                          and k[1] > mine[1] + 1e-12) for k in others)


def problem_ranks(frame: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Solver -> one row per (problem, version, ruleset) it ran: its rank among the solvers that
    ran it by the views' order (solved fraction over seeds, then ECDF area on the oracle clock,
    means over seeds; 1 + the number of solvers strictly ahead), the best solver by the same
    order and its scores, and its Dolan–Moré ratio of median oracles to the final target to the
    fastest solver's (named: ``fastest``, which need not be the best). One ladder cube per
    (problem, version, ruleset), shared by all its solvers; canaries are listed, never
    ranked."""
    out: dict[str, list[dict[str, Any]]] = {}
    if frame.empty:
        return out
    for (problem, version, ruleset), group in frame.groupby(["problem", "problem_version",
                                                            "ruleset"], sort=True):
        cube = ladder_cube(group, "oracles")
        keys = {s: (float(np.nanmean(cube.solved[0, j, :cube.counts[0, j]])),
                    float(np.nanmean(cube.runs[0, j, :cube.counts[0, j]])))
                for j, s in enumerate(cube.solvers) if cube.counts[0, j]}
        to_target = pd.to_numeric(group["oracles_to_target"], errors="coerce").where(
            group["converged"].astype(bool)).fillna(np.inf)
        costs = to_target.groupby(group["solver"]).median().astype(float).to_dict()
        converged = group["converged"].astype(bool).groupby(group["solver"]).sum()
        failed = (group["outcome"] == "failed").groupby(group["solver"]).sum()
        diverged = (group["outcome"] == "diverged").groupby(group["solver"]).sum()
        sizes = group.groupby("solver").size()
        canaries = set(group.loc[canary_rows(group), "solver"])
        ranked = {s: k for s, k in keys.items() if s not in canaries}
        pool = ranked or keys
        best = max(sorted(pool), key=lambda s: pool[s])
        finite = {s: c for s, c in costs.items() if s in pool and math.isfinite(c)}
        fastest = min(sorted(finite), key=lambda s: finite[s]) if finite else None
        for solver in sorted(keys):
            rank = 1 + _ahead(keys[solver], ranked.values())
            ratio = costs[solver] / finite[fastest] if fastest is not None and math.isfinite(
                costs[solver]) else math.inf
            out.setdefault(solver, []).append({
                "problem": problem, "problem_version": version, "ruleset": ruleset,
                "rank": None if solver in canaries else rank, "of": len(ranked),
                "rank_text": CANARY_LABEL if solver in canaries else f"{rank} of {len(ranked)}",
                "solved_fraction": keys[solver][0], "area": keys[solver][1],
                "best": best, "best_solved_fraction": keys[best][0],
                "best_area": keys[best][1], "fastest": fastest or "–", "ratio": ratio,
                "outcomes": _outcomes(int(sizes[solver]), int(converged[solver]),
                                      int(failed[solver]), int(diverged[solver]))})
    return out


def final_text(values: Sequence[Any]) -> Any:
    """Median of finite values; 'diverged' when none is finite (never a NaN number)."""
    nums = np.array([as_float(v) for v in values], dtype=float)
    finite = nums[np.isfinite(nums)]
    if not finite.size:
        return "diverged" if nums.size else None
    return float(np.median(finite))



__all__ = ["TASKS", "View", "Panel", "annotate", "build_views", "registry_problems",
           "problem_ranks", "summarise", "fmt", "final_text"]
