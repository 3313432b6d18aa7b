"""Build the static leaderboard site from folders of run records.

    build_site(["results/"], "site/") -> site/index.html

Pages (all in one folder, linked relatively, so the site works from ``file://``):

* ``index.html`` — the views per practitioner task (SVM hyperparameter optimisation, data
  cleaning, LLM safety, LLM representation, coupled constraints, closed-form toys,
  quadratics) with their leaders, the headline ranking, the suites, problems, solvers and the
  scoring method; an empty results folder says so;
* ``view-*.html`` — one view (:mod:`bilevel_bench.leaderboard.views`): a task or suite under one
  ruleset and one budget, stating budget, ruleset, problem versions, hardware classes and seeds
  at its top; a generated summary; per clock (oracle cost; solver time per hardware class) the
  ranking by ECDF area with intervals and the ECDF plot; the instance x solver matrix that tells
  "not applicable", "not run", "failed" and "diverged" apart. Problems the registry does not know
  get one "unofficial" view and no task ranking;
* ``problem-*.html`` — per problem and version: formulation, data, target, paper metric, source
  paper; per (ruleset, hardware class) the per-solver table and convergence curves;
* ``solver-*.html`` — rank and ratio to the best per problem, hyperparameters per ruleset,
  citation, capabilities, record provenance;
* ``skipped.html`` — files that are not usable run records, with the reason;
* ``data/*.csv|json`` — every table; ``static/`` — the stylesheet, the table sorter and
  ``plots.js`` (toggle curves, switch clocks, hover values, ``?highlight=SOLVER``).

Rankings use the newest version of each problem present (older versions are shown on the
problem pages, never ranked); see :mod:`bilevel_bench.metrics` for the scoring.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from bilevel_bench import __version__
from bilevel_bench.asv_import import latest_figures, load_asv_results
from bilevel_bench.leaderboard.cache import gc_paused
from bilevel_bench.leaderboard.collect import Collection, collect, version_key
from bilevel_bench.leaderboard.curves import common_grid, quantile_bands
from bilevel_bench.leaderboard.plots import Series, line_plot
from bilevel_bench.leaderboard.tables import (
    Column,
    Table,
    number,
    problem_href,
    slug,
    solver_href,
)
from bilevel_bench.leaderboard.views import (
    TASKS,
    View,
    annotate,
    build_views,
    current_versions,
    final_text,
    problem_ranks,
    registry_problems,
    status_mix,
)
from bilevel_bench.metrics import TAU_MAX, canary_rows, per_instance
from bilevel_bench.paths import SITE_MARKER

__all__ = ["build_site", "slug", "problem_href", "solver_href"]

#: rulesets of runs that are never ranked nor tabulated per problem: the trials of the ``tuned``
#: ruleset (see :mod:`bilevel_bench.tuning`); their configurations show on the solver pages
UNRANKED = ("tuning",)
CLOCK_LABELS = {"time": "solver time (CPU seconds)", "oracles": "oracle calls (oracle cost)"}


# ---------------------------------------------------------------------------- entry point
@gc_paused()  # a build makes millions of small objects and (almost) no cycles
def build_site(inputs: Sequence[str | Path], output: str | Path, *,
               suites: Mapping[str, Sequence[str]] | None = None, n_boot: int = 1000,
               seed: int = 0, title: str = "bilevel_bench leaderboard",
               tau_max: float = TAU_MAX, asv_results: Sequence[str | Path] | None = None,
               official: Mapping[str, Mapping[str, Any]] | bool = True,
               highlight: Sequence[str] = (), cache: str | Path | None = None) -> Path:
    """Render the site for the run records under ``inputs`` into ``output``; returns the path of
    its ``index.html``. ``suites`` maps suite names to problem instance names (suite views);
    ``n_boot`` bootstrap replicates with ``seed``. ``asv_results``: asv results directories or
    files (``.asv/results``); each problem page then shows the asv figures of the newest commit
    per machine beside the records' own. ``official``: problem instance name -> registry
    metadata (task, paper_metric, provides, ...); True reads the registry
    (:func:`~bilevel_bench.leaderboard.views.registry_problems`), False treats every recorded
    problem as official. Records of other problems are shown under "unofficial".
    ``highlight``: solver names drawn in every plot (besides the leaders). ``cache``: a
    folder outside ``output`` that keeps the summaries of the records read for the next build
    (:mod:`~bilevel_bench.leaderboard.cache`)."""
    if cache is not None and Path(cache).resolve().is_relative_to(Path(output).resolve()):
        raise ValueError(f"the cache folder {str(cache)!r} lies inside the site folder "
                         f"{str(output)!r}, which is published: choose one outside it")
    everything = collect(inputs, cache=cache)
    paged = set(everything.frame["solver"]) if len(everything.frame) else set()
    asv = _asv_tables(asv_results or [], paged)
    meta = registry_problems() if official is True else (None if official is False
                                                          else dict(official))
    hidden = everything.frame["ruleset"].isin(UNRANKED) if len(everything.frame) else []
    frame = everything.frame[~hidden].reset_index(drop=True) if len(everything.frame) \
        else everything.frame
    data = replace(everything, frame=annotate(frame, everything.problems))
    out = _prepare(Path(output))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bilevel_bench.leaderboard", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(problem_href=problem_href, solver_href=solver_href)
    env.filters["sig"] = significant
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    common = {"site_title": title, "built": stamp, "version": __version__,
              "records": len(everything.frame), "skipped_count": len(data.skipped),
              "tau_max": tau_max, "unranked": int(sum(hidden)), "unranked_rulesets": UNRANKED,
              "inputs": [str(p) for p in inputs]}
    tables: list[Table] = []

    def page(name: str, template: str, **context: Any) -> None:
        html = env.get_template(template).render(**common, **context)
        (out / name).write_text(html, encoding="utf-8")

    instances = per_instance(data.frame) if not data.frame.empty else pd.DataFrame()
    views = build_views(data.frame, data.problems, data.solvers, meta, suites, n_boot=n_boot,
                        seed=seed, highlight=highlight)
    for view in views:
        tables += [p.table for p in view.panels] + [view.matrix] + \
            ([view.budget_matrix] if view.budget_matrix is not None else [])
        page(view.href, "view.html.j2", page_title=view.title, view=view,
             siblings=[v for v in views if v is not view
                       and (v.scope_kind, v.scope) == (view.scope_kind, view.scope)])
    for name, context in _problem_pages(data, instances, meta, highlight):
        tables += context["tables"] + ([asv[name]] if name in asv else [])
        page(problem_href(name), "problem.html.j2", page_title=name, asv=asv.get(name),
             **context)
    for name, context in _solver_pages(everything, data.frame, instances, meta):
        tables += context["tables"]
        page(solver_href(name), "solver.html.j2", page_title=name, **context)
    skipped = Table("skipped", "Skipped files", [Column("path", "File"),
                                                  Column("reason", "Reason")],
                    [{"path": p, "reason": r} for p, r in data.skipped])
    page("skipped.html", "skipped.html.j2", page_title="Skipped records", table=skipped)
    index = _index_tables(data, views, meta)
    tables += [skipped, *index.values()]
    suite_views = [v for v in views if v.scope_kind == "suite"]
    headline = (suite_views or [v for v in views if v.scope_kind == "task"] or views or [None])[0]
    page("index.html", "index.html.j2", page_title="Leaderboard", headline=headline,
         empty=data.frame.empty, **index)
    for table in tables:
        table.write(out / "data")
    return out / "index.html"


def significant(value: Any, digits: int = 6) -> str:
    """A number with ``digits`` significant digits (ladders, targets), text as it is."""
    v = number(value)
    return str(value) if v is None else f"{v:.{digits}g}"


def _prepare(out: Path) -> Path:
    """Create the site folder; remove only what an earlier build wrote there."""
    out.mkdir(parents=True, exist_ok=True)
    (out / SITE_MARKER).write_text("a leaderboard site built by bilevel-bench; folders holding "
                                   "this file are never read as run records\n")
    for pattern in ("index.html", "skipped.html", "ranking-*.html", "view-*.html",
                    "problem-*.html", "solver-*.html", "data/*.csv", "data/*.json"):
        for stale in out.glob(pattern):
            stale.unlink()
    (out / "data").mkdir(exist_ok=True)
    static = out / "static"
    static.mkdir(exist_ok=True)
    for item in resources.files("bilevel_bench.leaderboard").joinpath("static").iterdir():
        if item.is_file():
            with resources.as_file(item) as source:
                shutil.copyfile(source, static / item.name)
    return out


# ---------------------------------------------------------------------------- problem pages
def _problem_pages(data: Collection, instances: pd.DataFrame,
                   meta: Mapping[str, Mapping[str, Any]] | None, highlight: Sequence[str]):
    frame = data.frame
    if frame.empty:
        return
    positions: dict[tuple, dict[str, list[tuple[int, str]]]] = {}
    groups_of = frame.groupby(["problem", "problem_version", "ruleset", "hardware_class",
                               "solver"]).indices
    trace_of, outcome_of = frame["trace"].to_numpy(), frame["outcome"].to_numpy()
    for (*key, solver), rows in sorted(groups_of.items()):
        positions.setdefault(tuple(key), {})[solver] = [
            (int(trace_of[r]), str(outcome_of[r])) for r in rows]
    current_of = current_versions(frame, meta)
    for problem, runs in frame.groupby("problem", sort=True):
        versions = sorted(runs["problem_version"].unique(), key=version_key, reverse=True)
        current = current_of[problem]
        versions.sort(key=lambda v: v != current)  # the ranked version first, then the older
        official = meta is None or problem in meta
        extra = dict((meta or {}).get(problem) or {})
        sections, tables = [], []
        for version in versions:
            info = data.problems[(problem, version)]
            part = runs[runs["problem_version"] == version]
            rows = instances[(instances["problem"] == problem)
                             & (instances["problem_version"] == version)]
            groups = []
            for ruleset, hardware in sorted(set(zip(part["ruleset"], part["hardware_class"],
                                                    strict=True))):
                sel = rows[(rows["ruleset"] == ruleset) & (rows["hardware_class"] == hardware)]
                runs_here = part[(part["ruleset"] == ruleset)
                                 & (part["hardware_class"] == hardware)]
                table = _solver_table(problem, version, ruleset, hardware, sel, runs_here, info,
                                      extra.get("paper_metric"))
                tables.append(table)
                budgets = sorted(set(runs_here["budget_label"]))
                groups.append({"ruleset": ruleset, "hardware": hardware, "table": table,
                               "budgets": budgets,
                               "plots": _curves(data, positions[(problem, version, ruleset,
                                                                 hardware)], info, highlight)})
            canaries = canary_table(problem, version, part, info)
            if canaries is not None:
                tables.append(canaries)
            sections.append({"version": version, "info": info,
                             "superseded": version != current, "groups": groups,
                             "canaries": canaries,
                             "fingerprints": sorted((info.get("dataset_fingerprints")
                                                     or {}).items())
                             if isinstance(info.get("dataset_fingerprints"), dict) else []})
        yield problem, {"problem": problem, "sections": sections, "tables": tables,
                        "current": current,
                        "official": official, "paper_metric": extra.get("paper_metric"),
                        "task": extra.get("task") or data.problems[(problem, versions[0])]
                        .get("task")}


def canary_table(problem: str, version: str, runs: pd.DataFrame, info: Mapping[str, Any]
                 ) -> Table | None:
    """The canaries of one instance (protocol v3: solvers that do no bilevel work, which must
    reach neither the final target nor the top rungs), computed from the canary records
    present: per canary and ruleset its best final primary metric and the most rungs a run
    reached, against the final target. None when no canary record is present."""
    mine = runs[canary_rows(runs)]
    if mine.empty:
        return None
    higher = bool(info.get("higher_is_better"))
    final = pd.to_numeric(mine["final_primary"], errors="coerce")
    final = final.where(np.isfinite(final))
    groups = pd.DataFrame({"final": final, "rungs_reached": pd.to_numeric(
        mine["rungs_reached"], errors="coerce"), "rungs": pd.to_numeric(
        mine["rungs"], errors="coerce"), "converged": mine["converged"].astype(bool)}).groupby(
        [mine["solver"], mine["ruleset"]])
    best = groups["final"].max() if higher else groups["final"].min()
    table = pd.DataFrame({"best": best, "reached": groups["rungs_reached"].max(),
                          "rungs": groups["rungs"].max(), "hit": groups["converged"].any(),
                          "runs": groups.size()}).reset_index()
    target = number(info.get("target"))
    rows = [{"solver": r["solver"], "solver_href": solver_href(r["solver"]),
             "ruleset": r["ruleset"], "runs": int(r["runs"]),
             "best": r["best"] if pd.notna(r["best"]) else "diverged", "target": target,
             "rungs_text": (f"{int(r['reached'])} of {int(r['rungs'])}"
                            if pd.notna(r["reached"]) and pd.notna(r["rungs"]) else "–"),
             "verdict": "REACHES the final target: the instance fails this canary"
             if r["hit"] else "misses the final target"}
            for r in table.to_dict("records")]
    metric = str(info.get("primary_metric"))
    return Table(f"canaries-{slug(problem, version)}",
                 "Canaries (no bilevel work; reference lines, never ranked)",
                 [Column("solver", "Canary", link="solver_href"), Column("ruleset", "Ruleset"),
                  Column("best", f"Best final {metric}", "num",
                         tip="the best final value over the canary's runs (seeds)"),
                  Column("target", "Final target", "num"),
                  Column("rungs_text", "Rungs reached",
                         tip="the most rungs of the ladder one of its runs reached (LL gate "
                             "applied)"),
                  Column("verdict", "Verdict"), Column("runs", "Runs", "int", detail=True)],
                 rows, note="A canary does no bilevel work (x frozen, fitted on validation "
                 "data, moved without oracles, or random): an instance it solves cannot tell "
                 "bilevel solvers apart and is reformulated (docs/canaries.md).")


def _asv_tables(paths: Sequence[str | Path], paged: set[str]) -> dict[str, Table]:
    """Per problem, the asv figures (:mod:`bilevel_bench.asv_import`) of each solver; a solver
    links to its page only when it has one (``paged``: solvers with run records)."""
    if not paths:
        return {}
    frame = latest_figures(pd.concat([load_asv_results(p) for p in paths], ignore_index=True))
    columns = [("time_solve", "Time to target (asv, s)"),
               ("peakmem_solve", "Peak memory (asv, MiB)"),
               ("track_oracles_to_target", "Oracles to target (asv)"),
               ("track_final_gap", "Final ul_gap (asv)")]
    tables = {}
    for problem, rows in frame.groupby("problem", sort=True):
        records = [{**r, "solver_href": solver_href(r["solver"]) if r["solver"] in paged
                    else None, "commit": r["commit"][:8],
                    "peakmem_solve": r.get("peakmem_solve", np.nan) / 2**20}
                   for r in rows.to_dict("records")]
        tables[problem] = Table(
            f"asv-{slug(problem)}", "asv benchmarks (newest commit per machine)",
            [Column("solver", "Solver", link="solver_href"), Column("machine", "Machine"),
             Column("commit", "Commit"),
             *[Column(key, label, "num") for key, label in columns if key in rows]], records)
    return tables


def _gap(value: Any, name: str) -> Any:
    """A gap metric below zero is numerical noise of an exact evaluation: shown as 0."""
    v = number(value)
    if v is not None and v < 0 and name.endswith("_gap"):
        return 0.0
    return value


def _solver_table(problem: str, version: str, ruleset: str, hardware: str, rows: pd.DataFrame,
                  runs: pd.DataFrame, info: dict[str, Any], paper_metric: str | None) -> Table:
    primary = str(info.get("primary_metric"))
    finals = [c for c in rows.columns if c.startswith("median_final_") and rows[c].notna().any()
              and c not in ("median_final_primary", f"median_final_{primary}")]
    finals.sort(key=lambda c: (c == "median_final_constraint_violation", c))
    paper = f"final_{paper_metric}" if paper_metric and paper_metric != primary else None
    records = []
    wanted = runs[["solver", "final_primary", "outcome", *([paper] if paper in runs else [])]]
    of_solver = dict(tuple(wanted.groupby("solver", sort=False)))
    for r in rows.drop(columns=["problem", "problem_version", "ruleset",
                                "hardware_class"]).to_dict("records"):
        mine = of_solver.get(r["solver"], wanted.iloc[:0])
        r = {**r, "solver_href": solver_href(r["solver"])}
        r["median_final_primary"] = _gap(final_text(mine["final_primary"]), primary)
        r["outcomes"] = ", ".join(f"{n} {k}" for k, n in Counter(mine["outcome"]).most_common())
        if paper:
            r["paper"] = final_text(mine[paper]) if paper in mine else None
        for c in finals:
            r[c] = _gap(r[c], c.removeprefix("median_final_"))
        records.append(r)
    columns = [
        Column("solver", "Solver", link="solver_href"),
        Column("success_rate", "Success", "pct", tip="fraction of seeds reaching the target"),
        Column("outcomes", "Outcomes", tip="converged / failed (budget, error, timeout, oom) / "
                                           "diverged (non-finite metric)"),
        Column("median_final_primary", f"Final {primary}", "num",
               tip="median over the seeds with a finite value; 'diverged' when none has one"),
        *([Column("paper", f"Final {paper_metric} (papers' metric)", "num",
                  tip="the metric the source papers report")] if paper else []),
        Column("median_oracles_to_target", "Oracles to target [IQR]", "iqr",
               "q25_oracles_to_target", "q75_oracles_to_target",
               tip="median and quartiles over the successful seeds"),
        Column("runs", "Runs", "int", detail=True),
        Column("median_time_to_target", "Time to target [IQR] (s)", "iqr",
               "q25_time_to_target", "q75_time_to_target", detail=True,
               tip="median and quartiles over the successful seeds"),
        *[Column(c, "Final " + c.removeprefix("median_final_"), "num", detail=True,
                 tip="median over seeds") for c in finals],
        Column("statuses", "Statuses", detail=True)]
    return Table(f"problem-{slug(problem, version, ruleset, hardware)}",
                 "Per-solver results", columns, records)


def _curves(data: Collection, runs: dict[str, list[tuple[int, str]]], info: dict[str, Any],
            highlight: Sequence[str]) -> list[Markup]:
    """Convergence plots of one comparable group: ``runs`` maps solver -> (trace index,
    outcome). Diverged runs are left out of the median band and marked by a cross where their
    metric was last finite."""
    metric = str(info.get("primary_metric"))
    target = number(info.get("target"))
    ladder = [v for v in (number(x) for x in info.get("ladder") or []) if v is not None]
    plots = []
    values = np.concatenate([data.traces[i].value for rows in runs.values() for i, _ in rows])
    finite = values[np.isfinite(values)]
    gap = metric.endswith("_gap")
    floor = 1e-12
    if gap:
        finite = np.maximum(finite, floor)
    ylog = bool(finite.size and finite.min() > 0 and finite.max() > 50 * finite.min())
    lines = [(r, f"rung {k + 1}") for k, r in enumerate(ladder[:-1])]
    for clock, label in (("time", "solver time (s)"), ("oracles", "oracle cost")):
        order = sorted(runs, key=lambda s: -np.mean([o == "converged" for _, o in runs[s]]))
        kept, marked = [], []
        for solver in order:
            ok, marks = [], []
            for i, out in runs[solver]:
                trace = data.traces[i]
                x, y = getattr(trace, clock), trace.value
                if out == "diverged":
                    good = np.isfinite(y) & np.isfinite(x)
                    if good.any():
                        k = int(np.nonzero(good)[0][-1])
                        marks.append((float(x[k]), max(float(y[k]), floor) if gap
                                      else float(y[k])))
                    continue
                ok.append((x, y))
            kept.append(ok)
            marked.append(marks)
        grids = [common_grid(ok or [(getattr(data.traces[i], clock), data.traces[i].value)
                                    for i, _ in runs[solver]])
                 for solver, ok in zip(order, kept, strict=True)]
        series = []
        for solver, ok, marks, grid, (lo, med, hi) in zip(
                order, kept, marked, grids,
                quantile_bands(kept, grids, floor=floor if gap else None), strict=True):
            n_div = len(runs[solver]) - len(ok)
            series.append(Series(solver, grid, med, lo, hi, markers=marks,
                                 note=f"({len(runs[solver])} runs, {n_div} diverged)"
                                 if n_div else f"({len(runs[solver])} runs)",
                                 visible=solver in highlight))
        plots.append(Markup(line_plot(
            series, title=f"{metric} against {label}: median, IQR band over seeds",
            xlabel=label, ylabel=metric + (" (≥ 1e-12)" if gap else ""), xlog=True, ylog=ylog,
            hline=target, hline_label="target", hlines=lines,
            note="× = a run diverged there")))
    return plots


# ---------------------------------------------------------------------------- solver pages
PROVENANCE = ["solver_version", "source_sha256", "hardware_class", "cpu", "gpu", "cores",
              "memory_gb", "library_versions", "platform", "git_commit"]


def _solver_pages(everything: Collection, frame: pd.DataFrame, instances: pd.DataFrame,
                  meta: Mapping[str, Mapping[str, Any]] | None = None):
    allruns = everything.frame
    if allruns.empty:
        return
    newest = current_versions(frame, meta) if len(frame) else {}
    current = frame[frame["problem_version"] == frame["problem"].map(newest)] \
        if len(frame) else frame
    ranks_of = problem_ranks(current) if len(current) else {}
    for solver, runs in allruns.groupby("solver", sort=True):
        key = slug(solver)
        versions = sorted(runs["solver_version"].unique(), key=version_key, reverse=True)
        info = everything.solvers[(solver, versions[0])]
        hp = (runs.groupby(["ruleset", "hyperparameters", "solver_version"], dropna=False)
              .agg(runs=("run_id", "size"),
                   problems=("problem", lambda s: ", ".join(sorted(set(s)))))
              .reset_index())
        hp["order"] = hp["ruleset"].map({"default": 0, "reference": 1, "tuned": 2}).fillna(3)
        hp = hp.sort_values(["order", "ruleset", "problems"])
        hp_table = Table(f"solver-{key}-hyperparameters",
                         "Hyperparameters used under each ruleset",
                         [Column("ruleset", "Ruleset"),
                          Column("hyperparameters", "Hyperparameters"),
                          Column("problems", "Problems"), Column("runs", "Runs", "int"),
                          Column("solver_version", "Version", detail=True)],
                         hp.drop(columns="order").to_dict("records"))
        prov = (runs.fillna({c: "–" for c in PROVENANCE}).groupby(PROVENANCE, dropna=False)
                .agg(runs=("run_id", "size"), first=("created", "min"), last=("created", "max"))
                .reset_index())
        prov_table = Table(f"solver-{key}-provenance", "Provenance of the records",
                           [Column("solver_version", "Version"),
                            Column("hardware_class", "Hardware class"),
                            Column("runs", "Runs", "int"),
                            Column("source_sha256", "Source sha256", detail=True),
                            Column("cpu", "CPU", detail=True), Column("gpu", "GPU", detail=True),
                            Column("cores", "Cores", detail=True),
                            Column("memory_gb", "Memory (GB)", detail=True),
                            Column("library_versions", "Libraries", detail=True),
                            Column("platform", "Platform", detail=True),
                            Column("git_commit", "Git", detail=True),
                            Column("first", "First run", detail=True),
                            Column("last", "Last run", detail=True)], prov.to_dict("records"))
        ranks = [{**r, "problem_href": problem_href(r["problem"]),
                  "best_href": solver_href(r["best"]),
                  "fastest_href": solver_href(r["fastest"]) if r["fastest"] != "–" else None}
                 for r in ranks_of.get(solver, [])]
        rank_table = Table(
            f"solver-{key}-ranks", "Rank per problem, and ratio to the fastest (ranked "
            "versions)",
            [Column("problem", "Problem", link="problem_href"), Column("ruleset", "Ruleset"),
             Column("rank_text", "Rank", tip="by solved fraction, then ECDF area on the oracle "
                                             "clock (means over seeds), among the solvers "
                                             "that ran the problem"),
             Column("solved_fraction", "Solved", "pct",
                    tip="fraction of its seeds reaching the final target"),
             Column("area", "ECDF area", "num"),
             Column("best", "Best solver", link="best_href",
                    tip="rank 1 by the same order (solved fraction, then ECDF area)"),
             Column("best_area", "Best area", "num", detail=True),
             Column("fastest", "Fastest to target", link="fastest_href",
                    tip="the solver with the fewest median oracles to the final target (it "
                        "need not be the best by ECDF area)"),
             Column("ratio", "Ratio to fastest", "num",
                    tip="median oracles to the final target / the fastest solver's "
                        "(Dolan–Moré ratio); ∞ when fewer than half its seeds reach the "
                        "target"),
             Column("outcomes", "Outcomes", detail=True),
             Column("problem_version", "Version", detail=True)], ranks)
        mine = instances[instances["solver"] == solver] if len(instances) else instances
        res = [{**r, "problem_href": problem_href(r["problem"])}
               for r in mine.to_dict("records")]
        results = Table(f"solver-{key}-results", "Results per problem, all versions",
                        [Column("problem", "Problem", link="problem_href"),
                         Column("ruleset", "Ruleset"),
                         Column("success_rate", "Success", "pct"),
                         Column("median_oracles_to_target", "Median oracles to target", "num"),
                         Column("statuses", "Statuses"),
                         Column("problem_version", "Version", detail=True),
                         Column("hardware_class", "Hardware class", detail=True),
                         Column("runs", "Runs", "int", detail=True),
                         Column("median_time_to_target", "Median time to target (s)", "num",
                                detail=True),
                         Column("median_final_primary", "Final primary metric", "num",
                                detail=True)], res)
        yield solver, {"solver": solver, "info": info, "versions": versions,
                       "tables": [rank_table, hp_table, results, prov_table]}


# ---------------------------------------------------------------------------- index
def _index_tables(data: Collection, views: list[View],
                  meta: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Table]:
    frame = data.frame

    def view_row(v: View) -> dict[str, Any]:
        return {"scope": v.scope, "href": v.href, "ruleset": v.ruleset, "budget": v.budget,
                "instances": v.instances, "solvers": v.solvers,
                "leaders": ", ".join(v.leaders) or "–", "seeds": v.seeds,
                "hardware": "; ".join(v.hardware)}

    view_columns = [Column("scope", "View", link="href"), Column("ruleset", "Ruleset"),
                    Column("budget", "Budget"), Column("leaders", "Leader(s)"),
                    Column("instances", "Instances", "int"),
                    Column("solvers", "Solvers", "int"),
                    Column("seeds", "Seeds", detail=True),
                    Column("hardware", "Hardware classes", detail=True)]
    order = list(TASKS)
    tasks = sorted([v for v in views if v.scope_kind == "task"],
                   key=lambda v: order.index(v.scope) if v.scope in order else len(order))
    problem_rows, solver_rows = [], []
    if not frame.empty:
        current_of = current_versions(frame, meta)
        for problem, runs in frame.groupby("problem", sort=True):
            recorded = set(runs["problem_version"])
            version = current_of[problem] if current_of[problem] in recorded else \
                max(recorded, key=version_key)
            info = data.problems[(problem, version)]
            extra = (meta or {}).get(problem) or {}
            problem_rows.append({
                "problem": problem, "href": problem_href(problem), "version": version,
                "task": extra.get("task") or info.get("task") or "–",
                "official": "official" if meta is None or problem in meta else "unofficial",
                "primary_metric": info.get("primary_metric"),
                "paper_metric": extra.get("paper_metric") or "–",
                "target": number(info.get("target")), "solvers": runs["solver"].nunique(),
                "runs": len(runs), "versions": runs["problem_version"].nunique(),
                "family": info.get("family")})
        for solver, runs in frame.groupby("solver", sort=True):
            solver_rows.append({
                "solver": solver, "href": solver_href(solver),
                "versions": ", ".join(sorted(runs["solver_version"].unique(), key=version_key)),
                "problems": runs["problem"].nunique(), "runs": len(runs),
                "success_rate": float(runs["converged"].mean()),
                "outcomes": status_mix(list(runs["outcome"]))})
    return {
        "tasks_table": Table("tasks", "Views per task", view_columns,
                             [view_row(v) for v in tasks]),
        "suites_table": Table("suites", "Views per suite", view_columns,
                              [view_row(v) for v in views if v.scope_kind == "suite"]),
        "unofficial_table": Table("unofficial", "Unofficial problems (not in the registry)",
                                  view_columns,
                                  [view_row(v) for v in views if v.scope_kind == "unofficial"]),
        "problems_table": Table("problems", "Problems",
                                [Column("problem", "Problem", link="href"),
                                 Column("task", "Task"), Column("official", "Status"),
                                 Column("primary_metric", "Primary metric"),
                                 Column("target", "Target", "num"),
                                 Column("paper_metric", "Papers' metric"),
                                 Column("solvers", "Solvers", "int"),
                                 Column("version", "Ranked version", detail=True),
                                 Column("family", "Family", detail=True),
                                 Column("runs", "Runs", "int", detail=True),
                                 Column("versions", "Versions", "int", detail=True)],
                                problem_rows),
        "solvers_table": Table("solvers", "Solvers",
                               [Column("solver", "Solver", link="href"),
                                Column("problems", "Problems", "int"),
                                Column("runs", "Runs", "int"),
                                Column("success_rate", "Runs reaching target", "pct"),
                                Column("outcomes", "Outcomes"),
                                Column("versions", "Versions", detail=True)],
                               solver_rows),
    }

