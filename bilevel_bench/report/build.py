"""Write a report folder from run records: tables, figures, reproduce.sh, BibTeX, README.

    write_report(["results/"], "paper/") -> Written

The folder holds ``README.md`` (what each file is), ``report.tex`` (a standalone document of
every table and figure), ``tables/*.tex`` (booktabs, :mod:`~bilevel_bench.report.latex`),
``figures/*.pdf`` and ``*.svg`` (:mod:`~bilevel_bench.report.figures`), ``reproduce.sh``
(:mod:`~bilevel_bench.report.script`) and ``references.bib``
(:mod:`~bilevel_bench.report.bibtex`). The same records give the same bytes: nothing in the
files depends on the time, the machine or the order the records were found in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bilevel_bench.errors import PathError
from bilevel_bench.leaderboard.tables import slug
from bilevel_bench.report import bibtex, figures, latex
from bilevel_bench.report.script import script
from bilevel_bench.report.selection import Selection, select

#: what an earlier report wrote (removed before writing, so no stale file survives)
OWNED = ("README.md", "report.tex", "reproduce.sh", "references.bib", "tables/*.tex",
         "figures/*.pdf", "figures/*.svg")


@dataclass
class Written:
    """What a report wrote: the folder, its files (relative), and the separation notes."""

    folder: Path
    tables: list[str] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (stem, caption)
    notes: list[str] = field(default_factory=list)
    references: int = 0
    commands: int = 0
    runs: int = 0


def _prepare(folder: Path, inputs: Sequence[str | Path]) -> None:
    where = folder.resolve()
    for root in inputs:
        if Path(root).resolve().is_relative_to(where):
            raise PathError(f"report folder {str(folder)!r} holds the run records of "
                            f"{str(root)!r}: choose a folder of its own with -o DIR")
    for pattern in OWNED:
        for stale in folder.glob(pattern):
            stale.unlink()
    (folder / "tables").mkdir(exist_ok=True)
    (folder / "figures").mkdir(exist_ok=True)


def _runs(selection: Selection, rows) -> dict[str, list[figures.Run]]:
    out: dict[str, list[figures.Run]] = {}
    for run_id, solver, outcome in zip(rows["run_id"], rows["solver"], rows["outcome"],
                                       strict=True):
        record = selection.records[run_id]
        metric = record["problem"]["primary_metric"]
        points = np.array([[_float(p.get("oracle_cost")), _float(p.get("time")),
                            _float(p["metrics"].get(metric))] for p in record["trace"]],
                          dtype=float).reshape(-1, 3)
        out.setdefault(solver, []).append((points[:, 0], points[:, 1], points[:, 2],
                                           outcome == "diverged"))
    return out


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def write_report(inputs: Sequence[str | Path], output: str | Path, *,
                 solvers: Sequence[str] | None = None,
                 tasks: Sequence[str] | None = None) -> Written:
    """Write the report of the records under ``inputs`` (those of ``solvers`` and ``tasks``;
    all when None) into ``output`` (an existing, writable folder)."""
    selection = select(inputs, solvers, tasks)
    folder = Path(output)
    _prepare(folder, inputs)
    written = Written(folder, notes=selection.notes, runs=len(selection.frame))
    styles = figures.solver_styles(selection.solvers)
    for group in selection.groups:
        stem = latex.table_name(group)
        (folder / "tables" / f"{stem}.tex").write_text(latex.render(selection, group),
                                                       encoding="utf-8")
        written.tables.append(stem)
        figure = figures.ecdf_figure(selection.runs(group), styles, group.title)
        figures.save(figure, folder / "figures" / f"ecdf-{stem}")
        written.figures.append((f"ecdf-{stem}", f"Target-ladder ECDF: {group.title}."))
        for instance in group.instances:
            info = selection.problems[instance]
            runs = _runs(selection, selection.runs(group, instance))
            ladder = [float(v) for v in info.get("ladder") or []]
            target = info.get("target")
            name = f"{instance[0]} v{instance[1]}"
            figure = figures.convergence(
                runs, metric=str(info.get("primary_metric")),
                target=float(target) if isinstance(target, int | float) else None,
                ladder=ladder, styles=styles, title=name)
            cstem = "convergence-" + slug(instance[0], instance[1], group.ruleset,
                                          group.hardware)
            figures.save(figure, folder / "figures" / cstem)
            written.figures.append((cstem, f"Convergence on {name}: {group.title}."))
    (folder / "report.tex").write_text(
        latex.document(written.tables, [(f"figures/{s}.pdf", c) for s, c in written.figures]),
        encoding="utf-8")
    records = [selection.records[r] for r in sorted(selection.records)]
    text = script(records)
    written.commands = sum(1 for line in text.splitlines() if line.startswith("bilevel-bench"))
    (folder / "reproduce.sh").write_text(text, encoding="utf-8")
    (folder / "reproduce.sh").chmod(0o755)
    citations = [(f"solver {r['solver']['name']}", r["solver"].get("citation") or "")
                 for r in records]
    citations += [(f"problem {r['problem']['name']}", r["problem"].get("citation") or "")
                  for r in records]
    refs = bibtex.references(citations)
    written.references = len(refs)
    (folder / "references.bib").write_text(bibtex.bibtex(refs), encoding="utf-8")
    from bilevel_bench.report.readme import readme

    (folder / "README.md").write_text(readme(selection, written, inputs, refs),
                                      encoding="utf-8")
    return written
