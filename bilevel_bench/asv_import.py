"""Read asv result files into a pandas DataFrame, so the leaderboard can show asv timings.

asv (airspeed velocity) writes, under its ``results_dir`` (``.asv/results`` in this project):

* ``benchmarks.json``: every benchmark's type, unit, parameter names and values;
* ``<machine>/machine.json``: the machine description;
* ``<machine>/<commit>-<environment>.json``: one result file per commit and environment.

A result file (format ``"version": 2``, asv >= 0.5) holds, per benchmark, a row whose columns are
named by ``result_columns`` (``result``, ``params``, ``version``, ``started_at``, ``duration``,
``stats_*``, ``samples``, ``profile``). ``result`` is one value for an unparameterised benchmark,
otherwise a list over the Cartesian product of ``params`` (lists of ``repr`` strings), in
``itertools.product`` order; ``null`` or NaN means failed or skipped. Older files (version 1)
are refused with the command that upgrades them (``asv update``).

Only JSON is read: nothing from asv is imported and nothing is executed, so the leaderboard
can import asv results from any source as safely as it reads run records.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bilevel_bench.errors import ResultsError

#: result-file format versions this module reads
SUPPORTED_VERSIONS = (2,)
COLUMNS = ["benchmark", "params", "value", "unit", "machine", "commit", "env_name", "date",
           "kind", "problem", "solver"]
#: unit of each asv benchmark type when ``benchmarks.json`` is missing
DEFAULT_UNITS = {"time": "seconds", "peakmem": "bytes", "mem": "bytes", "timeraw": "seconds"}


def load_asv_results(path: str | Path):
    """asv results as a ``pandas.DataFrame``, one row per benchmark and parameter combination.

    ``path`` is asv's results directory (all machines and commits under it) or one result
    file. Columns: ``benchmark`` (asv's name, e.g. ``solve.SolveToTarget.time_solve``),
    ``params`` (dict parameter name -> value), ``value`` (float; NaN when failed or skipped),
    ``unit``, ``machine``, ``commit``, ``env_name``, ``date`` (UTC), ``kind`` (``time``,
    ``peakmem``, ``track``, ...) and, for this project's suites, ``problem`` and ``solver``
    (missing when the benchmark has no such parameter). Raises
    :class:`~bilevel_bench.errors.ResultsError` for a missing path or an unreadable file.
    """
    import pandas as pd

    root = Path(path)
    if root.is_file():
        files, meta_dir = [root], root.parent.parent
    elif root.is_dir():
        files = sorted(f for f in root.glob("*/*.json") if f.name != "machine.json")
        meta_dir = root
    else:
        raise ResultsError(f"asv results path {str(root)!r} does not exist")
    benchmarks = _benchmark_descriptions(meta_dir / "benchmarks.json")
    rows = [row for file in files for row in _rows(file, benchmarks)]
    return pd.DataFrame(rows, columns=COLUMNS)


def latest_figures(frame):
    """One row per (problem, solver, machine): the figures of the newest commit (by asv's
    commit date) benchmarked on that machine, one column per benchmark method (``time_solve``,
    ``peakmem_solve``, ``track_oracles_to_target``, ...; asv units), NaN where failed or
    skipped (combinations where all are dropped), plus ``commit`` and ``date``. Rows without
    a ``problem`` and ``solver`` are left out (they are not this project's suites)."""
    import pandas as pd

    keys = ["problem", "solver", "machine"]
    ours = frame.dropna(subset=["problem", "solver"])
    if ours.empty:
        return pd.DataFrame(columns=[*keys, "commit", "date"])
    newest = ours.groupby("machine")["date"].transform("max")
    ours = ours[(ours["date"] == newest) | newest.isna()]
    ours = ours.assign(method=ours["benchmark"].str.rpartition(".")[2])
    table = ours.pivot_table(index=[*keys, "commit", "date"], columns="method", values="value",
                             aggfunc="median", dropna=False)
    table = table.dropna(how="all")  # every figure skipped: the solver cannot run the problem
    return table.reset_index().rename_axis(columns=None)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"cannot read asv file {str(path)!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise ResultsError(f"asv file {str(path)!r} is not a JSON object")
    return data


def _benchmark_descriptions(path: Path) -> dict[str, dict[str, Any]]:
    """asv's ``benchmarks.json`` (name -> description); empty if absent."""
    if not path.is_file():
        return {}
    data = _read_json(path)
    return {name: desc for name, desc in data.items() if isinstance(desc, dict)}


def _rows(path: Path, benchmarks: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The rows of one result file."""
    data = _read_json(path)
    version = data.get("version")
    if version not in SUPPORTED_VERSIONS:
        hint = (" (asv < 0.5 format: convert it with `asv update`)" if version == 1
                else " (written by a newer asv? upgrade bilevel_bench)")
        raise ResultsError(
            f"asv result file {str(path)!r} has format version {version!r}; bilevel_bench "
            f"reads version(s) {', '.join(map(str, SUPPORTED_VERSIONS))}{hint}")
    try:
        columns = list(data["result_columns"])
        results = data["results"]
        machine = data.get("params", {}).get("machine") or path.parent.name
        commit, env_name = data["commit_hash"], data.get("env_name")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ResultsError(f"asv result file {str(path)!r} lacks {exc}") from exc
    date = _date(data.get("date"))
    for name, row in results.items():
        entry = dict(zip(columns, row, strict=False))
        desc = benchmarks.get(name, {})
        kind = str(desc.get("type") or name.rpartition(".")[2].partition("_")[0])
        unit = desc.get("unit") or DEFAULT_UNITS.get(kind, "unknown")
        param_values = entry.get("params") or []
        names = list(desc.get("param_names") or [f"param{i + 1}"
                                                 for i in range(len(param_values))])
        combos = list(itertools.product(*param_values)) if param_values else [()]
        values = entry.get("result")
        if not param_values:
            values = values if isinstance(values, list) else [values]
        if not isinstance(values, list) or len(values) != len(combos):
            raise ResultsError(f"asv result file {str(path)!r}: benchmark {name!r} has "
                               f"{_count(values)} results for {len(combos)} parameter sets")
        for combo, value in zip(combos, values, strict=True):
            params = {key: _literal(text) for key, text in zip(names, combo, strict=False)}
            yield {
                "benchmark": name, "params": params, "value": _float(value), "unit": unit,
                "machine": machine, "commit": commit, "env_name": env_name, "date": date,
                "kind": kind, "problem": params.get("problem"), "solver": params.get("solver"),
            }


def _count(values: Any) -> int:
    return len(values) if isinstance(values, list) else 1


def _literal(text: Any) -> Any:
    """asv stores parameter values as their ``repr``; read literals back, keep the rest."""
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _float(value: Any) -> float:
    """A result value as a float; failed (``null``) and skipped values become NaN."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _date(millis: Any) -> datetime | None:
    """asv's dates are milliseconds since the epoch."""
    if not isinstance(millis, int | float):
        return None
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)
