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
    """The step functions of the traces read at ``grid``, one row per trace: the value at the
    last checkpoint at or before each grid point, NaN before a trace's first checkpoint."""
    out = np.full((len(traces), len(grid)), np.nan)
    kept = [i for i, (x, _) in enumerate(traces) if len(x)]
    if not kept:
        return out
    lengths = np.array([len(traces[i][0]) for i in kept])
    starts = np.cumsum(lengths) - lengths
    xs = np.concatenate([np.asarray(traces[i][0], dtype=float) for i in kept])
    ys = np.concatenate([np.asarray(traces[i][1], dtype=float) for i in kept])
    # per trace, how many checkpoints lie at or before each grid point (x is ascending)
    seen = np.add.reduceat((xs[:, None] <= grid[None, :]).astype(np.int64), starts, axis=0)
    last = starts[:, None] + seen - 1
    out[kept] = np.where(seen > 0, ys[np.clip(last, 0, None)], np.nan)
    return out


def quantile_band(traces: Sequence[Trace], grid: np.ndarray,
                  band: tuple[float, float] = (0.25, 0.75)
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lower, median, upper)`` over the traces at each grid point."""
    if not traces:
        empty = np.full(grid.shape, np.nan)
        return empty, empty, empty
    lo, med, hi = nan_quantile(on_grid(traces, grid), (band[0], 0.5, band[1]), axis=0)
    return lo, med, hi
