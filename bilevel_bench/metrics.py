"""Scores computed from run records (a DataFrame from :func:`bilevel_bench.load_results`).

**Rankings (protocol version 3) use target ladders**, so that partial progress counts and ties
are rare. Every run records the first checkpoint (passing the instance's LL gate) that meets
each rung of its instance's ladder. On a clock (oracle cost, or solver CPU seconds) with a log
budget axis [low, high] (:data:`ECDF_RANGE`; the time axis ends at the view's budget), the
**ECDF** of a solver is the fraction of (instance, rung) pairs reached within a budget, runs
averaged per instance and instances weighted equally (COCO's runtime distributions; Moré &
Wild's data profiles). Its **area** (:func:`run_areas`: per run, the mean over rungs of
``(log high - log max(cost, low)) / (log high - log low)``, 0 for a missed rung) is the score,
in [0, 1]. :func:`ladder_ranking` scores every solver over the *union* of the instances (an
instance it did not run counts 0) by two means over instances: the **solved fraction** (its
runs reaching the final target) and the area; solvers are ordered by solved fraction, then area
(lexicographically: never reaching a final target cannot outrank reaching it). **Rank labels**
come from paired comparisons (:func:`paired_labels`): one seeded bootstrap resampling shared by
all solvers (instances, then runs paired by seed where two solvers ran the same seeds) gives
replicates of each pair's difference; the one-sided p-value of "j is not ahead of i" is
``(1 + #replicates where j is not ahead) / (B + 1)``, Holm's correction runs over every pair
ordered by the point estimates, and a solver's label is ``1 + #solvers significantly ahead``.
The final-target figures that follow (success rate, time-to-target, Dolan–Moré profiles) are
still computed and shown.

Per instance and solver (over seeds): success rate, median and inter-quartile range of
time-to-target and oracles-to-target (over successful runs), status counts, final metrics.
Records of different problem versions or hardware classes are never aggregated together: they
are separate groups (:data:`GROUP`).

Across instances (a suite), for one *clock* — ``time`` (solver seconds, ``time_to_target``) or
``oracles`` (oracle cost, ``oracles_to_target``) — and one tuning ruleset:

* **cost** of solver s on instance p, ``t[p, s]``: the median over seeds of the run's
  time-to-target on that clock, a run that misses the target counting as ``+inf``. The median
  is finite exactly when *more than half* of the seeds reach the target (success-rate-aware);
  a solver with no run on an instance has cost ``+inf``. Costs are floored at the clock's
  resolution (:data:`FLOORS`: 1 µs, 1 oracle call) so that every ratio is defined.
* **performance ratio** (Dolan & Moré, *Benchmarking optimization software with performance
  profiles*, Math. Programming 91, 2002): ``r[p, s] = t[p, s] / min_s' t[p, s']``; ``+inf``
  when s fails, and for every solver on an instance that no solver solves.
* **performance profile**: ``rho_s(tau) = |{p : r[p, s] <= tau}| / |P|``.
* **integrated profile score** (AlgoPerf, Dahl et al., arXiv:2306.07179, Sec. 4.5: the
  benchmark score ``B_s = 1/(tau_max - 1) * integral_1^tau_max rho_s(tau) dtau`` on a *linear*
  tau axis, ``tau_max = 4``; no log scale): since rho_s is a step function this is exactly
  ``B_s = mean_p max(0, tau_max - r[p, s]) / (tau_max - 1)``, in [0, 1]; 1 means fastest on
  every instance, 0 means never within tau_max of the fastest.
* **mean rank**: per instance, solvers ranked by cost (1 = fastest), ties — including all
  failures — share the average of their ranks; averaged over instances.
* **bootstrap intervals** (percentile, seeded): each replicate resamples the instances with
  replacement and, inside each drawn instance, each solver's seeds with replacement, then
  recomputes costs, ratios, scores and mean ranks.
* **ties shown as ties**: a solver's rank label is ``1 + the number of solvers significantly
  better`` by the paired test above on the bootstrap replicates of the score
  (:func:`paired_labels`); solvers not separated share a label.

The wall-time clock is compared within one hardware class only; the oracle clock does not depend
on hardware, so its ranking pools the runs of every hardware class (never those of different
problem versions).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

#: columns that identify a comparable group of runs
GROUP = ["problem", "problem_version", "hardware_class", "ruleset", "solver"]
#: the two clocks: name -> run-record summary column
CLOCKS = {"time": "time_to_target", "oracles": "oracles_to_target"}
#: the resolution of each clock: costs below it are raised to it
FLOORS = {"time": 1e-6, "oracles": 1.0}
#: AlgoPerf's upper limit of the integrated performance profile
TAU_MAX = 4.0
#: the two columns that identify an instance
INSTANCE = ["problem", "problem_version"]
#: how a canary is listed where solvers are ranked (protocol v3: never ranked)
CANARY_LABEL = "canary (reference line, not ranked)"


def canary_rows(frame: pd.DataFrame) -> pd.Series:
    """Boolean mask of the runs of canary solvers (records whose ``solver.canary`` is true:
    the ``canary`` column; absent, no run is a canary). Canaries do no bilevel work on purpose
    (``Solver.canary``): they are reference lines and never ranked."""
    if "canary" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["canary"].fillna(False).astype(bool)


def without_canaries(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs of the solvers that may be ranked (every run but the canaries')."""
    mask = canary_rows(frame)
    return frame[~mask] if mask.any() else frame


def per_instance(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (problem, version, hardware class, ruleset, solver) with the protocol's
    per-instance figures: runs, success rate, median / quartiles / IQR of time- and
    oracles-to-target over the successful runs, the median of every final metric
    (``median_final_<metric>``; ``median_final_primary`` for the primary one) and status counts
    (most frequent first). Where runs report ``ul_gap_local`` (multimodal toys), the success
    figure is split: ``local_success_rate`` is the fraction whose final iterate is within the
    target of the local minimum of its basin (a stationary point of F), ``global_success_rate``
    the fraction within the target of the global minimum (``ul_gap``). Vectorised: one groupby
    pass per figure."""
    if frame.empty:
        return pd.DataFrame(columns=[*GROUP, "runs", "success_rate"])
    work = frame[GROUP].copy()
    work["converged"] = frame["converged"].astype(bool)
    for column in ("time_to_target", "oracles_to_target"):
        work[column] = pd.to_numeric(frame[column], errors="coerce").where(work["converged"])
    finals = [c for c in frame.columns if c.startswith("final_")]
    for column in finals:
        work[column] = pd.to_numeric(frame[column], errors="coerce")
    primary = np.full(len(frame), np.nan)
    for metric in frame["primary_metric"].unique():
        if f"final_{metric}" in work:
            mask = (frame["primary_metric"] == metric).to_numpy()
            primary[mask] = work[f"final_{metric}"].to_numpy()[mask]
    work["final_primary"] = primary
    if "final_ul_gap_local" in frame and "target" in frame:  # multimodal toys
        target = pd.to_numeric(frame["target"], errors="coerce")
        for name, column in (("local_success", "final_ul_gap_local"),
                             ("global_success", "final_ul_gap")):
            value = pd.to_numeric(frame.get(column), errors="coerce")
            work[name] = (value <= target).astype(float).where(value.notna())
    work["status"] = frame["status"]
    groups = work.groupby(GROUP, dropna=False, sort=True)
    out = groups.size().rename("runs").to_frame()
    out["success_rate"] = groups["converged"].mean()
    if "local_success" in work:  # "reached a local minimum of F" beside "the global one"
        out["local_success_rate"] = groups["local_success"].mean()
        out["global_success_rate"] = groups["global_success"].mean()
    for column in ("time_to_target", "oracles_to_target"):
        q25, q50, q75 = (groups[column].quantile(q) for q in (0.25, 0.5, 0.75))
        out[f"median_{column}"], out[f"q25_{column}"], out[f"q75_{column}"] = q50, q25, q75
        out[f"iqr_{column}"] = q75 - q25
    out["median_final_primary"] = groups["final_primary"].median()
    medians = groups[finals].median()
    for column in finals:
        if medians[column].notna().any():
            out[f"median_{column}"] = medians[column]
    out["statuses"] = groups["status"].agg(
        lambda s: ", ".join(f"{k}:{n}" for k, n in Counter(s).most_common()))
    return out.reset_index()


# ----------------------------------------------------------------- profile arithmetic
def performance_ratios(costs: np.ndarray) -> np.ndarray:
    """Dolan–Moré ratios ``t / min over solvers`` of a (instances x solvers) cost matrix;
    ``+inf`` for failures and for every solver on an instance that no solver solves."""
    costs = np.asarray(costs, dtype=float)
    best = costs.min(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = costs / best
    return np.where(np.isfinite(best) & np.isfinite(costs), ratios, np.inf)


def performance_profile(ratios: np.ndarray, taus: Sequence[float] | np.ndarray) -> np.ndarray:
    """``rho[s, k]``: the fraction of instances on which solver s is within ``taus[k]`` of the
    best (``ratios`` is instances x solvers)."""
    ratios = np.asarray(ratios, dtype=float)
    taus = np.asarray(taus, dtype=float)
    return (ratios[:, :, None] <= taus[None, None, :]).mean(axis=0)


def profile_score(ratios: np.ndarray, tau_max: float = TAU_MAX) -> np.ndarray:
    """AlgoPerf's integrated profile score per solver, exactly:
    ``1/(tau_max-1) * int_1^tau_max rho(tau) dtau = mean_p max(0, tau_max - r_p)/(tau_max-1)``.
    Works on any leading batch axes: (..., instances, solvers) -> (..., solvers)."""
    ratios = np.asarray(ratios, dtype=float)
    area = np.clip(tau_max - ratios, 0.0, None)  # inf ratios give 0
    return area.mean(axis=-2) / (tau_max - 1.0)


def instance_ranks(costs: np.ndarray) -> np.ndarray:
    """Rank of each solver on each instance (1 = cheapest), ties as average ranks
    (all failures tie). Works on (..., instances, solvers)."""
    return rankdata(np.asarray(costs, dtype=float), method="average", axis=-1)


def mean_ranks(costs: np.ndarray) -> np.ndarray:
    """Mean over instances of :func:`instance_ranks`: (..., P, S) -> (..., S)."""
    return instance_ranks(costs).mean(axis=-2)


def lex_compare(a: np.ndarray, b: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Lexicographic comparison of score vectors along the last axis (higher is better):
    ``sign(a_c - b_c)`` at the first component c where they differ by more than ``tol``, 0 where
    none does; +1 means a is ahead. Broadcasts over leading axes."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    sign = np.where(np.abs(diff) > tol, np.sign(diff), 0.0)
    first = (sign != 0).argmax(axis=-1)[..., None]
    return np.take_along_axis(sign, first, axis=-1)[..., 0]


def holm(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down correction: with the m p-values sorted, ``p_(1) <= ... <= p_(m)``,
    reject ``H_(1) .. H_(k)`` for the largest k such that ``p_(l) <= alpha / (m - l + 1)``
    for every l <= k (family-wise error rate <= alpha). Boolean mask of the rejections."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    ok = p[order] <= alpha / (len(p) - np.arange(len(p)))
    rejected = np.zeros(len(p), dtype=bool)
    rejected[order[:len(p) if ok.all() else int(ok.argmin())]] = True
    return rejected


def replicates_for(pairs: int, alpha: float) -> int:
    """The fewest bootstrap replicates B with which a pair separated in every replicate
    (``p = 1 / (B + 1)``) passes Holm's first step among ``pairs`` comparisons at ``alpha``."""
    return math.ceil(pairs / alpha) if pairs else 0


def paired_labels(point: np.ndarray, replicates: np.ndarray, alpha: float = 0.05,
                  tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Rank labels from paired comparisons. ``point[s]`` is solver s's score vector (compared
    lexicographically, :func:`lex_compare`), ``replicates[b, s]`` its b-th bootstrap replicate,
    drawn with the *same* resampling for every solver (so ``replicates[:, j] - replicates[:, i]``
    is a bootstrap of the paired differences). For each pair with j ahead of i in ``point``,
    the one-sided p-value of "j is not ahead of i" is ``(1 + #{b : j not ahead of i in
    replicate b}) / (B + 1)``; Holm's correction (:func:`holm`) runs over all these pairs at
    ``alpha``. Label of i: ``1 + #{j significantly ahead of i}``; identical solvers never
    separate. Without replicates (B = 0) no pair is tested: ``1 + #{j ahead of i}``. Returns
    the labels (S,) and the p-values (S x S; ``[j, i]``, NaN where j is not ahead of i)."""
    point = np.asarray(point, dtype=float).reshape(len(point), -1)
    n = len(point)
    ahead = lex_compare(point[:, None], point[None, :], tol) > 0  # [j, i]: j ahead of i
    pvalues = np.full((n, n), np.nan)
    j, i = np.nonzero(ahead)
    if not len(replicates) or not len(j):
        return 1 + ahead.sum(axis=0), pvalues
    reps = np.asarray(replicates, dtype=float).reshape(len(replicates), n, -1)
    behind = (lex_compare(reps[:, j], reps[:, i], tol) <= 0).sum(axis=0)
    pvalues[j, i] = (1 + behind) / (len(reps) + 1)
    rejected = holm(pvalues[j, i], alpha)
    return 1 + np.bincount(i[rejected], minlength=n), pvalues


# ----------------------------------------------------------------- costs from records
def run_costs(frame: pd.DataFrame, clock: str) -> pd.Series:
    """Per run: its cost on ``clock`` (floored at the clock's resolution), ``+inf`` when the
    run did not reach the target."""
    values = pd.to_numeric(frame[CLOCKS[clock]], errors="coerce").astype(float)
    values = values.clip(lower=FLOORS[clock])
    ok = frame["converged"].astype(bool) & np.isfinite(values)
    return values.where(ok, np.inf)


@dataclass
class CostCube:
    """Run values laid out for scoring: ``runs[p, s, k]`` is the value (a cost, or a ladder
    area) of the k-th run of solver s on instance p (padded with NaN), ``counts[p, s]`` the
    number of runs; runs are ordered by seed inside a cell and ``seeds`` holds them (NaN
    padding; ``None`` for a frame without seeds). A ladder cube also holds ``solved``: 1.0 where
    the run reached its instance's final target, else 0.0."""

    instances: list[tuple[str, str]]
    solvers: list[str]
    runs: np.ndarray
    counts: np.ndarray
    seeds: np.ndarray | None = None
    solved: np.ndarray | None = None

    def costs(self) -> np.ndarray:
        """The (instances x solvers) matrix of median costs (``+inf`` without runs)."""
        return _padded_median(self.runs, self.counts)

    def partners(self) -> np.ndarray:
        """``(instances x solvers)``: for each cell, the first solver that ran exactly the same
        seeds on that instance (the solver itself if none did, or without seeds). Cells with
        the same partner are resampled together, seed by seed (a paired bootstrap)."""
        n_inst, n_solv = self.counts.shape
        own = np.broadcast_to(np.arange(n_solv), (n_inst, n_solv))
        if self.seeds is None or not self.counts.size:
            return own.copy()
        keys = np.concatenate([np.repeat(np.arange(n_inst), n_solv)[:, None],
                               self.counts.reshape(-1, 1),
                               np.nan_to_num(self.seeds, nan=-np.inf).reshape(n_inst * n_solv, -1)],
                              axis=1)
        _, first, group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        return (first[group.reshape(-1)] % n_solv).reshape(n_inst, n_solv)


def cost_cube(frame: pd.DataFrame, clock: str,
              instances: Sequence[tuple[str, str]] | None = None,
              solvers: Sequence[str] | None = None) -> CostCube:
    """Group a frame's runs by instance (problem, version) and solver. The caller selects the
    comparable runs (one ruleset; one hardware class for the time clock)."""
    values = run_costs(frame, clock).tolist() if len(frame) else []
    return _cube(frame, values, instances, solvers)


def _cube(frame: pd.DataFrame, values: Sequence[float],
          instances: Sequence[tuple[str, str]] | None,
          solvers: Sequence[str] | None, solved: Sequence[float] | None = None) -> CostCube:
    """Lay one value per run (``values``, aligned with ``frame``'s rows; ``solved`` likewise)
    out as ``runs[instance, solver, k]``, NaN-padded and ordered by seed, with the run
    counts and seeds."""
    problem = frame["problem"].tolist() if len(frame) else []
    version = frame["problem_version"].tolist() if len(frame) else []
    if instances is None:
        instances = sorted(set(zip(problem, version, strict=True)))
    if solvers is None:
        solvers = sorted(frame["solver"].unique()) if len(frame) else []
    instances, solvers = [tuple(i) for i in instances], list(solvers)
    empty = np.full((len(instances), len(solvers), 1), np.nan)
    counts = np.zeros((len(instances), len(solvers)), dtype=int)
    out = CostCube(instances, solvers, empty, counts, None,
                   None if solved is None else empty.copy())
    if not (len(frame) and instances and solvers):
        return out
    at = {inst: i for i, inst in enumerate(instances)}
    i = np.array([at.get(key, -1) for key in zip(problem, version, strict=True)], dtype=int)
    j = pd.Index(solvers).get_indexer(frame["solver"])
    keep = np.flatnonzero((i >= 0) & (j >= 0))
    if not keep.size:
        return out
    # each (instance, solver) bucket holds its runs by seed (then in frame order)
    cell = i[keep] * len(solvers) + j[keep]
    seed = (pd.to_numeric(frame["seed"], errors="coerce").to_numpy(dtype=float)
            if "seed" in frame else None)
    order = np.lexsort((seed[keep], cell)) if seed is not None else \
        np.argsort(cell, kind="stable")
    cell, rows = cell[order], keep[order]
    starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    sizes = np.diff(np.r_[starts, len(cell)])
    slot = np.arange(len(cell)) - np.repeat(starts, sizes)
    shape = (len(instances), len(solvers), int(sizes.max()))
    at_slot = (cell // len(solvers), cell % len(solvers), slot)

    def lay(per_run: Sequence[float] | np.ndarray) -> np.ndarray:
        laid = np.full(shape, np.nan)
        laid[at_slot] = np.asarray(per_run, dtype=float)[rows]
        return laid

    counts.flat[cell[starts]] = sizes
    return CostCube(instances, solvers, lay(values), counts,
                    None if seed is None else lay(seed), None if solved is None else lay(solved))


def nan_quantile(values: np.ndarray, q: float | Sequence[float], axis: int = -1) -> np.ndarray:
    """The ``q`` quantile(s) along ``axis`` ignoring NaN (linear interpolation, as numpy's
    default), inf-aware (``+inf`` samples count as the largest values), NaN where a slice has no
    value; a sequence ``q`` stacks the results on a new first axis. Vectorised: one sort instead
    of numpy's per-slice ``nanquantile`` loop."""
    ordered = np.moveaxis(np.sort(values, axis=axis), axis, -1)  # NaN sorts last
    n = (~np.isnan(ordered)).sum(axis=-1)
    out = []
    for level in np.atleast_1d(q):
        pos = level * np.maximum(n - 1, 0)
        low = np.take_along_axis(ordered, np.floor(pos).astype(int)[..., None], axis=-1)[..., 0]
        high = np.take_along_axis(ordered, np.ceil(pos).astype(int)[..., None], axis=-1)[..., 0]
        with np.errstate(invalid="ignore"):
            value = np.where(low == high, low, low + (high - low) * (pos - np.floor(pos)))
        out.append(np.where(n > 0, value, np.nan))
    return np.stack(out) if np.ndim(q) else out[0]


def _padded_median(runs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median over the last axis of NaN-padded samples, ``+inf`` where there are none."""
    return np.where(counts > 0, nan_quantile(runs, 0.5), np.inf)


# ----------------------------------------------------------------- ranking with intervals
def _draw(rng: np.random.Generator, shape: tuple[int, ...], counts: np.ndarray,
          partners: np.ndarray) -> np.ndarray:
    """Run indices (``shape`` = (..., P, S, width)) of one seed-level resample per cell: slot k
    of cell (p, s) draws run ``floor(u * counts[p, s])`` of it, the uniform u being shared by
    the cells with the same partner (:meth:`CostCube.partners`: the same seeds, ordered), so
    that their runs are drawn in pairs, seed by seed."""
    u = rng.random(shape)
    u = np.take_along_axis(u, np.broadcast_to(partners[..., None], shape), axis=-2)
    return np.multiply(u, counts[..., None], out=u).astype(np.intp)


def bootstrap(cube: CostCube, n_boot: int = 1000, seed: int = 0, tau_max: float = TAU_MAX,
              chunk: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates ``(scores, mean_ranks)``, each (n_boot x solvers): instances are
    resampled with replacement (the same draw for every solver), then the runs inside each
    drawn instance (paired by seed, :func:`_draw`)."""
    rng = np.random.default_rng(seed)
    n_inst, n_solv, width = cube.runs.shape
    scores = np.empty((n_boot, n_solv))
    ranks = np.empty((n_boot, n_solv))
    if n_inst == 0 or n_solv == 0:
        return scores * np.nan, ranks * np.nan
    slot = np.arange(width)
    partners = cube.partners()
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        pick = rng.integers(0, n_inst, size=(b, n_inst))
        counts = cube.counts[pick]  # (b, P, S)
        draw = _draw(rng, (b, n_inst, n_solv, width), counts, partners[pick])
        sample = np.take_along_axis(cube.runs[pick], draw, axis=-1)
        sample = np.where(slot < counts[..., None], sample, np.nan)
        costs = _padded_median(sample, counts)
        scores[start:start + b] = profile_score(performance_ratios(costs), tau_max)
        ranks[start:start + b] = mean_ranks(costs)
    return scores, ranks


def _replicates(point: np.ndarray, n_boot: int, alpha: float) -> int:
    """How many bootstrap replicates a ranking draws: ``n_boot``, raised where needed so that
    the paired tests of its pairs can pass Holm's correction (:func:`replicates_for`); 0
    stays 0 (no test)."""
    if not n_boot:
        return 0
    point = np.asarray(point, dtype=float).reshape(len(point), -1)
    pairs = int((lex_compare(point[:, None], point[None, :]) > 0).sum())
    return max(n_boot, replicates_for(pairs, alpha))


def _intervals(point: np.ndarray, replicates: np.ndarray, confidence: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (lo, hi) per column; the point itself without replicates."""
    if not len(replicates) or not np.isfinite(replicates).any():
        return point, point
    alpha = (1.0 - confidence) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(replicates, [alpha, 1 - alpha], axis=0)
    return lo, hi


def _labelled(table: pd.DataFrame, keys: list[str], replicates: np.ndarray,
              confidence: float, columns: list[str]) -> pd.DataFrame:
    """Add ``rank`` (:func:`paired_labels` of the ``keys`` columns, compared in that order,
    with their replicates ``(B, S, len(keys))``; Holm at ``1 - confidence``) and ``tied`` to a
    ranking table, and order it by its point estimates: ``keys`` lexicographically (higher
    first), then mean rank and name."""
    point = table[keys].to_numpy(dtype=float)
    table["rank"], _ = paired_labels(np.nan_to_num(point, nan=-np.inf),
                                     np.nan_to_num(replicates, nan=-np.inf), 1.0 - confidence)
    table["tied"] = table["rank"].map(table["rank"].value_counts()) > 1
    order = table.assign(**{f"_{k}": table[k].round(9) for k in keys})
    order = order.sort_values([f"_{k}" for k in keys] + ["mean_rank", "solver"],
                              ascending=[False] * len(keys) + [True, True], kind="stable")
    return table.loc[order.index, columns].reset_index(drop=True)


def ranking(frame: pd.DataFrame, clock: str, *,
            instances: Sequence[tuple[str, str]] | None = None,
            solvers: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0,
            confidence: float = 0.95, tau_max: float = TAU_MAX) -> tuple[pd.DataFrame, CostCube]:
    """The ranking table of one comparable set of runs on one clock by the integrated profile
    score, best first: ``rank`` (:func:`paired_labels` on the bootstrap replicates), ``tied``,
    ``score`` with ``score_lo``/``score_hi``, ``mean_rank`` with ``mean_rank_lo``/
    ``mean_rank_hi``, ``solved`` (instances with a finite cost) and ``instances``. Also returns
    the :class:`CostCube` it was computed from. Canaries (:func:`canary_rows`) are never ranked:
    their runs are left out."""
    frame = without_canaries(frame)
    cube = cost_cube(frame, clock, instances, solvers)
    costs = cube.costs()
    score = profile_score(performance_ratios(costs), tau_max)
    rank = mean_ranks(costs) if len(cube.instances) else np.full(len(cube.solvers), np.nan)
    n_rep = _replicates(score, n_boot, 1.0 - confidence) if len(cube.instances) else 0
    boot_s, boot_r = bootstrap(cube, n_boot=n_rep, seed=seed, tau_max=tau_max)
    s_lo, s_hi = _intervals(score, boot_s, confidence)
    r_lo, r_hi = _intervals(rank, boot_r, confidence)
    table = pd.DataFrame({
        "solver": cube.solvers, "score": score, "score_lo": s_lo, "score_hi": s_hi,
        "mean_rank": rank, "mean_rank_lo": r_lo, "mean_rank_hi": r_hi,
        "solved": np.isfinite(costs).sum(axis=0) if len(cube.instances) else 0,
        "instances": len(cube.instances),
    })
    columns = ["rank", "tied", "solver", "score", "score_lo", "score_hi", "mean_rank",
               "mean_rank_lo", "mean_rank_hi", "solved", "instances"]
    return _labelled(table, ["score"], boot_s[..., None], confidence, columns), cube


# ----------------------------------------------------------------- target ladders (ECDF)
#: where each clock's log-budget axis of the ECDF starts and (for the oracle clock) ends;
#: the time axis ends at the view's budget in seconds
ECDF_RANGE = {"time": (1e-3, None), "oracles": (1.0, 1e7)}
#: the field of a ladder hit that each clock reads
HIT_FIELDS = {"time": "time", "oracles": "oracle_cost"}


def ecdf_axis(frame: pd.DataFrame, clock: str) -> tuple[float, float]:
    """The log-budget axis ``(low, high)`` of a clock: fixed for the oracle clock, up to the
    largest budget in seconds of the runs for the time clock (a view holds one budget)."""
    low, high = ECDF_RANGE[clock]
    if high is None:
        budgets = pd.to_numeric(frame.get("budget_seconds", pd.Series(dtype=float)),
                                errors="coerce").dropna() if len(frame) else pd.Series([])
        high = float(budgets.max()) if len(budgets) else 10.0
    return low, max(high, low * 10)


def hit_costs(hits: Sequence[Any] | None, clock: str) -> tuple[float, ...]:
    """Per rung of one run's ladder (its ``ladder_hits``): the cost on ``clock`` of its first
    (gated) hit, ``+inf`` when the rung was not reached."""
    key = HIT_FIELDS[clock]
    costs = []
    for hit in hits or []:
        value = hit.get(key) if isinstance(hit, dict) else None
        costs.append(float(value) if isinstance(value, int | float) and math.isfinite(value)
                     else math.inf)
    return tuple(costs)


def rung_costs(frame: pd.DataFrame, clock: str) -> np.ndarray:
    """The (runs x rungs) matrix of :func:`hit_costs`, NaN past the end of a run's ladder.
    Read from the column ``rung_costs_<clock>`` where the frame has it (the leaderboard
    computes it once per record), else from ``ladder_hits``."""
    column = f"rung_costs_{clock}"
    if not len(frame):
        per_run: list = []
    elif column in frame:
        per_run = frame[column].tolist()
    else:
        per_run = [hit_costs(hits, clock) for hits in frame["ladder_hits"]]
    lengths = {len(c) for c in per_run}
    if len(lengths) == 1:
        return np.array(per_run, dtype=float).reshape(len(per_run), lengths.pop())
    out = np.full((len(per_run), max(lengths, default=0)), np.nan)
    for i, costs in enumerate(per_run):
        out[i, :len(costs)] = costs
    return out


def run_areas(costs: np.ndarray, low: float, high: float) -> np.ndarray:
    """Area under each run's ECDF over its rungs on the log-budget axis [low, high], in
    [0, 1], for a (runs x rungs) matrix of :func:`rung_costs`: the mean over the run's rungs
    of ``(log high - log max(cost, low)) / (log high - log low)`` for a rung hit within
    ``high``, 0 for a rung missed (0 for a run without rungs). 1: every rung at the smallest
    budget; the mean over runs and instances is the area under the aggregated ECDF (COCO's
    runtime distribution over (instance, target) pairs; Moré & Wild's data profiles)."""
    costs = np.asarray(costs, dtype=float).reshape(len(costs), -1)
    span = math.log(high) - math.log(low)
    with np.errstate(invalid="ignore"):
        within = costs <= high  # False for a missed rung (+inf) and for padding (NaN)
        terms = np.zeros(costs.shape)
        terms[within] = (math.log(high) - np.log(np.maximum(costs[within], low))) / span
    rungs = (~np.isnan(costs)).sum(axis=1)
    total = np.zeros(len(costs))
    for k in range(costs.shape[1]):  # rung by rung: the summation order of one run's mean
        total += terms[:, k]
    return np.where(rungs > 0, total / np.maximum(rungs, 1), 0.0)


def area_scores(costs: Sequence[float], low: float, high: float) -> float:
    """:func:`run_areas` of one run's rung costs (a NaN cost is a rung missed, not padding)."""
    row = np.nan_to_num(np.array([list(costs)], dtype=float), nan=math.inf, posinf=math.inf)
    return float(run_areas(row, low, high)[0])


def ladder_cube(frame: pd.DataFrame, clock: str,
                instances: Sequence[tuple[str, str]] | None = None,
                solvers: Sequence[str] | None = None) -> CostCube:
    """Per-run ECDF areas (:func:`run_areas`, higher is better) laid out like a
    :class:`CostCube` (``runs[p, s, k]``, NaN-padded, by seed), with ``solved`` (1.0 where the
    run reached its final target: ``converged``). The caller selects comparable runs."""
    low, high = ecdf_axis(frame, clock)
    solved = frame["converged"].fillna(False).astype(bool).astype(float).tolist() \
        if len(frame) else []
    return _cube(frame, run_areas(rung_costs(frame, clock), low, high).tolist(), instances,
                 solvers, solved)


def _cell_means(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of each (instance, solver) cell's runs from their sums: ``sums / counts``, and 0
    for a cell without runs (an instance not run counts as nothing)."""
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def _instance_ranks(solved: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Rank of each solver on each instance (..., P, S) by (solved fraction, ECDF area)
    lexicographically (1 = best, ties share the average rank): the key ``2 * dense rank of
    the solved fraction + area`` orders exactly so, since area lies in [0, 1]."""
    key = 2.0 * rankdata(solved, method="dense", axis=-1) + area
    return rankdata(-key, method="average", axis=-1)


def _cell_pool(cube: CostCube, n: int, rng: np.random.Generator, chunk: int = 200
               ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seed-level resamples of every (instance, solver) cell: the (n x P x S) means of
    ``solved`` and of the area over the cell's runs drawn with replacement (paired by seed,
    :func:`_draw`), 0 for a cell without runs."""
    n_inst, n_solv, width = cube.runs.shape
    partners, counts = cube.partners(), cube.counts
    base = ((np.arange(n_inst)[:, None] * n_solv + np.arange(n_solv)) * width)[..., None]
    past = np.arange(width) >= counts[..., None]  # slots past a cell's runs add 0
    solved = cube.solved if cube.solved is not None else np.zeros_like(cube.runs)
    pools = np.empty((2, n, n_inst, n_solv))
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        draw = _draw(rng, (b, n_inst, n_solv, width), counts, partners) + base
        for k, values in enumerate((solved, cube.runs)):
            sample = values.reshape(-1)[draw]
            sample[np.broadcast_to(past, sample.shape)] = 0.0
            pools[k, start:start + b] = _cell_means(sample.sum(axis=-1), counts)
    return pools[0], pools[1]


def ladder_bootstrap(cube: CostCube, n_boot: int = 1000, seed: int = 0, pool: int = 1000,
                     chunk: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap replicates ``(solved fractions, areas, mean ranks)`` of the ladder scores over
    the union of the cube's instances, each (n_boot x solvers), with one resampling for every
    solver (so that differences between solvers are paired): instances are drawn with
    replacement, and each drawn instance takes one of ``min(n_boot, pool)`` seed-level
    resamples of that instance (:func:`_cell_pool`; runs paired by seed where solvers ran the
    same seeds), drawn at random."""
    rng = np.random.default_rng(seed)
    n_inst, n_solv, _ = cube.runs.shape
    out = np.full((3, n_boot, n_solv), np.nan)
    if n_boot == 0 or n_inst == 0 or n_solv == 0:
        return out[0], out[1], out[2]
    solved, area = _cell_pool(cube, min(n_boot, pool), rng)
    pools = (solved, area, _instance_ranks(solved, area))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        pick = rng.integers(0, n_inst, size=(b, n_inst))
        which = rng.integers(0, len(solved), size=(b, n_inst))
        for k, values in enumerate(pools):
            out[k, start:start + b] = values[which, pick].mean(axis=1)
    return out[0], out[1], out[2]


def ladder_ranking(frame: pd.DataFrame, clock: str, *,
                   instances: Sequence[tuple[str, str]] | None = None,
                   solvers: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0,
                   confidence: float = 0.95, include_canaries: bool = False
                   ) -> tuple[pd.DataFrame, CostCube]:
    """The ranking of one comparable set of runs over the union of its instances (``instances``,
    default: every instance in the frame), best first. Per solver: ``solved_fraction``, the
    mean over instances of the fraction of its runs (seeds) that reach the final target, and
    ``score``, the mean over instances of its runs' mean ECDF area (:func:`run_areas`); an
    instance it did not run counts 0 in both. Solvers are ordered by solved fraction, then area
    (lexicographically: never reaching a final target cannot outrank reaching it). ``rank``:
    :func:`paired_labels` on :func:`ladder_bootstrap`'s replicates of (solved fraction, area),
    Holm at ``1 - confidence``; ``tied``; ``[lo, hi]`` percentile intervals of both scores and
    of ``mean_rank`` (the mean over instances of the per-instance rank by the same order);
    ``solved`` (instances whose final target more than half the seeds reach),
    ``rungs_reached`` (fraction of the (run, rung) pairs reached), ``instances`` (that the
    solver ran) and ``instances_total`` (the union). Also returns the :class:`CostCube` of
    per-run areas. Canaries (:func:`canary_rows`) are never ranked: their runs are left out
    unless ``include_canaries`` (the scores of their reference lines)."""
    if not include_canaries:
        frame = without_canaries(frame)
    cube = ladder_cube(frame, clock, instances, solvers)
    n_inst, n_solv = cube.counts.shape
    solved_cells = _cell_means(np.nansum(cube.solved, axis=-1), cube.counts)
    area_cells = _cell_means(np.nansum(cube.runs, axis=-1), cube.counts)
    if n_inst:
        solved, score = solved_cells.mean(axis=0), area_cells.mean(axis=0)
        rank = _instance_ranks(solved_cells, area_cells).mean(axis=0)
    else:
        solved = score = rank = np.full(n_solv, np.nan)
    point = np.stack([solved, score], axis=1)
    n_rep = _replicates(point, n_boot, 1.0 - confidence) if n_inst else 0
    boot_f, boot_s, boot_r = ladder_bootstrap(cube, n_boot=n_rep, seed=seed)
    f_lo, f_hi = _intervals(solved, boot_f, confidence)
    s_lo, s_hi = _intervals(score, boot_s, confidence)
    r_lo, r_hi = _intervals(rank, boot_r, confidence)
    final = cost_cube(frame, clock, cube.instances, cube.solvers).costs()
    reached = {}
    if len(frame):
        costs = rung_costs(frame, clock)
        hit, rungs = np.isfinite(costs).sum(axis=1), (~np.isnan(costs)).sum(axis=1)
        totals = pd.DataFrame({"hit": hit, "rungs": rungs}).groupby(frame["solver"].to_numpy()
                                                                    ).sum()
        reached = {name: float(h / n) if n else np.nan
                   for name, h, n in zip(totals.index, totals["hit"], totals["rungs"],
                                         strict=True)}
    table = pd.DataFrame({
        "solver": cube.solvers, "solved_fraction": solved, "solved_fraction_lo": f_lo,
        "solved_fraction_hi": f_hi, "score": score, "score_lo": s_lo, "score_hi": s_hi,
        "mean_rank": rank, "mean_rank_lo": r_lo, "mean_rank_hi": r_hi,
        "solved": np.isfinite(final).sum(axis=0) if n_inst else 0,
        "rungs_reached": [reached.get(s, np.nan) for s in cube.solvers],
        "instances": (cube.counts > 0).sum(axis=0) if n_inst else 0,
        "instances_total": n_inst,
    })
    columns = ["rank", "tied", "solver", "solved_fraction", "solved_fraction_lo",
               "solved_fraction_hi", "score", "score_lo", "score_hi", "mean_rank",
               "mean_rank_lo", "mean_rank_hi", "solved", "rungs_reached", "instances",
               "instances_total"]
    return _labelled(table, ["solved_fraction", "score"], np.stack([boot_f, boot_s], axis=-1),
                     confidence, columns), cube


def ecdf(frame: pd.DataFrame, clock: str, budgets: Sequence[float]) -> dict[str, np.ndarray]:
    """Per solver, the fraction of (instance, rung) pairs reached within each budget (runs
    averaged per instance, instances weighted equally, over the union of the frame's instances:
    one not run counts 0, as in :func:`ladder_ranking`): the curves of the ECDF plot."""
    budgets = np.asarray(budgets, dtype=float)
    if frame.empty:
        return {}
    costs = rung_costs(frame, clock)
    rungs = (~np.isnan(costs)).sum(axis=1)
    with np.errstate(invalid="ignore"):  # NaN padding is never within a budget
        within = (costs[:, :, None] <= budgets[None, None, :]).sum(axis=1)
    fractions = np.where(rungs[:, None] > 0, within / np.maximum(rungs, 1)[:, None], 0.0)
    # runs averaged per (solver, instance), then instances per solver; rows summed in frame
    # order (np.add.reduceat adds the rows of a group one after another)
    solver = pd.factorize(frame["solver"], sort=True)
    problem = pd.factorize(frame["problem"], sort=True)[0]
    version = pd.factorize(frame["problem_version"], sort=True)[0]
    order = np.lexsort((version, problem, solver[0]))
    keys = np.stack([solver[0], problem, version], axis=1)[order]
    starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)])
    sizes = np.diff(np.r_[starts, len(order)])
    per_instance = np.add.reduceat(fractions[order], starts, axis=0) / sizes[:, None]
    owner = keys[starts, 0]
    first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    union = len(np.unique(keys[:, 1:], axis=0))
    curves = np.add.reduceat(per_instance, first, axis=0) / union
    return {str(solver[1][owner[i]]): curves[k] for k, i in enumerate(first)}
