"""Registry: name clashes between plugins are refused with both sources named, official names
win, and the other plugins keep working."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points as real_entry_points
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import PLUGINS

from bilevel_bench import registry
from bilevel_bench.cli import main

BAD_PROBLEMS = PLUGINS / "bad_problems.py"
BAD_SOLVERS = PLUGINS / "bad_solvers.py"


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    obj: Any
    dist: Any

    def load(self) -> Any:
        return self.obj


def _clear() -> None:
    registry._entry_points.cache_clear()
    registry.problems.cache_clear()
    registry.solvers.cache_clear()


@pytest.fixture
def third_party(monkeypatch):
    """Adds a third-party distribution's plugins to the real entry points."""
    extra: dict[str, list[FakeEntryPoint]] = {registry.PROBLEM_GROUP: [],
                                             registry.SOLVER_GROUP: []}

    def fake(group: str):
        return list(real_entry_points(group=group)) + extra.get(group, [])

    monkeypatch.setattr(registry, "entry_points", fake)
    _clear()
    yield extra
    _clear()


def _add(extra, group: str, name: str, spec: str, dist: str = "my-plugins") -> None:
    obj = registry.load_object(spec)
    extra[group].append(FakeEntryPoint(name, spec, obj, SimpleNamespace(name=dist)))


def test_problem_plugin_reusing_an_official_instance_name_is_refused(third_party, capsys):
    _add(third_party, registry.PROBLEM_GROUP, "clash", f"{BAD_PROBLEMS}:ClashingInstance")
    table = registry.problems()
    assert table["quadratic-small"].family.__name__ == "Quadratic"  # the official one wins
    refused = [b for b in registry.broken_plugins() if b.name == "clash"]
    assert len(refused) == 1
    assert "bilevel_bench.problems.quadratic:Quadratic" in refused[0].error
    assert "ClashingInstance" in refused[0].error and "my-plugins" in refused[0].error
    # every other command still works, and says why the plugin is left out
    assert main(["list", "problems"]) == 0
    captured = capsys.readouterr()
    assert "vpbgd-toy" in captured.out and "refused" in captured.err


def test_duplicate_solver_names_are_refused_with_both_sources(third_party, capsys):
    _add(third_party, registry.SOLVER_GROUP, "aid-cg", f"{BAD_SOLVERS}:GoodSolver")
    _add(third_party, registry.SOLVER_GROUP, "my-good", f"{BAD_SOLVERS}:ImpostorSolver")
    table = registry.solvers()
    assert table["aid-cg"].__module__ == "bilevel_bench_baselines.aid_cg"
    assert "my-good" not in table
    errors = {b.name: b.error for b in registry.broken_plugins() if "refused" in b.error}
    assert "bilevel_bench_baselines.aid_cg:AIDCG" in errors["aid-cg"]
    assert "GoodSolver" in errors["aid-cg"]
    assert "ImpostorSolver" in errors["my-good"] and "AIDCG" in errors["my-good"]


def test_a_new_plugin_without_clashes_is_registered(third_party):
    _add(third_party, registry.SOLVER_GROUP, "good", f"{BAD_SOLVERS}:GoodSolver")
    assert registry.solvers()["good"].name == "good"
    assert not [b for b in registry.broken_plugins() if b.name == "good"]


def test_an_instance_declaring_an_unknown_feature_is_refused_with_its_name():
    from bilevel_bench.errors import PluginError
    from bilevel_bench.problem import Instance
    from bilevel_bench.problems.toys import BOMEToy

    class Typo(BOMEToy):
        name = "typo-toy"
        instances = {"typo-toy": Instance({}, target=1e-3, features=frozenset({"ll_infeasible"}))}

    with pytest.raises(PluginError, match=r"'typo-toy'.*\['ll_infeasible'\].*ll_infeasible_in_x"):
        registry.family_entries(Typo, "tests")
    declared = registry.family_entries(
        type("Fine", (BOMEToy,), {"name": "fine-toy", "instances": {"fine-toy": Instance(
            {}, target=1e-3, features=frozenset({"ll_infeasible_in_x"}))}}), "tests")
    assert "ll_infeasible_in_x" in declared["fine-toy"].features()
