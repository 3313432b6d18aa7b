"""Every path given to a command is checked before any work: one line, exit status 2, nothing
already recorded lost; and ``leaderboard`` says which site it built."""

from __future__ import annotations

from pathlib import Path

import pytest

from bilevel_bench.cli import main
from bilevel_bench.leaderboard.synthetic import write_synthetic
from bilevel_bench.paths import SITE_MARKER


def cli(capsys, *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``records/`` with a few synthetic run records, ``empty/``, and a plain file ``afile``."""
    write_synthetic(tmp_path / "records", problems=1, solvers=2, seeds=1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("args", "message"), [
    (["leaderboard", "empty", "-o", "site"], "no run records (*.json) were found in results "
                                             "folder"),
    (["leaderboard", "missing", "-o", "site"], "'missing' does not exist"),
    (["leaderboard", "afile", "-o", "site"], "'afile' is a file, not a folder"),
    (["leaderboard", "records", "-o", "afile"], "site folder 'afile' is a file, not a folder"),
    (["leaderboard", "records", "-o", "afile/site"], "'afile' is a file, not a folder"),
    (["leaderboard", "records", "-o", "/proc/forbidden"], "'/proc/forbidden' is not writable"),
    (["leaderboard", "records", "-o", "records"], "holds the run records of"),
    (["leaderboard", "records", "-o", ".", "--asv", "no-asv"], "'no-asv' does not exist"),
    (["show", "empty"], "no run records (*.json) were found"),
    (["show", "afile"], "is a file, not a folder"),
    (["submit", "empty", "-o", "b.tar.gz"], "no run records (*.json) were found"),
    (["submit", "records", "-o", "afile"], "bundle folder 'afile' is a file"),
    (["submit", "records", "-o", "b.tar.gz", "--source", "empty"], "is a folder, not a file"),
    (["submit", "records", "-o", "records"], "exists and is not empty"),
    (["verify", "missing.tar.gz"], "bundle 'missing.tar.gz' does not exist"),
    (["verify", "empty", "-o", "records"], "verdicts file 'records' is a folder"),
    (["verify", "empty", "-o", "/proc/forbidden/v.json"], "is not writable"),
    (["run", "--problem", "vpbgd-toy", "--solver", "aid-cg", "--results", "afile"],
     "results directory 'afile' is a file, not a folder"),
])
def test_bad_paths_exit_2_with_one_line_and_lose_nothing(capsys, tree, monkeypatch, args,
                                                         message):
    monkeypatch.chdir(tree)
    before = snapshot(tree)
    code, out, err = cli(capsys, *args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""
    after = snapshot(tree)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing lost or changed
    assert not (tree / "site").exists() and not (tree / "b.tar.gz").exists()


def test_a_site_inside_the_results_folder_is_never_read_as_records(capsys, tree):
    records, site = tree / "records", tree / "records" / "site"
    before = snapshot(records)
    code, out, err = cli(capsys, "leaderboard", records, "-o", site, "--bootstrap", "5",
                         "--no-suites")
    assert code == 0, err
    index = (site / "index.html").resolve()
    assert out.strip() == f"site of your own records (not the official site): {index}"
    assert (site / SITE_MARKER).is_file() and list((site / "data").glob("*.json"))
    assert {k: v for k, v in snapshot(records).items() if k in before} == before
    code, out, _ = cli(capsys, "show", records)  # the site's data/*.json are not records
    assert code == 0 and "skipped" not in out
    code, _, err = cli(capsys, "leaderboard", site, "-o", tree / "other")
    assert code == 2 and "is a leaderboard site, not a folder of run records" in err


def test_the_official_submissions_folder_builds_the_official_site(capsys, tmp_path):
    submissions = tmp_path / "leaderboard" / "submissions"
    write_synthetic(submissions / "reference", problems=1, solvers=2, seeds=1)
    site = tmp_path / "leaderboard" / "site"
    code, out, _ = cli(capsys, "leaderboard", submissions, "-o", site, "--bootstrap", "5",
                       "--no-suites")
    assert code == 0
    assert out.strip() == f"official site (from {submissions}): {(site / 'index.html').resolve()}"
    # your own records into the official site's folder: said, with the command that rebuilds it
    code, out, _ = cli(capsys, "leaderboard", submissions / "reference", "-o", site,
                       "--bootstrap", "5", "--no-suites")
    assert code == 0 and out.startswith("site of your own records (not the official site)")
    assert "is the official site's folder" in out and "leaderboard/submissions -o" in out
