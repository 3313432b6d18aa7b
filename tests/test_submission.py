"""Verified submissions (``submit``/``verify``) and the bubblewrap sandbox (``run --sandbox``,
``check-solver``): a forged and a tampered record fail ``verify``, a solver that reaches outside
its run fails in the sandbox, and a missing bubblewrap is one line and exit status 2."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from conftest import PLUGINS, plugin

from bilevel_bench import cli
from bilevel_bench.sandbox import bwrap_problem

needs_bwrap = pytest.mark.skipif(bwrap_problem() is not None,
                                 reason=f"bubblewrap unusable here: {bwrap_problem()}")


def _run(*argv: str) -> int:
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A submitted bundle: aid-cg (converged) and a path plugin (budget) on the toy."""
    root = tmp_path_factory.mktemp("submission")
    source = root / "my_solver.py"
    shutil.copyfile(PLUGINS / "bad_solvers.py", source)
    assert _run("run", "--problem", "pbgd-free-counterexample", "--solver", "aid-cg",
                "--solver", f"{source}:GoodSolver", "--seeds", "1", "--budget-iterations",
                "30", "--results", root / "results") == 0
    assert _run("submit", root / "results", "-o", root / "bundle.tar.gz", "--source",
                source) == 0
    return root / "bundle.tar.gz"


def _unpack(bundle: Path, where: Path) -> Path:
    where.mkdir()
    with tarfile.open(bundle) as tar:
        tar.extractall(where, filter="data")
    return where


def _edit(folder: Path, pattern: str, change, resign: bool) -> str:
    path = next((folder / "records").glob(pattern))
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    if resign:  # a careful forger updates the manifest too
        manifest = json.loads((folder / "manifest.json").read_text())
        rel = path.relative_to(folder).as_posix()
        manifest["files"][rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return path.name


def test_submit_needs_the_plugin_source(tmp_path, bundle):
    folder = _unpack(bundle, tmp_path / "b")
    assert _run("submit", folder / "records", "-o", tmp_path / "again") == 2


@needs_bwrap
def test_an_honest_bundle_verifies(bundle, capsys):
    assert _run("verify", bundle, "--sample", "2") == 0
    out = capsys.readouterr().out
    assert out.count("VERIFIED") == 2 and "0 failed" in out
    verdicts = json.loads(bundle.with_name("bundle.verification.json").read_text())
    assert verdicts["ok"] and all(v["verdict"] == "verified"
                                  for v in verdicts["records"].values())


@needs_bwrap
def test_a_forged_and_a_tampered_record_fail_verify(bundle, tmp_path, capsys):
    forged = _unpack(bundle, tmp_path / "forged")

    def flip(record):
        record["status"] = "converged"
        record["summary"]["converged"] = True

    name = _edit(forged, "*__good__*.json", flip, resign=True)
    assert _run("verify", forged) == 2
    err = capsys.readouterr().err.splitlines()
    assert f"FAIL records/{name}: status = 'converged', re-executed 'budget'" in err
    assert any("summary.converged = True, re-executed False" in line for line in err)
    assert json.loads((forged / "verification.json").read_text())["ok"] is False

    tampered = _unpack(bundle, tmp_path / "tampered")

    def halve(record):
        metric = record["problem"]["primary_metric"]
        record["summary"]["final"][metric] *= 0.5

    name = _edit(tampered, "*__aid-cg__*.json", halve, resign=False)
    assert _run("verify", tampered) == 2
    err = capsys.readouterr().err.splitlines()
    assert any(f"sha256 mismatch for records/{name}" in line for line in err)
    assert any(line.startswith(f"FAIL records/{name}: summary.final") for line in err)


@needs_bwrap
def test_the_sandbox_refuses_writes_and_network(tmp_path, monkeypatch):
    target = Path(__file__).parent / f"escaped-{tmp_path.name}.txt"  # writable outside
    monkeypatch.setenv("SANDBOX_TARGET", str(target))
    results = tmp_path / "results"
    assert _run("run", "--problem", "quadratic-small", "--solver",
                plugin("WritesOutside", "sandbox_solvers.py"), "--solver",
                plugin("PhonesHome", "sandbox_solvers.py"), "--solver", "aid-cg", "--seeds", "1",
                "--budget-iterations", "5", "--sandbox", "--results", results) == 0
    records = {r["solver"]["name"]: r for r in
               (json.loads(p.read_text()) for p in results.glob("*.json"))}
    escaped = target.exists()
    target.unlink(missing_ok=True)
    assert not escaped
    assert "Read-only file system" in records["writes-outside"]["error"]["message"]
    assert records["phones-home"]["status"] == "error"
    assert records["phones-home"]["error"]["type"] in ("OSError", "ConnectionError",
                                                       "TimeoutError")
    assert records["aid-cg"]["status"] == "budget"
    assert all("bubblewrap" in r["isolation"]["sandbox"] for r in records.values())


def test_no_bubblewrap_is_one_line_and_status_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    bwrap_problem.cache_clear()
    try:
        assert _run("run", "--problem", "quadratic-small", "--solver", "aid-cg", "--seeds",
                    "1", "--sandbox", "--results", tmp_path / "r") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "bubblewrap" in err[0] and "apt-get install" in err[0]
        assert _run("check-solver", "aid-cg") == 0  # contained, without bubblewrap
        line = [x for x in capsys.readouterr().out.splitlines() if "contained run" in x][0]
        assert line.startswith("PASS") and "without a sandbox" in line and "bubblewrap" in line
    finally:
        bwrap_problem.cache_clear()


@needs_bwrap
def test_check_solver_fails_a_plugin_that_reaches_the_evaluation(capsys):
    assert _run("check-solver", plugin("ExactPeek", "hostile_solvers.py")) == 1
    out = capsys.readouterr().out
    contained = [line for line in out.splitlines() if "contained run" in line]
    assert contained and contained[0].startswith("FAIL")
    assert "touched problem._exact" in contained[0] and "bubblewrap" in contained[0]


def test_an_archive_that_unpacks_too_much_is_refused_before_anything_is_written(
        tmp_path, monkeypatch):
    """A compression bomb (here 4 MiB of zeros, a few KB packed) is refused from the archive's
    own listing: nothing is extracted."""
    from bilevel_bench import submission

    payload = tmp_path / "zeros.bin"
    payload.write_bytes(b"\0" * (4 * 2**20))
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="records/zeros.bin")
    assert archive.stat().st_size < 64 * 2**10
    monkeypatch.setattr(submission, "MAX_MEMBER_BYTES", 2**20)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(submission.SubmissionError, match="unpacks to 4194304 bytes"):
        submission.open_bundle(archive, work)
    assert not any(p.is_file() for p in work.rglob("*"))
    monkeypatch.setattr(submission, "MAX_MEMBER_BYTES", 2**30)
    monkeypatch.setattr(submission, "MAX_UNPACKED_BYTES", 2**20)
    (work / "bundle").rmdir()
    with pytest.raises(submission.SubmissionError, match="split the bundle"):
        submission.open_bundle(archive, work)


@needs_bwrap
def test_the_sandbox_hides_the_home_folder(tmp_path, monkeypatch):
    import subprocess
    import tempfile

    from bilevel_bench.sandbox import bwrap_command

    # a home folder outside /tmp (which the sandbox replaces anyway)
    home = Path(tempfile.mkdtemp(prefix="bb-home-", dir="/var/tmp"))
    try:
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "id_ed25519").write_text("secret")
        monkeypatch.setenv("HOME", str(home))
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        command = [*bwrap_command(str(scratch)), "cat", str(home / ".ssh" / "id_ed25519")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "secret" not in done.stdout
        assert subprocess.run(["cat", str(home / ".ssh" / "id_ed25519")], capture_output=True,
                              text=True).stdout == "secret"  # readable outside the sandbox
    finally:
        shutil.rmtree(home)
