"""The static leaderboard: built from real and synthetic records plus hostile and broken files;
escaping, skipped records, version and hardware separation, downloads, offline links, the CLI,
and a real headless Chromium that sorts a table and follows links from file://."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from bilevel_bench.cli import main
from bilevel_bench.leaderboard.build import build_site
from bilevel_bench.leaderboard.synthetic import synthetic_record, write_synthetic
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
    (root / "corrupt.json").write_text("{not json", encoding="utf-8")
    (root / "foreign.json").write_text(json.dumps({"schema": "someone-else/v3"}), encoding="utf-8")
    future = synthetic_record("problem-02", "solver-00", 9)
    future["schema_version"] = 99
    (root / "future.json").write_text(json.dumps(future), encoding="utf-8")
    (root / "copy").mkdir()
    shutil.copy(next((root / "synthetic").glob("*.json")), root / "copy")  # merged twice
    return root


@pytest.fixture(scope="module")
def site(records, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    index = build_site([records], out, n_boot=100,
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


def test_versions_and_hardware_are_never_mixed(site):
    texts = pages(site)
    problem = next(t for n, t in texts.items() if n.startswith("problem-problem-00-"))
    assert "Version 2" in problem and "Version 1" in problem and "superseded" in problem
    costs = [json.loads(p.read_text())["rows"] for p in (site / "data").glob("costs-*.json")]
    versions = {(r["problem"], r["problem_version"]) for rows in costs for r in rows}
    assert ("problem-00", "2") in versions and ("problem-00", "1") not in versions
    time_views = [n for n in texts if n.startswith("ranking-synthetic-default-time-")]
    assert len(time_views) == 2  # one wall-time ranking per hardware class
    assert len([n for n in texts if n.startswith("ranking-synthetic-default-oracles-")]) == 1
    assert "gpu:other|threads=1" in texts["index.html"]


def test_rulesets_are_separate_and_tuning_trials_unranked(site):
    texts = pages(site)
    assert [n for n in texts if n.startswith("ranking-synthetic-tuned-oracles-")]
    assert not [n for n in texts if "tuning" in n]
    assert "2 run(s) of the tuning ruleset" in texts["index.html"]
    problem = next(t for n, t in texts.items() if n.startswith("problem-problem-02-"))
    assert "tuned ruleset" in problem and "tuning ruleset" not in problem
    solver = next(t for n, t in texts.items() if n.startswith("solver-solver-02-"))
    assert ">tuning<" in solver  # its configurations are listed


def test_pages_tables_downloads_and_offline_links(site):
    texts = pages(site)
    index = texts["index.html"]
    assert "Profile score" in index and "Mean rank" in index and "<svg" in index
    for name, text in texts.items():
        assert not re.search(r"""(src|href)=["'](https?:)?//""", text), name  # no CDN
        for link in re.findall(r"""(?:src|href)=["']([^"'#]+)""", text):
            if link.startswith("data:,"):
                continue
            assert (site / unquote(link)).is_file(), (name, link)
    tables = re.findall(r'<figure class="table" id="([^"]+)"', "".join(texts.values()))
    for table in tables:
        assert (site / "data" / f"{table}.csv").is_file()
        assert json.loads((site / "data" / f"{table}.json").read_text())["rows"] is not None
    problem = next(t for n, t in texts.items() if n.startswith("problem-vpbgd-toy-"))
    for expected in ("Formulation", "Target", "Source paper", "Time to target", "Oracles to target",
                     "Success", "Statuses", "against solver time", "against oracle cost"):
        assert expected in problem
    solver = next(t for n, t in texts.items() if n.startswith("solver-aid-cg-"))
    for expected in ("Citation", "Hyperparameter configurations", "Provenance", "Source sha256"):
        assert expected in solver


def test_cli_builds_and_prints_the_index(records, tmp_path, capsys):
    assert main(["leaderboard", str(records), "-o", str(tmp_path / "s"), "--bootstrap", "20",
                 "--no-suites"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str((tmp_path / "s" / "index.html").resolve())
    assert (tmp_path / "s" / "static" / "sort.js").is_file()


def _browser_missing() -> str:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return ("needs Debian's chromium and chromium-driver (/usr/bin/chromium, "
                "/usr/bin/chromedriver): installed by scripts/setup.sh")
    return ""  # selenium itself is a dev dependency: its absence is a failure, not a skip


@pytest.mark.skipif(bool(_browser_missing()), reason=_browser_missing() or "-")
def test_real_browser_from_file_url(site, tmp_path):
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get((site / "index.html").as_uri())
        assert urlparse(driver.current_url).scheme == "file"
        table = driver.find_element(By.CSS_SELECTOR, "table.sortable")
        headers = table.find_elements(By.CSS_SELECTOR, "thead th")
        column = [h.text for h in headers].index("Mean rank")

        def keys() -> list[float]:
            cells = table.find_elements(By.CSS_SELECTOR, f"tbody td:nth-child({column + 1})")
            return [float(c.get_attribute("data-sort")) for c in cells]

        headers[column].find_element(By.TAG_NAME, "button").click()
        assert keys() == sorted(keys()) and len(keys()) > 2
        assert headers[column].get_attribute("aria-sort") == "ascending"
        headers[column].find_element(By.TAG_NAME, "button").click()
        assert keys() == sorted(keys(), reverse=True)

        # a hostile solver name is text, not markup, and ran no script
        shown = driver.find_elements(By.XPATH, "//a[contains(text(), 'alert(1)')]")
        assert shown and shown[0].text == HOSTILE
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018

        link = driver.find_element(By.CSS_SELECTOR, "#problems a[href^='problem-problem-00-']")
        link.click()
        assert driver.find_element(By.TAG_NAME, "h1").text == "Problem problem-00"
        assert driver.find_elements(By.CSS_SELECTOR, "svg.plot")
        driver.back()
        assert driver.title.startswith("Ranking")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)
