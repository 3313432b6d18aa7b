"""LaTeX tables (booktabs) of a report: one per group (task, ruleset, hardware class).

Each section of a table is one (problem, version): a header line naming the instance, its
primary metric and final target, then one row per solver with the *site's* figures — the
cells of the problem page's per-solver table (:func:`bilevel_bench.leaderboard.build
._solver_table`, rendered by :meth:`~bilevel_bench.leaderboard.tables.Table.cells`), so that
every number equals the one the leaderboard shows: success rate, median oracles- and
time-to-target over the successful seeds with the inter-quartile range, the final primary
metric (median over seeds; ``diverged`` when none is finite), the task's own metric where the
family declares one (e.g. test accuracy) and the outcomes of the runs.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from bilevel_bench.leaderboard.build import _solver_table
from bilevel_bench.leaderboard.tables import slug
from bilevel_bench.report.selection import Group, Selection

#: (site column key, LaTeX header, alignment) of the report's columns, in order
COLUMNS = [
    ("solver", "Solver", "l"),
    ("success_rate", "Success", "r"),
    ("median_oracles_to_target", "Oracles to target [IQR]", "l"),
    ("median_time_to_target", "Time to target [IQR] (s)", "l"),
    ("median_final_primary", "Final primary", "r"),
    ("paper", "Task metric", "r"),
    ("outcomes", "Outcomes", "l"),
]
SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
           "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
           "^": r"\textasciicircum{}", "∞": r"$\infty$", "–": "--", "—": "---",
           "≤": r"$\le$", "≥": r"$\ge$", "×": r"$\times$", "·": r"$\cdot$", "✓": "ok",
           "μ": r"$\mu$", "<": r"\textless{}", ">": r"\textgreater{}"}
CAPTION = ("Success: fraction of seeds reaching the final target. Oracles and time to target: "
           "median [inter-quartile range] over the successful seeds (oracle cost; solver CPU "
           "seconds). Final primary: median over the seeds with a finite value. Outcomes: runs "
           "that reached the target, failed (budget, error, timeout) or diverged.")


def escape(text: Any) -> str:
    """``text`` as LaTeX source: special characters escaped, the few symbols of the site's
    cells as math, other characters beyond Latin letters as ``?`` (pdflatex-safe)."""
    out = []
    for char in str(text):
        if char in SPECIAL:
            out.append(SPECIAL[char])
        elif ord(char) < 128 or (ord(char) <= 0x24F and unicodedata.category(char)[0] == "L"):
            out.append(char)
        else:
            out.append("?")
    return "".join(out)


def table_name(group: Group) -> str:
    """The file stem of a group's table (and ECDF figure)."""
    return slug(group.task, group.ruleset, group.hardware)


def site_rows(selection: Selection, group: Group, instance: tuple[str, str]
              ) -> tuple[list[dict[str, str]], str | None]:
    """The display text of each cell of the site's per-solver table of ``instance`` in
    ``group`` (one dict per solver, by column key), and the family's task metric (or None)."""
    problem, version = instance
    rows = selection.instances
    rows = rows[(rows["problem"] == problem) & (rows["problem_version"] == version)
                & (rows["ruleset"] == group.ruleset) & (rows["hardware_class"] == group.hardware)]
    runs = selection.runs(group, instance)
    paper = (selection.meta.get(problem) or {}).get("paper_metric")
    table = _solver_table(problem, version, group.ruleset, group.hardware, rows, runs,
                          selection.problems[instance], paper)
    keys = [column.key for column in table.columns]
    out = [{key: cell["text"] for key, cell in zip(keys, cells, strict=True)}
           for cells in table.cells()]
    return out, (paper if "paper" in keys else None)


def _heading(selection: Selection, instance: tuple[str, str], paper: str | None,
             width: int) -> str:
    info = selection.problems[instance]
    sign = "≥" if info.get("higher_is_better") else "≤"
    target = info.get("target")
    text = f"{instance[0]} (v{instance[1]}): {info.get('primary_metric')}"
    if isinstance(target, int | float):
        text += f" {sign} {target:g}"
    if paper:
        text += f"; task metric: {paper}"
    return rf"\multicolumn{{{width}}}{{@{{}}l}}{{\textit{{{escape(text)}}}}} \\"


def render(selection: Selection, group: Group) -> str:
    """The LaTeX source of one group's table (a ``table`` float with a ``tabular``)."""
    sections = [(instance, *site_rows(selection, group, instance))
                for instance in group.instances]
    with_paper = any(paper for _, _, paper in sections)
    columns = [c for c in COLUMNS if with_paper or c[0] != "paper"]
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small",
             r"\caption{" + escape(group.title[0].upper() + group.title[1:]) + ". "
             + escape(CAPTION) + "}",
             r"\label{tab:" + table_name(group) + "}",
             r"\begin{tabular}{@{}" + "".join(c[2] for c in columns) + "@{}}",
             r"\toprule",
             " & ".join(escape(c[1]) for c in columns) + r" \\"]
    for k, (instance, rows, paper) in enumerate(sections):
        lines.append(r"\midrule" if k == 0 else r"\addlinespace")
        lines.append(_heading(selection, instance, paper, len(columns)))
        for row in rows:
            lines.append(" & ".join(escape(row.get(key, "–")) for key, _, _ in columns)
                         + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def document(tables: list[str], figures: list[tuple[str, str]]) -> str:
    """A standalone LaTeX document that inputs every table (``tables/<stem>.tex``) and shows
    every figure (``(figures/<stem>.pdf, caption)``), for ``pdflatex report.tex``."""
    lines = [r"\documentclass[10pt]{article}", r"\usepackage[T1]{fontenc}",
             r"\usepackage[utf8]{inputenc}", r"\usepackage[margin=1.5cm,landscape]{geometry}",
             r"\usepackage{booktabs}", r"\usepackage{graphicx}", r"\begin{document}"]
    for k, stem in enumerate(tables):
        lines.append(rf"\input{{tables/{stem}.tex}}")
        if k % 3 == 2:
            lines.append(r"\clearpage")
    lines.append(r"\clearpage")
    for path, caption in figures:
        lines += [r"\noindent\begin{minipage}{\linewidth}\centering",
                  rf"\includegraphics[width=0.85\linewidth]{{{path}}}\par",
                  rf"\small {escape(caption)}", r"\end{minipage}\par\bigskip"]
    lines += [r"\end{document}", ""]
    return "\n".join(lines)

