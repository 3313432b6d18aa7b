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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from bilevel_bench.errors import DataError

#: Oracle capabilities a problem can offer (a solver lists the ones it needs).
#: ``ul_x_gradient``: grad_x f is not identically zero (every problem offers it unless it has
#: the feature ``ul_independent_of_x``); a method whose x-step uses grad_x f alone needs it.
ORACLE_FEATURES = frozenset({"second_order", "ul_x_gradient"})
#: Structural features of a problem that a solver must be able to handle
#: (``ul_independent_of_x`` is informational: it withdraws the ``ul_x_gradient`` oracle).
#: ``ll_infeasible_in_x``: the LL has no feasible point for part of X (coupled constraints on
#: non-separable data), so F is undefined there; a method must keep x where the LL is feasible
#: (an x-step that sees the constraints' multipliers), declared per instance.
PROBLEM_FEATURES = frozenset({"coupled_constraints", "ul_independent_of_x",
                              "ll_infeasible_in_x"})


@dataclass(frozen=True)
class Budget:
    """Limits on one run. ``None`` means unlimited.

    ``seconds`` is solver time (the clock runs only inside ``init``/``step``), ``oracle_cost``
    counts full-batch-equivalent oracle calls (see :mod:`bilevel_bench.oracles`), and
    ``iterations`` counts calls to ``step``.

    An instance's own budget is a *work* budget (``oracle_cost`` and ``iterations``, with
    ``seconds=None``) wherever it has been calibrated: the same seed then stops at the same
    point on every machine, so oracle-clock verdicts do not depend on the CPU. A budget in
    seconds (``run --budget-seconds``) feeds the time-clock views of its own hardware class.
    """

    seconds: float | None = 10.0
    oracle_cost: float | None = None
    iterations: int | None = 100_000

    def scaled(self, factor: float) -> Budget:
        """Every limit multiplied by ``factor`` (iterations rounded up)."""
        if factor == 1:
            return self
        return Budget(
            seconds=None if self.seconds is None else self.seconds * factor,
            oracle_cost=None if self.oracle_cost is None else self.oracle_cost * factor,
            iterations=None if self.iterations is None else math.ceil(self.iterations * factor))

    def merged(self, **overrides: Any) -> Budget:
        """A copy with the non-``None`` overrides applied."""
        values = {k: v for k, v in overrides.items() if v is not None}
        return Budget(**{**self.__dict__, **values})


@dataclass(frozen=True)
class LLGate:
    """When a checkpoint may count for a target: the lower level must be solved.

    ``metric=None`` states that the primary metric is computed by the evaluator from ``x``
    alone with an accurate ``y*(x)`` (closed form or an exact solve), so the solver's own ``y``
    cannot make it look better and no gate is needed. Otherwise the checkpoint counts only if
    ``metrics[metric] <= max(rtol * value_at_start, atol)``, where ``value_at_start`` is the
    metric at the seeded initial point (x0, y0): ``ll_gap`` or an LL stationarity measure
    relative to its start (``rtol``), or an absolute level (``atol``, with ``rtol = 0``).
    """

    metric: str | None = None
    rtol: float = 0.0
    atol: float = 0.0
    why: str = ""

    def passes(self, metrics: Mapping[str, float], start: Mapping[str, float]) -> bool:
        if self.metric is None:
            return True
        value = metrics.get(self.metric, math.nan)
        reference = start.get(self.metric, math.nan)
        bound = self.atol
        if self.rtol and math.isfinite(reference):
            bound = max(bound, self.rtol * abs(reference))
        return math.isfinite(value) and value <= bound

    def describe(self) -> str:
        if self.metric is None:
            return self.why or "none needed: the metric is computed from x with an exact y*(x)"
        parts = []
        if self.rtol:
            parts.append(f"{self.rtol:g} x its value at (x0, y0)")
        if self.atol or not parts:
            parts.append(f"{self.atol:g}")
        text = f"{self.metric} <= max({', '.join(parts)})" if len(parts) > 1 else \
            f"{self.metric} <= {parts[0]}"
        return text + (f" ({self.why})" if self.why else "")

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "rtol": self.rtol, "atol": self.atol,
                "description": self.describe()}


#: the gate of a metric computed by the evaluator from x alone (see :class:`LLGate`)
EXACT_LL = LLGate(None, why="none needed: the metric is computed from x with an exact y*(x)")
#: the gate of a family that declares none but reports ``ll_gap``: within 1e-2 of the gap at
#: the start, or below 1e-6
DEFAULT_LL_GAP_GATE = LLGate("ll_gap", rtol=1e-2, atol=1e-6,
                             why="default for families reporting ll_gap")
#: rungs of a default target ladder (the last one is the instance's final target)
DEFAULT_RUNGS = 10


@dataclass(frozen=True)
class Instance:
    """A named, frozen parameter set of a problem family.

    ``target`` is the frozen threshold on the family's primary metric (lower is better unless
    the family says ``higher_is_better``); ``suites`` lists the suites this instance belongs to.

    ``ladder`` is the instance's ladder of targets on the primary metric (COCO-style runtime
    distributions count every rung a run reaches), monotone in the metric's direction and
    ending at ``target``; ``None`` gives the default ladder: :data:`DEFAULT_RUNGS` rungs from
    the metric's value at the seeded initial point to ``target`` (log-spaced when both are
    positive and lower is better, linear otherwise), see :func:`default_ladder`.
    ``ll_gate`` (or the family's) says when a checkpoint may count (:class:`LLGate`).
    ``checkpoints_per_decade`` overrides the runner's (expensive evaluations use fewer).
    ``features``: structural features of this instance beyond its family's (a subset of
    :data:`PROBLEM_FEATURES`, e.g. ``ll_infeasible_in_x``).
    ``optimum`` records the best-known optimum F* and the reference point the ladder was built
    from (:class:`GapTargets`; build such an instance with :meth:`GapTargets.instance`).
    ``fingerprints`` pins the digests of generated data (``data_fingerprints()`` keys to
    sha256): a build whose data differ raises :class:`FingerprintError` (generated data must
    be the same on every machine, see :mod:`bilevel_bench.generated`).
    """

    params: Mapping[str, Any]
    target: float
    budget: Budget = field(default_factory=Budget)
    suites: tuple[str, ...] = ()
    description: str = ""
    ladder: tuple[float, ...] | None = None
    ll_gate: LLGate | None = None
    checkpoints_per_decade: int | None = None
    features: frozenset[str] = frozenset()
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    #: the best-known optimum and reference point the ladder is built from (:class:`GapTargets`)
    optimum: GapTargets | None = None

    def __post_init__(self) -> None:
        if self.optimum is not None and (self.ladder != self.optimum.ladder
                                         or self.target != self.optimum.target):
            raise LadderError("an instance built from GapTargets must take its ladder and "
                              "target from them (GapTargets.instance)")

    def check_fingerprints(self, name: str, problem: BilevelProblem) -> None:
        """Raise :class:`FingerprintError` if ``problem`` (this instance, built) has other data
        than the pinned ``fingerprints``."""
        if not self.fingerprints:
            return
        built = problem.data_fingerprints()
        for key, pinned in self.fingerprints.items():
            if built.get(key) != pinned:
                raise FingerprintError(
                    f"instance {name!r}: its generated data {key!r} have sha256 "
                    f"{built.get(key)} on this machine, but the instance pins {pinned}; the "
                    "data are not the official ones (report this machine's CPU, BLAS and "
                    "torch version as a bug)")


@dataclass(frozen=True)
class GapTargets:
    """Targets from a best-known optimum (COCO): fixed precisions of one reference gap.

    ``f_star`` is the best-known optimum F* of the hyper-objective F (exact where a closed form
    exists, else the best value of long runs, stated in ``source``); ``f_ref`` = F(x_ref) at one
    fixed reference point ``x_ref`` (described in ``x_ref``), the same for every seed and solver.
    With the reference gap Delta = f_ref - f_star > 0 and precisions
    p_k = final^(k / rungs), k = 1..rungs (log-spaced, from one step below the reference point
    to ``final``), the rungs on the primary metric are

    * ``on="gap"`` (the metric is F - F*, e.g. ``ul_gap``): Delta p_k;
    * ``on="value"`` (the metric is F itself): F* + Delta p_k;
    * ``on="negated"`` (the metric is -F, higher is better, e.g. a profit): -(F* + Delta p_k).

    The last rung (p = ``final``) is the final target, close to F*.
    """

    f_star: float
    f_ref: float
    final: float
    rungs: int = DEFAULT_RUNGS
    on: str = "gap"
    x_ref: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if not self.f_ref > self.f_star or not 0 < self.final < 1 or self.rungs < 1:
            raise LadderError(f"GapTargets needs f_ref > f_star, 0 < final < 1 and at least one "
                              f"rung, got {self.f_ref!r}, {self.f_star!r}, {self.final!r}, "
                              f"{self.rungs!r}")
        if self.on not in ("gap", "value", "negated"):
            raise LadderError(f"GapTargets.on must be 'gap', 'value' or 'negated', "
                              f"got {self.on!r}")

    @property
    def gap(self) -> float:
        """The reference gap Delta = F(x_ref) - F*."""
        return self.f_ref - self.f_star

    @property
    def precisions(self) -> tuple[float, ...]:
        """1 > p_1 > ... > p_rungs = ``final``, log-spaced."""
        return tuple(self.final ** (k / self.rungs) for k in range(1, self.rungs + 1))

    @property
    def ladder(self) -> tuple[float, ...]:
        """The rungs on the primary metric (class docstring)."""
        gaps = [self.gap * p for p in self.precisions]
        if self.on == "gap":
            return tuple(gaps)
        if self.on == "value":
            return tuple(self.f_star + d for d in gaps)
        return tuple(-(self.f_star + d) for d in gaps)

    @property
    def target(self) -> float:
        """The final target: the last rung."""
        return self.ladder[-1]

    def instance(self, params: Mapping[str, Any], **fields: Any) -> Instance:
        """An :class:`Instance` whose ladder and final target are these."""
        return Instance(params, target=self.target, ladder=self.ladder, optimum=self, **fields)

    def describe(self) -> str:
        """One sentence: F*, the reference point and gap, and the final precision."""
        return (f"F* = {self.f_star:.10g}{f' ({self.source})' if self.source else ''}; "
                f"reference gap F(x_ref) - F* = {self.gap:.6g} at x_ref = {self.x_ref or '?'}; "
                f"{self.rungs} rungs at precisions {self.final:g}^(k/{self.rungs}) of that gap")


class FingerprintError(DataError):
    """Generated data that differ from the digests their instance pins."""


class LadderError(ValueError):
    """A declared target ladder is not monotone, or contradicts the metric's direction."""


def check_ladder(instance: str, ladder: Sequence[float], target: float,
                 higher_is_better: bool) -> tuple[float, ...]:
    """Validate a ladder: finite, strictly monotone towards better values of the metric,
    ending at the final ``target``. Raises :class:`LadderError` naming the instance."""
    rungs = tuple(float(v) for v in ladder)
    direction = "increasing" if higher_is_better else "decreasing"
    if not rungs or not all(math.isfinite(v) for v in rungs):
        raise LadderError(f"instance {instance!r}: its ladder must be a non-empty sequence of "
                          f"finite numbers, got {ladder!r}")
    steps = [b - a for a, b in zip(rungs, rungs[1:], strict=False)]
    if any((s <= 0) if higher_is_better else (s >= 0) for s in steps):
        raise LadderError(f"instance {instance!r}: its ladder {list(rungs)} must be strictly "
                          f"{direction} (the primary metric is "
                          f"{'higher' if higher_is_better else 'lower'}-is-better); fix the "
                          "order or the family's higher_is_better")
    if not math.isclose(rungs[-1], target, rel_tol=1e-12, abs_tol=1e-300):
        raise LadderError(f"instance {instance!r}: its ladder must end at the final target "
                          f"{target:g}, but ends at {rungs[-1]:g}")
    return rungs


def default_ladder(start: float, target: float, higher_is_better: bool,
                   rungs: int = DEFAULT_RUNGS) -> tuple[float, ...]:
    """``rungs`` targets from the value at the start (excluded) to ``target`` (included):
    geometric when lower is better and both ends are positive (gaps, losses), linear otherwise.
    If the start already meets the target, or is not finite, the ladder is just ``(target,)``."""
    if not math.isfinite(start) or reached(start, target, higher_is_better) or rungs <= 1:
        return (float(target),)
    if not higher_is_better and start > 0 and target > 0:
        ratio = (target / start) ** (1.0 / rungs)
        values = [start * ratio**k for k in range(1, rungs)]
    else:
        values = [start + (target - start) * k / rungs for k in range(1, rungs)]
    return (*values, float(target))


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` with its index made explicit: ``"cuda"`` is the current CUDA device
    (``cuda:0`` by default). A tensor always reports its index, so a problem's device must
    carry one for ``tensor.device == problem.device`` to hold."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


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
    ll_gate:          when a checkpoint counts for a target (:class:`LLGate`).
    paper_metric:     the metric the papers report, if not the primary one.
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
    #: when a checkpoint may count for a target (instances may override); ``None``: gated by
    #: ``ll_gap`` (:data:`DEFAULT_LL_GAP_GATE`) when the evaluation reports it
    ll_gate: ClassVar[LLGate | None] = None
    #: the metric the papers report for this family, when it is not the primary one (shown on
    #: the problem pages beside the primary metric)
    paper_metric: ClassVar[str | None] = None
    #: the practitioner's task this family stands for (the leaderboard's per-task views)
    task: ClassVar[str] = "other"
    #: False when the UL objective f does not depend on x (x acts only through y*(x)): then
    #: grad_x f = 0 and methods that step x along grad_x f alone cannot move it
    ul_depends_on_x: ClassVar[bool] = True

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
        self.device = resolve_device(device)
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
        out = {"coupled_constraints"} if self.n_constraints else set()
        if not self.ul_depends_on_x:
            out.add("ul_independent_of_x")
        return frozenset(out)

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
            "task": self.task,
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
