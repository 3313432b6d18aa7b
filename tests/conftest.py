from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bilevel_bench.data import MissingDataError

torch.set_num_threads(1)

PLUGINS = Path(__file__).parent / "plugins"
#: set to 1 to make a missing optional dataset a failure instead of a skip (.ci/run sets it)
REQUIRE_DATA_ENV = "BILEVEL_BENCH_REQUIRE_DATA"


def data_required() -> bool:
    return os.environ.get(REQUIRE_DATA_ENV, "") not in ("", "0")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _skip_missing_data())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _skip_missing_data())


def _skip_missing_data() -> Iterator[None]:
    """A test that needs an optional dataset file that is absent skips with the loader's
    one-line message (which file, where to put it), unless data are required."""
    try:
        return (yield)
    except MissingDataError as exc:
        if data_required():
            raise
        # reported at the test's own location by `-ra`, one line each
        raise pytest.skip.Exception(f"optional dataset missing: {exc}",
                                    _use_item_location=True) from None


#: the slow end-to-end tests (node-id prefixes), left out of the default run by
#: ``-m 'not slow'`` in pyproject's addopts; ``pytest -m ""`` (CI) runs them. Measured on 2 cores:
#: Fashion-MNIST hyper-cleaning ~140 s, 9-node transport ~45 s, MNIST hyper-cleaning ~40 s,
#: a Dask cluster ~20 s, a real asv run ~20 s.
SLOW_TESTS = (
    "tests/test_problems_hyper_cleaning.py::test_target_reached_by_aid_cg_and_not_with_x_frozen"
    "[hyper-cleaning-fashion-mnist",
    "tests/test_problems_hyper_cleaning.py::test_target_reached_by_aid_cg_and_not_with_x_frozen"
    "[hyper-cleaning-mnist",
    "tests/test_problems_transport.py::test_target_reached_by_blocc_and_not_with_x_frozen"
    "[transport-9node",
    "tests/test_dask.py::test_dask_cluster_runs_a_matrix_with_isolation",
    "tests/test_asv_import.py::test_a_real_asv_run_imports",
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


def plugin(name: str, file: str = "bad_solvers.py") -> str:
    """Path spec of a test plugin class, as a third-party author would pass it."""
    return f"{PLUGINS / file}:{name}"


@pytest.fixture
def pids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder where hostile test plugins note the pids of the processes they start."""
    folder = tmp_path / "pids"
    folder.mkdir()
    monkeypatch.setenv("HOSTILE_PIDS", str(folder))
    return folder


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return tmp_path / "results"
