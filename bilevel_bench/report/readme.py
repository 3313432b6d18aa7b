"""The ``README.md`` of a report folder: what each file is, what was kept apart, what was
skipped, which references each solver and problem has."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bilevel_bench.report.bibtex import Reference
from bilevel_bench.report.selection import Selection

if TYPE_CHECKING:
    from bilevel_bench.report.build import Written


def readme(selection: Selection, written: Written, inputs: Sequence[str | Path],
           refs: Sequence[Reference]) -> str:
    """The text of the README (no dates: the same records give the same text)."""
    frame = selection.frame
    lines = [
        f"# Report of {len(frame)} run records",
        "",
        "Written by `bilevel-bench report` from "
        + ", ".join(f"`{p}`" for p in inputs) + f": {len(selection.solvers)} solver(s) ("
        + ", ".join(selection.solvers) + f"), {frame['problem'].nunique()} problem(s), "
        f"task(s): {', '.join(sorted(set(frame['task'])))}. Every number is the one the "
        "leaderboard site shows for the same records.",
        "",
        "## Files",
        "",
        "- `report.tex`: a standalone LaTeX document with every table and figure "
        "(`pdflatex report.tex`).",
        "- `tables/*.tex`: one booktabs table per task, ruleset and hardware class; in a paper: "
        "`\\usepackage{booktabs}` and `\\input{tables/NAME.tex}`. Per problem and solver: "
        "success rate, median oracles- and time-to-target with the inter-quartile range over "
        "the successful seeds, the final primary metric, the task's own metric where the "
        "problem family has one, and the outcomes of the runs:",
    ]
    lines += [f"  - `tables/{stem}.tex`: {group.title}"
              for stem, group in zip(written.tables, selection.groups, strict=True)]
    lines += [
        "- `figures/ecdf-*.pdf` and `.svg`: per table, the target-ladder ECDF (fraction of "
        "(instance, rung) pairs reached within a budget) against oracle cost and solver time.",
        "- `figures/convergence-*.pdf` and `.svg`: per problem, the primary metric against "
        "oracle cost and solver time: median and inter-quartile band over seeds. A solver has "
        "the same colour in every figure.",
        f"- `reproduce.sh`: the {written.commands} `bilevel-bench run` command(s) that "
        "regenerate these records, with the versions, git revision, hardware class, seeds, "
        "rulesets, hyperparameters and budgets (`bash reproduce.sh [RESULTS_DIR]`).",
        f"- `references.bib`: {len(refs)} BibTeX entr{'y' if len(refs) == 1 else 'ies'} of the "
        "methods and problems the records cite:",
    ]
    lines += [f"  - `{ref.key}`: {', '.join(sorted(ref.cited_by))}" for ref in refs]
    lines += ["", "## Kept apart", ""]
    lines += [f"- {note}" for note in selection.notes] or [
        "Nothing: one hardware class, one version of each problem, one ruleset."]
    if selection.skipped:
        lines += ["", "## Skipped files", "",
                  f"{len(selection.skipped)} file(s) under the inputs are not run records "
                  "and were left out, e.g.:", ""]
        lines += [f"- `{path}`: {reason}" for path, reason in sorted(selection.skipped)[:10]]
    lines.append("")
    return "\n".join(lines)
