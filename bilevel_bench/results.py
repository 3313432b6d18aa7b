"""Run records: one self-describing, schema-versioned JSON file per run.

A record holds everything needed to interpret a run without the code that produced it:

    schema, schema_version, run_id, created
    problem   name, family, version, params, primary_metric, higher_is_better, target,
              ladder [rung targets, the last is the final target], ll_gate {metric, rtol,
              atol, description}, citation, formulation, dataset_fingerprints, x_dim, y_dim,
              n_constraints
    start_metrics  the evaluation at the seeded initial point (x0, y0)
    solver    name, version, citation, spec, hyperparameters, needs, handles, source_sha256
    ruleset, seed, device {type, name, threads}, hardware {cpu, cores, memory_gb, gpu, class}
    versions  python, torch, numpy, bilevel_bench, platform;  git_revision
    budget    seconds, oracle_cost, iterations, timeout
    status    converged | budget | diverged | error | timeout | oom
    error     {type, message, traceback} or null
    trace     [{iteration, time (solver CPU s), wall_time, oracle_cost, samples, gate (passes
              the LL gate), counts {...}, metrics {...}}]
    summary   converged, time_to_target, oracles_to_target, iterations_to_target (the final
              rung's first gated hit), rungs, rungs_reached, ladder_hits [per rung: {target,
              iteration, oracle_cost, time, wall_time} or null], iterations, solver_time,
              solver_wall_time, oracle_cost, wall_time, evaluation_time, final {metric: value},
              start {metric: value}

Schema 1 records (no ladder, no gate) are migrated when read: their ladder is the final target
alone and every checkpoint counts (:func:`migrate_record`).

Files are written atomically (temporary file + rename) and named
``<problem>__<solver>__seed<k>__<run_id>.json``, so records from many machines merge by
copying files, and a matrix that is run again skips the run ids already present (resume).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bilevel_bench.errors import ResultsError
from bilevel_bench.paths import SITE_MARKER, output_folder

SCHEMA = "bilevel-bench/run-record"
SCHEMA_VERSION = 2
#: older schema versions this bilevel_bench reads, migrated by :func:`migrate_record`
MIGRATABLE = (1,)
STATUSES = ("converged", "budget", "diverged", "error", "timeout", "oom")
REQUIRED = {
    "problem": dict, "solver": dict, "seed": int, "status": str, "trace": list, "summary": dict,
    "run_id": str, "device": dict, "hardware": dict, "versions": dict,
}


def record_filename(record: dict[str, Any]) -> str:
    """The file name of a record: readable prefix plus the run id."""
    problem = _safe(record["problem"]["name"])
    solver = _safe(record["solver"]["name"])
    return f"{problem}__{solver}__seed{record['seed']}__{record['run_id']}.json"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))[:60] or "_"


def ensure_writable(directory: str | Path) -> Path:
    """Create ``directory`` if needed and prove it is writable, before any run starts."""
    return output_folder(directory, "results directory", "--results")


def write_record(directory: str | Path, record: dict[str, Any]) -> Path:
    """Write one record atomically; returns its path."""
    path = Path(directory) / record_filename(record)
    text = json.dumps(record, indent=1, sort_keys=True, allow_nan=True, default=_jsonable)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ResultsError(f"cannot write run record {str(path)!r}: {exc}") from exc
    return path


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)


def validate_record(record: Any) -> list[str]:
    """Why a parsed JSON object is not a usable run record (empty list: it is)."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    if record.get("schema") != SCHEMA:
        return [f"not a bilevel-bench run record (schema {record.get('schema')!r})"]
    version = record.get("schema_version")
    if version != SCHEMA_VERSION and version not in MIGRATABLE:
        return [f"unsupported schema_version {version!r} (this bilevel_bench reads "
                f"{', '.join(map(str, (*MIGRATABLE, SCHEMA_VERSION)))}); upgrade bilevel-bench "
                "or convert the record"]
    problems = [f"field {key!r} missing or not a {kind.__name__}"
                for key, kind in REQUIRED.items() if not isinstance(record.get(key), kind)]
    if problems:
        return problems
    if record["status"] not in STATUSES:
        problems.append(f"unknown status {record['status']!r}")
    for key in ("name", "version", "primary_metric"):
        if not isinstance(record["problem"].get(key), str):
            problems.append(f"problem.{key} missing")
    for key in ("name", "version"):
        if not isinstance(record["solver"].get(key), str):
            problems.append(f"solver.{key} missing")
    for i, row in enumerate(record["trace"]):
        if not isinstance(row, dict) or not isinstance(row.get("metrics"), dict):
            problems.append(f"trace row {i} is malformed")
            break
    return problems


def ladder_hits(trace: list[dict], metric: str, ladder: list[float],
                higher_is_better: bool) -> list[dict | None]:
    """Per rung, the first checkpoint that meets it and passes the LL gate (its iteration,
    oracle cost, solver time and wall time), or ``None``."""
    hits: list[dict | None] = [None] * len(ladder)
    for row in trace:
        if not row.get("gate", True):
            continue
        value = row["metrics"].get(metric, math.nan)
        if not isinstance(value, int | float):
            continue
        for k, rung in enumerate(ladder):
            if hits[k] is None and _meets(float(value), rung, higher_is_better):
                hits[k] = {"target": rung, "iteration": row.get("iteration"),
                           "oracle_cost": row.get("oracle_cost"), "time": row.get("time"),
                           "wall_time": row.get("wall_time")}
    return hits


def _meets(value: float, target: float, higher_is_better: bool) -> bool:
    if not math.isfinite(value):
        return False
    return value >= target if higher_is_better else value <= target


def migrate_record(record: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 record in the current schema: its ladder is the final target alone, every
    checkpoint counts (schema 1 had no LL gate), times were wall-clock seconds."""
    if record.get("schema_version") == SCHEMA_VERSION:
        return record
    problem = dict(record["problem"])
    target = problem.get("target")
    problem.setdefault("ladder", [] if target is None else [target])
    problem.setdefault("ll_gate", {"metric": None, "rtol": 0.0, "atol": 0.0,
                                   "description": "none (schema 1 record)"})
    summary = dict(record["summary"])
    hits = ladder_hits(record["trace"], problem["primary_metric"], problem["ladder"],
                       bool(problem.get("higher_is_better", False)))
    summary.update(rungs=len(hits), rungs_reached=sum(h is not None for h in hits),
                   ladder_hits=hits)
    return {**record, "problem": problem, "summary": summary, "schema_version": SCHEMA_VERSION,
            "migrated_from": record.get("schema_version")}


#: largest record file read (a long trace is a few MiB)
MAX_RECORD_BYTES = 64 * 2**20
#: deepest nesting of JSON containers in a record (a real one is 5 deep)
MAX_DEPTH = 32
#: where resume puts record files it refuses (kept, with the reason beside), inside the folder
REJECTED = ".rejected"


def json_depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether containers nest deeper than ``limit`` (level by level: no recursion on input;
    only containers are kept from one level to the next)."""
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper = []
        for item in level:
            if type(item) is dict:
                deeper += [c for c in item.values() if type(c) is dict or type(c) is list]
            elif type(item) is list:
                deeper += [c for c in item if type(c) is dict or type(c) is list]
        level = deeper
    return False


def read_record(path: str | Path, root: str | Path | None = None) -> tuple[dict | None, str]:
    """``(record, "")`` for a valid record file, else ``(None, reason)``. Refuses a symlink
    that leads outside ``root``, a file over :data:`MAX_RECORD_BYTES`, JSON nested deeper than
    :data:`MAX_DEPTH`, and anything :func:`validate_record` rejects. Never raises."""
    blob, reason = read_record_bytes(path, root)
    return parse_record(blob) if blob is not None else (None, reason)


def read_record_bytes(path: str | Path, root: str | Path | None = None
                      ) -> tuple[bytes | None, str]:
    """The bytes of a record file, or ``(None, reason)`` for a symlink that leads outside
    ``root``, something that is not a regular file, or a file over :data:`MAX_RECORD_BYTES`.
    Type and size are checked on the opened file (it cannot be swapped after the check)."""
    try:
        if root is not None and stat.S_ISLNK(os.lstat(path).st_mode):
            target, base = Path(path).resolve(), Path(root).resolve()
            if not target.is_relative_to(base):
                return None, "symbolic link to a file outside the results folder (not followed)"
        # non-blocking: opening a FIFO must not wait for a writer (it is refused below)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None, "not a regular file"
            if info.st_size > MAX_RECORD_BYTES:
                return None, (f"file of {info.st_size} bytes, over the {MAX_RECORD_BYTES} "
                              "bytes of a record")
            chunks, size = [], 0  # to the end (it may have grown since fstat), at most MAX + 1
            while size <= MAX_RECORD_BYTES:
                chunk = os.read(fd, max(info.st_size + 1 - size, 1 << 16))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            blob = b"".join(chunks)
        finally:
            os.close(fd)
    except OSError as exc:
        return None, f"unreadable JSON: {exc}"
    if len(blob) > MAX_RECORD_BYTES:
        return None, f"file of {len(blob)}+ bytes, over the {MAX_RECORD_BYTES} bytes of a record"
    return blob, ""


def parse_record(blob: bytes) -> tuple[dict | None, str]:
    """``(record, "")`` for the bytes of a valid record (:func:`read_record`), else
    ``(None, reason)``. Never raises."""
    try:
        record = json.loads(blob.decode("utf-8"))
    except RecursionError:
        return None, f"unreadable JSON: nested deeper than {MAX_DEPTH} levels"
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"unreadable JSON: {exc}"
    if json_depth_exceeds(record):
        return None, f"unreadable JSON: nested deeper than {MAX_DEPTH} levels"
    problems = validate_record(record)
    if problems:
        return None, "; ".join(problems)
    try:
        return migrate_record(record), ""
    except Exception as exc:  # noqa: BLE001 - a malformed record is skipped, never a crash
        return None, f"malformed record: {type(exc).__name__}: {exc}"


#: JSON files of a submission bundle (bilevel_bench.submission) that are not run records
NOT_RECORDS = frozenset({"manifest.json", "verification.json"})


def record_files(root: Path) -> Iterator[str]:
    """``*.json`` files under ``root``, as paths relative to it, in sorted order: no hidden
    folders, no leaderboard sites (folders holding ``SITE_MARKER``), symlinked folders not
    entered, a bundle's ``manifest.json`` and ``verification.json`` left out."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not os.path.exists(os.path.join(folder, d, SITE_MARKER)))
        inside = os.path.relpath(folder, root)
        for name in sorted(files):
            if name.endswith(".json") and not name.startswith(".tmp-") \
                    and name not in NOT_RECORDS:
                yield name if inside == "." else os.path.join(inside, name)


def iter_records(*directories: str | Path) -> Iterator[tuple[Path, dict | None, str]]:
    """Yield ``(path, record, "")`` for each valid record under the directories (recursively)
    and ``(path, None, reason)`` for each corrupt, foreign, oversized, too deeply nested
    ``.json`` file or symlink out of its directory (:func:`read_record`)."""
    for directory in directories:
        root = Path(directory)
        if not root.exists():
            raise ResultsError(f"results directory {str(root)!r} does not exist")
        for relative in record_files(root):
            path = root / relative
            record, reason = read_record(path, root)
            yield path, record, reason


def _run_id_of(path: Path) -> str:
    return path.stem.rpartition("__")[2]


def recorded_run_ids(directory: str | Path, set_aside: bool = True) -> set[str]:
    """Run ids recorded in ``directory`` (for resume), each file re-read and validated: a
    truncated or invalid record, or one whose run id is not its file's, does not count and is
    moved to ``.rejected/`` with the reason in a ``.reason`` file beside it (``set_aside``)."""
    root = Path(directory)
    if not root.exists():
        return set()
    done = set()
    for path in sorted(root.glob("*__*.json")):
        run_id = _run_id_of(path)
        record, reason = read_record(path, root)
        if record is not None and record.get("run_id") != run_id:
            record, reason = None, f"its run id {record.get('run_id')!r} is not its file's"
        if record is not None:
            done.add(run_id)
        elif set_aside:
            set_aside_record(path, reason)
    return done


def set_aside_record(path: Path, reason: str) -> Path | None:
    """Move a refused record file to ``<folder>/.rejected/`` and write why beside it."""
    aside = path.parent / REJECTED
    try:
        aside.mkdir(exist_ok=True)
        target = aside / path.name
        os.replace(path, target)
        (aside / (path.name + ".reason")).write_text(reason + "\n", encoding="utf-8")
    except OSError:
        return None
    return target


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """One flat row describing a run (used by the DataFrame loader and the leaderboard)."""
    problem, solver, summary = record["problem"], record["solver"], record["summary"]
    row = {
        "run_id": record["run_id"],
        "problem": problem["name"],
        "family": problem.get("family", problem["name"]),
        "problem_version": problem["version"],
        "primary_metric": problem["primary_metric"],
        "target": problem.get("target"),
        "solver": solver["name"],
        "solver_version": solver["version"],
        "ruleset": record.get("ruleset", "default"),
        "seed": record["seed"],
        "device": record["device"].get("type"),
        "hardware_class": record["hardware"].get("class"),
        "status": record["status"],
        "converged": bool(summary.get("converged", False)),
        "target_ladder": list(problem.get("ladder") or []),
        "rungs": summary.get("rungs"),
        "rungs_reached": summary.get("rungs_reached"),
        "ladder_hits": list(summary.get("ladder_hits") or []),
        "budget_seconds": (record.get("budget") or {}).get("seconds"),
        "budget_oracles": (record.get("budget") or {}).get("oracle_cost"),
        "budget_iterations": (record.get("budget") or {}).get("iterations"),
        "time_to_target": summary.get("time_to_target"),
        "oracles_to_target": summary.get("oracles_to_target"),
        "iterations_to_target": summary.get("iterations_to_target"),
        "iterations": summary.get("iterations"),
        "solver_time": summary.get("solver_time"),
        "oracle_cost": summary.get("oracle_cost"),
        "wall_time": summary.get("wall_time"),
        "evaluation_time": summary.get("evaluation_time"),
    }
    for key, value in (summary.get("final") or {}).items():
        row[f"final_{key}"] = value
    return row


def load_results(*directories: str | Path, warn: bool = True):
    """All valid run records under the directories as a ``pandas.DataFrame``, one row per run.

    Corrupt or foreign files are skipped with a warning; they are listed, with the reason, in
    ``df.attrs["skipped"]`` as ``(path, reason)`` pairs.
    """
    import pandas as pd

    rows, skipped = [], []
    for path, record, reason in iter_records(*directories):
        if record is None:
            skipped.append((str(path), reason))
            continue
        rows.append({**summary_row(record), "path": str(path)})
    frame = pd.DataFrame(rows)
    frame.attrs["skipped"] = skipped
    if skipped and warn:
        warnings.warn(
            f"skipped {len(skipped)} file(s) that are not valid run records, e.g. "
            f"{skipped[0][0]}: {skipped[0][1]}", stacklevel=2)
    return frame


def load_traces(*directories: str | Path):
    """Every checkpoint of every valid record as a long ``pandas.DataFrame``."""
    import pandas as pd

    rows = []
    for _path, record, _reason in iter_records(*directories):
        if record is None:
            continue
        base = {
            "run_id": record["run_id"], "problem": record["problem"]["name"],
            "problem_version": record["problem"]["version"], "solver": record["solver"]["name"],
            "seed": record["seed"], "ruleset": record.get("ruleset", "default"),
            "hardware_class": record["hardware"].get("class"),
        }
        for point in record["trace"]:
            rows.append({**base, "iteration": point.get("iteration"), "time": point.get("time"),
                         "oracle_cost": point.get("oracle_cost"), **point["metrics"]})
    return pd.DataFrame(rows)
