"""asv suite configuration: relative plugin specs, display names, missing optional libraries."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def solve():
    spec = importlib.util.spec_from_file_location("bilevel_bench_asv_solve",
                                                  REPO / "suites" / "solve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_relative_specs_are_read_from_the_launch_folder(solve, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # asv runs the benchmarks from a temporary folder
    monkeypatch.setenv("BILEVEL_BENCH_ASV_CWD", str(REPO / "tests"))
    resolved = solve.resolve_spec("../examples/my_solver.py:FirstOrderITD")
    assert resolved == f"{REPO / 'examples' / 'my_solver.py'}:FirstOrderITD"
    monkeypatch.delenv("BILEVEL_BENCH_ASV_CWD")
    monkeypatch.setenv("PWD", str(tmp_path))
    # not found from the launch folder: the repository root
    assert solve.resolve_spec("examples/my_solver.py:FirstOrderITD") == resolved
    assert solve.resolve_spec("aid-cg") == "aid-cg"
    with pytest.raises(FileNotFoundError, match="nowhere.py"):
        solve.resolve_spec("nowhere.py:Solver")


def test_solvers_are_shown_by_name_and_missing_libraries_are_skipped(solve, monkeypatch):
    plugin = f"{REPO / 'examples' / 'my_solver.py'}:FirstOrderITD"
    missing = f"{REPO / 'tests' / 'plugins' / 'bad_solvers.py'}:NeedsMissingLibrary"
    config = solve.Config(suite="toys", solvers=(plugin, "aid-cg", missing), seconds=0.1,
                          device="cpu")
    names = config.names()
    assert names == {"fo-itd": plugin, "aid-cg": "aid-cg", "needs-missing-library": missing}
    monkeypatch.setattr(solve, "SPECS", names)
    reason = config.task("quadratic-small", "needs-missing-library")
    assert reason == "needs no_such_library_xyz, which is not installed: pip install xyz"
    task = config.task("quadratic-small", "fo-itd")
    assert not isinstance(task, str) and task.solver == plugin
