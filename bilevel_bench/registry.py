"""Problems, suites and solvers by name.

Plugins are found through entry points (pytest's idea):

* ``bilevel_bench.problems``: a :class:`~bilevel_bench.problem.BilevelProblem` subclass, or a
  sequence of them; each contributes its declared ``instances``;
* ``bilevel_bench.solvers``: a :class:`~bilevel_bench.solver.Solver` subclass;

and, for work in progress, a file path: ``path/to/file.py:ClassName``. A suite is the set of
instances that list it in their ``suites``. The core never imports a concrete problem or solver:
everything concrete arrives here.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

from bilevel_bench.errors import DataError, PluginError, UnknownNameError
from bilevel_bench.problem import (
    PROBLEM_FEATURES,
    BilevelProblem,
    Instance,
    LadderError,
    check_ladder,
)
from bilevel_bench.solver import Solver, validate_solver_class

PROBLEM_GROUP = "bilevel_bench.problems"
SOLVER_GROUP = "bilevel_bench.solvers"


@dataclass(frozen=True)
class ProblemEntry:
    """One registered problem instance."""

    name: str
    family: type[BilevelProblem]
    instance: Instance
    source: str  # "module:Class" or "/path/file.py:Class", importable in a worker process

    def make(
        self, seed: int = 0, device: str = "cpu", dtype: torch.dtype | None = None
    ) -> BilevelProblem:
        """Build the instance for one seed on one device."""
        kwargs: dict[str, Any] = dict(self.instance.params)
        if dtype is not None:
            kwargs["dtype"] = dtype
        problem = self.family(seed=seed, device=device, **kwargs)
        problem.instance_name = self.name
        self.instance.check_fingerprints(self.name, problem)
        return problem


    def features(self) -> frozenset[str]:
        """Structural features of the instance (e.g. coupled constraints), read from a built
        instance (cached): families may set ``n_constraints`` per instance."""
        key = (self.source, self.name)
        declared = frozenset(self.instance.features)
        if key not in _FEATURES:
            if self.family.n_constraints:
                _FEATURES[key] = frozenset({"coupled_constraints"} | (
                    set() if self.family.ul_depends_on_x else {"ul_independent_of_x"}))
            else:
                try:
                    _FEATURES[key] = self.make(seed=0).features
                except (ImportError, DataError):
                    # an optional dependency or data file is missing: plan with the family's
                    # declared features; each run then ends as an `error` record whose message
                    # names the install command or the file (planning never crashes)
                    return declared | (frozenset() if self.family.ul_depends_on_x else
                                        frozenset({"ul_independent_of_x"}))
        return _FEATURES[key] | declared


_FEATURES: dict[tuple[str, str], frozenset[str]] = {}


@dataclass(frozen=True)
class BrokenPlugin:
    group: str
    name: str
    error: str


# --------------------------------------------------------------------- loading
def load_object(spec: str) -> Any:
    """Import ``module.path:attr`` or ``path/to/file.py:attr``."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise PluginError(
            f"cannot read plugin spec {spec!r}: write `path/to/file.py:ClassName` "
            "or `package.module:ClassName`"
        )
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise PluginError(f"plugin file {str(path)!r} does not exist (from spec {spec!r})")
        module_name = "bilevel_bench_plugin_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(module_name)
        if module is None:
            file_spec = importlib.util.spec_from_file_location(module_name, path)
            assert file_spec is not None and file_spec.loader is not None
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[module_name] = module
            try:
                file_spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[module_name]
                raise PluginError(
                    f"plugin file {str(path)!r} failed to import: {type(exc).__name__}: {exc}"
                ) from exc
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise PluginError(
                f"plugin module {target!r} failed to import: {type(exc).__name__}: {exc}"
            ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise PluginError(f"{target!r} has no attribute {attr!r}{hint}") from None


def is_path_spec(spec: str) -> bool:
    return ".py:" in spec


#: the distribution whose own plugins win any name clash
OFFICIAL_DIST = "bilevel-bench"


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return str(getattr(dist, "name", "") or "")


def _origin(value: str, dist: str) -> str:
    """Where a plugin comes from, for messages: its import spec and distribution."""
    return f"{value} (distribution {dist})" if dist else value


@cache
def _entry_points(group: str) -> tuple[tuple[Any, ...], tuple[BrokenPlugin, ...]]:
    """Loaded ``(name, origin, value, object)`` entries and broken plugins of a group; the
    official distribution's first, then by name and distribution, so that clashes resolve
    the same way on every machine."""
    loaded, broken = [], []

    def order(ep: Any) -> tuple[bool, str, str]:
        dist = _dist_name(ep)
        return (dist != OFFICIAL_DIST, ep.name, dist)

    for ep in sorted(entry_points(group=group), key=order):
        origin = _origin(ep.value, _dist_name(ep))
        try:
            loaded.append((ep.name, origin, ep.value, ep.load()))
        except Exception as exc:  # a broken plugin must not break the others
            broken.append(BrokenPlugin(group, ep.name, f"{type(exc).__name__}: {exc}"))
    return tuple(loaded), tuple(broken)


#: per group, plugins refused because a name they declare is taken (filled by the registries)
_CLASHES: dict[str, list[BrokenPlugin]] = {PROBLEM_GROUP: [], SOLVER_GROUP: []}


def broken_plugins() -> list[BrokenPlugin]:
    """Plugins whose entry point could not be loaded or whose names clash, with the reason."""
    problems()
    solvers()
    loaded = [b for group in (PROBLEM_GROUP, SOLVER_GROUP) for b in _entry_points(group)[1]]
    return loaded + _CLASHES[PROBLEM_GROUP] + _CLASHES[SOLVER_GROUP]


# --------------------------------------------------------------------- problems
def _families(obj: Any, source: str) -> Iterable[tuple[type[BilevelProblem], str]]:
    if isinstance(obj, type) and issubclass(obj, BilevelProblem):
        yield obj, source
        return
    if isinstance(obj, list | tuple):
        module = source.rpartition(":")[0]
        for item in obj:
            if isinstance(item, type) and issubclass(item, BilevelProblem):
                yield item, f"{module}:{item.__name__}"
                continue
            raise PluginError(f"entry point {source!r} lists {item!r}, not a BilevelProblem")
        return
    raise PluginError(f"entry point {source!r} is {obj!r}, not a BilevelProblem subclass")


def family_entries(family: type[BilevelProblem], source: str) -> dict[str, ProblemEntry]:
    """The instances of one problem family."""
    if not family.instances:
        raise PluginError(f"problem family {family.__name__} declares no `instances`")
    for name, instance in family.instances.items():
        unknown = sorted(set(instance.features) - PROBLEM_FEATURES)
        if unknown:
            raise PluginError(f"instance {name!r} declares unknown features {unknown}; known: "
                              f"{', '.join(sorted(PROBLEM_FEATURES))} (family "
                              f"{family.__name__}, {source})")
        if instance.ladder is not None:
            try:
                check_ladder(name, instance.ladder, instance.target, family.higher_is_better)
            except LadderError as exc:
                raise PluginError(f"{exc} (family {family.__name__}, {source})") from None
    return {
        name: ProblemEntry(name, family, instance, source)
        for name, instance in family.instances.items()
    }


@lru_cache(maxsize=1)
def problems() -> dict[str, ProblemEntry]:
    """All registered problem instances by name. A plugin family that declares an instance
    name already taken by another family is refused (listed by :func:`broken_plugins` with
    both sources); the official instances always keep their names."""
    entries: dict[str, ProblemEntry] = {}
    origins: dict[str, str] = {}
    clashes = _CLASHES[PROBLEM_GROUP]
    clashes.clear()
    for ep_name, origin, value, obj in _entry_points(PROBLEM_GROUP)[0]:
        try:
            families = list(_families(obj, value))
        except PluginError as exc:
            clashes.append(BrokenPlugin(PROBLEM_GROUP, ep_name, str(exc)))
            continue
        for family, source in families:
            try:
                mine = family_entries(family, source)
            except PluginError as exc:
                clashes.append(BrokenPlugin(PROBLEM_GROUP, ep_name, str(exc)))
                continue
            taken = sorted(n for n in mine if n in entries and entries[n].family is not family)
            if taken:
                clashes.append(BrokenPlugin(
                    PROBLEM_GROUP, ep_name,
                    f"refused: problem instance {taken[0]!r} of {source} "
                    f"({origin}) is already declared by {origins[taken[0]]}; rename it"))
                continue
            for name, entry in mine.items():
                entries[name] = entry
                origins[name] = f"{entry.source} ({origin})"
    return entries


def get_problem(name: str) -> ProblemEntry:
    """A problem instance by name, or by ``source:instance`` for file plugins."""
    registry = problems()
    if name in registry:
        return registry[name]
    if is_path_spec(name) or name.count(":") >= 2:
        source, _, instance = name.rpartition(":")
        family = load_object(source)
        entries = family_entries(next(iter(_families(family, source)))[0], source)
        if instance in entries:
            entry = entries[instance]
            if instance in registry and registry[instance].family is not entry.family:
                raise PluginError(f"problem instance {instance!r} of {source} is already "
                                  f"declared by {registry[instance].source}; rename it")
            return entry
        raise UnknownNameError(_unknown("problem instance", instance, entries))
    raise UnknownNameError(_unknown("problem", name, registry))


def suites() -> dict[str, list[str]]:
    """Suite name -> instance names, from the instances' declared suites."""
    table: dict[str, list[str]] = {}
    for name, entry in problems().items():
        for suite in entry.instance.suites:
            table.setdefault(suite, []).append(name)
    return table


def get_suite(name: str) -> list[str]:
    table = suites()
    if name not in table:
        raise UnknownNameError(_unknown("suite", name, table))
    return table[name]


# ---------------------------------------------------------------------- solvers
@lru_cache(maxsize=1)
def solvers() -> dict[str, type[Solver]]:
    """All registered solvers by name (broken ones are in :func:`broken_plugins`). A solver
    whose entry-point name or class ``name`` is already taken by another solver is refused
    (listed by :func:`broken_plugins` with both sources); official solvers keep their names."""
    table: dict[str, type[Solver]] = {}
    origins: dict[str, str] = {}
    clashes = _CLASHES[SOLVER_GROUP]
    clashes.clear()
    for ep_name, origin, _value, obj in _entry_points(SOLVER_GROUP)[0]:
        names = [ep_name] + [n for n in [getattr(obj, "name", None)]
                             if isinstance(n, str) and n and n != ep_name]
        taken = [n for n in names if n in origins and table.get(n) is not obj]
        if taken:
            clashes.append(BrokenPlugin(
                SOLVER_GROUP, ep_name,
                f"refused: solver name {taken[0]!r} of {origin} is already registered by "
                f"{origins[taken[0]]}; rename it"))
            continue
        table[ep_name] = obj
        for n in names:
            origins[n] = origin
    return table


def _solver_origins() -> dict[str, str]:
    """Class ``name`` and entry-point name of every registered solver -> where it comes from."""
    origins: dict[str, str] = {}
    registered = solvers()
    for ep_name, origin, _value, obj in _entry_points(SOLVER_GROUP)[0]:
        if registered.get(ep_name) is obj:
            origins[ep_name] = origin
            if isinstance(getattr(obj, "name", None), str):
                origins[obj.name] = origin
    return origins


def get_solver(spec: str) -> type[Solver]:
    """A solver class by registered name or ``path/to/file.py:ClassName``; validated."""
    if is_path_spec(spec):
        cls = load_object(spec)
        name = getattr(cls, "name", None)
        taken = _solver_origins().get(name) if isinstance(name, str) else None
        if taken is not None and solvers().get(name) is not cls:
            raise PluginError(f"solver name {name!r} of {spec} is already registered by "
                              f"{taken}; rename it (records are ranked by name)")
    else:
        registry = solvers()
        if spec not in registry:
            broken = {b.name: b.error for b in _entry_points(SOLVER_GROUP)[1]}
            if spec in broken:
                raise PluginError(f"solver plugin {spec!r} failed to load: {broken[spec]}")
            raise UnknownNameError(_unknown("solver", spec, registry))
        cls = registry[spec]
    problems_found = validate_solver_class(cls)
    if problems_found:
        raise PluginError(
            f"solver {spec!r} breaks the plugin contract:\n  - " + "\n  - ".join(problems_found)
        )
    return cls


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(known) if len(known) <= 30 else f"{len(known)} names"
    return f"unknown {kind} {name!r}.{hint} Known: {listing} (see `bilevel-bench list`)."
