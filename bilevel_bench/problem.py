"""The bilevel problem contract.

A bilevel problem is

    min_x  F(x) = f(x, y*(x))
    s.t.   y*(x) in argmin_{y in Y(x)} g(x, y),   Y(x) = {y in box : h(x, y) <= 0},

with an upper-level (UL) objective ``f``, a lower-level (LL) objective ``g`` and optional coupled
constraints ``h`` (a vector; equality constraints are written as two inequalities). ``x`` and ``y``
are single tensors (flatten structured variables). Simple sets (boxes) are handled by projections.

A problem *family* is a subclass of :class:`BilevelProblem`; its *instances* (named parameter sets,
each with a frozen target and default budgets) are declared in the class attribute ``instances``.
A problem object is one instance built for one seed, device and dtype.

Two halves, deliberately separated:

* the **oracle half** (``f``, ``g``, ``h``, projections, ``sample_batch``, ``init``) is what a
  solver may use, and only through :class:`bilevel_bench.oracles.Oracles`, which counts every call;
* the **evaluation half** (``evaluate``) is untimed, uncounted and never shown to the solver: it
  computes the true quality of a candidate ``(x, y)`` with an accurate ``y*(x)`` (closed form
  where one exists) and may use held-out test data.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

#: Oracle capabilities a problem can offer (a solver lists the ones it needs).
ORACLE_FEATURES = frozenset({"second_order"})
#: Structural features of a problem that a solver must be able to handle.
PROBLEM_FEATURES = frozenset({"coupled_constraints"})


@dataclass(frozen=True)
class Budget:
    """Limits on one run. ``None`` means unlimited.

    ``seconds`` is solver time (the clock runs only inside ``init``/``step``), ``oracle_cost``
    counts full-batch-equivalent oracle calls (see :mod:`bilevel_bench.oracles`), and
    ``iterations`` counts calls to ``step``.
    """

    seconds: float | None = 10.0
    oracle_cost: float | None = None
    iterations: int | None = 100_000

    def merged(self, **overrides: Any) -> Budget:
        """A copy with the non-``None`` overrides applied."""
        values = {k: v for k, v in overrides.items() if v is not None}
        return Budget(**{**self.__dict__, **values})


@dataclass(frozen=True)
class Instance:
    """A named, frozen parameter set of a problem family.

    ``target`` is the frozen threshold on the family's primary metric (lower is better unless
    the family says ``higher_is_better``); ``suites`` lists the suites this instance belongs to.
    """

    params: Mapping[str, Any]
    target: float
    budget: Budget = field(default_factory=Budget)
    suites: tuple[str, ...] = ()
    description: str = ""


class BilevelProblem:
    """Base class of a problem family. Subclasses set the class attributes and implement
    ``f``, ``g`` (and ``h`` when ``n_constraints > 0``), ``init`` and ``evaluate``.

    Class attributes
    ----------------
    name:             family name (instances have their own names, see ``instances``).
    version:          bump whenever data, formulation or targets change.
    citation:         source of the formulation (paper and arXiv id).
    primary_metric:   the key of ``evaluate``'s output that the target applies to.
    higher_is_better: direction of the primary metric.
    provides:         oracle features offered, subset of ``ORACLE_FEATURES``.
    instances:        instance name -> :class:`Instance`.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    citation: ClassVar[str] = ""
    formulation: ClassVar[str] = ""
    primary_metric: ClassVar[str] = "ul_gap"
    higher_is_better: ClassVar[bool] = False
    provides: ClassVar[frozenset[str]] = frozenset({"second_order"})
    instances: ClassVar[Mapping[str, Instance]] = {}

    #: number of coupled constraints h(x, y) <= 0 (0: none)
    n_constraints: int = 0
    #: number of samples of each level's finite sum ({"f": m, "g": n}); absent: deterministic
    n_samples: Mapping[str, int] = {}
    #: boxes (lower, upper) for x and y; ``None`` means unbounded on that side
    x_bounds: tuple[float | None, float | None] = (None, None)
    y_bounds: tuple[float | None, float | None] = (None, None)

    def __init__(
        self,
        seed: int = 0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        **params: Any,
    ) -> None:
        self.seed = int(seed)
        self.device = torch.device(device)
        self.dtype = dtype
        self.params = dict(params)
        self.instance_name: str = ""

    # ----------------------------------------------------------------- oracle half
    x_shape: torch.Size
    y_shape: torch.Size

    def f(
        self, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Upper-level objective (mean over ``batch`` of the UL finite sum if given)."""
        raise NotImplementedError

    def g(
        self, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Lower-level objective (mean over ``batch`` of the LL finite sum if given)."""
        raise NotImplementedError

    def h(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Coupled constraints, a vector of length ``n_constraints``; feasible iff all <= 0."""
        raise NotImplementedError(f"problem {self.name!r} has no coupled constraints")

    def project_x(self, x: torch.Tensor) -> torch.Tensor:
        """Euclidean projection onto the simple set of x (a box by default)."""
        return _clamp(x, self.x_bounds)

    def project_y(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Euclidean projection onto the simple set of y (a box by default; not h)."""
        return _clamp(y, self.y_bounds)

    def init(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Seeded initial point (x0, y0), drawn with ``generator``."""
        raise NotImplementedError

    # ------------------------------------------------------------- evaluation half
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Untimed, high-accuracy quality of a candidate. Must contain ``primary_metric``;
        conventionally ``ul_value``, ``ul_gap``, ``ll_gap``, ``constraint_violation`` and
        ``hypergrad_norm`` where computable, plus task metrics."""
        raise NotImplementedError

    def gradient_mapping(self, x: torch.Tensor, grad: torch.Tensor,
                         step: float = 1e-6) -> torch.Tensor:
        """(x - Proj_X(x - step * grad)) / step: the gradient inside the set of x, and zero at
        stationary points on its boundary; its norm is the reported ``hypergrad_norm``."""
        return (x - self.project_x(x - step * grad)) / step

    # ----------------------------------------------------------------- description
    @property
    def features(self) -> frozenset[str]:
        """Structural features a solver must handle."""
        return frozenset({"coupled_constraints"}) if self.n_constraints else frozenset()

    def data_fingerprints(self) -> dict[str, str]:
        """Fingerprints of every dataset or generated tensor the instance uses."""
        return {}

    def describe(self) -> dict[str, Any]:
        """The problem part of a run record."""
        return {
            "name": self.instance_name or self.name,
            "family": self.name,
            "version": self.version,
            "params": _jsonable(self.params),
            "primary_metric": self.primary_metric,
            "higher_is_better": self.higher_is_better,
            "citation": self.citation,
            "dataset_fingerprints": self.data_fingerprints(),
            "x_dim": int(math.prod(self.x_shape)),
            "y_dim": int(math.prod(self.y_shape)),
            "n_constraints": self.n_constraints,
        }

    # -------------------------------------------------------------------- helpers
    def tensor(self, value: Any) -> torch.Tensor:
        """``value`` as a tensor on this problem's device and dtype."""
        return torch.as_tensor(value, dtype=self.dtype, device=self.device)

    def data_tensors(self) -> dict[str, torch.Tensor]:
        """Every public tensor attribute of the problem (used to detect mutation by a solver);
        attributes starting with ``_`` are the evaluation's private caches and may change."""
        return {k: v for k, v in vars(self).items()
                if isinstance(v, torch.Tensor) and not k.startswith("_")}


def reached(value: float, target: float, higher_is_better: bool) -> bool:
    """Whether a metric value meets its target."""
    if not math.isfinite(value):
        return False
    return value >= target if higher_is_better else value <= target


def fingerprint_tensors(*tensors: torch.Tensor) -> str:
    """sha256 over the bytes of tensors (used for generated data)."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _clamp(t: torch.Tensor, bounds: tuple[float | None, float | None]) -> torch.Tensor:
    lower, upper = bounds
    if lower is None and upper is None:
        return t
    return t.clamp(min=lower, max=upper)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return repr(value)
