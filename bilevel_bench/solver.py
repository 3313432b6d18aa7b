"""The solver plugin contract.

A solver is one small class (benchopt's idea) with an optax-like ``init``/``update`` contract:

    class MySolver(Solver):
        name = "my-solver"
        version = "1.0"
        citation = "Author et al., arXiv:XXXX.XXXXX"
        needs = frozenset({"second_order"})          # oracles it uses
        handles = frozenset({"coupled_constraints"})  # problem features it copes with
        hyperparameters = {"lr": Hyperparameter(0.1, LogUniform(1e-3, 1.0))}

        def init(self, problem, x0, y0, generator): ...   # problem is an Oracles view
        def step(self): ...                               # one outer iteration
        def solution(self): return self.x, self.y

Hyperparameters are validated and set as attributes (``self.lr``). The runner times ``init`` and
``step`` only; ``solution`` must be cheap and must not change the solver's state.
"""

from __future__ import annotations

import difflib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from bilevel_bench.oracles import Oracles
from bilevel_bench.problem import ORACLE_FEATURES, PROBLEM_FEATURES

#: what ``Solver.handles`` may contain
SOLVER_HANDLES = PROBLEM_FEATURES | {"cuda"}


# ------------------------------------------------------------------- search spaces
@dataclass(frozen=True)
class LogUniform:
    """Log-uniform distribution on [low, high] (integers if ``integer``)."""

    low: float
    high: float
    integer: bool = False

    def sample(self, rng: random.Random) -> float | int:
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return round(value) if self.integer else value

    def contains(self, value: Any) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high


@dataclass(frozen=True)
class Uniform:
    """Uniform distribution on [low, high] (integers if ``integer``)."""

    low: float
    high: float
    integer: bool = False

    def sample(self, rng: random.Random) -> float | int:
        if self.integer:
            return rng.randint(int(self.low), int(self.high))
        return rng.uniform(self.low, self.high)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """A finite set of values."""

    values: Sequence[Any]

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(list(self.values))

    def contains(self, value: Any) -> bool:
        return value in self.values


@dataclass(frozen=True)
class Hyperparameter:
    """A default value and the search space of the ``tuned`` ruleset (``None``: not tuned)."""

    default: Any
    space: LogUniform | Uniform | Choice | None = None
    help: str = ""


# ---------------------------------------------------------------------- the class
class Solver:
    """Base class of solver plugins (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    citation: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    handles: ClassVar[frozenset[str]] = frozenset({"cuda"})
    hyperparameters: ClassVar[Mapping[str, Hyperparameter]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.hyperparameters))
        if unknown:
            raise ValueError(_unknown_message(type(self), unknown))
        self.params: dict[str, Any] = {
            key: params.get(key, spec.default) for key, spec in self.hyperparameters.items()
        }
        for key, value in self.params.items():
            setattr(self, key, value)

    # the contract
    def init(
        self, problem: Oracles, x0: torch.Tensor, y0: torch.Tensor, generator: torch.Generator
    ) -> None:
        """Set up state from the initial point; may make oracle calls (they are counted)."""
        raise NotImplementedError

    def step(self) -> None:
        """One outer iteration."""
        raise NotImplementedError

    def solution(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current candidate (x, y); cheap and free of side effects."""
        raise NotImplementedError

    # descriptions
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {key: spec.default for key, spec in cls.hyperparameters.items()}

    @classmethod
    def sample_hyperparameters(cls, rng: random.Random) -> dict[str, Any]:
        """One draw from the declared search space (defaults for untuned parameters)."""
        return {
            key: spec.space.sample(rng) if spec.space is not None else spec.default
            for key, spec in cls.hyperparameters.items()
        }

    @classmethod
    def can_solve(cls, features: frozenset[str], provides: frozenset[str], device: str) -> str:
        """Empty string if compatible, otherwise the reason it is not."""
        missing = set(cls.needs) - set(provides)
        if missing:
            return f"needs {sorted(missing)} oracles that the problem does not provide"
        unhandled = set(features) - set(cls.handles)
        if unhandled:
            return f"does not handle {sorted(unhandled)}"
        if str(device).startswith("cuda") and "cuda" not in cls.handles:
            return "does not support CUDA"
        return ""


def validate_solver_class(cls: Any) -> list[str]:
    """Contract problems of a solver class, as readable sentences (empty: fine)."""
    problems: list[str] = []
    if not (isinstance(cls, type) and issubclass(cls, Solver)):
        return [f"{cls!r} is not a subclass of bilevel_bench.Solver"]
    if not isinstance(cls.name, str) or not cls.name.strip():
        problems.append("class attribute `name` must be a non-empty string")
    elif cls.name != cls.name.strip() or any(c.isspace() for c in cls.name):
        problems.append(f"`name` {cls.name!r} must not contain white space")
    if not isinstance(cls.version, str) or not cls.version:
        problems.append("class attribute `version` must be a non-empty string")
    if not isinstance(cls.citation, str) or not cls.citation:
        problems.append("class attribute `citation` must say where the method comes from")
    if not set(cls.needs) <= ORACLE_FEATURES:
        problems.append(f"`needs` may only contain {sorted(ORACLE_FEATURES)}, "
                        f"got {sorted(cls.needs)}")
    if not set(cls.handles) <= SOLVER_HANDLES:
        problems.append(f"`handles` may only contain {sorted(SOLVER_HANDLES)}, "
                        f"got {sorted(cls.handles)}")
    if not isinstance(cls.hyperparameters, Mapping):
        problems.append("`hyperparameters` must be a dict of name -> Hyperparameter")
    else:
        for key, spec in cls.hyperparameters.items():
            if not isinstance(spec, Hyperparameter):
                problems.append(f"hyperparameter {key!r} must be a Hyperparameter, got {spec!r}")
            elif spec.space is not None and not spec.space.contains(spec.default):
                problems.append(f"default of {key!r} ({spec.default!r}) lies outside its space")
    for method in ("init", "step", "solution"):
        if getattr(cls, method) is getattr(Solver, method):
            problems.append(f"method `{method}` is not implemented")
    return problems


def _unknown_message(cls: type, unknown: list[str]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(cls.hyperparameters), n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    known = ", ".join(sorted(cls.hyperparameters)) or "none"
    return f"unknown hyperparameter {', '.join(parts)} for solver {cls.name!r}; known: {known}"
