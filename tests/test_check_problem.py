"""check-problem: the README's example passes, each broken plugin fails its check, load errors
exit 2, and the reference problems pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import plugin

from bilevel_bench.cli import main
from bilevel_bench.conformance import check_problem

EXAMPLE = f"{Path(__file__).parents[1] / 'examples' / 'my_problem.py'}:RidgeBilevel"


def bad(name: str) -> str:
    return plugin(name, "bad_problems.py")


def test_readme_problem_example_passes_every_check(capsys):
    code = main(["check-problem", EXAMPLE])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "9 passed, 0 failed" in out
    assert "PASS  target reachable by the reference configuration [ridge-example]" in out
    assert "PASS  hypergradient vs finite differences [ridge-example]" in out


def test_readme_problem_example_runs(capsys, results_dir):
    code = main(["run", "--problem", f"{EXAMPLE}:ridge-example", "--solver", "aid-cg",
                 "--seeds", "1", "--budget-iterations", "20", "--backend", "inline",
                 "--results", str(results_dir)])
    assert code == 0 and "ridge-example" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["quadratic-small", "vpbgd-toy", "blocc-toy1"])
def test_reference_problems_pass(name):
    report = check_problem(name)
    assert report.ok, "\n".join(report.lines())


@pytest.mark.parametrize(("name", "check", "message"), [
    ("UnseededInit", "deterministic under a seed", "init() differs under the same seed"),
    ("EvaluationMutates", "oracle/evaluation separation", "changed the public data ['b']"),
    ("WrongHypergradient", "hypergradient vs finite differences", "central finite differences"),
    ("TargetAlreadyMet", "target (and ladder) well formed", "already meets the target"),
    ("MissingPrimaryMetric", "evaluation metrics", "lacks the primary metric"),
    ("NonScalarObjective", "oracles", "expected a scalar"),
    ("UnreachableTarget", "target reachable", "did not reach the target"),
    ("NoInstances", "class contract", "at least one Instance"),
])
def test_broken_problem_plugins_fail_the_matching_check(capsys, name, check, message):
    code = main(["check-problem", bad(name)])
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert code == 1
    assert any(check in line and message in line for line in failed), out


@pytest.mark.parametrize(("spec", "message"), [
    ("no-such-problem", "unknown problem"),
    ("missing.py:Problem", "does not exist"),
    (bad("NoSuchClass"), "has no attribute"),
    (f"{EXAMPLE}:no-such-instance", "declares no instance 'no-such-instance'"),
])
def test_load_failures_exit_2_with_one_line(capsys, spec, message):
    code = main(["check-problem", spec])
    captured = capsys.readouterr()
    assert code == 2 and message in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""


def test_plugin_reusing_an_official_instance_name_is_refused(capsys, results_dir):
    code = main(["run", "--problem", f"{bad('ClashingInstance')}:quadratic-small",
                 "--solver", "aid-cg", "--results", str(results_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "already declared by bilevel_bench.problems.quadratic:Quadratic" in err
