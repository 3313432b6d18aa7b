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
    xs = [x[(x > 0) & np.isfinite(x)] for x, _ in traces if len(x)]
    xs = [x for x in xs if x.size]
    if not xs:
        return np.array([1.0])
    lo, hi = min(float(x.min()) for x in xs), max(float(x.max()) for x in xs)
    if hi <= lo:
        return np.array([lo])
    return np.geomspace(lo, hi, points)


def on_grid(trace: Trace, grid: np.ndarray) -> np.ndarray:
    """The step function of one trace read at ``grid`` (NaN before its first checkpoint)."""
    x, y = trace
    if len(x) == 0:
        return np.full(grid.shape, np.nan)
    idx = np.searchsorted(x, grid, side="right") - 1
    return np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)


def quantile_band(traces: Sequence[Trace], grid: np.ndarray,
                  band: tuple[float, float] = (0.25, 0.75)
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lower, median, upper)`` over the traces at each grid point."""
    if not traces:
        empty = np.full(grid.shape, np.nan)
        return empty, empty, empty
    values = np.vstack([on_grid(t, grid) for t in traces])
    lo, med, hi = nan_quantile(values, (band[0], 0.5, band[1]), axis=0)
    return lo, med, hi
