"""Build the static leaderboard site from folders of run records.

    build_site(["results/"], "site/") -> site/index.html

Pages (all in one folder, linked relatively, so the site works from ``file://``):

* ``index.html`` — the ranking of the headline view, the list of every view (suite x tuning
  ruleset x clock, the wall-time clock once per hardware class), problems, solvers and the
  scoring method;
* ``ranking-*.html`` — one view: the ranking table (tie-aware rank, area under the
  target-ladder ECDF and mean rank with bootstrap intervals), the ECDF plot, the
  performance-profile plot of the final target and the cost matrix;
* ``problem-*.html`` — per problem and version: formulation, data, target, source paper; per
  (ruleset, hardware class) the per-solver table and convergence curves against both clocks;
* ``solver-*.html`` — version, citation, capabilities, hyperparameters, record provenance;
* ``skipped.html`` — files that are not usable run records, with the reason;
* ``data/*.csv|json`` — every table; ``static/`` — the stylesheet and the table sorter.

Rankings use the newest version of each problem present (older versions are shown on the
problem pages, never ranked); see :mod:`bilevel_bench.metrics` for the scoring.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
from bilevel_bench.leaderboard.collect import Collection, collect, version_key
from bilevel_bench.leaderboard.curves import common_grid, quantile_band
from bilevel_bench.leaderboard.plots import Series, line_plot
from bilevel_bench.leaderboard.tables import Column, Table, number
from bilevel_bench.metrics import (
    CLOCKS,
    TAU_MAX,
    cost_cube,
    ecdf,
    ecdf_axis,
    ladder_ranking,
    per_instance,
    performance_profile,
    performance_ratios,
)

ALL = "all"
#: rulesets of runs that are never ranked nor tabulated per problem: the trials of the ``tuned``
#: ruleset (see :mod:`bilevel_bench.tuning`); their configurations show on the solver pages
UNRANKED = ("tuning",)
CLOCK_LABELS = {"time": "solver time (CPU seconds)", "oracles": "oracle calls (oracle cost)"}


def slug(*parts: Any) -> str:
    """A file-name-safe, collision-free name for page and table ids."""
    text = "\x1f".join(str(p) for p in parts)
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "x"
    return f"{base}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def problem_href(name: str) -> str:
    return f"problem-{slug(name)}.html"


def solver_href(name: str) -> str:
    return f"solver-{slug(name)}.html"


@dataclass
class View:
    """One ranking: a suite's instances, one ruleset, one clock (and hardware class)."""

    suite: str
    ruleset: str
    clock: str
    hardware: str | None
    table: Table
    costs: Table
    plot: Markup
    instances: int
    solvers: int
    coverage: str = ""

    @property
    def href(self) -> str:
        return f"ranking-{slug(self.suite, self.ruleset, self.clock, self.hardware)}.html"

    @property
    def label(self) -> str:
        where = f" on {self.hardware}" if self.hardware else " (all hardware)"
        return f"{self.suite} · {self.ruleset} ruleset · {CLOCK_LABELS[self.clock]}{where}"


# ---------------------------------------------------------------------------- entry point
def build_site(inputs: Sequence[str | Path], output: str | Path, *,
               suites: Mapping[str, Sequence[str]] | None = None, n_boot: int = 1000,
               seed: int = 0, title: str = "bilevel_bench leaderboard",
               tau_max: float = TAU_MAX, asv_results: Sequence[str | Path] | None = None
               ) -> Path:
    """Render the site for the run records under ``inputs`` into ``output``; returns the path of
    its ``index.html``. ``suites`` maps suite names to problem instance names (default: one suite,
    ``all``, of every problem recorded); ``n_boot`` bootstrap replicates with ``seed``.
    ``asv_results``: asv results directories or files (``.asv/results``); each problem page
    then shows the asv figures of the newest commit per machine beside the records' own."""
    asv = _asv_tables(asv_results or [])
    everything = collect(inputs)
    hidden = everything.frame["ruleset"].isin(UNRANKED) if len(everything.frame) else []
    data = replace(everything, frame=everything.frame[~hidden].reset_index(drop=True)
                   if len(everything.frame) else everything.frame)
    out = _prepare(Path(output))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bilevel_bench.leaderboard", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    common = {"site_title": title, "built": stamp, "version": __version__,
              "records": len(everything.frame), "skipped_count": len(data.skipped),
              "tau_max": tau_max, "unranked": int(sum(hidden)), "unranked_rulesets": UNRANKED}
    tables: list[Table] = []

    def page(name: str, template: str, **context: Any) -> None:
        html = env.get_template(template).render(**common, **context)
        (out / name).write_text(html, encoding="utf-8")

    instances = per_instance(data.frame) if not data.frame.empty else pd.DataFrame()
    views = _views(data, suites, n_boot, seed, tau_max)
    for view in views:
        tables += [view.table, view.costs]
        page(view.href, "ranking.html.j2", page_title=view.label, view=view)
    for name, context in _problem_pages(data, instances):
        tables += context["tables"] + ([asv[name]] if name in asv else [])
        page(problem_href(name), "problem.html.j2", page_title=name, asv=asv.get(name),
             **context)
    for name, context in _solver_pages(everything, instances):
        tables += context["tables"]
        page(solver_href(name), "solver.html.j2", page_title=name, **context)
    skipped = Table("skipped", "Skipped files", [Column("path", "File"),
                                                  Column("reason", "Reason")],
                    [{"path": p, "reason": r} for p, r in data.skipped])
    page("skipped.html", "skipped.html.j2", page_title="Skipped records", table=skipped)
    index = _index_tables(data, instances, views)
    tables += [skipped, *index.values()]
    headline = views[0] if views else None
    page("index.html", "index.html.j2", page_title="Ranking", headline=headline,
         companions=[v for v in views if headline and v is not headline
                     and (v.suite, v.ruleset) == (headline.suite, headline.ruleset)],
         **index)
    for table in tables:
        table.write(out / "data")
    return out / "index.html"


def _prepare(out: Path) -> Path:
    """Create the site folder; remove only what an earlier build wrote there."""
    out.mkdir(parents=True, exist_ok=True)
    for pattern in ("index.html", "skipped.html", "ranking-*.html", "problem-*.html",
                    "solver-*.html", "data/*.csv", "data/*.json"):
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


# ---------------------------------------------------------------------------- rankings
def _views(data: Collection, suites: Mapping[str, Sequence[str]] | None, n_boot: int,
           seed: int, tau_max: float) -> list[View]:
    frame = data.frame
    if frame.empty:
        return []
    newest = {p: max(g.unique(), key=version_key)
              for p, g in frame.groupby("problem")["problem_version"]}
    ranked = frame[frame["problem_version"] == frame["problem"].map(newest)]
    # suites with the same recorded instances are one ranking ("core = full"); ``all`` ranks
    # every recorded problem unless a suite already does; the broadest ranking comes first
    names: dict[tuple[str, ...], list[str]] = {}
    for name, problems in (suites or {}).items():
        present = tuple(sorted(p for p in set(problems) if p in newest))
        if present:
            names.setdefault(present, []).append(name)
    names.setdefault(tuple(sorted(newest)), [ALL])
    sizes = {name: len(set(problems)) for name, problems in (suites or {}).items()}
    views = []
    rulesets = sorted(ranked["ruleset"].unique(), key=lambda r: (r != "default", r))
    for problems, suite_names in sorted(names.items(), key=lambda kv: (-len(kv[0]), kv[1])):
        suite = " = ".join(suite_names)
        coverage = ", ".join(f"{name}: {len(problems)} of {sizes[name]} instances recorded"
                             for name in suite_names if name in sizes)
        sub = ranked[ranked["problem"].isin(problems)]
        first = len(views)
        for ruleset in rulesets:
            part = sub[sub["ruleset"] == ruleset]
            if part.empty:
                continue
            views.append(_view(suite, ruleset, "oracles", None, part, n_boot, seed, tau_max))
            for hardware in sorted(part["hardware_class"].unique()):
                views.append(_view(suite, ruleset, "time", hardware,
                                   part[part["hardware_class"] == hardware], n_boot, seed,
                                   tau_max))
        for view in views[first:]:
            view.coverage = coverage
    return views


def _view(suite: str, ruleset: str, clock: str, hardware: str | None, frame: pd.DataFrame,
          n_boot: int, seed: int, tau_max: float) -> View:
    table, _ = ladder_ranking(frame, clock, n_boot=n_boot, seed=seed)
    cube = cost_cube(frame, clock, solvers=table["solver"].sort_values().tolist())
    key = slug(suite, ruleset, clock, hardware)
    rows = [{**rec, "solver_href": solver_href(rec["solver"])}
            for rec in table.to_dict("records")]
    unit = "s" if clock == "time" else "oracle cost"
    ranking_table = Table(
        f"ranking-{key}", f"Ranking — {suite}, {ruleset} ruleset, {CLOCK_LABELS[clock]}"
        + (f", {hardware}" if hardware else ""),
        [Column("rank", "Rank", "rank", tip="= marks a tie: overlapping score intervals"),
         Column("solver", "Solver", link="solver_href"),
         Column("score", "ECDF area", "ci", "score_lo", "score_hi",
                tip="area under the ECDF of (instance, target-ladder rung) pairs reached vs "
                    "log budget, mean over the instances the solver ran; 95% bootstrap "
                    "interval"),
         Column("rungs_reached", "Rungs", "pct", tip="fraction of (run, rung) pairs reached"),
         Column("mean_rank", "Mean rank", "ci", "mean_rank_lo", "mean_rank_hi",
                tip="average rank by ECDF area over instances (ties share average ranks)"),
         Column("solved", "Solved", "int", tip="instances where more than half the seeds "
                                                "reach the final target"),
         Column("instances", "Instances", "int", tip="instances the solver ran")], rows)
    costs = cube.costs()
    cost_rows = []
    for i, (problem, version) in enumerate(cube.instances):
        row: dict[str, Any] = {"problem": problem, "problem_version": version,
                               "problem_href": problem_href(problem)}
        for j, solver in enumerate(cube.solvers):
            row[f"cost:{solver}"] = float(costs[i, j])
        cost_rows.append(row)
    cost_table = Table(
        f"costs-{key}", f"Median {CLOCKS[clock]} per instance ({unit}; ∞ = target missed by "
        "half the seeds or more)",
        [Column("problem", "Problem", link="problem_href"), Column("problem_version", "Version"),
         *[Column(f"cost:{s}", s, "num") for s in cube.solvers]], cost_rows)
    plots = Markup(_ecdf_plot(frame, clock) + _profile_plot(performance_ratios(costs),
                                                            cube.solvers, tau_max, clock))
    return View(suite, ruleset, clock, hardware, ranking_table, cost_table, plots,
                len(cube.instances), len(cube.solvers))


def _ecdf_plot(frame: pd.DataFrame, clock: str) -> Markup:
    low, high = ecdf_axis(frame, clock)
    budgets = np.geomspace(low, high, 61)
    curves = ecdf(frame, clock, budgets)
    series = [Series(s, budgets, curves[s], step=True) for s in sorted(curves)]
    unit = "solver CPU seconds" if clock == "time" else "oracle cost"
    return Markup(line_plot(series, title=f"Target-ladder ECDF ({clock} clock)",
                            xlabel=f"budget ({unit}, log)", xlog=True,
                            ylabel="fraction of (instance, rung) pairs reached",
                            xlim=(low, high), ylim=(0.0, 1.0)))


def _profile_plot(ratios: np.ndarray, solvers: list[str], tau_max: float, clock: str) -> Markup:
    finite = ratios[np.isfinite(ratios) & (ratios <= tau_max)]
    taus = np.unique(np.concatenate([[1.0, tau_max], finite]))
    rho = performance_profile(ratios, taus) if len(ratios) else np.zeros((len(solvers), 1))
    series = [Series(s, taus, rho[j], step=True) for j, s in enumerate(solvers)]
    return Markup(line_plot(series, title=f"Performance profile ({clock} clock)",
                            xlabel="τ (ratio to the fastest solver)",
                            ylabel="ρ(τ): fraction of instances", xlim=(1.0, tau_max),
                            ylim=(0.0, 1.0)))


# ---------------------------------------------------------------------------- problem pages
def _problem_pages(data: Collection, instances: pd.DataFrame):
    frame = data.frame
    if frame.empty:
        return
    positions: dict[tuple, dict[str, np.ndarray]] = {}
    for (*key, solver), rows in sorted(frame.groupby(
            ["problem", "problem_version", "ruleset", "hardware_class", "solver"]).indices.items()):
        positions.setdefault(tuple(key), {})[solver] = frame["trace"].to_numpy()[rows]
    for problem, runs in frame.groupby("problem", sort=True):
        versions = sorted(runs["problem_version"].unique(), key=version_key, reverse=True)
        sections, tables = [], []
        for k, version in enumerate(versions):
            info = data.problems[(problem, version)]
            part = runs[runs["problem_version"] == version]
            rows = instances[(instances["problem"] == problem)
                             & (instances["problem_version"] == version)]
            groups = []
            for ruleset, hardware in sorted(set(zip(part["ruleset"], part["hardware_class"],
                                                    strict=True))):
                sel = rows[(rows["ruleset"] == ruleset) & (rows["hardware_class"] == hardware)]
                table = _solver_table(problem, version, ruleset, hardware, sel, info)
                tables.append(table)
                groups.append({"ruleset": ruleset, "hardware": hardware, "table": table,
                               "plots": _curves(data, positions[(problem, version, ruleset,
                                                                 hardware)], info)})
            sections.append({"version": version, "info": info, "superseded": k > 0,
                             "groups": groups,
                             "fingerprints": sorted((info.get("dataset_fingerprints")
                                                     or {}).items())
                             if isinstance(info.get("dataset_fingerprints"), dict) else []})
        yield problem, {"problem": problem, "sections": sections, "tables": tables}


def _asv_tables(paths: Sequence[str | Path]) -> dict[str, Table]:
    """Per problem, the asv figures (:mod:`bilevel_bench.asv_import`) of each solver."""
    if not paths:
        return {}
    frame = latest_figures(pd.concat([load_asv_results(p) for p in paths], ignore_index=True))
    columns = [("time_solve", "Time to target (asv, s)"),
               ("peakmem_solve", "Peak memory (asv, MiB)"),
               ("track_oracles_to_target", "Oracles to target (asv)"),
               ("track_final_gap", "Final ul_gap (asv)")]
    tables = {}
    for problem, rows in frame.groupby("problem", sort=True):
        records = [{**r, "solver_href": solver_href(r["solver"]), "commit": r["commit"][:8],
                    "peakmem_solve": r.get("peakmem_solve", np.nan) / 2**20}
                   for r in rows.to_dict("records")]
        tables[problem] = Table(
            f"asv-{slug(problem)}", "asv benchmarks (newest commit per machine)",
            [Column("solver", "Solver", link="solver_href"), Column("machine", "Machine"),
             Column("commit", "Commit"),
             *[Column(key, label, "num") for key, label in columns if key in rows]], records)
    return tables


def _solver_table(problem: str, version: str, ruleset: str, hardware: str, rows: pd.DataFrame,
                  info: dict[str, Any]) -> Table:
    primary = str(info.get("primary_metric"))
    finals = [c for c in rows.columns if c.startswith("median_final_") and rows[c].notna().any()
              and c not in ("median_final_primary", f"median_final_{primary}")]
    finals.sort(key=lambda c: (c == "median_final_constraint_violation", c))
    records = [{**r, "solver_href": solver_href(r["solver"])}
               for r in rows.drop(columns=["problem", "problem_version", "ruleset",
                                           "hardware_class"]).to_dict("records")]
    columns = [
        Column("solver", "Solver", link="solver_href"), Column("runs", "Runs", "int"),
        Column("success_rate", "Success", "pct", tip="fraction of seeds reaching the target"),
        Column("median_time_to_target", "Time to target [IQR] (s)", "iqr",
               "q25_time_to_target", "q75_time_to_target",
               tip="median and quartiles over the successful seeds"),
        Column("median_oracles_to_target", "Oracles to target [IQR]", "iqr",
               "q25_oracles_to_target", "q75_oracles_to_target",
               tip="median and quartiles over the successful seeds"),
        Column("median_final_primary", f"Final {primary}", "num", tip="median over seeds"),
        *[Column(c, "Final " + c.removeprefix("median_final_"), "num", tip="median over seeds")
          for c in finals],
        Column("statuses", "Statuses")]
    return Table(f"problem-{slug(problem, version, ruleset, hardware)}",
                 "Per-solver results", columns, records)


def _curves(data: Collection, runs: dict[str, np.ndarray], info: dict[str, Any]) -> list[Markup]:
    """Convergence plots of one comparable group: ``runs`` maps solver -> trace indices."""
    metric = str(info.get("primary_metric"))
    target = number(info.get("target"))
    plots = []
    values = np.concatenate([data.traces[i].value for rows in runs.values() for i in rows])
    finite = values[np.isfinite(values)]
    ylog = bool(finite.size and finite.min() > 0 and finite.max() > 50 * finite.min())
    for clock, label in (("time", "solver time (s)"), ("oracles", "oracle cost")):
        by_solver = {s: [(getattr(data.traces[i], clock), data.traces[i].value) for i in rows]
                     for s, rows in runs.items()}
        grid = common_grid([t for traces in by_solver.values() for t in traces])
        series = []
        for solver, traces in by_solver.items():
            lo, med, hi = quantile_band(traces, grid)
            series.append(Series(f"{solver} ({len(traces)})", grid, med, lo, hi))
        plots.append(Markup(line_plot(
            series, title=f"{metric} against {label}: median, IQR band over seeds",
            xlabel=label, ylabel=metric, xlog=True, ylog=ylog, hline=target)))
    return plots


# ---------------------------------------------------------------------------- solver pages
PROVENANCE = ["solver_version", "source_sha256", "hardware_class", "cpu", "gpu", "cores",
              "memory_gb", "library_versions", "platform", "git_commit"]


def _solver_pages(data: Collection, instances: pd.DataFrame):
    frame = data.frame
    if frame.empty:
        return
    for solver, runs in frame.groupby("solver", sort=True):
        key = slug(solver)
        versions = sorted(runs["solver_version"].unique(), key=version_key, reverse=True)
        info = data.solvers[(solver, versions[0])]
        hp = (runs.groupby(["solver_version", "ruleset", "hyperparameters"], dropna=False)
              .agg(runs=("run_id", "size"), problems=("problem", "nunique")).reset_index())
        hp_table = Table(f"solver-{key}-hyperparameters", "Hyperparameter configurations",
                         [Column("solver_version", "Version"), Column("ruleset", "Ruleset"),
                          Column("hyperparameters", "Hyperparameters"),
                          Column("problems", "Problems", "int"), Column("runs", "Runs", "int")],
                         hp.to_dict("records"))
        prov = (runs.fillna({c: "–" for c in PROVENANCE}).groupby(PROVENANCE, dropna=False)
                .agg(runs=("run_id", "size"), first=("created", "min"), last=("created", "max"))
                .reset_index())
        prov_table = Table(f"solver-{key}-provenance", "Provenance of the records",
                           [Column("solver_version", "Version"),
                            Column("source_sha256", "Source sha256"),
                            Column("hardware_class", "Hardware class"), Column("cpu", "CPU"),
                            Column("gpu", "GPU"), Column("cores", "Cores"),
                            Column("memory_gb", "Memory (GB)"),
                            Column("library_versions", "Libraries"),
                            Column("platform", "Platform"), Column("git_commit", "Git"),
                            Column("runs", "Runs", "int"), Column("first", "First run"),
                            Column("last", "Last run")], prov.to_dict("records"))
        mine = instances[instances["solver"] == solver]
        res = [{**r, "problem_href": problem_href(r["problem"])}
               for r in mine.to_dict("records")]
        results = Table(f"solver-{key}-results", "Results per problem",
                        [Column("problem", "Problem", link="problem_href"),
                         Column("problem_version", "Version"), Column("ruleset", "Ruleset"),
                         Column("hardware_class", "Hardware class"),
                         Column("runs", "Runs", "int"), Column("success_rate", "Success", "pct"),
                         Column("median_time_to_target", "Median time to target (s)", "num"),
                         Column("median_oracles_to_target", "Median oracles to target", "num"),
                         Column("median_final_primary", "Final primary metric", "num"),
                         Column("statuses", "Statuses")], res)
        yield solver, {"solver": solver, "info": info, "versions": versions,
                       "tables": [results, hp_table, prov_table]}


# ---------------------------------------------------------------------------- index
def _index_tables(data: Collection, instances: pd.DataFrame,
                  views: list[View]) -> dict[str, Table]:
    frame = data.frame
    view_rows = [{"view": v.label, "href": v.href, "suite": v.suite, "ruleset": v.ruleset,
                  "clock": v.clock, "hardware_class": v.hardware or "all (hardware-independent)",
                  "instances": v.instances, "solvers": v.solvers} for v in views]
    problem_rows, solver_rows = [], []
    if not frame.empty:
        for problem, runs in frame.groupby("problem", sort=True):
            version = max(runs["problem_version"].unique(), key=version_key)
            info = data.problems[(problem, version)]
            problem_rows.append({
                "problem": problem, "href": problem_href(problem), "version": version,
                "family": info.get("family"), "primary_metric": info.get("primary_metric"),
                "target": number(info.get("target")), "solvers": runs["solver"].nunique(),
                "runs": len(runs), "versions": runs["problem_version"].nunique()})
        for solver, runs in frame.groupby("solver", sort=True):
            solver_rows.append({
                "solver": solver, "href": solver_href(solver),
                "versions": ", ".join(sorted(runs["solver_version"].unique(), key=version_key)),
                "problems": runs["problem"].nunique(), "runs": len(runs),
                "success_rate": float(runs["converged"].mean())})
    return {
        "views_table": Table("views", "All rankings",
                             [Column("view", "Ranking", link="href"), Column("suite", "Suite"),
                              Column("ruleset", "Ruleset"), Column("clock", "Clock"),
                              Column("hardware_class", "Hardware class"),
                              Column("instances", "Instances", "int"),
                              Column("solvers", "Solvers", "int")], view_rows),
        "problems_table": Table("problems", "Problems",
                                [Column("problem", "Problem", link="href"),
                                 Column("version", "Newest version"), Column("family", "Family"),
                                 Column("primary_metric", "Primary metric"),
                                 Column("target", "Target", "num"),
                                 Column("solvers", "Solvers", "int"),
                                 Column("runs", "Runs", "int"),
                                 Column("versions", "Versions", "int")], problem_rows),
        "solvers_table": Table("solvers", "Solvers",
                               [Column("solver", "Solver", link="href"),
                                Column("versions", "Versions"),
                                Column("problems", "Problems", "int"),
                                Column("runs", "Runs", "int"),
                                Column("success_rate", "Runs reaching target", "pct")],
                               solver_rows),
    }
