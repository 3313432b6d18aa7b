"""``bilevel-bench report``: the table's numbers are the site's, figures are valid PDF and SVG,
the output is byte-identical on a second run, reproduce.sh regenerates the records, the table
compiles, and bad input exits 2 with one line."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bilevel_bench.cli import build_parser, main
from bilevel_bench.leaderboard.synthetic import synthetic_record, write_synthetic
from bilevel_bench.leaderboard.tables import fmt, slug
from bilevel_bench.metrics import per_instance
from bilevel_bench.problem import Budget
from bilevel_bench.report.bibtex import references
from bilevel_bench.report.latex import escape
from bilevel_bench.reproduce import reproduce_command
from bilevel_bench.results import load_results, record_filename
from bilevel_bench.runner import RunTask, record_header


def _write(folder: Path, record: dict) -> None:
    (folder / record_filename(record)).write_text(json.dumps(record), encoding="utf-8")


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    """2 problems x 2 solvers x 3 seeds, plus a second version of problem-00, runs of another
    hardware class, a reference-ruleset group, a diverged run and a file that is no record."""
    root = tmp_path_factory.mktemp("report") / "records"
    write_synthetic(root, problems=2, solvers=2, seeds=3)
    for seed in range(2):
        _write(root, synthetic_record("problem-00", "solver-00", seed, problem_version="2",
                                      speed=3.0))
        _write(root, synthetic_record("problem-01", "solver-01", seed, speed=0.5,
                                      hardware_class="cpu:other|threads=1"))
        _write(root, synthetic_record("problem-01", "solver-00", seed, ruleset="reference"))
    _write(root, synthetic_record("problem-01", "solver-01", 7, diverge=True))
    (root / "notes.json").write_text("{}", encoding="utf-8")
    return root


def cli(capsys, *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def report(records, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "paper"
    assert main(["report", str(records), "-o", str(out)]) == 0
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def table_rows(tex: str) -> dict[tuple[str, str, str], list[str]]:
    """(problem, version, solver) -> the cells of its row, from a report table."""
    rows, section = {}, None
    for line in tex.splitlines():
        heading = re.search(r"\\textit\{(.+?) \(v(.+?)\):", line)
        if heading:
            section = (heading.group(1).replace(r"\_", "_"), heading.group(2))
        elif section and line.endswith(r"\\") and " & " in line and not line.startswith("Solver"):
            cells = [c.strip() for c in line[:-2].split(" & ")]
            rows[(*section, cells[0])] = cells
    return rows


def all_rows(report: Path) -> dict[tuple[str, str, str, str], list[str]]:
    """(table stem, problem, version, solver) -> cells, over every table."""
    out = {}
    for path in sorted((report / "tables").glob("*.tex")):
        for key, cells in table_rows(path.read_text()).items():
            out[(path.stem, *key)] = cells
    return out


def expected_cells(row: dict) -> list[str]:
    """The cells a report row must show for a row of figures (per_instance's or the site's):
    solver, success, oracles and time to target with the IQR, final primary."""
    cells = [escape(row["solver"]), escape(fmt(row["success_rate"], "pct"))]
    for clock in ("oracles_to_target", "time_to_target"):
        median = row[f"median_{clock}"]
        cells.append(escape(fmt(median) if fmt(median) == "–" else
                            f"{fmt(median)} [{fmt(row[f'q25_{clock}'])}, "
                            f"{fmt(row[f'q75_{clock}'])}]"))
    cells.append(escape(fmt(row["median_final_primary"])))
    return cells


def groups(records: Path) -> list[dict]:
    """per_instance's rows with the stem of the report table that holds each (task
    ``quadratics``: the synthetic records') and the id of the site's table."""
    rows = per_instance(load_results(records, warn=False)).to_dict("records")
    for r in rows:
        r["stem"] = slug("quadratics", r["ruleset"], r["hardware_class"])
        r["site"] = "problem-" + slug(r["problem"], r["problem_version"], r["ruleset"],
                                      r["hardware_class"])
    return rows


def test_table_numbers_equal_per_instance(records, report):
    rows = all_rows(report)
    expected = groups(records)
    assert len(rows) == len(expected) == 7  # every (problem, version, ruleset, hw, solver)
    for r in expected:
        cells = rows[(r["stem"], r["problem"], r["problem_version"], r["solver"])]
        assert cells[:5] == expected_cells(r), r
    diverged = rows[(slug("quadratics", "default", "cpu:synthetic|threads=1"), "problem-01",
                     "1", "solver-01")]
    assert diverged[-1].endswith("1 diverged")


def test_table_numbers_equal_the_sites(records, report, tmp_path):
    from bilevel_bench.leaderboard.build import build_site

    build_site([records], tmp_path / "site", n_boot=5, official=False)
    rows = all_rows(report)
    checked = 0
    for r in groups(records):
        site = json.loads((tmp_path / "site" / "data" / f"{r['site']}.json").read_text())
        mine = {row["solver"]: row for row in site["rows"]}[r["solver"]]
        cells = rows[(r["stem"], r["problem"], r["problem_version"], r["solver"])]
        assert cells[:5] == expected_cells(mine)
        assert cells[-1] == escape(mine["outcomes"])
        checked += 1
    assert checked == 7


def test_figures_are_valid_pdf_and_svg(report):
    pdfs = sorted((report / "figures").glob("*.pdf"))
    svgs = sorted((report / "figures").glob("*.svg"))
    assert pdfs and len(pdfs) == len(svgs)
    for path in pdfs:
        check_pdf(path.read_bytes())
    for path in svgs:
        root = ET.parse(path).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert b"<dc:date>" not in path.read_bytes()


def check_pdf(blob: bytes) -> None:
    """A PDF that parses: header, ``startxref`` pointing at the cross-reference table, every
    in-use entry pointing at ``N 0 obj``, ``%%EOF``; no creation date."""
    assert blob.startswith(b"%PDF-1.") and blob.rstrip().endswith(b"%%EOF")
    start = int(re.findall(rb"startxref\s+(\d+)", blob)[-1])
    assert blob[start:start + 4] == b"xref"
    header = re.match(rb"xref\s+(\d+) (\d+)\s+", blob[start:])
    first, count = int(header.group(1)), int(header.group(2))
    entries = re.findall(rb"(\d{10}) (\d{5}) ([nf])", blob[start + header.end():])[:count]
    assert len(entries) == count
    for number, (offset, _, kind) in enumerate(entries, start=first):
        if kind == b"n":
            assert blob[int(offset):].startswith(f"{number} 0 obj".encode())
    assert b"/CreationDate" not in blob


def test_output_is_byte_identical_on_a_second_run(records, report, tmp_path):
    again = tmp_path / "again"
    assert main(["report", str(records), "-o", str(again)]) == 0
    assert snapshot(again) == snapshot(report)
    assert main(["report", str(records), "-o", str(again)]) == 0  # over an earlier report
    assert snapshot(again) == snapshot(report)


def test_reproduce_sh_has_seeds_rulesets_budgets_and_parses(report):
    text = (report / "reproduce.sh").read_text()
    assert subprocess.run(["bash", "-n", str(report / "reproduce.sh")]).returncode == 0
    commands = [line for line in text.splitlines() if line.startswith("bilevel-bench run")]
    assert ("bilevel-bench run --problem problem-00 --solver solver-00 --seeds 3 "
            "--seed-offset 0 --budget-seconds 10") in text
    assert "--ruleset reference" in text and "--seed-offset 7" in text
    assert "hardware class: cpu:other|threads=1 (2 records)" in text
    assert "cpu:synthetic|threads=1" in text and "torch: 2.13" in text
    for command in commands:
        for part in command.split(" && "):
            args = build_parser().parse_args(shlex.split(part)[1:])
            assert args.results == "$RESULTS" and args.budget_seconds == 10.0


def test_readme_says_what_each_file_is_and_what_was_kept_apart(report):
    text = (report / "README.md").read_text()
    for name in ("report.tex", "tables/", "figures/ecdf-", "figures/convergence-",
                 "reproduce.sh", "references.bib"):
        assert name in text
    assert "2 hardware classes" in text and "versions 1, 2" in text
    assert "Skipped files" in text and "notes.json" in text
    for path in (report / "tables").glob("*.tex"):
        assert f"tables/{path.name}" in text


def test_the_tables_compile_with_pdflatex(report, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("no pdflatex here (apt-get install texlive-latex-base "
                    "texlive-latex-recommended)")
    work = tmp_path / "tex"
    shutil.copytree(report, work)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           "report.tex"], cwd=work, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (work / "report.pdf").read_bytes().startswith(b"%PDF")


def test_solver_and_task_filters(records, tmp_path, capsys):
    code, out, err = cli(capsys, "report", records, "-o", tmp_path / "one", "--solver",
                         "solver-01", "--task", "quadratics")
    assert code == 0, err
    rows = all_rows(tmp_path / "one")
    assert rows and {key[3] for key in rows} == {"solver-01"}
    assert "2 hardware classes" in out


@pytest.mark.parametrize(("args", "message"), [
    (["report", "empty", "-o", "out"], "no run records (*.json) were found"),
    (["report", "junk", "-o", "out"], "no valid run records in junk: 1 .json file(s)"),
    (["report", "records", "-o", "out", "--solver", "nobody"],
     "--solver nobody: no run records of it"),
    (["report", "records", "-o", "out", "--task", "nothing"], "--task nothing: no run records"),
    (["report", "records", "-o", "records"], "holds the run records of"),
    (["report", "records", "-o", "afile"], "report folder 'afile' is a file"),
])
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write_synthetic(tmp_path / "records", problems=1, solvers=1, seeds=1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.json").write_text("[1, 2]")
    (tmp_path / "afile").write_text("x")
    code, out, err = cli(capsys, *args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and out == ""


def test_bibtex_merges_citations_of_one_arxiv_id():
    refs = references([
        ("solver aid-cg", "Ji, Yang, Liang, Bilevel Optimization: Convergence Analysis and "
                          "Enhanced Design, ICML 2021, arXiv:2010.07962"),
        ("solver itd", "Franceschi et al., Forward and Reverse Gradient-Based Hyperparameter "
                       "Optimization, ICML 2017, arXiv:1703.01785; Ji, Yang, Liang, "
                       "arXiv:2010.07962"),
        ("solver grid", "Grid search with zooming; cf. Bergstra & Bengio, Random Search for "
                        "Hyper-Parameter Optimization, JMLR 13, 2012"),
        ("solver x", "Jiang, Xiao, Chen, Chen, Efficient Penalty-Based Bilevel Methods: "
                     "Improved Analysis, Novel Updates, and Flatness Condition, arXiv:2511.16796"),
    ])
    by_key = {r.key: r for r in refs}
    assert set(by_key) == {"ji2021bilevel", "franceschi2017forward", "bergstra2012random",
                           "jiang2025efficient"}
    assert by_key["ji2021bilevel"].cited_by == {"solver aid-cg", "solver itd"}
    assert by_key["ji2021bilevel"].venue == "ICML 2021"
    assert by_key["bergstra2012random"].authors == ["Bergstra", "Bengio"]
    assert by_key["franceschi2017forward"].authors == ["Franceschi", "others"]
    assert by_key["jiang2025efficient"].title.endswith("Novel Updates, and Flatness Condition")


def test_every_record_carries_the_command_that_reproduces_it():
    task = RunTask(problem="quadratic-small", solver="/home/me/my_solver.py:Mine", seed=4,
                   budget=Budget(seconds=None, oracle_cost=2e5, iterations=1000),
                   hyperparameters={"lr": 0.05, "mode": "a b"}, ruleset="custom",
                   threads=2, timeout=30.0)
    command = record_header(task)["reproduce"]
    assert command == reproduce_command(task)
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.problem, args.solver, args.seeds, args.seed_offset) == (
        ["quadratic-small"], ["my_solver.py:Mine"], 1, 4)
    assert (args.budget_seconds, args.budget_oracles, args.budget_iterations) == (
        None, 2e5, 1000)
    assert (args.threads, args.timeout, args.ruleset) == (2, 30.0, "default")
    assert sorted(args.hp) == ["lr=0.05", "mode='a b'"]
    reference = reproduce_command(RunTask("vpbgd-toy", "v-pbgd", ruleset="reference",
                                          hyperparameters={"lr": 1}, budget=Budget()),
                                  seeds=[0, 1, 2])
    assert reference.endswith("--seeds 3 --seed-offset 0 --budget-seconds 10 "
                              "--budget-iterations 100000 --ruleset reference")
