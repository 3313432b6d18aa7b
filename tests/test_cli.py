"""The command line: listing, running, showing, checking plugins, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import plugin

from bilevel_bench.cli import main


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys):
    code, out, _ = cli(capsys, "list", "problems")
    assert code == 0 and "vpbgd-toy" in out and "quadratic-small" in out
    code, out, _ = cli(capsys, "list", "suites")
    assert code == 0 and out.startswith("") and "toys" in out
    code, out, _ = cli(capsys, "list", "solvers")
    assert code == 0 and "aid-cg" in out and "arXiv:2010.07962" in out


def test_run_show_and_resume(capsys, results_dir):
    args = ["run", "--problem", "pbgd-free-counterexample", "--solver", "aid-cg", "--seeds", "2",
            "--budget-seconds", "2", "--results", str(results_dir)]
    code, out, _ = cli(capsys, *args)
    assert code == 0
    assert "aid-cg" in out and "success_rate" in out and f"results: {results_dir}" in out
    assert len(list(results_dir.glob("*.json"))) == 2
    code, out, _ = cli(capsys, *args)
    assert code == 0 and "2 run(s) were already recorded" in out
    (results_dir / "broken.json").write_text("{")
    code, out, _ = cli(capsys, "show", str(results_dir))
    assert code == 0 and "pbgd-free-counterexample" in out and "skipped" in out


def test_run_with_hyperparameters_inline(capsys, results_dir):
    code, out, _ = cli(capsys, "run", "--problem", "quadratic-small", "--solver", "aid-cg",
                       "--seeds", "1", "--hp", "cg_steps=3", "--budget-iterations", "5",
                       "--backend", "inline", "--results", str(results_dir))
    assert code == 0
    record = json.loads(next(results_dir.glob("*.json")).read_text())
    assert record["solver"]["hyperparameters"]["cg_steps"] == 3
    assert record["ruleset"] == "custom"  # never ranked as the authors' defaults
    assert record["summary"]["iterations"] == 5 and record["status"] == "budget"


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--problem", "vpbgd-tyo", "--solver", "aid-cg"], "Did you mean 'vpbgd-toy'"),
    (["run", "--problem", "vpbgd-toy", "--solver", "aid_cg"], "Did you mean 'aid-cg'"),
    (["run", "--suite", "tyos"], "Did you mean 'toys'"),
    (["run", "--problem", "blocc-toy1", "--solver", "aid-cg"], "nothing to run"),
    (["run", "--problem", "vpbgd-toy", "--solver", "aid-cg", "--hp", "outer_lrr=1"],
     "did you mean 'outer_lr'"),
    (["run", "--problem", "vpbgd-toy", "--solver", "aid-cg", "--hp", "nonsense"], "KEY=VALUE"),
    (["run", "--problem", "vpbgd-toy", "--solver", "missing.py:Solver"], "does not exist"),
    (["run", "--problem", "vpbgd-toy", "--solver", plugin("NoSuchClass")], "has no attribute"),
    (["run", "--problem", "vpbgd-toy", "--solver", plugin("MissingMethods")],
     "breaks the plugin contract"),
    (["run", "--problem", "vpbgd-toy", "--solver", plugin("NotASolver")], "not a subclass"),
])
def test_bad_input_gives_a_clear_error(capsys, args, message, tmp_path):
    code, _, err = cli(capsys, *args, "--results", str(tmp_path / "r"))
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--hp", "outer_lr=abc"], "outer_lr='abc' must be a float, not str"),
    (["--hp", "outer_lr=-0.1"], "must be non-negative"),
    (["--hp", "cg_steps=2.5"], "cg_steps=2.5 must be an int"),
    (["--budget-seconds", "-1"], "--budget-seconds: -1 must be > 0"),
    (["--budget-seconds", "0"], "--budget-seconds: 0 must be > 0"),
    (["--budget-oracles", "abc"], "'abc' is not a number"),
    (["--budget-iterations", "0"], "--budget-iterations: 0 must be >= 1"),
    (["--timeout", "inf"], "must be finite"),
    (["--seeds", "0"], "--seeds: 0 must be >= 1"),
    (["--seed-offset", "-1"], "--seed-offset: -1 must be >= 0"),
    (["--workers", "0"], "--workers: 0 must be >= 1"),
    (["--threads", "-2"], "--threads: -2 must be >= 1"),
    (["--memory-limit-gb", "0"], "--memory-limit-gb: 0 must be > 0"),
    (["--ruleset", "best"], "invalid choice: 'best'"),
    (["--device", "gpu"], "'gpu' is not a device"),
    (["--address", "tcp://x:1"], "--address applies to --backend dask"),
])
def test_bad_values_exit_2_with_one_line_before_anything_runs(capsys, tmp_path, args, message):
    results = tmp_path / "r"
    code, out, err = cli(capsys, "run", "--problem", "vpbgd-toy", "--solver", "aid-cg", *args,
                         "--results", str(results))
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not results.exists()  # nothing ran, nothing was recorded


def test_version_and_help_with_examples(capsys):
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.startswith("bilevel-bench ")
    code, out, _ = cli(capsys, "--help")
    assert code == 0 and "examples:" in out and "check-problem" in out
    code, out, _ = cli(capsys, "run", "--help")
    assert code == 0 and "--budget-seconds" in out


def test_check_solver_load_failures_exit_2(capsys):
    for spec, message in [("missing.py:Solver", "does not exist"),
                          (plugin("NoSuchClass"), "has no attribute"),
                          ("aid_cg", "Did you mean 'aid-cg'")]:
        code, out, err = cli(capsys, "check-solver", spec)
        assert code == 2 and message in err and out == ""
        assert len(err.strip().splitlines()) == 1


def test_skipped_pairs_are_one_summary_line(capsys, results_dir):
    code, out, _ = cli(capsys, "run", "--problem", "blocc-toy1", "--problem", "vpbgd-toy",
                       "--solver", "aid-cg", "--solver", "blocc", "--seeds", "1",
                       "--budget-iterations", "3", "--backend", "inline",
                       "--results", str(results_dir))
    skip_lines = [line for line in out.splitlines() if line.startswith("skip")]
    assert code == 0 and len(skip_lines) == 1
    assert "coupled_constraints" in skip_lines[0]


def test_solver_with_a_missing_optional_library_is_skipped_with_the_install_command(
        capsys, results_dir):
    code, out, _ = cli(capsys, "run", "--problem", "vpbgd-toy", "--problem", "quadratic-small",
                       "--solver", plugin("NeedsMissingLibrary"), "--solver", "aid-cg",
                       "--seeds", "1", "--budget-iterations", "3", "--backend", "inline",
                       "--results", str(results_dir))
    assert code == 0
    assert "needs no_such_library_xyz, which is not installed: pip install xyz" in out
    assert len(list(results_dir.glob("*.json"))) == 2  # aid-cg only


def test_a_file_solver_cannot_take_a_registered_name(capsys, tmp_path):
    code, _, err = cli(capsys, "run", "--problem", "vpbgd-toy",
                       "--solver", plugin("ImpostorSolver"), "--results", str(tmp_path / "r"))
    assert code == 2 and "'aid-cg'" in err and "already registered by" in err


def test_unwritable_results_directory(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = cli(capsys, "run", "--problem", "vpbgd-toy", "--solver", "aid-cg",
                       "--results", str(tmp_path / "file" / "sub"))
    assert code == 2 and "not writable" in err


def test_check_solver_passes_the_reference_solvers(capsys):
    code, out, _ = cli(capsys, "check-solver", "aid-cg")
    assert code == 0 and "0 failed" in out
    code, out, _ = cli(capsys, "check-solver", plugin("GoodSolver"))
    assert code == 0 and "FAIL" not in out


@pytest.mark.parametrize(("name", "failure"), [
    ("NondeterministicSolver", "same seed, different iterates"),
    ("EvalPeekingSolver", "called problem.evaluate"),
    ("MutatingSolver", "modified in place"),
    ("WrongShapeSolver", "expects (10,)"),
    ("MissingMethods", "method `step` is not implemented"),
    ("NotASolver", "not a subclass"),
    ("NaNSolver", "not finite"),
])
def test_check_solver_catches_contract_violations(capsys, name, failure):
    code, out, _ = cli(capsys, "check-solver", plugin(name))
    assert code == 1 and failure in out


def test_readme_plugin_example_passes_the_check_and_runs(capsys, results_dir):
    spec = f"{Path(__file__).parents[1] / 'examples' / 'my_solver.py'}:FirstOrderITD"
    code, out, _ = cli(capsys, "check-solver", spec)
    assert code == 0 and "0 failed" in out
    code, out, _ = cli(capsys, "run", "--problem", "bome-toy", "--solver", spec, "--seeds", "1",
                       "--budget-iterations", "50", "--backend", "inline",
                       "--results", str(results_dir))
    assert code == 0 and "fo-itd" in out


def imported_after(calls: list[list[str]], modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running these CLI calls
    (each must exit 0; their output is discarded)."""
    import ast
    import subprocess
    import sys

    code = ("import sys, contextlib, io; from bilevel_bench.cli import main\n"
            f"for args in {calls!r}:\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        assert main(args) == 0\n"
            f"print(sorted(m for m in {modules!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return ast.literal_eval(out.strip().splitlines()[-1])


def test_help_and_version_do_not_import_torch():
    assert imported_after([["--help"], ["--version"], ["run", "--help"]], ("torch",)) == []


def test_list_imports_torch_and_the_plugins_and_nothing_heavier():
    """``list`` must stay light (issue 17: under 1.5 s idle): SciPy's optimisers and pyarrow,
    0.37 s of imports together, are imported where they are used, not by the plugins."""
    calls = [["list", "problems"], ["list", "solvers"], ["list", "suites"]]
    assert imported_after(calls, ("scipy.optimize", "pyarrow", "sklearn", "pandas")) == []


def test_worker_processes_inherit_the_quiet_warning_filters(monkeypatch):
    import os
    import subprocess
    import sys

    from bilevel_bench.cli import _quiet_worker_warnings

    monkeypatch.setenv("PYTHONWARNINGS", "default")
    _quiet_worker_warnings()
    warn = ("import warnings; warnings.warn(\"We've integrated functorch into PyTorch. "
            "functorch.vjp is deprecated\", FutureWarning); warnings.warn('other', FutureWarning)")
    err = subprocess.run([sys.executable, "-c", warn], capture_output=True, text=True,
                         env=dict(os.environ), check=True).stderr
    assert "functorch" not in err and "other" in err  # only the known warning is silenced


def test_missing_llm_extra_gives_error_records_naming_the_install_command(
        capsys, results_dir, monkeypatch):
    import sys

    from bilevel_bench import registry

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if the extra were absent
    monkeypatch.setattr(registry, "_FEATURES", {})
    code, out, err = cli(capsys, "run", "--problem", "llm-safety-tiny", "--solver", "aid-cg",
                         "--seeds", "1", "--budget-iterations", "1", "--backend", "inline",
                         "--results", str(results_dir))
    assert code == 0 and "Traceback" not in out + err
    record = json.loads(next(results_dir.glob("*.json")).read_text())
    assert record["status"] == "error"
    assert "pip install" in record["error"]["message"]
