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
import importlib.util
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

    def at(self, u: float) -> float | int:
        """The value at quantile ``u`` in [0, 1) (log-linear; quasi-random search)."""
        value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        value = min(max(value, self.low), self.high)
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

    def at(self, u: float) -> float | int:
        """The value at quantile ``u`` in [0, 1) (quasi-random search)."""
        if self.integer:
            count = int(self.high) - int(self.low) + 1
            return int(self.low) + min(int(u * count), count - 1)
        return self.low + u * (self.high - self.low)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """A finite set of values."""

    values: Sequence[Any]

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(list(self.values))

    def at(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1) (equal cells; quasi-random search)."""
        values = list(self.values)
        return values[min(int(u * len(values)), len(values) - 1)]

    def contains(self, value: Any) -> bool:
        return value in self.values


@dataclass(frozen=True)
class Hyperparameter:
    """A default value and the search space of the ``tuned`` ruleset (``None``: not tuned)."""

    default: Any
    space: LogUniform | Uniform | Choice | None = None
    help: str = ""


@dataclass(frozen=True)
class Reference:
    """A reference configuration: the authors' published settings for a problem family (or
    instance), or, where they published none, the configuration that froze the instance's
    target; ``source`` says which (paper and section, repository file, or instance)."""

    hyperparameters: Mapping[str, Any]
    source: str


class ReferenceError(ValueError):
    """A reference configuration names an unknown hyperparameter or an invalid value."""


# ---------------------------------------------------------------------- the class
class Solver:
    """Base class of solver plugins (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    citation: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    handles: ClassVar[frozenset[str]] = frozenset({"cuda"})
    hyperparameters: ClassVar[Mapping[str, Hyperparameter]] = {}
    #: optional libraries imported by the solver -> the command that installs them; a solver
    #: whose library is missing is skipped (with that command), never run into an error
    requires: ClassVar[Mapping[str, str]] = {}
    #: reference configurations (the ``reference`` ruleset): problem family or instance name ->
    #: :class:`Reference`; an instance's entry wins over its family's
    references: ClassVar[Mapping[str, Reference]] = {}
    #: a canary does no bilevel work on purpose (x frozen, or moved without any oracle call);
    #: it is shown as a reference line, never ranked (protocol v3, DESIGN.md; records carry it
    #: as ``solver.canary``). No canary may reach an instance's final target or top rungs
    #: (tests/test_canaries.py).
    canary: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for target, ref in cls.__dict__.get("references", {}).items():
            unknown = sorted(set(ref.hyperparameters) - set(cls.hyperparameters))
            if unknown:
                raise ReferenceError(
                    f"solver {cls.__dict__.get('name', cls.__name__)!r}: its reference "
                    f"configuration for {target!r} names unknown hyperparameter "
                    f"{', '.join(map(repr, unknown))}; known: "
                    f"{', '.join(sorted(cls.hyperparameters)) or 'none'}")
            invalid = validate_hyperparameters(cls, ref.hyperparameters)
            if invalid:
                raise ReferenceError(f"solver {cls.__dict__.get('name', cls.__name__)!r}: its "
                                     f"reference configuration for {target!r}: "
                                     + "; ".join(invalid))

    @classmethod
    def reference_for(cls, family: str, instance: str) -> Reference | None:
        """The reference configuration for an instance (its own, else its family's). Declared
        on the class itself: a subclass (another solver) does not inherit its parent's."""
        own = vars(cls).get("references", {})
        return own.get(instance) or own.get(family)

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.hyperparameters))
        if unknown:
            raise ValueError(_unknown_message(type(self), unknown))
        invalid = validate_hyperparameters(type(self), params)
        if invalid:
            raise ValueError(f"solver {self.name!r}: " + "; ".join(invalid))
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
    def search_dimensions(cls) -> list[str]:
        """The tuned hyperparameters (those with a search space), in declaration order: the
        coordinates of :meth:`hyperparameters_at`."""
        return [key for key, spec in cls.hyperparameters.items() if spec.space is not None]

    @classmethod
    def hyperparameters_at(cls, point: Sequence[float]) -> dict[str, Any]:
        """The configuration at a point of the unit cube [0, 1)^d, one coordinate per
        :meth:`search_dimensions` (each mapped by its space's ``at``: log-linear for
        :class:`LogUniform`); defaults for untuned parameters. Quasi-random search feeds this
        with a scrambled low-discrepancy sequence (:mod:`bilevel_bench.tuning`)."""
        keys = cls.search_dimensions()
        if len(point) != len(keys):
            raise ValueError(f"solver {cls.name!r}: a point of its search space has "
                             f"{len(keys)} coordinates ({', '.join(keys)}), got {len(point)}")
        config = cls.defaults()
        for key, u in zip(keys, point, strict=True):
            config[key] = cls.hyperparameters[key].space.at(float(u))
        return config

    @classmethod
    def missing_requirements(cls) -> dict[str, str]:
        """The declared optional libraries that are not importable -> their install command."""
        return {module: command for module, command in cls.requires.items()
                if importlib.util.find_spec(module) is None}

    @classmethod
    def can_solve(cls, features: frozenset[str], provides: frozenset[str], device: str) -> str:
        """Empty string if compatible, otherwise the reason it is not."""
        absent = cls.missing_requirements()
        if absent:
            return "; ".join(f"needs {module}, which is not installed: {command}"
                             for module, command in absent.items())
        if "ul_independent_of_x" not in features:
            provides = frozenset(provides) | {"ul_x_gradient"}
        if "ul_x_gradient" in cls.needs and "ul_x_gradient" not in provides:
            return ("needs the UL objective f to depend on x (its x-step uses only grad_x f, "
                    "which is zero here: x would never move)")
        missing = set(cls.needs) - set(provides)
        if missing:
            return f"needs {sorted(missing)} oracles that the problem does not provide"
        unhandled = set(features) - set(cls.handles) - {"ul_independent_of_x"}
        if unhandled == {"ll_infeasible_in_x"}:
            return ("does not handle ['ll_infeasible_in_x']: the LL is infeasible for part of X "
                    "here (F undefined) and its x-step does not see the constraints' "
                    "multipliers, so nothing keeps x where F is defined")
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
            elif check_hyperparameter(spec, key, spec.default):
                problems.append("the default " + check_hyperparameter(spec, key, spec.default))
    if not isinstance(getattr(cls, "canary", False), bool):
        problems.append(f"`canary` must be True or False, got {cls.canary!r}")
    requires = getattr(cls, "requires", {})
    if not (isinstance(requires, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in requires.items())):
        problems.append("`requires` must be a dict of module name -> install command")
    for method in ("init", "step", "solution"):
        if getattr(cls, method) is getattr(Solver, method):
            problems.append(f"method `{method}` is not implemented")
    return problems


def _kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else type(value).__name__


def check_hyperparameter(spec: Hyperparameter, key: str, value: Any) -> str:
    """Why ``value`` is not a valid value of the hyperparameter ``key`` (empty: valid).

    The declared type is the search space's (an integer space wants an ``int``, a continuous
    one a finite number, a :class:`Choice` one of its values) or, without a space, the
    default's (``bool``, ``int``, ``float``: any finite number, ``str``; a ``None`` default
    accepts anything). The declared range: a :class:`Choice` its values, a :class:`LogUniform`
    space non-negative numbers (0 freezes a step size). Other numeric values outside the search
    space are accepted (the space is where tuning searches, not a domain).
    """
    space = spec.space
    if isinstance(space, Choice):
        if any(type(v) is type(value) and v == value for v in space.values):
            return ""
        return (f"{key}={value!r} is not one of its choices "
                f"{', '.join(repr(v) for v in space.values)}")
    if isinstance(space, LogUniform | Uniform):
        wanted = "int" if space.integer else "float"
    elif spec.default is None:
        return ""
    else:
        wanted = _kind(spec.default)
    if wanted == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif wanted == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            return f"{key}={value!r} must be a finite number"
    else:
        ok = _kind(value) == wanted
    if not ok:
        article = "an" if wanted == "int" else "a"
        return f"{key}={value!r} must be {article} {wanted}, not {_kind(value)}"
    if isinstance(space, LogUniform) and not value >= 0:  # 0 freezes a step (x-frozen runs)
        return f"{key}={value!r} must be non-negative (its search space is log-uniform)"
    return ""


def validate_hyperparameters(cls: type[Solver], params: Mapping[str, Any]) -> list[str]:
    """Type and range problems of hyperparameter values for a solver class (empty: fine);
    unknown names are not reported here."""
    return [problem for key, value in params.items() if key in cls.hyperparameters
            for problem in [check_hyperparameter(cls.hyperparameters[key], key, value)]
            if problem]


def _unknown_message(cls: type, unknown: list[str]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(cls.hyperparameters), n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    known = ", ".join(sorted(cls.hyperparameters)) or "none"
    return f"unknown hyperparameter {', '.join(parts)} for solver {cls.name!r}; known: {known}"
