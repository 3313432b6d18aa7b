"""Scores computed from run records (a DataFrame from :func:`bilevel_bench.load_results`).

Per instance and solver (over seeds): success rate, median and inter-quartile range of
time-to-target and oracles-to-target (over successful runs), status counts, final metrics.
Records of different problem versions or hardware classes are never aggregated together: they
are separate groups.
"""

from __future__ import annotations

import pandas as pd

#: columns that identify a comparable group of runs
GROUP = ["problem", "problem_version", "hardware_class", "ruleset", "solver"]


def per_instance(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (problem, version, hardware class, ruleset, solver) with the protocol's
    per-instance figures."""
    if frame.empty:
        return pd.DataFrame(columns=[*GROUP, "runs", "success_rate"])
    rows = []
    for key, group in frame.groupby(GROUP, dropna=False, sort=True):
        ok = group[group["converged"]]
        row = dict(zip(GROUP, key, strict=True))
        row["runs"] = len(group)
        row["success_rate"] = len(ok) / len(group)
        for column in ("time_to_target", "oracles_to_target"):
            values = ok[column].astype(float)
            row[f"median_{column}"] = values.median() if len(values) else float("nan")
            row[f"iqr_{column}"] = (values.quantile(0.75) - values.quantile(0.25)
                                    if len(values) else float("nan"))
        metric = group["primary_metric"].iloc[0]
        final = group.get(f"final_{metric}")
        row["median_final_primary"] = float(final.median()) if final is not None else None
        row["statuses"] = ", ".join(f"{s}:{n}" for s, n in group["status"].value_counts().items())
        rows.append(row)
    return pd.DataFrame(rows)
