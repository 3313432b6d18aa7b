"""The static leaderboard: built from real and synthetic records plus hostile and broken files;
escaping, skipped records, per-task views that never mix budgets, rulesets, versions or
hardware, n/a vs not run vs failed vs diverged, unofficial problems, NaN metrics, an empty
folder, downloads, offline links, the CLI, and a real headless Chromium that opens every page
(JavaScript errors, broken links, decisive tables wider than a 1280 px viewport, plot fonts)
and saves screenshots."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from bilevel_bench.cli import main
from bilevel_bench.leaderboard.build import build_site
from bilevel_bench.leaderboard.compact import compact_record
from bilevel_bench.leaderboard.synthetic import synthetic_record, write_synthetic
from bilevel_bench.leaderboard.views import (
    annotate,
    problem_ranks,
    registry_problems,
)
from bilevel_bench.problem import Budget
from bilevel_bench.results import write_record
from bilevel_bench.runner import RunTask, execute

HOSTILE = "<script>alert(1)</script>"
HOSTILE_PROBLEM = '"><img src=x onerror=alert(2)>'
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("records")
    # real runs, in process, with a tiny budget
    for solver in ("aid-cg", "random-search"):
        for seed in (0, 1):
            task = RunTask("vpbgd-toy", solver, seed=seed, budget=Budget(iterations=15))
            write_record(root, execute(task))
    write_synthetic(root / "synthetic", problems=3, solvers=3, seeds=3)
    # a second hardware class, a newer version of problem-00, a hostile solver name
    (root / "tuning").mkdir()
    for seed in range(2):
        write_record(root, synthetic_record("problem-01", "solver-00", seed,
                                            hardware_class="gpu:other|threads=1"))
        write_record(root, synthetic_record("problem-00", "solver-01", seed,
                                            problem_version="2"))
        write_record(root, synthetic_record("problem-00", HOSTILE, seed, problem_version="2",
                                            speed=5.0))
        write_record(root, synthetic_record("problem-01", HOSTILE, seed, speed=5.0))
        write_record(root, synthetic_record(HOSTILE_PROBLEM, "solver-00", seed))
        # the tuned ruleset is ranked separately; the tuning trials are never ranked
        write_record(root, synthetic_record("problem-02", "solver-02", seed, ruleset="tuned"))
        write_record(root / "tuning", synthetic_record("problem-02", "solver-02", seed,
                                                       ruleset="tuning", speed=0.1))
        # a plugin run only on problem-00 with another budget: its own view, never mixed
        write_record(root, synthetic_record("problem-00", "plugin", seed, problem_version="2",
                                            budget=5.0, speed=3.0))
        # a coupled-constraint task: one solver handles it, one diverges, one fails
        write_record(root, synthetic_record("coupled-00", "solver-00", seed, n_constraints=2,
                                            task="network design with coupled constraints",
                                            handles=("coupled_constraints",)))
        write_record(root, synthetic_record("coupled-00", "solver-01", seed, n_constraints=2,
                                            task="network design with coupled constraints",
                                            handles=("coupled_constraints",), diverge=True,
                                            status="budget"))
        write_record(root, synthetic_record("coupled-00", "solver-02", seed, n_constraints=2,
                                            task="network design with coupled constraints",
                                            handles=("coupled_constraints",), speed=1e-3,
                                            status="error"))
    (root / "corrupt.json").write_text("{not json", encoding="utf-8")
    (root / "foreign.json").write_text(json.dumps({"schema": "someone-else/v3"}), encoding="utf-8")
    future = synthetic_record("problem-02", "solver-00", 9)
    future["schema_version"] = 99
    (root / "future.json").write_text(json.dumps(future), encoding="utf-8")
    (root / "copy").mkdir()
    shutil.copy(next((root / "synthetic").glob("*.json")), root / "copy")  # merged twice
    return root


def official() -> dict[str, dict]:
    """Registry metadata of vpbgd-toy plus the synthetic problems (the hostile one is left
    out: it is unofficial)."""
    meta = {"vpbgd-toy": registry_problems()["vpbgd-toy"]}
    for name in ("problem-00", "problem-01", "problem-02", "coupled-00"):
        meta[name] = {"task": "quadratics", "paper_metric": "test_accuracy",
                      "provides": ["second_order"], "ul_depends_on_x": True}
    return meta


@pytest.fixture(scope="module")
def site(records, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    index = build_site([records], out, n_boot=100, official=official(),
                       suites={"toys": ["vpbgd-toy"], "synthetic": ["problem-00", "problem-01",
                                                                    "problem-02"]})
    assert index == out / "index.html"
    return out


def pages(site: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in site.glob("*.html")}


def test_hostile_names_are_escaped_everywhere(site):
    texts = pages(site)
    assert not [name for name, text in texts.items() if HOSTILE in text or HOSTILE_PROBLEM in text]
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in texts["index.html"]
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escaped in texts["index.html"]
    assert any(name.startswith("solver-script-alert-1-script") for name in texts)
    assert all(re.fullmatch(r"[a-z0-9.-]+\.html", name) for name in texts)


def test_skipped_page_lists_bad_files_with_reasons(site):
    text = pages(site)["skipped.html"]
    assert "corrupt.json" in text and "unreadable JSON" in text
    assert "foreign.json" in text and "someone-else/v3" in text
    assert "future.json" in text and "unsupported schema_version 99" in text
    assert "duplicate of run id" in text
    rows = json.loads((site / "data" / "skipped.json").read_text())["rows"]
    assert len(rows) == 4


def view_pages(texts: dict[str, str], prefix: str) -> dict[str, str]:
    return {n: t for n, t in texts.items() if n.startswith(f"view-{prefix}")}


def test_versions_and_hardware_are_never_mixed(site):
    texts = pages(site)
    problem = next(t for n, t in texts.items() if n.startswith("problem-problem-00-"))
    assert "Version 2" in problem and "Version 1" in problem and "Older versions" in problem
    views = view_pages(texts, "suite-synthetic-default-")
    assert len(views) == 2  # two budgets: 10 s for all, 5 s for the plugin
    for text in views.values():
        versions = text.split("<dt>Problem versions</dt>")[1].split("</dd>")[0]
        assert "problem-00</a> v2" in versions and "problem-00</a> v1" not in versions
        assert "problem-00</a> v1 (current v2)" in text  # listed apart, not ranked
        for fact in ("Ruleset", "Budget", "Problem versions", "Hardware classes", "Seeds"):
            assert f"<dt>{fact}</dt>" in text
    main = next(t for t in views.values() if "<dd>10 s solver CPU</dd>" in t)
    # one solver-time panel per hardware class, and the oracle clock pooling them
    assert main.count("Clock: solver CPU time on ") == 2
    assert "Clock: oracle cost (all hardware)" in main
    assert "gpu:other|threads=1" in main


def test_budgets_never_mix_and_a_solver_is_ranked_on_what_it_ran(site):
    views = view_pages(pages(site), "suite-synthetic-default-")
    plugin = next(t for t in views.values() if "<dd>5 s solver CPU</dd>" in t)
    main = next(t for t in views.values() if "<dd>10 s solver CPU</dd>" in t)
    assert ">plugin<" in plugin
    assert ">plugin<" not in main.split("<h2>Per instance</h2>")[0]  # not ranked there
    rows = [json.loads(p.read_text())["rows"] for p in (site / "data").glob("rank-*.json")]
    plugin_rows = [r for table in rows for r in table if r["solver"] == "plugin"]
    assert plugin_rows and all(r["instances"] == 1 for r in plugin_rows)  # not 3


def test_task_views_summaries_and_cell_states(site):
    texts = pages(site)
    assert view_pages(texts, "task-quadratics-default-")
    coupled = next(iter(view_pages(texts, "task-coupled-constraint-tasks-default-").values()))
    assert not view_pages(texts, "task-network-design")  # same instances: shown once
    summary = coupled.split('<section class="summary">')[1].split("</section>")[0]
    assert "<b>solver-00</b> leads" in summary and "Robustness" in summary
    assert "Diverge with their default hyperparameters: solver-01 (2 of 2 runs)" in summary
    matrix = coupled.split("<h2>Per instance</h2>")[1]
    assert "(2 diverged)" in matrix and "(2 failed)" in matrix
    assert "n/a: does not handle coupled constraints" in matrix  # plugin, solver-03...
    quad = next(t for n, t in view_pages(texts, "task-quadratics-default-").items()
                if "<dd>10 s solver CPU</dd>" in t)
    assert "not run" in quad.split("<h2>Per instance</h2>")[1]  # solver-00 skipped problem-02
    index = texts["index.html"]
    assert "Views per task" in index and "coupled-constraint tasks" in index


def test_nan_metrics_show_diverged_never_a_number(site):
    texts = pages(site)
    problem = next(t for n, t in texts.items() if n.startswith("problem-coupled-00-"))
    assert "diverged" in problem
    for text in texts.values():
        assert not re.search(r">\s*-?nan\s*<", text, re.I)
    rows = json.loads(next((site / "data").glob("problem-coupled-00-*.json")).read_text())["rows"]
    assert next(r for r in rows if r["solver"] == "solver-01")["median_final_primary"] \
        == "diverged"


def test_unofficial_problems_are_shown_apart(site):
    texts = pages(site)
    assert "Unofficial problems" in texts["index.html"]
    unofficial = view_pages(texts, "unofficial-")
    assert unofficial and all("onerror=alert(2)&gt;" in t for t in unofficial.values())
    for name, text in view_pages(texts, "task-").items():
        assert "onerror" not in text, name


def test_problem_page_shows_the_papers_metric(site):
    texts = pages(site)
    problem = next(t for n, t in texts.items() if n.startswith("problem-problem-01-"))
    assert "Papers' metric" in problem and "test_accuracy" in problem
    assert "(papers&#39; metric)" in problem


def test_solver_page_ranks_and_hyperparameters(site):
    texts = pages(site)
    solver = next(t for n, t in texts.items() if n.startswith("solver-solver-01-"))
    assert "Rank per problem, and ratio to the fastest" in solver
    assert "Ratio to fastest" in solver and "Fastest to target" in solver
    assert "Hyperparameters used under each ruleset" in solver


def test_problem_ranks_of_every_solver_at_once(records):
    """The ranks behind the solver pages, computed once for all solvers: in each (problem,
    version, ruleset) every solver that ran it has a row; ranks follow (solved fraction, ECDF
    area) lexicographically (1 + the number of solvers strictly ahead), the best solver is
    rank 1, and a ratio to the fastest is >= 1 (1 for the fastest, which is named)."""
    from bilevel_bench.leaderboard.collect import collect

    data = collect([records], official=official())
    frame = annotate(data.frame, data.problems)
    ranks = problem_ranks(frame)
    groups = frame.groupby(["problem", "problem_version", "ruleset"])["solver"].unique()
    assert sum(len(rows) for rows in ranks.values()) == sum(len(s) for s in groups)
    by_group: dict[tuple, list[dict]] = {}
    for solver, rows in ranks.items():
        assert [(r["problem"], r["problem_version"], r["ruleset"]) for r in rows] == sorted(
            (r["problem"], r["problem_version"], r["ruleset"]) for r in rows)
        for r in rows:
            by_group.setdefault((r["problem"], r["problem_version"], r["ruleset"]), []).append(
                {**r, "solver": solver})
    for key, rows in by_group.items():
        keys = [(r["solved_fraction"], r["area"]) for r in rows]
        assert {r["of"] for r in rows} == {len(groups[key])}
        for r in rows:
            assert r["rank"] == 1 + sum(k > (r["solved_fraction"], r["area"]) for k in keys)
            assert (r["best_solved_fraction"], r["best_area"]) == max(keys)
            assert r["ratio"] >= 1.0
        best = next(r for r in rows if r["solver"] == rows[0]["best"])
        assert best["rank"] == 1
        finite = [r for r in rows if r["ratio"] != float("inf")]
        assert not finite or min(r["ratio"] for r in finite) == 1.0
        assert not finite or next(r for r in rows if r["solver"] == rows[0]["fastest"]
                                  )["ratio"] == 1.0


def test_empty_folder_builds_a_site_that_says_so(tmp_path):
    (tmp_path / "none").mkdir()
    index = build_site([tmp_path / "none"], tmp_path / "site", n_boot=10, official=False)
    text = index.read_text()
    assert "No run records were found" in text and "none" in text


def test_plots_draw_at_most_eight_curves_and_list_all(site):
    texts = pages(site)
    for name, text in texts.items():
        for svg in re.findall(r"<svg.*?</svg>", text, re.S):
            drawn = len(re.findall(r'<g class="s" ', svg))
            legend = len(re.findall(r'<g class="lg', svg))
            assert drawn <= 8, name
            assert legend == len(re.findall(r'<g class="s', svg)), name
            assert "more (hover" not in svg


def test_compact_records_keep_hits_and_summary():
    record = synthetic_record("problem-00", "solver-00", 0, checkpoints=400, speed=0.5)
    small = compact_record(record, max_rows=30)
    assert len(small["trace"]) <= 30 + 3 and small["summary"] == record["summary"]
    kept = {r["iteration"] for r in small["trace"]}
    hits = {h["iteration"] for h in record["summary"]["ladder_hits"] if h}
    assert hits <= kept and record["trace"][-1]["iteration"] in kept
    assert small["compacted"] == {"trace_rows": len(record["trace"]),
                                  "kept": len(small["trace"]), "digits": 6}
    assert compact_record(small, max_rows=5) is small  # idempotent


def test_cli_builds_and_prints_the_index(records, tmp_path, capsys):
    assert main(["leaderboard", str(records), "-o", str(tmp_path / "s"), "--bootstrap", "20",
                 "--no-suites"]) == 0
    printed = capsys.readouterr().out.strip()
    index = (tmp_path / "s" / "index.html").resolve()
    assert printed == f"site of your own records (not the official site): {index}"
    assert (tmp_path / "s" / "static" / "sort.js").is_file()


def _browser_missing() -> str:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return ("needs Debian's chromium and chromium-driver (/usr/bin/chromium, "
                "/usr/bin/chromedriver): installed by scripts/setup.sh")
    return ""  # selenium itself is a dev dependency: its absence is a failure, not a skip


WIDTH = 1280  # the viewport the decisive tables must fit without horizontal scrolling

#: measured in the page: the widest decisive table against the viewport, broken local links,
#: and the smallest rendered font of any text in a plot
PROBE = """
const out = {tables: [], links: [], fonts: Infinity, overflow: 0};
const vw = document.documentElement.clientWidth;
out.vw = vw;
out.overflow = document.documentElement.scrollWidth - vw;
for (const t of document.querySelectorAll("table.decisive")) {
  const r = t.getBoundingClientRect();
  if (r.right > vw + 1 || r.width > vw) out.tables.push([t.closest("figure").id, r.right]);
}
for (const a of document.querySelectorAll("a[href]")) {
  const h = a.getAttribute("href");
  if (h.startsWith("#") && !document.getElementById(h.slice(1))) out.links.push(h);
}
for (const text of document.querySelectorAll("svg.plot text")) {
  const box = text.getBoundingClientRect();
  if (box.height === 0) continue;  // hidden
  const px = parseFloat(getComputedStyle(text).fontSize) *
             text.ownerSVGElement.getScreenCTM().a;
  out.fonts = Math.min(out.fonts, px);
}
return out;
"""


def _driver(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--window-size={WIDTH},900",
                "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def screenshot(driver, path: Path) -> Path:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(int(height) + 120, 6000))
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, 900)
    return path


def check_every_page(driver, site: Path) -> dict[str, dict]:
    """Open every page: no JavaScript error, no broken link, decisive tables within the
    viewport, plot fonts at least 11 px. Returns the probe per page."""
    from selenium.webdriver.common.by import By

    probes = {}
    for page in sorted(site.glob("*.html")):
        driver.get(page.as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, (page.name, errors)
        probe = driver.execute_script(PROBE)
        assert not probe["tables"], (page.name, probe)
        assert not probe["links"], (page.name, probe["links"])
        fonts = probe["fonts"]  # null: no plot on the page
        assert fonts is None or fonts >= 11, (page.name, fonts)
        assert fonts is not None or "svg" not in page.read_text(), page.name
        for link in driver.find_elements(By.CSS_SELECTOR, "a[href]"):
            href = link.get_attribute("href")
            parsed = urlparse(href)
            if parsed.scheme == "file":
                assert Path(unquote(parsed.path)).is_file(), (page.name, href)
            else:
                assert parsed.scheme == "data", (page.name, href)  # nothing online
        probes[page.name] = probe
    return probes


@pytest.mark.skipif(bool(_browser_missing()), reason=_browser_missing() or "-")
def test_real_browser_every_page(site, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("LEADERBOARD_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    driver = _driver(tmp_path)
    try:
        check_every_page(driver, site)

        driver.get((site / "index.html").as_uri())
        assert urlparse(driver.current_url).scheme == "file"
        screenshot(driver, shots / "index.png")
        table = driver.find_element(By.CSS_SELECTOR, "#headline ~ figure table.sortable")
        headers = table.find_elements(By.CSS_SELECTOR, "thead th")
        column = [h.text for h in headers].index("ECDF area [95% CI]")

        def keys() -> list[float]:
            cells = table.find_elements(By.CSS_SELECTOR, f"tbody td:nth-child({column + 1})")
            return [float(c.get_attribute("data-sort")) for c in cells]

        headers[column].find_element(By.TAG_NAME, "button").click()
        assert keys() == sorted(keys()) and len(keys()) > 2
        headers[column].find_element(By.TAG_NAME, "button").click()
        assert keys() == sorted(keys(), reverse=True)

        # a hostile solver name is text, not markup, and ran no script
        shown = driver.find_elements(By.XPATH, "//a[contains(text(), 'alert(1)')]")
        assert shown and shown[0].text == HOSTILE
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018

        # a task view: switch the clock, toggle a greyed curve, hover values
        view = next(site.glob("view-task-quadratics-default-*.html"))
        driver.get(view.as_uri() + "?highlight=solver-02")
        screenshot(driver, shots / "task-view.png")
        bar = driver.find_element(By.CSS_SELECTOR, ".clockbar")
        sections = driver.find_elements(By.CSS_SELECTOR, "section.clock")
        assert sections[0].is_displayed() and not sections[1].is_displayed()
        bar.find_elements(By.TAG_NAME, "button")[1].click()
        assert sections[1].is_displayed() and not sections[0].is_displayed()
        svg = sections[1].find_element(By.CSS_SELECTOR, "svg.plot")
        entry = svg.find_element(By.CSS_SELECTOR, "g.lg")
        curve = svg.find_element(By.CSS_SELECTOR, f"g.s[data-i='{entry.get_attribute('data-i')}']")
        before = curve.get_attribute("class")
        entry.click()
        assert curve.get_attribute("class") != before
        from selenium.webdriver.common.action_chains import ActionChains

        driver.execute_script("arguments[0].scrollIntoView()", svg)
        ActionChains(driver).move_to_element_with_offset(svg, -120, 0).pause(0.1) \
            .move_by_offset(20, 5).perform()
        tips = [t for t in driver.find_elements(By.CSS_SELECTOR, ".plottip") if t.is_displayed()]
        assert tips and "budget" in tips[0].text
        # ?highlight= marks the solver's table rows and travels with the links
        assert driver.find_elements(By.CSS_SELECTOR, "tr.hl")
        link = driver.find_element(By.CSS_SELECTOR, "a[href^='index.html']")
        assert "highlight=solver-02" in link.get_attribute("href")

        solver = next(site.glob("solver-solver-01-*.html"))
        driver.get(solver.as_uri())
        screenshot(driver, shots / "solver.png")
        print(f"screenshots: {shots}")
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)
