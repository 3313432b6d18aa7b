from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

PLUGINS = Path(__file__).parent / "plugins"


def plugin(name: str, file: str = "bad_solvers.py") -> str:
    """Path spec of a test plugin class, as a third-party author would pass it."""
    return f"{PLUGINS / file}:{name}"


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return tmp_path / "results"
