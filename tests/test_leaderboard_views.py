"""Issue 26, on the site: why a run failed one click from every matrix cell, older versions
never ranked, views without two solvers on a common instance, fixed-budget values beside the
rank, the best canary as a reference line and the canary table on problem pages, the smaller
wording fixes, and a headless Chromium that opens every task view. Synthetic records only."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest
from test_leaderboard import _browser_missing, _driver, check_every_page

from bilevel_bench.leaderboard.build import build_site, significant
from bilevel_bench.leaderboard.synthetic import synthetic_record, write_synthetic
from bilevel_bench.leaderboard.views import split_budgets
from bilevel_bench.results import write_record

HOSTILE_ERROR = "boom <img src=x onerror=alert(7)>"


def meta(**versions: str) -> dict[str, dict]:
    """Registry metadata of the synthetic problems (``versions``: their current versions)."""
    out = {}
    for name in ("problem-00", "problem-01", "problem-02"):
        out[name] = {"task": "quadratics", "paper_metric": "test_accuracy",
                     "provides": ["second_order"], "ul_depends_on_x": True,
                     "version": versions.get(name.replace("-", "_"), "1")}
    out["lonely"] = {"task": "closed-form toys", "version": "1"}
    return out


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("records")
    write_synthetic(root / "synthetic", problems=3, solvers=3, seeds=3)
    for seed in range(3):
        # every checkpoint misses the LL gate, although the metric meets the target
        write_record(root, synthetic_record("problem-00", "gated", seed, gated=False,
                                            speed=5.0))
        write_record(root, synthetic_record("problem-00", "crashing", seed, status="error",
                                            error=HOSTILE_ERROR, speed=0.1))
        write_record(root, synthetic_record("problem-01", "slow", seed, speed=0.05))
        write_record(root, synthetic_record("problem-01", "exploding", seed, diverge=True))
        write_record(root, synthetic_record("problem-02", "stopped", seed, status="timeout",
                                            error="killed after 60 s", speed=0.1))
        for problem, speed in (("problem-00", 0.45), ("problem-01", 0.4), ("problem-02", 0.45)):
            write_record(root, synthetic_record(problem, "canary-good", seed, canary=True,
                                                speed=speed))
            write_record(root, synthetic_record(problem, "canary-bad", seed, canary=True,
                                                speed=speed / 100))
        # an older version of problem-00 (ranked nowhere) by a solver that would lead it
        write_record(root, synthetic_record("problem-00", "old-timer", seed, speed=50.0,
                                            problem_version="0"))
        # a task with one solver (and a canary): nothing to rank
        write_record(root, synthetic_record("lonely", "solver-00", seed,
                                            task="closed-form toys"))
        write_record(root, synthetic_record("lonely", "canary-good", seed, canary=True,
                                            task="closed-form toys", speed=0.1))
    return root


@pytest.fixture(scope="module")
def site(records, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site([records], out, n_boot=100, official=meta())
    return out


def page(site: Path, prefix: str) -> str:
    matches = sorted(site.glob(f"{prefix}*.html"))
    assert len(matches) == 1, (prefix, [p.name for p in matches])
    return matches[0].read_text(encoding="utf-8")


def quadratics(site: Path) -> str:
    return page(site, "view-task-quadratics-default-")


def why_entry(text: str, problem: str, solver: str) -> tuple[str, str]:
    """The (anchor id, runs' reasons) of a "why" entry of a view page."""
    match = re.search(r'<details id="(why-[^"]+)"><summary><a [^>]*>' + re.escape(problem)
                      + r'</a> · <a [^>]*>' + re.escape(solver) + r"</a>:(.*?)</details>",
                      text, re.S)
    assert match, (problem, solver)
    return match.group(1), html.unescape(match.group(2))


def cell(text: str, anchor: str) -> str:
    """The matrix cell that links to ``anchor``."""
    match = re.search(r'<td [^>]*title="([^"]*)"[^>]*><a href="#' + anchor + '">', text)
    assert match, anchor
    return html.unescape(match.group(1))


def test_every_failed_cell_links_to_why_its_runs_failed(site):
    text = quadratics(site)
    anchor, reasons = why_entry(text, "problem-00", "gated")
    assert "3 LL gate missed" in reasons
    assert "LL gate missed: ul_gap" in reasons and "meets the target 0.001" in reasons
    assert "ll_gap 1.01 > bound 1" in reasons  # the gate, its value and the bound
    assert "seed 0:" in reasons and "seed 2:" in reasons
    assert "LL gate missed" in cell(text, anchor)  # the tooltip says it before the click

    anchor, reasons = why_entry(text, "problem-00", "crashing")
    assert f"error: {HOSTILE_ERROR}" in reasons  # the message, as text
    assert "best gated ul_gap" in reasons and "vs target 0.001" in reasons
    assert "error" in cell(text, anchor)

    _, reasons = why_entry(text, "problem-01", "slow")
    assert re.search(r"target missed: best gated ul_gap [0-9.e-]+ vs target 0\.001 "
                     r"\(\d of 3 rungs\)", reasons)
    _, reasons = why_entry(text, "problem-01", "exploding")
    assert "diverged: ul_gap non-finite from iteration" in reasons
    _, reasons = why_entry(text, "problem-02", "stopped")
    assert "timeout: killed after 60 s" in reasons
    # not run: the reason is in the cell, and in its tooltip
    matrix = text.split("<h2>Per instance</h2>")[1].split("</figure>")[0]
    assert re.search(r'title="not run: no record of this solver on this instance[^"]*"'
                     r"[^>]*>n/a: not run \(counts 0\)", matrix)
    # every cell with a failed or diverged run links to an entry that exists
    for target in re.findall(r'<a href="#(why-[^"]+)">', matrix):
        assert f'<details id="{target}">' in text
    assert len(re.findall(r'<a href="#(why-[^"]+)">', matrix)) == text.count('<details id="why-')


def test_submitted_text_is_escaped(site):
    for path in site.glob("*.html"):
        assert "<img src=x onerror=alert(7)>" not in path.read_text(encoding="utf-8"), path


def test_older_versions_are_listed_apart_and_never_ranked(site):
    text = quadratics(site)
    ranking = text.split("<h2>Per instance</h2>")[0]
    assert "old-timer" not in ranking.split('<section class="summary">')[1]
    assert "problem-00</a> v1" in text and "problem-00</a> v0" not in text.split(
        "<dt>Problem versions</dt>")[1].split("</dd>")[0]
    assert "v0 (current v1)" in text  # the view says what it left out
    problem = page(site, "problem-problem-00-")
    assert '<h2 id="older">Older versions</h2>' in problem
    current, older = problem.split('<h2 id="older">')
    assert "Version 1" in current and "Version 0" in older and "old-timer" in older
    assert "older version: not ranked" in older


def test_registry_version_without_records_ranks_nothing(records, tmp_path):
    """problem-00's current version is 2 in this registry: its v0 and v1 records are older
    versions, and no view ranks problem-00."""
    build_site([records], tmp_path, n_boot=20, official=meta(problem_00="2"))
    text = page(tmp_path, "view-task-quadratics-default-")
    assert "problem-00</a> v" not in text.split("<dt>Problem versions</dt>")[1].split(
        "</dd>")[0]
    problem = page(tmp_path, "problem-problem-00-")
    assert "No record of the registry's current version v2" in problem
    assert "Version 1" in problem.split('<h2 id="older">')[1]


def test_a_view_without_two_solvers_on_an_instance_does_not_rank(site):
    text = page(site, "view-task-closed-form-toys-default-")
    assert "Fewer than two solvers (canaries aside) ran a common instance" in text
    assert "leads" not in text
    ranking = json.loads(next(
        p for p in (site / "data").glob("rank-*.json")
        if any(r["solver"] == "solver-00" and r["instances_total"] == 1
               for r in json.loads(p.read_text())["rows"])).read_text())["rows"]
    assert all(r["rank"] in (None, "canary (reference line, not ranked)") for r in ranking)
    index = (site / "index.html").read_text(encoding="utf-8")
    row = re.search(r"closed-form toys</a></td>.*?</tr>", index, re.S).group(0)
    assert "solver-00" not in row  # no leader


def test_fixed_budget_values_beside_the_rank(site):
    text = quadratics(site)
    assert "ul_gap at budget †" in text and "test_accuracy †" in text
    assert "† reported, not ranked (fixed budget)" in text
    rows = {r["solver"]: r for p in (site / "data").glob("rank-*.json")
            for r in json.loads(p.read_text())["rows"] if r.get("instances_total") == 3}
    assert 0.0 < rows["solver-00"]["out:test_accuracy"] <= 1.0
    assert rows["solver-00"]["final_n"] == 3 and rows["slow"]["final_n"] == 1
    assert rows["exploding"]["final"] == "diverged"
    budget = text.split("At the budget, per instance (reported, not ranked)")[1]
    assert "problem-00: ul_gap · test_accuracy" in budget
    assert "not run" in budget and "diverged" in budget


def test_best_canary_is_a_reference_line_and_problem_pages_list_canaries(site):
    text = quadratics(site)
    svg = re.search(r"<svg.*?</svg>", text, re.S).group(0)
    assert 'data-label="best canary: canary-good"' in svg
    assert 'stroke="#8c8c8c" stroke-width="1.8" stroke-dasharray="3 3"' in svg
    assert "best canary: canary-bad" not in svg
    line = re.search(r'<g class="s( off)?" [^>]*data-key="canary-good"', svg)
    assert line and not line.group(1)  # always drawn
    for name in ("problem-00", "problem-01", "problem-02"):
        problem = page(site, f"problem-{name}-")
        canaries = problem.split("Canaries (no bilevel work")[1].split("</figure>")[0]
        assert "canary-good" in canaries and "canary-bad" in canaries
        assert "of 3" in canaries and "Best final ul_gap" in canaries
    rows = json.loads(next((site / "data").glob("canaries-problem-00-*.json")).read_text())
    verdicts = {r["solver"]: r["verdict"] for r in rows["rows"]}
    assert verdicts["canary-bad"] == "misses the final target"


def test_wording_of_the_smaller_items(site, records):
    text = quadratics(site)
    assert "No run diverges with their default hyperparameters" not in text  # one diverges
    assert "Diverge with their default hyperparameters: exploding (3 of 3 runs)" in text
    problem = page(site, "problem-problem-00-")
    assert "ladder 1, 0.01, 0.001" in problem
    assert significant(0.1 + 0.2) == "0.3" and significant("text") == "text"
    import pandas as pd

    part = pd.DataFrame({"problem": ["a", "b"], "budget_key": [(5.0, None, None),
                                                              (30.0, None, None)]})
    assert split_budgets(part)[0][0] == "5 to 30 s solver CPU (per instance)"


def test_reference_ruleset_pages_speak_of_their_own_ruleset(tmp_path):
    root = tmp_path / "records"
    root.mkdir()
    for seed in range(2):
        for solver in ("solver-00", "solver-01"):
            write_record(root, synthetic_record("problem-00", solver, seed,
                                                ruleset="reference"))
            write_record(root, synthetic_record("problem-00", solver, seed,
                                                diverge=solver == "solver-01"))
    build_site([root], tmp_path / "site", n_boot=20, official=meta())
    reference = page(tmp_path / "site", "view-task-quadratics-reference-")
    assert "No run diverges with the reference ruleset&#39;s hyperparameters" in reference
    assert "default hyperparameters" not in reference
    default = page(tmp_path / "site", "view-task-quadratics-default-")
    assert "Diverge with their default hyperparameters: solver-01 (2 of 2 runs)" in default


@pytest.mark.skipif(bool(_browser_missing()), reason=_browser_missing() or "-")
def test_browser_opens_every_task_view(site, tmp_path):
    """Every task view in headless Chromium: no JavaScript error, its ranking table, matrix
    and fixed-budget table rendered with rows, its plots drawn with curves, and a failed
    cell's link opens the reason of each run."""
    from selenium.webdriver.common.by import By

    views = sorted(site.glob("view-task-*.html"))
    assert len(views) >= 2
    driver = _driver(tmp_path)
    try:
        check_every_page(driver, site)  # also: no broken link, tables within the viewport
        for view in views:
            driver.get(view.as_uri())
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, (view.name, errors)
            tables = driver.find_elements(By.CSS_SELECTOR, "figure.table table.sortable")
            assert len(tables) >= 3, view.name  # ranking, matrix, fixed budget
            for table in tables[:1]:
                assert table.is_displayed()
                assert table.find_elements(By.CSS_SELECTOR, "tbody tr"), view.name
            plots = [p for p in driver.find_elements(By.CSS_SELECTOR, "svg.plot")
                     if p.is_displayed()]
            assert plots, view.name
            for plot in plots:
                assert plot.size["width"] > 300 and plot.size["height"] > 200, view.name
                drawn = plot.find_elements(By.CSS_SELECTOR, "g.s:not(.off) path")
                assert drawn, view.name
        driver.get(next(v for v in views if "quadratics" in v.name).as_uri())
        link = driver.find_element(By.CSS_SELECTOR, "td a[href^='#why-']")
        anchor = link.get_attribute("href").split("#")[1]
        assert link.find_element(By.XPATH, "..").get_attribute("title")
        link.click()
        entry = driver.find_element(By.ID, anchor)
        assert entry.get_attribute("open") is not None and entry.is_displayed()
        assert "seed 0:" in entry.text
        assert driver.execute_script("return window.alertFired === undefined")
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_explain_names_the_gate_missed_at_every_checkpoint():
    """Issue 26's case: every checkpoint misses the LL gate by a little (0.101 vs 0.1)."""
    from bilevel_bench.leaderboard.why import explain

    trace = [{"iteration": k, "gate": False,
              "metrics": {"ul_value": 0.5 - 0.03 * k, "ll_gap": 0.101 + k}} for k in range(4)]
    gate = {"metric": "ll_gap", "rtol": 0.0, "atol": 0.1, "description": ""}
    kind, text = explain("budget", None, trace, "ul_value", False, 0.35, gate, {}, 10, 0, False)
    assert kind == "gate"
    assert "its smallest ll_gap 0.101 > bound 0.1" in text and "0.41 vs target 0.35" in text
    kind, text = explain("converged", None, trace, "ul_value", False, 0.35, gate, {}, 10, 10,
                         True)
    assert (kind, text) == ("", "")
