"""Vector figures of a report (matplotlib, PDF and SVG), in one style, one colour per solver.

* convergence: per (problem, version) of a group, the primary metric against oracle cost and
  against solver time — median and inter-quartile band over seeds on a common log grid
  (:func:`bilevel_bench.leaderboard.curves.quantile_bands`, as the site draws them), diverged
  runs left out of the band and marked by a cross where their metric was last finite;
* ECDF: per group, the fraction of (instance, rung) pairs of the target ladders reached within
  each budget on both clocks (:func:`bilevel_bench.metrics.ecdf` on
  :func:`~bilevel_bench.metrics.ecdf_axis`, the site's curves).

A solver keeps its colour (and dash, beyond eight solvers) in every figure: the site's palette
(:data:`bilevel_bench.leaderboard.plots.PALETTE`) over the report's sorted solvers. The files
are deterministic: no dates in the metadata, a fixed SVG hash salt, fonts embedded as TrueType
(type 42) in PDF.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bilevel_bench.leaderboard.curves import common_grid, quantile_bands
from bilevel_bench.leaderboard.plots import DASHES, PALETTE
from bilevel_bench.metrics import ecdf, ecdf_axis

STYLE = {
    "font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
    "legend.fontsize": 7, "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.4,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "legend.frameon": False,
    "pdf.fonttype": 42, "svg.fonttype": "path", "svg.hashsalt": "bilevel-bench-report",
    "path.simplify": False,
}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Creator": "bilevel-bench report",
                "Producer": None}
SVG_METADATA = {"Date": None, "Creator": "bilevel-bench report"}
CLOCKS = {"oracles": "oracle cost", "time": "solver time (CPU s)"}
#: a gap metric below this counts as it on a log axis (as on the site)
FLOOR = 1e-12
SIZE = (7.0, 2.7)


def solver_styles(solvers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """matplotlib line properties (colour, dashes) of each solver, by sorted name."""
    out = {}
    for i, name in enumerate(sorted(solvers)):
        dash = DASHES[(i // len(PALETTE)) % len(DASHES)]
        out[name] = {"color": PALETTE[i % len(PALETTE)],
                     "linestyle": (0, tuple(float(v) / 2 for v in dash.split())) if dash
                     else "-"}
    return out


def _figure():
    """A figure of two panels side by side, room for the legend on the right (a fixed layout:
    fast, and the same on every run)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE)
    figure.subplots_adjust(left=0.08, right=0.8, bottom=0.16, top=0.86, wspace=0.32)
    return figure, figure.subplots(1, 2)


def _log_axis(axis: Any) -> None:
    """A log axis with at most a handful of labelled decades and unlabelled minor ticks."""
    from matplotlib.ticker import LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(numticks=6))
    axis.set_minor_locator(LogLocator(subs=(2.0, 5.0), numticks=6))
    axis.set_minor_formatter(NullFormatter())


def _legend(figure: Any, axes: Any) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.81, 0.86))


def save(figure: Any, stem: Path) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.svg`` (deterministic bytes); returns both paths."""
    import matplotlib

    out = []
    with matplotlib.rc_context(STYLE):
        for suffix, metadata in ((".pdf", PDF_METADATA), (".svg", SVG_METADATA)):
            path = stem.with_suffix(suffix)
            figure.savefig(path, format=suffix[1:], metadata=metadata)
            out.append(path)
    return out


Run = tuple[np.ndarray, np.ndarray, np.ndarray, bool]  # oracles, time, value, diverged


def convergence(runs: Mapping[str, Sequence[Run]], *, metric: str, target: float | None,
                ladder: Sequence[float], styles: Mapping[str, Mapping[str, Any]],
                title: str) -> Any:
    """The convergence figure of one instance: ``runs`` maps solver -> its runs (trace arrays
    and whether the run diverged)."""
    import matplotlib

    gap = metric.endswith("_gap")
    with matplotlib.rc_context(STYLE):
        figure, axes = _figure()
        values = np.concatenate([r[2] for rs in runs.values() for r in rs] or [np.array([])])
        finite = values[np.isfinite(values)]
        finite = np.maximum(finite, FLOOR) if gap else finite
        ylog = bool(finite.size and finite.min() > 0 and finite.max() > 50 * finite.min())
        for k, (ax, label) in enumerate(zip(axes, CLOCKS.values(), strict=True)):
            solvers = sorted(runs)
            kept = [[(r[k], r[2]) for r in runs[s] if not r[3]] for s in solvers]
            grids = [common_grid(ok or [(r[k], r[2]) for r in runs[s]])
                     for s, ok in zip(solvers, kept, strict=True)]
            bands = quantile_bands(kept, grids, floor=FLOOR if gap else None)
            for solver, grid, (lo, med, hi) in zip(solvers, grids, bands, strict=True):
                style = styles[solver]
                ax.plot(grid, med, label=solver, **style)
                ax.fill_between(grid, lo, hi, color=style["color"], alpha=0.15, linewidth=0)
                for r in runs[solver]:
                    good = np.isfinite(r[k]) & np.isfinite(r[2])
                    if r[3] and good.any():
                        i = int(np.nonzero(good)[0][-1])
                        y = max(float(r[2][i]), FLOOR) if gap else float(r[2][i])
                        ax.plot([r[k][i]], [y], marker="x", color=style["color"],
                                linestyle="none")
            for rung in ladder[:-1]:
                ax.axhline(rung, color="0.75", linewidth=0.5, linestyle=":")
            if target is not None:
                ax.axhline(target, color="0.3", linewidth=0.8, linestyle="--")
            ax.set_xscale("log")
            _log_axis(ax.xaxis)
            if ylog:
                ax.set_yscale("log")
                _log_axis(ax.yaxis)
            ax.set_xlabel(label)
            ax.set_ylabel(metric)
        _legend(figure, axes)
        figure.suptitle(title + ": median and IQR band over seeds (dashed: target; x: a run "
                        "diverged)")
    return figure


def ecdf_figure(frame: pd.DataFrame, styles: Mapping[str, Mapping[str, Any]],
                title: str) -> Any:
    """The target-ladder ECDF figure of one group's runs on both clocks."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        figure, axes = _figure()
        for ax, (clock, label) in zip(axes, CLOCKS.items(), strict=True):
            low, high = ecdf_axis(frame, clock)
            budgets = np.geomspace(low, high, 121)
            for solver, curve in sorted(ecdf(frame, clock, budgets).items()):
                ax.step(budgets, curve, where="post", label=solver, **styles[solver])
            ax.set_xscale("log")
            _log_axis(ax.xaxis)
            ax.set_xlim(low, high)
            ax.set_ylim(0.0, 1.02)
            ax.set_xlabel(f"budget: {label}")
            ax.set_ylabel("fraction of (instance, rung) pairs")
        _legend(figure, axes)
        figure.suptitle(title + ": target-ladder ECDF")
    return figure
