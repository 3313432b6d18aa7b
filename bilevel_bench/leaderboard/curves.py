"""Convergence curves over seeds: median and quantile band of a metric against a clock.

Each run's trace is a step function of the clock (its value at the last checkpoint so far,
held after the run stops). All runs of a plot are read on one common grid — log-spaced between
the smallest positive and the largest clock value among them — and summarised per grid point by
the median and the ``band`` quantiles over the runs that have a value there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bilevel_bench.metrics import nan_quantile

Trace = tuple[np.ndarray, np.ndarray]  # (clock values ascending, metric values)


def common_grid(traces: Sequence[Trace], points: int = 40) -> np.ndarray:
    """Log-spaced grid covering the positive clock values of all traces."""
    xs = np.concatenate([np.asarray(x, dtype=float) for x, _ in traces]) if traces else \
        np.array([])
    xs = xs[(xs > 0) & np.isfinite(xs)]
    if not xs.size:
        return np.array([1.0])
    lo, hi = float(xs.min()), float(xs.max())
    if hi <= lo:
        return np.array([lo])
    return np.geomspace(lo, hi, points)


def on_grid(traces: Sequence[Trace], grid: np.ndarray) -> np.ndarray:
    """The step functions of the traces read at ``grid`` (one grid, or one row per trace; NaN
    entries are no grid point), one row per trace: the value at the last checkpoint at or
    before each grid point, NaN before a trace's first checkpoint."""
    grid = np.asarray(grid, dtype=float)
    out = np.full((len(traces), grid.shape[-1]), np.nan)
    kept = [i for i, (x, _) in enumerate(traces) if len(x)]
    if not kept:
        return out
    lengths = np.array([len(traces[i][0]) for i in kept])
    starts = np.cumsum(lengths) - lengths
    xs = np.concatenate([np.asarray(traces[i][0], dtype=float) for i in kept])
    ys = np.concatenate([np.asarray(traces[i][1], dtype=float) for i in kept])
    points = grid[None, :] if grid.ndim == 1 else np.repeat(grid[kept], lengths, axis=0)
    # per trace, how many checkpoints lie at or before each grid point (x is ascending)
    seen = np.add.reduceat((xs[:, None] <= points).astype(np.int64), starts, axis=0)
    last = starts[:, None] + seen - 1
    out[kept] = np.where(seen > 0, ys[np.clip(last, 0, None)], np.nan)
    return out


def quantile_bands(groups: Sequence[Sequence[Trace]], grids: Sequence[np.ndarray],
                   band: tuple[float, float] = (0.25, 0.75), floor: float | None = None
                   ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per group of traces, ``(lower, median, upper)`` over its traces at each point of its
    grid (NaN where no trace has a value); ``floor``: finite values below it count as it (a
    gap on a log axis). All groups in one pass: the grids padded to one length, the groups to
    one size."""
    width = max((len(g) for g in grids), default=0)
    padded = np.full((len(grids), width), np.nan)
    for k, grid in enumerate(grids):
        padded[k, :len(grid)] = grid
    traces = [t for group in groups for t in group]
    owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    values = on_grid(traces, padded[owner])
    if floor is not None:
        values = np.where(np.isfinite(values), np.maximum(values, floor), values)
    size = max((len(g) for g in groups), default=0)
    cube = np.full((len(groups), max(size, 1), width), np.nan)
    slot = np.arange(len(traces)) - np.repeat(np.cumsum([0, *map(len, groups)])[:-1],
                                               [len(g) for g in groups])
    cube[owner, slot] = values
    lo, med, hi = nan_quantile(cube, (band[0], 0.5, band[1]), axis=1)
    return [(lo[k, :len(g)], med[k, :len(g)], hi[k, :len(g)]) for k, g in enumerate(grids)]
