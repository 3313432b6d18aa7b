"""Verified submissions: ``bilevel-bench submit`` packs results, ``bilevel-bench verify``
re-executes them.

A **bundle** (a folder, or the same folder as a ``.tar.gz``)::

    manifest.json       format, bilevel_bench version, sha256 of every other file, one entry
                        per record (file, run id, problem, solver, spec, seed, status)
    records/*.json      the run records, as written by ``bilevel-bench run``
    source/*.py         the solver plugin file(s) the records name (path plugins)
    wheels/*.whl        the wheel of a solver package that is not bilevel-bench itself

``verify`` checks the manifest (every file present, sha256 equal, nothing unlisted), then
re-executes the records (all, or ``--sample K`` drawn with ``--seed S``) from the bundled source
in the bubblewrap sandbox of :mod:`bilevel_bench.sandbox` (the solver half only ever runs there;
the evaluation runs outside it, on official problems of this installation), and compares:

* exactly: status (but ``timeout``/``oom``, which are machine-dependent), the iterations of the
  trace, each checkpoint's oracle cost, sample count, per-oracle counts and LL-gate flag, the
  summary's iterations, oracle cost, convergence, rungs reached and each ladder hit's iteration
  and oracle cost, the problem's version, target, ladder and primary metric, the solver's name,
  version, hyperparameters and source sha256;
* to :data:`RTOL` relative (float64 on CPU): every metric of every checkpoint, the start and
  final metrics;
* within a band of :data:`TIME_BAND` x (reported, never failed: times depend on the machine):
  solver time, time to target.

A run stopped by its solver-time budget is replayed with an iteration budget equal to the
iterations it recorded (so that a slower or faster verifier stops at the same checkpoint).

Each record gets a verdict: ``verified``, ``failed`` (one line per mismatch: a forged or
tampered record) or ``self-reported`` (not sampled, or not re-executable here: an unofficial
instance, a GPU run). ``verification.json`` (:data:`VERIFICATION`) lists them by run id with
the record file's sha256; the site shows a result as verified only when its record file's
sha256 is the one verified.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from bilevel_bench.errors import BenchError
from bilevel_bench.results import iter_records, record_filename

FORMAT = "bilevel-bench/submission"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VERIFICATION = "verification.json"
VERIFICATION_FORMAT = "bilevel-bench/verification"
#: relative tolerance of metric values (float64 on CPU; abs. tolerance :data:`ATOL`)
RTOL = 1e-9
ATOL = 1e-12
#: solver times of a replay within this factor of the recorded ones are "within the band"
TIME_BAND = 3.0
#: statuses a replay cannot be expected to reproduce (they depend on the machine)
MACHINE_STATUSES = ("timeout", "oom")
MAX_MANIFEST_BYTES = 16 * 2**20


class SubmissionError(BenchError):
    """A submission that cannot be packed or a bundle that cannot be read."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_identity(path: Path) -> tuple[str, str]:
    """(normalised distribution name, version) from a wheel's file name."""
    parts = path.name.removesuffix(".whl").split("-")
    if len(parts) < 5 or not path.name.endswith(".whl"):
        raise SubmissionError(f"{path.name!r} is not a wheel file name (name-version-...-.whl)")
    return _normal(parts[0]), parts[1]


# --------------------------------------------------------------------------------- submit
def submit(results: list[str | Path], output: str | Path, sources: list[str | Path] = (),
           wheels: list[str | Path] = ()) -> dict[str, Any]:
    """Pack the valid records under ``results`` with the solver source they name into a bundle
    at ``output`` (a folder, or a ``.tar.gz``/``.tgz`` file); returns the manifest. Every path
    plugin a record names must be among ``sources`` (same file name and sha256), every solver
    package other than bilevel-bench among ``wheels`` (same name and version)."""
    output = Path(output)
    records, skipped = [], []
    for path, record, reason in iter_records(*results):
        if record is None:
            skipped.append(f"{path}: {reason}")
        else:
            records.append((path, record))
    if not records:
        raise SubmissionError(f"no valid run record under {', '.join(map(str, results))}"
                              + (f" (skipped: {skipped[0]})" if skipped else ""))
    by_name: dict[str, list[tuple[Path, str]]] = {}
    for source in map(Path, sources):
        if not source.is_file():
            raise SubmissionError(f"--source {str(source)!r} is not a file")
        by_name.setdefault(source.name, []).append((source, sha256_file(source)))
    wheel_ids = {}
    for wheel in map(Path, wheels):
        if not wheel.is_file():
            raise SubmissionError(f"--wheel {str(wheel)!r} is not a file")
        wheel_ids[wheel_identity(wheel)] = wheel
    needed_sources: dict[str, Path] = {}
    needed_wheels: dict[str, Path] = {}
    missing: list[str] = []
    for _path, record in records:
        source = record["solver"].get("source") or {}
        name = record["solver"]["name"]
        if source.get("file"):
            match = [p for p, sha in by_name.get(source["file"], []) if sha == source.get("sha256")]
            if match:
                needed_sources[source["file"]] = match[0]
            else:
                missing.append(f"solver {name!r} ran from plugin file {source['file']!r} (sha256 "
                               f"{str(source.get('sha256'))[:12]}...): pass that file with "
                               "--source PATH")
        elif source.get("package") and _normal(source["package"]) != "bilevel-bench":
            key = (_normal(source["package"]), str(source.get("package_version")))
            if key in wheel_ids:
                needed_wheels[wheel_ids[key].name] = wheel_ids[key]
            else:
                missing.append(f"solver {name!r} comes from package {key[0]} {key[1]}: pass its "
                               "wheel with --wheel PATH (pip wheel --no-deps .)")
    if missing:
        raise SubmissionError("; ".join(sorted(set(missing))))
    # helper modules given with --source travel too (a plugin may import its siblings)
    for name, found in by_name.items():
        needed_sources.setdefault(name, found[0][0])
    archive = output.name.endswith((".tar.gz", ".tgz"))
    if output.exists() and (archive or any(output.iterdir())):
        raise SubmissionError(f"{str(output)!r} exists: choose a new bundle name")
    with tempfile.TemporaryDirectory(prefix="bilevel-bench-bundle-") as tmp:
        folder = Path(tmp) / "bundle" if archive else output
        for sub in ("records", "source", "wheels"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        entries = []
        for _path, record in records:
            name = record_filename(record)
            shutil.copyfile(_path, folder / "records" / name)
            entries.append({"file": f"records/{name}", "run_id": record["run_id"],
                            "problem": record["problem"]["name"],
                            "solver": record["solver"]["name"],
                            "spec": record["solver"].get("spec"), "seed": record["seed"],
                            "status": record["status"]})
        for name, path in needed_sources.items():
            shutil.copyfile(path, folder / "source" / name)
        for name, path in needed_wheels.items():
            shutil.copyfile(path, folder / "wheels" / name)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "bilevel_bench": _version(), "records": entries,
                    "sources": sorted(needed_sources), "wheels": sorted(needed_wheels),
                    "files": {str(p.relative_to(folder).as_posix()): sha256_file(p)
                              for p in sorted(folder.rglob("*")) if p.is_file()}}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if archive:
            output.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(output, "w:gz") as tar:
                for path in sorted(folder.rglob("*")):
                    tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    manifest["skipped"] = skipped
    return manifest


def _version() -> str:
    from bilevel_bench import __version__

    return __version__


# ------------------------------------------------------------------------------ verify
@dataclass
class Verdict:
    """The outcome for one record file of a bundle."""

    file: str
    run_id: str = ""
    label: str = ""
    verdict: str = "self-reported"  # verified | failed | self-reported
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sha256: str = ""

    def fail(self, message: str) -> None:
        self.verdict = "failed"
        self.failures.append(message)


@dataclass
class Verification:
    """Everything ``verify`` found: the bundle-level failures and a verdict per record."""

    bundle: str
    failures: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    band: float = TIME_BAND
    tampered: set[str] = field(default_factory=set)  # files whose sha256 is not the manifest's

    @property
    def ok(self) -> bool:
        return not self.failures and all(v.verdict != "failed" for v in self.verdicts)

    def lines(self) -> list[str]:
        out = []
        for v in self.verdicts:
            notes = f" ({'; '.join(v.notes)})" if v.notes else ""
            out.append(f"{v.verdict.upper():13s} {v.label or v.file}{notes}")
        counts = {k: sum(v.verdict == k for v in self.verdicts)
                  for k in ("verified", "failed", "self-reported")}
        out.append(f"{self.bundle}: {counts['verified']} verified, {counts['failed']} failed, "
                   f"{counts['self-reported']} self-reported; times compared within a "
                   f"{self.band:g}x band (reported, not failed)")
        return out

    def failure_lines(self) -> list[str]:
        out = [f"FAIL {message}" for message in self.failures]
        for v in self.verdicts:
            out.extend(f"FAIL {v.file}: {message}" for message in v.failures)
        return out

    def as_json(self, manifest_sha: str | None) -> dict[str, Any]:
        from bilevel_bench.provenance import versions

        return {"format": VERIFICATION_FORMAT, "format_version": 1,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "manifest_sha256": manifest_sha, "versions": versions(),
                "rtol": RTOL, "time_band": self.band, "ok": self.ok,
                "bundle_failures": self.failures,
                "records": {v.run_id or v.file: {"verdict": v.verdict, "file": v.file,
                                                 "sha256": v.sha256, "failures": v.failures,
                                                 "notes": v.notes}
                            for v in self.verdicts}}


def open_bundle(bundle: str | Path, workdir: Path) -> Path:
    """The bundle's folder: itself, or its archive extracted (regular files and folders only,
    nothing outside the target) into ``workdir``."""
    bundle = Path(bundle)
    if bundle.is_dir():
        return bundle
    if not bundle.is_file():
        raise SubmissionError(f"bundle {str(bundle)!r} does not exist")
    target = workdir / "bundle"
    target.mkdir()
    try:
        with tarfile.open(bundle, "r:*") as tar:
            members = []
            for member in tar.getmembers():
                name = PurePosixPath(member.name)
                if not (member.isfile() or member.isdir()) or name.is_absolute() \
                        or ".." in name.parts:
                    raise SubmissionError(f"bundle member {member.name!r} is not a plain file "
                                          "inside the bundle")
                members.append(member)
            check_unpacked_sizes(str(bundle), [(m.name, m.size) for m in members])
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise SubmissionError(f"cannot read bundle {str(bundle)!r}: {exc}") from exc
    return target


#: the most an archive (a bundle, a wheel in it) may unpack to, per member and in all: checked
#: from the archive's own listing before anything is written
MAX_MEMBER_BYTES = 256 * 2**20
MAX_UNPACKED_BYTES = 1024 * 2**20
MAX_MEMBERS = 100_000


def check_unpacked_sizes(archive: str, sizes: list[tuple[str, int]]) -> None:
    """Refuse an archive whose listing says it unpacks to too much (a member over
    :data:`MAX_MEMBER_BYTES`, over :data:`MAX_UNPACKED_BYTES` in all, or over
    :data:`MAX_MEMBERS` members), before anything is extracted."""
    if len(sizes) > MAX_MEMBERS:
        raise SubmissionError(f"{archive!r} has {len(sizes)} members, over {MAX_MEMBERS}: "
                              "submit fewer files")
    for name, size in sizes:
        if size > MAX_MEMBER_BYTES:
            raise SubmissionError(f"{archive!r}: member {name!r} unpacks to {size} bytes, over "
                                  f"{MAX_MEMBER_BYTES // 2**20} MiB: leave it out of the bundle")
    total = sum(size for _, size in sizes)
    if total > MAX_UNPACKED_BYTES:
        raise SubmissionError(f"{archive!r} unpacks to {total} bytes, over "
                              f"{MAX_UNPACKED_BYTES // 2**20} MiB: split the bundle")


def check_manifest(folder: Path, result: Verification) -> dict[str, Any]:
    """Read the manifest and compare every file's sha256; mismatches go to ``result``."""
    path = folder / MANIFEST
    try:
        if path.is_symlink() or path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError("a symbolic link or over 16 MiB")
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise SubmissionError(f"bundle {result.bundle!r} has no readable {MANIFEST}: "
                              f"{type(exc).__name__}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(
            manifest.get("files"), dict):
        raise SubmissionError(f"{MANIFEST} of {result.bundle!r} is not a {FORMAT} manifest")
    listed = manifest["files"]
    root = folder.resolve()
    for name, sha in sorted(listed.items()):
        parts = PurePosixPath(str(name)).parts
        file = folder / str(name)
        if not parts or ".." in parts or PurePosixPath(str(name)).is_absolute() \
                or file.is_symlink() or not file.resolve().is_relative_to(root):
            result.failures.append(f"manifest: {name!r} is not a file inside the bundle")
        elif not file.is_file():
            result.failures.append(f"manifest: {name} is missing from the bundle")
        elif sha256_file(file) != sha:
            result.tampered.add(str(name))
            result.failures.append(f"manifest: sha256 mismatch for {name} (tampered after "
                                   "packing?)")
    for file in sorted(folder.rglob("*")):
        rel = file.relative_to(folder).as_posix()
        if (file.is_file() or file.is_symlink()) and rel not in listed \
                and rel not in (MANIFEST, VERIFICATION):
            result.failures.append(f"manifest: {rel} is in the bundle but not in the manifest")
    return manifest


def _official_instances() -> set[str]:
    from bilevel_bench import registry

    return {name for name, entry in registry.problems().items()
            if entry.source.startswith("bilevel_bench.")}


def _unpack_wheels(folder: Path, target: Path, result: Verification) -> None:
    """Unzip the bundle's wheels into ``target`` (put on the sandbox's PYTHONPATH only); a
    wheel may not shadow a module this installation already has (torch, bilevel_bench...)."""
    import importlib.util

    for wheel in sorted((folder / "wheels").glob("*.whl")):
        try:
            with zipfile.ZipFile(wheel) as archive:
                names = archive.namelist()
                tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
                bad = [n for n in names if PurePosixPath(n).is_absolute() or ".." in
                       PurePosixPath(n).parts]
                shadow = sorted(t.removesuffix(".py") for t in tops
                                if not t.endswith((".dist-info", ".data"))
                                and importlib.util.find_spec(t.removesuffix(".py")) is not None)
                if bad or shadow:
                    result.failures.append(
                        f"wheel {wheel.name}: "
                        + (f"paths outside its folder {bad[:3]}" if bad else
                           f"shadows installed module(s) {shadow[:5]}"))
                    continue
                try:
                    check_unpacked_sizes(wheel.name, [(i.filename, i.file_size)
                                                      for i in archive.infolist()])
                except SubmissionError as exc:
                    result.failures.append(str(exc))
                    continue
                archive.extractall(target)
        except (zipfile.BadZipFile, OSError) as exc:
            result.failures.append(f"wheel {wheel.name}: unreadable ({exc})")


def replay_task(record: dict[str, Any], source_dir: Path) -> Any:
    """The task that re-executes ``record``: its own task, with the solver loaded from the
    bundle's source folder (path plugins) and, for a run stopped by solver time, an iteration
    budget equal to its recorded iterations instead of the seconds."""
    from bilevel_bench.runner import task_from_record

    task = task_from_record(record)
    spec = str(record["solver"].get("spec") or task.solver)
    source = record["solver"].get("source") or {}
    if source.get("file"):
        cls = spec.rpartition(":")[2]
        spec = f"{source_dir / os.path.basename(source['file'])}:{cls}"
    budget = task.resolved_budget()
    trace = record.get("trace") or []
    last = max(1, int(trace[-1]["iteration"]) if trace else 0)
    if record["status"] != "error":  # an error comes after its last checkpoint: no cap
        budget = replace(budget, iterations=last if budget.iterations is None
                         else min(budget.iterations, last))
    budget = replace(budget, seconds=None)
    wall = float((record.get("summary") or {}).get("wall_time") or 0.0)
    timeout = 60.0 + 10.0 * min(max(wall, 1.0), 3600.0)
    return replace(task, solver=spec, budget=budget, timeout=timeout)


def verify(bundle: str | Path, sample: int | None = None, seed: int = 0,
           band: float = TIME_BAND, output: str | Path | None = None, workers: int = 1,
           executor: Any = None) -> Verification:
    """Verify a bundle (see the module docstring); writes the verdicts to ``output`` (default:
    ``verification.json`` in a bundle folder, ``<name>.verification.json`` beside an archive).
    ``executor``: where the replays run (default: a sandboxed :class:`LocalPool`)."""
    from bilevel_bench.executors import LocalPool
    from bilevel_bench.results import read_record
    from bilevel_bench.sandbox import require_bwrap

    if executor is None:
        require_bwrap()  # verify never runs submitted code outside the sandbox
    bundle = Path(bundle)
    result = Verification(str(bundle), band=band)
    with tempfile.TemporaryDirectory(prefix="bilevel-bench-verify-") as tmp:
        work = Path(tmp)
        folder = open_bundle(bundle, work)
        manifest = check_manifest(folder, result)
        manifest_sha = sha256_file(folder / MANIFEST)
        official = _official_instances()
        replayable: list[tuple[Verdict, dict]] = []
        for path in sorted((folder / "records").glob("*.json")):
            rel = path.relative_to(folder).as_posix()
            verdict = Verdict(rel, sha256=sha256_file(path) if path.is_file() else "")
            result.verdicts.append(verdict)
            if rel in result.tampered:
                verdict.fail("its sha256 is not the manifest's (tampered after packing?)")
            record, reason = read_record(path, folder)
            if record is None:
                verdict.fail(f"not a valid run record: {reason}")
                continue
            verdict.run_id = str(record["run_id"])
            verdict.label = (f"{record['problem']['name']} / {record['solver']['name']} / "
                             f"seed {record['seed']} [{record['status']}]")
            if record["problem"]["name"] not in official:
                verdict.notes.append("not an official instance of this installation: not "
                                     "re-executed")
            elif str(record["device"].get("type", "cpu")) != "cpu":
                verdict.notes.append("a GPU run: only CPU runs are re-executed")
            else:
                replayable.append((verdict, record))
        if sample is not None and sample < len(replayable):
            chosen = random.Random(seed).sample(range(len(replayable)), sample)
            for i, (verdict, _) in enumerate(replayable):
                if i not in chosen:
                    verdict.notes.append(f"not in the sample of {sample} (seed {seed})")
            replayable = [replayable[i] for i in sorted(chosen)]
        site = work / "site-packages"
        site.mkdir()
        _unpack_wheels(folder, site, result)
        source_dir = (folder / "source").resolve()
        tasks, pending = [], {}
        for verdict, record in replayable:
            try:
                task = replay_task(record, source_dir)
            except Exception as exc:  # noqa: BLE001 - a malformed task is a failed record
                verdict.fail(f"cannot rebuild its task: {type(exc).__name__}: {exc}")
                continue
            if task.run_id() in pending:
                verdict.fail(f"the same run as {pending[task.run_id()][0].file}")
                continue
            tasks.append(task)
            pending[task.run_id()] = (verdict, record)
        if tasks:
            runner = executor or LocalPool(workers=workers, sandbox=True,
                                           python_path=[str(source_dir), str(site)])
            replays: dict[str, dict] = {}
            runner.map(tasks, lambda rec: replays.__setitem__(rec["run_id"], rec))
            for run_id, (verdict, record) in pending.items():
                replay = replays.get(run_id)
                if replay is None:
                    verdict.fail("the replay produced no record")
                    continue
                try:
                    compare(record, replay, verdict, band)
                except Exception as exc:  # noqa: BLE001 - a malformed record fails, never crashes
                    verdict.fail(f"malformed record: {type(exc).__name__}: {exc}")
                if verdict.verdict != "failed":
                    verdict.verdict = "verified"
        _check_manifest_entries(manifest, result)
    target = Path(output) if output is not None else (
        bundle / VERIFICATION if bundle.is_dir()
        else bundle.with_name(re.sub(r"\.(tar\.gz|tgz)$", "", bundle.name) + "."
                              + VERIFICATION))
    target.write_text(json.dumps(result.as_json(manifest_sha), indent=1, sort_keys=True) + "\n")
    return result


def _check_manifest_entries(manifest: dict, result: Verification) -> None:
    """The manifest's per-record entries agree with the records (run id, status)."""
    entries = {str(e.get("file")): e for e in manifest.get("records", []) if isinstance(e, dict)}
    for verdict in result.verdicts:
        entry = entries.get(verdict.file)
        if entry is None:
            verdict.fail("not listed in the manifest's records")
        elif verdict.run_id and str(entry.get("run_id")) != verdict.run_id:
            verdict.fail(f"the manifest lists run id {entry.get('run_id')!r}, the record "
                         f"{verdict.run_id!r}")


# ------------------------------------------------------------------------------ compare
def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) \
            or not isinstance(b, int | float):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL)


def _metrics(label: str, got: Any, want: Any, verdict: Verdict) -> None:
    got, want = dict(got or {}), dict(want or {})
    if set(got) != set(want):
        verdict.fail(f"{label}: metrics {sorted(got)}, re-executed {sorted(want)}")
        return
    for key in sorted(want):
        if not _close(got[key], want[key]):
            verdict.fail(f"{label}: {key} = {got[key]!r}, re-executed {want[key]!r} "
                         f"(rtol {RTOL:g})")


def _exact(label: str, got: Any, want: Any, verdict: Verdict) -> None:
    if not _close(got, want) if isinstance(want, float) else got != want:
        verdict.fail(f"{label} = {got!r}, re-executed {want!r}")


def _band(label: str, got: Any, want: Any, band: float, verdict: Verdict) -> None:
    try:
        got, want = float(got), float(want)
    except (TypeError, ValueError):
        return
    if got <= 0 or want <= 0:
        return
    ratio = want / got
    if not 1 / band <= ratio <= band:
        verdict.notes.append(f"{label} {got:.3g} s recorded, {want:.3g} s re-executed "
                             f"(x{ratio:.2f}: outside the {band:g}x band)")


def compare(record: dict[str, Any], replay: dict[str, Any], verdict: Verdict,
            band: float = TIME_BAND) -> None:
    """Compare a submitted record with its re-execution; mismatches fail ``verdict``."""
    if replay.get("status") == "error" and not replay.get("trace"):
        error = replay.get("error") or {}
        verdict.fail(f"re-execution failed before its first checkpoint: {error.get('type')}: "
                     f"{str(error.get('message'))[:300]}")
        return
    machine = record["status"] in MACHINE_STATUSES
    if machine:
        verdict.notes.append(f"status {record['status']} depends on the machine: not compared")
    else:
        _exact("status", record["status"], replay["status"], verdict)
        if record["status"] == "error":
            _exact("error type", (record.get("error") or {}).get("type"),
                   (replay.get("error") or {}).get("type"), verdict)
    problem, official = record["problem"], replay["problem"]
    for key in ("version", "primary_metric", "target", "ladder", "higher_is_better"):
        _exact(f"problem.{key}", problem.get(key), official.get(key), verdict)
    budget = record.get("budget") or {}
    task_budget = (record.get("task") or {}).get("budget") or budget
    for key in ("seconds", "oracle_cost", "iterations"):
        _exact(f"budget.{key} (against the record's task)", budget.get(key),
               task_budget.get(key), verdict)
    limit = budget.get("iterations")
    if isinstance(limit, int) and (record["summary"].get("iterations") or 0) > limit:
        verdict.fail(f"summary.iterations {record['summary'].get('iterations')} exceeds the "
                     f"recorded iteration budget {limit}")
    solver, rerun = record["solver"], replay["solver"]
    for key in ("name", "version", "hyperparameters"):
        _exact(f"solver.{key}", solver.get(key), rerun.get(key), verdict)
    _exact("solver source sha256", solver.get("source_sha256"), rerun.get("source_sha256"),
           verdict)
    _metrics("start metrics", record.get("start_metrics"), replay.get("start_metrics"), verdict)
    trace, again = record["trace"], replay["trace"]
    iterations = [row.get("iteration") for row in trace]
    if iterations != [row.get("iteration") for row in again]:
        verdict.fail(f"trace iterations {_short(iterations)}, re-executed "
                     f"{_short([row.get('iteration') for row in again])}")
    for row, other in zip(trace, again, strict=False):
        at = f"checkpoint at iteration {other.get('iteration')}"
        for key in ("oracle_cost", "samples", "gate", "counts"):
            _exact(f"{at}: {key}", row.get(key), other.get(key), verdict)
        _metrics(at, row.get("metrics"), other.get("metrics"), verdict)
    summary, summary_again = record["summary"], replay["summary"]
    for key in ("converged", "iterations", "oracle_cost", "iterations_to_target",
                "oracles_to_target", "rungs", "rungs_reached"):
        if machine and key in ("converged", "iterations", "oracle_cost"):
            continue
        _exact(f"summary.{key}", summary.get(key), summary_again.get(key), verdict)
    hits, hits_again = summary.get("ladder_hits") or [], summary_again.get("ladder_hits") or []
    if len(hits) != len(hits_again):
        verdict.fail(f"summary.ladder_hits has {len(hits)} rungs, re-executed {len(hits_again)}")
    for k, (hit, other) in enumerate(zip(hits, hits_again, strict=False)):
        _exact(f"summary.ladder_hits[{k}]", _hit(hit), _hit(other), verdict)
    _metrics("summary.final", summary.get("final"), summary_again.get("final"), verdict)
    _band("solver time", summary.get("solver_time"), summary_again.get("solver_time"), band,
          verdict)
    _band("time to target", summary.get("time_to_target"), summary_again.get("time_to_target"),
          band, verdict)


def _hit(hit: Any) -> Any:
    """The deterministic part of a ladder hit (its time is the machine's)."""
    if not isinstance(hit, dict):
        return hit
    return {key: hit.get(key) for key in ("target", "iteration", "oracle_cost")}


def _short(values: list) -> str:
    return str(values) if len(values) <= 8 else f"[{', '.join(map(str, values[:6]))}, ... " \
                                                 f"{values[-1]}] ({len(values)} checkpoints)"
