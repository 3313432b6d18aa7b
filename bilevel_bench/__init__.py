"""bilevel_bench: the benchmark suite and leaderboard for bilevel optimization."""

from bilevel_bench.oracles import OracleCounter, Oracles
from bilevel_bench.problem import BilevelProblem, Budget, Instance
from bilevel_bench.solver import Choice, Hyperparameter, LogUniform, Solver, Uniform

__version__ = "0.1.0"

__all__ = [
    "BilevelProblem", "Budget", "Choice", "Hyperparameter", "Instance", "LogUniform",
    "OracleCounter", "Oracles", "Solver", "Uniform", "load_results", "__version__",
]


def load_results(*directories, **kwargs):
    """Run records under the directories as a pandas DataFrame, one row per run
    (see :func:`bilevel_bench.results.load_results`; imported lazily to keep start-up light)."""
    from bilevel_bench.results import load_results as _load

    return _load(*directories, **kwargs)
