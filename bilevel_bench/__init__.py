"""bilevel_bench: the benchmark suite and leaderboard for bilevel optimization.

The public names are imported on first use (PEP 562), so that ``import bilevel_bench`` (and the
command line's ``--help`` / ``--version``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from bilevel_bench.oracles import OracleCounter, Oracles
    from bilevel_bench.problem import BilevelProblem, Budget, Instance, LLGate
    from bilevel_bench.solver import (
        Choice,
        Hyperparameter,
        LogUniform,
        Reference,
        Solver,
        Uniform,
    )

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "OracleCounter": "oracles", "Oracles": "oracles",
    "BilevelProblem": "problem", "Budget": "problem", "Instance": "problem", "LLGate": "problem",
    "Reference": "solver",
    "Choice": "solver", "Hyperparameter": "solver", "LogUniform": "solver", "Solver": "solver",
    "Uniform": "solver",
}

__all__ = [
    "BilevelProblem", "Budget", "Choice", "Hyperparameter", "Instance", "LLGate", "LogUniform",
    "OracleCounter", "Oracles", "Reference", "Solver", "Uniform", "load_results", "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bilevel_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bilevel_bench.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_results(*directories: Any, **kwargs: Any) -> Any:
    """Run records under the directories as a pandas DataFrame, one row per run
    (see :func:`bilevel_bench.results.load_results`; imported lazily to keep start-up light)."""
    from bilevel_bench.results import load_results as _load

    return _load(*directories, **kwargs)
