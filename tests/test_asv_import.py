"""asv result files -> DataFrame -> leaderboard: a real asv run of suites/ on this environment
(a small matrix), hand-written result files for the format's corners, and the leaderboard's
problem pages showing asv figures beside the records' own."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bilevel_bench.asv_import import latest_figures, load_asv_results
from bilevel_bench.errors import ResultsError
from bilevel_bench.leaderboard.build import build_site, problem_href
from bilevel_bench.problem import Budget
from bilevel_bench.results import ensure_writable, write_record
from bilevel_bench.runner import RunTask, execute

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
           "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number", "stats_repeat",
           "samples", "profile"]
SOLVE = "solve.SolveToTarget.time_solve"


def write_asv(results: Path, machine: str, commit: str, rows: dict[str, list],
              version: int = 2, date: int = 1_700_000_000_000,
              benchmarks: dict[str, dict] | None = None) -> Path:
    """An asv result file (and benchmarks.json) in asv's own layout and format."""
    (results / machine).mkdir(parents=True, exist_ok=True)
    if benchmarks is not None:
        (results / "benchmarks.json").write_text(json.dumps({**benchmarks, "version": 2}))
    data = {"commit_hash": commit, "env_name": "existing-py_python", "date": date,
            "params": {"machine": machine, "python": "3.11"}, "python": "3.11",
            "requirements": {}, "env_vars": {}, "result_columns": COLUMNS,
            "results": rows, "durations": {}, "version": version}
    path = results / machine / f"{commit[:8]}-existing-py_python.json"
    path.write_text(json.dumps(data))
    return path


def described(name: str, kind: str, unit: str) -> dict[str, Any]:
    return {name: {"name": name, "type": kind, "unit": unit,
                   "param_names": ["problem", "solver"]}}


@pytest.fixture(scope="module")
def asv_results(tmp_path_factory) -> Path:
    """``asv run`` of suites/ (two solvers, tiny budgets, one sample each) on this Python, then
    ``asv publish``; config, machine file and results in a temporary folder."""
    tmp = tmp_path_factory.mktemp("asv")
    conf = json.loads("\n".join(line for line in (ROOT / "asv.conf.json").read_text()
                                .splitlines() if not line.lstrip().startswith("//")))
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "suites"), results_dir=str(tmp / "r"),
                html_dir=str(tmp / "html"), env_dir=str(tmp / "env"))
    (tmp / "asv.conf.json").write_text(json.dumps(conf))
    env = {**os.environ, "HOME": str(tmp), "BILEVEL_BENCH_ASV_SOLVERS": "v-pbgd,random-search",
           "BILEVEL_BENCH_ASV_SECONDS": "0.2"}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    asv = [sys.executable, "-m", "asv"]
    for args in (["machine", "--yes", "--machine", "test"],
                 ["run", "-E", "existing:same", "--machine", "test", "--set-commit-hash", head,
                  "-a", "repeat=1", "-a", "rounds=1", "-a", "warmup_time=0"],
                 ["publish"]):
        done = subprocess.run([*asv, *args, "--config", str(tmp / "asv.conf.json")], cwd=tmp,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert (tmp / "html" / "index.html").is_file()
    return tmp / "r"


@pytest.mark.slow
def test_a_real_asv_run_imports(asv_results):
    frame = load_asv_results(asv_results)
    assert set(frame["benchmark"]) == {
        SOLVE, "solve.SolveToTarget.peakmem_solve", "solve.SolveFigures.track_final_gap",
        "solve.SolveFigures.track_oracles_to_target"}
    assert set(frame["solver"]) == {"v-pbgd", "random-search"}
    assert "vpbgd-toy" in set(frame["problem"]) and set(frame["machine"]) == {"test"}
    units = dict(zip(frame["benchmark"], frame["unit"], strict=False))
    assert units[SOLVE] == "seconds" and units["solve.SolveToTarget.peakmem_solve"] == "bytes"
    assert units["solve.SolveFigures.track_oracles_to_target"] == "oracle calls"
    # skipped by capability (v-pbgd does not handle coupled constraints): NaN, not a failure
    coupled = frame[(frame["problem"] == "blocc-toy1") & (frame["solver"] == "v-pbgd")]
    assert len(coupled) == 4 and coupled["value"].isna().all()
    # every figure present is positive (asv plots them on a log scale) and lower is better
    assert (frame["value"].dropna() > 0).all()
    gaps = frame[frame["benchmark"] == "solve.SolveFigures.track_final_gap"]["value"]
    assert gaps.notna().sum() >= 5


def test_parameterised_and_plain_results(tmp_path):
    rows = {SOLVE: [[0.5, None, float("nan"), 2.0],
                    [["'p1'", "'p2'"], ["'s1'", "'s2'"]], "v1", 1, 2.0],
            "other.time_plain": [1.25, [], "v2"],
            "solve.SolveFigures.track_final_gap": [[0.1, 0.2], [["'p1'"], ["'s1'", "'s2'"]]]}
    write_asv(tmp_path, "box", "a" * 40, rows, benchmarks={
        **described(SOLVE, "time", "seconds"),
        **described("solve.SolveFigures.track_final_gap", "track", "ul_gap")})
    frame = load_asv_results(tmp_path)
    solve = frame[frame["benchmark"] == SOLVE]
    assert list(zip(solve["problem"], solve["solver"], strict=True)) == [
        ("p1", "s1"), ("p1", "s2"), ("p2", "s1"), ("p2", "s2")]  # itertools.product order
    assert solve["value"].iloc[0] == 0.5 and solve["value"].iloc[1:3].isna().all()
    plain = frame[frame["benchmark"] == "other.time_plain"].iloc[0]
    assert plain["value"] == 1.25 and plain["params"] == {} and plain["unit"] == "seconds"
    assert pd.isna(plain["problem"]) and plain["machine"] == "box"
    assert set(frame["commit"]) == {"a" * 40} and frame["date"].notna().all()
    # one file read alone gives the same rows
    assert len(load_asv_results(next((tmp_path / "box").glob("aaaa*.json")))) == len(frame)


def test_latest_figures_keeps_the_newest_commit_per_machine(tmp_path):
    for commit, date, value in (("old" * 4, 1, 9.0), ("new" * 4, 2, 1.0)):
        write_asv(tmp_path, "box", commit, {SOLVE: [[value], [["'p'"], ["'s'"]]]}, date=date,
                  benchmarks=described(SOLVE, "time", "seconds"))
    write_asv(tmp_path, "other", "old" * 4, {SOLVE: [[5.0], [["'p'"], ["'s'"]]]}, date=1)
    table = latest_figures(load_asv_results(tmp_path)).set_index("machine")
    assert table.loc["box", "time_solve"] == 1.0 and table.loc["box", "commit"] == "new" * 4
    assert table.loc["other", "time_solve"] == 5.0


@pytest.mark.parametrize("version, hint", [(1, "asv update"), (3, "newer asv")])
def test_unknown_format_versions_are_refused_clearly(tmp_path, version, hint):
    write_asv(tmp_path, "box", "c" * 40, {}, version=version)
    with pytest.raises(ResultsError, match=f"format version {version}.*{hint}"):
        load_asv_results(tmp_path)


def test_broken_inputs_raise_results_errors(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        load_asv_results(tmp_path / "nowhere")
    write_asv(tmp_path, "box", "d" * 40, {SOLVE: [[1.0], [["'p1'", "'p2'"]]]})
    with pytest.raises(ResultsError, match="1 results for 2 parameter sets"):
        load_asv_results(tmp_path)
    (tmp_path / "box" / "dddddddd-existing-py_python.json").write_text("{not json")
    with pytest.raises(ResultsError, match="cannot read asv file"):
        load_asv_results(tmp_path)


def test_leaderboard_shows_asv_figures_beside_the_records(tmp_path):
    records = ensure_writable(tmp_path / "records")
    write_record(records, execute(RunTask("vpbgd-toy", "v-pbgd", budget=Budget(iterations=5))))
    rows = {SOLVE: [[0.125, 0.5], [["'vpbgd-toy'"], ["'v-pbgd'", "'<b>x</b>'"]]],
            "solve.SolveToTarget.peakmem_solve": [[2.0**21, None],
                                                  [["'vpbgd-toy'"], ["'v-pbgd'", "'<b>x</b>'"]]]}
    write_asv(tmp_path / "asv", "box", "e" * 40, rows, benchmarks={
        **described(SOLVE, "time", "seconds"),
        **described("solve.SolveToTarget.peakmem_solve", "peakmem", "bytes")})
    index = build_site([records], tmp_path / "site", n_boot=10, asv_results=[tmp_path / "asv"])
    page = (index.parent / problem_href("vpbgd-toy")).read_text()
    assert "asv timings" in page and "eeeeeeee" in page and "<b>x</b>" not in page
    csv = next((index.parent / "data").glob("asv-vpbgd-toy*.csv")).read_text()
    assert "0.125" in csv and "2.0" in csv  # peak memory in MiB
    without = build_site([records], tmp_path / "plain", n_boot=10)
    assert "asv timings" not in (without.parent / problem_href("vpbgd-toy")).read_text()


def test_cli_passes_asv_results_to_the_site(tmp_path):
    from bilevel_bench.cli import main

    records = ensure_writable(tmp_path / "records")
    write_record(records, execute(RunTask("vpbgd-toy", "v-pbgd", budget=Budget(iterations=3))))
    write_asv(tmp_path / "asv", "box", "f" * 40, {SOLVE: [[0.25], [["'vpbgd-toy'"], ["'v-pbgd'"]]]},
              benchmarks=described(SOLVE, "time", "seconds"))
    assert main(["leaderboard", str(records), "-o", str(tmp_path / "site"), "--bootstrap", "5",
                 "--asv", str(tmp_path / "asv")]) == 0
    assert "asv timings" in (tmp_path / "site" / problem_href("vpbgd-toy")).read_text()


def test_gap_floor_keeps_track_figures_positive():
    sys.path.insert(0, str(ROOT))
    try:
        from suites.solve import GAP_FLOOR, SolveFigures
    finally:
        sys.path.remove(str(ROOT))
    figures = SolveFigures()
    figures.run = {"oracles_to_target": None, "final": {"ul_gap": 0.0}}
    assert math.isnan(figures.track_oracles_to_target({}, "p", "s"))
    assert figures.track_final_gap({}, "p", "s") == GAP_FLOOR
    figures.run["final"] = {"ul_gap": math.inf}
    assert math.isnan(figures.track_final_gap({}, "p", "s"))

