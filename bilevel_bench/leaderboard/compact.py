"""Compact run records for the committed official result set.

The site reads, from each record, its summary (ladder hits, final metrics, status), its
descriptions and the primary metric of its trace (the convergence curves). A long run's trace
holds thousands of checkpoints; :func:`compact_record` keeps at most ``max_rows`` of them: the
first and last checkpoints, every checkpoint that is a ladder rung's first hit, and the rest
spread evenly on a log scale of the row index; in the rows kept, numbers are rounded to 6
significant digits and zero oracle counts are dropped. The summary is untouched (it was computed
from the full trace when the run finished), so scores and rankings are exactly those of the full
records; only the convergence curves are drawn from fewer, rounded points. The record says so:
``compacted: {"trace_rows": original, "kept": kept, "digits": 6}``.

    python -m bilevel_bench.leaderboard.compact DIR [--max-rows N]   # rewrites DIR/**/*.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from bilevel_bench.results import iter_records

#: checkpoints kept per run by default (the curves' grid has 40 points)
MAX_ROWS = 40


def _keep(trace: list[dict[str, Any]], hits: list[Any], max_rows: int) -> list[int]:
    n = len(trace)
    if n <= max_rows:
        return list(range(n))
    keep = {0, n - 1}
    hit_iterations = {h.get("iteration") for h in hits if isinstance(h, dict)}
    keep |= {i for i, row in enumerate(trace) if row.get("iteration") in hit_iterations}
    spare = max(max_rows - len(keep), 0)
    if spare:
        # log-spaced positions over the row index: dense early, where curves change fastest
        for k in range(spare):
            keep.add(min(n - 1, int(round(math.expm1(math.log1p(n - 1) * k / max(spare - 1,
                                                                                   1))))))
    return sorted(keep)


def _round(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def _row(row: dict[str, Any]) -> dict[str, Any]:
    out = _round(row)
    if isinstance(out.get("counts"), dict):
        out["counts"] = {k: v for k, v in out["counts"].items() if v}
    return out


def compact_record(record: dict[str, Any], max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """The record with at most about ``max_rows`` trace rows (plus ladder-hit rows)."""
    if record.get("compacted"):
        return record
    trace = record.get("trace") or []
    hits = (record.get("summary") or {}).get("ladder_hits") or []
    rows = [_row(trace[i]) for i in _keep(trace, hits, max_rows)]
    out = dict(record)
    out["trace"] = rows
    out["compacted"] = {"trace_rows": len(trace), "kept": len(rows), "digits": 6}
    return out


def compact_folder(folder: str | Path, max_rows: int = MAX_ROWS) -> tuple[int, int, int]:
    """Rewrite every run record under ``folder`` compactly (files that are not records are
    left alone); returns ``(records, bytes before, bytes after)``."""
    count = before = after = 0
    root = Path(folder)
    for path, record, _reason in iter_records(root):
        if record is None or record.get("compacted"):
            continue
        size = path.stat().st_size
        text = json.dumps(compact_record(record, max_rows), separators=(",", ":"),
                          allow_nan=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        count, before, after = count + 1, before + size, after + len(text.encode())
    return count, before, after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bilevel_bench.leaderboard.compact",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS)
    args = parser.parse_args(argv)
    count, before, after = compact_folder(args.folder, args.max_rows)
    print(f"compacted {count} records under {args.folder}: {before / 2**20:.1f} MiB -> "
          f"{after / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
