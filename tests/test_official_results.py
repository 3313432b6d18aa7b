"""scripts/official-results.sh on a tiny configuration (one instance, one solver, one seed,
0.2 s): records under the output folder, compacted, of the declared hardware class, a
manifest, and a built site. Slow (real runs): out of the default test run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_official_results_script_tiny(tmp_path):
    out = tmp_path / "submissions" / "reference"
    env = {**os.environ, "VENV": str(Path(sys.executable).parents[1]),
           "OFFICIAL_PROBLEMS": "vpbgd-toy", "OFFICIAL_SOLVERS": "aid-cg",
           "OFFICIAL_SEEDS": "1", "OFFICIAL_BUDGET_SECONDS": "0.2", "OFFICIAL_WORKERS": "1",
           "OFFICIAL_OUT": str(out), "OFFICIAL_SITE": str(tmp_path / "site")}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "official-results.sh")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = sorted(out.glob("*.json"))
    assert records  # default (aid-cg declares no reference configuration for this toy)
    for path in records:
        record = json.loads(path.read_text())
        assert record["compacted"]["kept"] <= 40 + len(record["summary"]["ladder_hits"])
    assert "hardware class:" in (out / "MANIFEST.txt").read_text()
    assert (tmp_path / "site" / "index.html").is_file()
    assert "site built in" in done.stdout
