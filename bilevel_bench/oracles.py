"""Counted oracles: the only window a solver has onto a problem.

Every autograd pass through ``f``, ``g`` or ``h`` is counted where the work happens, inside the
autograd graph, so a solver that calls ``torch.autograd.grad`` (or ``.backward()``) on the values
itself is counted exactly like one that uses the helpers below. Per level (``f``, ``g``, ``h``):

* ``value``: forward evaluations;
* ``grad``:  first-order backward passes through the value (one pass, whatever it is taken with
  respect to);
* ``hvp``:   second-order passes  d/dv <nabla_v level, u>  (Hessian-vector products, v = v);
* ``jvp``:   second-order passes  d/dw <nabla_v level, u>  with w != v (mixed products, e.g. the
  Jacobian-vector product  nabla^2_xy g u  of implicit differentiation).

Each count is weighted by the batch fraction |B| / n of the finite sum it touched (1 for a
full-batch or deterministic call), and ``samples`` counts the samples touched by forward
evaluations. ``oracle_cost`` is the sum of all weighted passes: the hardware-independent clock
(one forward, one backward or one second-order pass over the full data each cost 1).

Mechanism. The derivative helpers of :class:`Oracles` (``grad``, ``hvp_operator``,
``weighted_grad``, ``jacobian_h``) know which pass they make, so they count it themselves: a
dictionary update, well under a microsecond per pass. Raw autograd use by a solver (values from
``f``/``g``/``h`` differentiated with ``torch.autograd.grad``, ``.backward()`` or ``torch.func``)
is counted by tensor hooks (the fallback, 50-60 us per pass): the value carries a hook that counts
each backward pass through it, and the variables enter the objective as views carrying hooks. A
first-order pass made with ``create_graph=True`` returns gradients tagged with one more hook, so a
later differentiation of that gradient is seen, and its target variable is read when the pass
reaches the variables' views again. ``torch.func`` transforms are counted too, except that a
forward-over-reverse HVP (``jvp(grad(.))``) shows up as gradient passes. Both mechanisms give
identical counts (``Oracles.direct_counting = False`` routes the helpers through the hooks, for
tests that check exactly this).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch

from bilevel_bench.problem import BilevelProblem

LEVELS = ("f", "g", "h")
KINDS = ("value", "grad", "hvp", "jvp")


class OracleCounter:
    """Weighted counts of oracle passes per level and kind, plus samples touched."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {f"{lv}_{k}": 0.0 for lv in LEVELS for k in KINDS}
        self.samples = 0
        self.active = True
        # origin of a second-order pass in flight: (level, first-derivative variable, weight)
        self._pending: tuple[str, str, float] | None = None

    def add(self, level: str, kind: str, weight: float) -> None:
        if self.active:
            self.counts[f"{level}_{kind}"] += weight

    @property
    def oracle_cost(self) -> float:
        return float(sum(self.counts.values()))

    def snapshot(self) -> dict[str, float]:
        """Counts as a flat dict, with ``oracle_cost`` and ``samples``."""
        return {**self.counts, "oracle_cost": self.oracle_cost, "samples": self.samples}

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Do not count inside this block."""
        previous, self.active = self.active, False
        try:
            yield
        finally:
            self.active = previous


class _Site:
    """Where one counted evaluation happened: counter, level, batch weight."""

    __slots__ = ("counter", "level", "weight")

    def __init__(self, counter: OracleCounter, level: str, weight: float) -> None:
        self.counter, self.level, self.weight = counter, level, weight

    def output_hook(self, grad: torch.Tensor) -> None:
        """Fires once per backward pass through the level's value: one gradient."""
        self.counter._pending = None
        self.counter.add(self.level, "grad", self.weight)

    def input_hook(self, var: str) -> Callable[[torch.Tensor], torch.Tensor | None]:
        """Hook on a variable entering the level: tags create_graph gradients, and counts the
        second-order pass that later reaches the variable again."""

        def hook(grad: torch.Tensor) -> torch.Tensor | None:
            counter = self.counter
            pending = counter._pending
            if pending is not None and pending[0] == self.level:
                counter.add(self.level, "hvp" if pending[1] == var else "jvp", pending[2])
                return None
            if grad.requires_grad:  # first-order pass with create_graph=True
                tagged = grad.view_as(grad)
                tagged.register_hook(self.second_hook(var))
                return tagged
            return None

        return hook

    def second_hook(self, var: str) -> Callable[[torch.Tensor], None]:
        """Hook on a gradient of the level: its firing starts a second-order pass."""

        def hook(grad: torch.Tensor) -> None:
            self.counter._pending = (self.level, var, self.weight)

        return hook


class Oracles:
    """What a solver sees of a problem: shapes, counted ``f``/``g``/``h``, projections,
    mini-batch sampling, and derivative helpers built on the counted functions.

    The evaluation half of the problem (``evaluate``, test data, ``y*(x)``) is not exposed.
    """

    #: count the helpers' passes directly (False: through the autograd hooks, as raw use)
    direct_counting: bool = True

    def __init__(self, problem: BilevelProblem, counter: OracleCounter | None = None) -> None:
        self._problem = problem
        self.counter = counter if counter is not None else OracleCounter()
        self.x_shape = torch.Size(problem.x_shape)
        self.y_shape = torch.Size(problem.y_shape)
        self.device = problem.device
        self.dtype = problem.dtype
        self.n_constraints = problem.n_constraints
        self.n_samples: Mapping[str, int] = dict(problem.n_samples)
        self.x_bounds = problem.x_bounds
        self.y_bounds = problem.y_bounds
        self.provides = problem.provides
        # per level: [generator, permutation of the current epoch, cursor] (sample_batch)
        self._epochs: dict[str, list] = {}

    # ----------------------------------------------------------------- counted values
    def f(
        self, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """UL objective f(x, y) (mean over ``batch`` of the UL finite sum), counted."""
        return self._call("f", self._problem.f, x, y, batch)

    def g(
        self, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """LL objective g(x, y) (mean over ``batch`` of the LL finite sum), counted."""
        return self._call("g", self._problem.g, x, y, batch)

    def h(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Coupled constraints h(x, y) <= 0 (vector of length ``n_constraints``), counted."""
        if not self.n_constraints:
            raise ValueError("this problem has no coupled constraints (n_constraints == 0)")
        return self._call("h", lambda x_, y_, _: self._problem.h(x_, y_), x, y, None)

    def _call(
        self, level: str, fn: Callable, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None
    ) -> torch.Tensor:
        """Counted value with autograd hooks (raw autograd use by solvers)."""
        counter = self.counter
        n = self.n_samples.get(level)
        if batch is None or n is None:
            weight, touched = 1.0, (n or 1)
        else:
            touched = int(batch.numel())
            weight = touched / n
        if not counter.active:
            return fn(x, y, batch)
        counter._pending = None
        counter.counts[f"{level}_value"] += weight
        counter.samples += touched
        if not torch.is_grad_enabled() or not (x.requires_grad or y.requires_grad):
            return fn(x, y, batch)
        site = _Site(counter, level, weight)
        try:
            if x.requires_grad:
                x = x.view_as(x)
                x.register_hook(site.input_hook("x"))
            if y.requires_grad:
                y = y.view_as(y)
                y.register_hook(site.input_hook("y"))
            value = fn(x, y, batch)
            if value.requires_grad:
                value.register_hook(site.output_hook)
        except RuntimeError as exc:  # some torch.func transforms refuse tensor hooks
            if "hook" not in str(exc):
                raise
            return fn(x, y, batch)  # the value is counted; its derivatives cannot be seen
        return value

    def _direct_value(
        self, level: str, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None
    ) -> tuple[torch.Tensor, float | None]:
        """``level``'s value at (x, y) without hooks, its value and samples counted as by
        :meth:`_call`. Returns ``(value, weight)``, ``weight`` ``None`` when the counter is
        paused: the caller then counts none of the passes it makes through this value."""
        if level == "h":
            if not self.n_constraints:
                raise ValueError("this problem has no coupled constraints (n_constraints == 0)")
            fn: Callable = lambda x_, y_, _: self._problem.h(x_, y_)  # noqa: E731
            n = None
        else:
            fn = self._problem_level(level)
            n = self.n_samples.get(level)
        if not self.direct_counting:  # the hooks count every pass through this value
            return self._call(level, fn, x, y, batch), None
        counter = self.counter
        if not counter.active:
            return fn(x, y, batch), None
        if batch is None or n is None:
            weight, touched = 1.0, (n or 1)
        else:
            touched = int(batch.numel())
            weight = touched / n
        counter._pending = None
        counter.counts[f"{level}_value"] += weight
        counter.samples += touched
        return fn(x, y, batch), weight

    def _count_pass(self, level: str, kind: str, weight: float | None) -> None:
        """One pass of ``kind`` through a value from :meth:`_direct_value` (no-op when that
        value was not counted, or when the hooks count it: ``direct_counting`` off)."""
        if weight is not None:
            counter = self.counter
            counter._pending = None if kind == "grad" else (level, "y", weight)
            counter.add(level, kind, weight)

    # ------------------------------------------------------------------ simple sets
    def project_x(self, x: torch.Tensor) -> torch.Tensor:
        return self._problem.project_x(x)

    def project_y(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._problem.project_y(x, y)

    def sample_batch(
        self, level: str, batch_size: int | None, generator: torch.Generator
    ) -> torch.Tensor | None:
        """Indices of a mini-batch of ``level``'s finite sum, drawn from ``generator`` by
        sampling without replacement within epochs; ``None`` (full batch) when the level is
        deterministic or ``batch_size`` is ``None`` or at least the number of samples n.

        An epoch is one permutation pi of {0, ..., n-1} drawn from ``generator``; successive
        calls return its consecutive slices pi[c : c + b] (b = ``batch_size``), and a new
        permutation is drawn when fewer than b indices remain (those are dropped). Each batch
        is therefore, marginally, a uniformly random b-subset of the samples (the distribution
        of ``randperm(n)[:b]``, so each batch mean is an unbiased estimate of the full mean),
        the batches of an epoch are disjoint (they partition the samples when b divides n),
        and a draw costs O(b) amortised (O(n) once per epoch) instead of O(n). One epoch state
        per level; passing another generator starts a new epoch from it. The result is a
        read-only view into the epoch's permutation.
        """
        n = self.n_samples.get(level)
        if n is None or batch_size is None or batch_size >= n:
            return None
        state = self._epochs.get(level)
        if state is None or state[0] is not generator or state[2] + batch_size > n:
            perm = torch.randperm(n, generator=generator, device=generator.device)
            state = [generator, perm.to(self.device), 0]
            self._epochs[level] = state
        start = state[2]
        state[2] = start + batch_size
        return state[1][start:start + batch_size]

    # ----------------------------------------------------------- derivative helpers
    def grad(
        self,
        level: str,
        x: torch.Tensor,
        y: torch.Tensor,
        batch: torch.Tensor | None = None,
        wrt: str = "xy",
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(nabla_x level, nabla_y level) at (x, y); a side not in ``wrt`` is ``None``.

        Counts one value and one gradient pass of ``level`` (none if it does not depend on the
        variables in ``wrt``)."""
        self._problem_level(level)  # validates the level name
        return self.weighted_grad(x, y, {level: 1.0}, batches={level: batch}, wrt=wrt)

    def weighted_grad(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: Mapping[str, float],
        mu: torch.Tensor | None = None,
        batches: Mapping[str, torch.Tensor | None] | None = None,
        wrt: str = "xy",
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(nabla_x, nabla_y) of  sum_l weights[l] l(x, y; batches[l]) + mu^T h(x, y)  in one
        backward pass (levels l in {f, g}; a level absent or with weight 0 is not evaluated, h
        only when ``mu`` is given). A side not in ``wrt`` is ``None``; a side the sum does not
        depend on is 0. Counts one value and one gradient pass per level evaluated (no gradient
        for a level whose value does not depend on the variables in ``wrt``)."""
        batches = batches or {}
        with torch.enable_grad():
            xr = x.detach().requires_grad_("x" in wrt)
            yr = y.detach().requires_grad_("y" in wrt)
            total: torch.Tensor | None = None
            used: list[tuple[str, float | None]] = []
            terms = [(lv, w) for lv, w in weights.items() if w and self._problem_level(lv)]
            if mu is not None:
                terms.append(("h", 1.0))
            for level, w in terms:
                value, weight = self._direct_value(level, xr, yr, batches.get(level))
                if value.requires_grad:
                    used.append((level, weight))
                term = (mu * value).sum() if level == "h" else (value if w == 1.0 else w * value)
                total = term if total is None else total + term
            inputs = [t for t in (xr, yr) if t.requires_grad]
            # an objective may not depend on a variable at all (e.g. f on x): its gradient is 0
            if total is not None and total.requires_grad:
                raw = torch.autograd.grad(total, inputs, allow_unused=True)
                for level, weight in used:
                    self._count_pass(level, "grad", weight)
            else:
                raw = (None,) * len(inputs)
            grads = iter(torch.zeros_like(t) if g is None else g
                         for t, g in zip(inputs, raw, strict=True))
        return (next(grads) if "x" in wrt else None, next(grads) if "y" in wrt else None)

    def hvp_operator(
        self, level: str, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor, str], torch.Tensor]]:
        """One gradient pass, then products with its derivative at will.

        Returns ``(nabla_y level, product)`` where ``product(v, "y")`` is
        nabla^2_yy level . v (counted as ``hvp``) and ``product(v, "x")`` is
        nabla^2_xy level . v = d/dx <nabla_y level, v> (counted as ``jvp``).
        """
        self._problem_level(level)  # validates the level name
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            yr = y.detach().requires_grad_(True)
            value, weight = self._direct_value(level, xr, yr, batch)
            gy = torch.autograd.grad(value, yr, create_graph=True)[0]
            self._count_pass(level, "grad", weight)

        def product(v: torch.Tensor, wrt: str = "y") -> torch.Tensor:
            target = yr if wrt == "y" else xr
            with torch.enable_grad():
                (out,) = torch.autograd.grad(gy, target, v, retain_graph=True, allow_unused=True)
            if out is None:  # the pass never reached the target: nothing to count
                return torch.zeros_like(target)
            self._count_pass(level, "hvp" if wrt == "y" else "jvp", weight)
            return out

        return gy.detach(), product

    def jacobian_h(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(h, dh/dx, dh/dy) at (x, y): the constraint values (shape (m,)) and their Jacobians
        (shapes (m, *x_shape) and (m, *y_shape); zero where h does not depend on a variable),
        all detached. Counts one value and one gradient pass of h: the m vector-Jacobian
        products e_i^T dh run as one batched backward pass."""
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            yr = y.detach().requires_grad_(True)
            h, weight = self._direct_value("h", xr, yr, None)
            m = h.numel()
            jx = jy = None
            if h.requires_grad:
                eye = torch.eye(m, dtype=h.dtype, device=h.device).reshape(m, *h.shape)
                jx, jy = torch.autograd.grad(h, (xr, yr), eye, is_grads_batched=True,
                                             allow_unused=True)
                self._count_pass("h", "grad", weight)
        zeros = dict(dtype=h.dtype, device=h.device)
        jx = torch.zeros(m, *x.shape, **zeros) if jx is None else jx
        jy = torch.zeros(m, *y.shape, **zeros) if jy is None else jy
        return h.detach(), jx, jy

    # ------------------------------------------------------------ compiled fast paths
    def uncounted(self, level: str) -> Callable:
        """``level``'s function (``f`` or ``g``: ``(x, y, batch) -> value``), uncounted, for a
        compiled fast path (``torch.compile``/``torch.func`` cannot trace the counting).
        Such a path must keep the counts exact: measure the counts of one call of the eager
        step it replaces with :meth:`measure_counts`, then :meth:`add_counts` them for each
        compiled call (valid while every call makes the same passes on same-sized batches)."""
        return self._problem_level(level)

    @contextlib.contextmanager
    def measure_counts(self) -> Iterator[dict[str, float]]:
        """Counts of the passes made in this block, as a dict (filled on exit) that
        :meth:`add_counts` takes; they are also counted as usual (not when paused). Measured
        on a fresh active counter, so a paused counter does not hide them."""
        outer, delta = self.counter, {}
        self.counter = OracleCounter()
        try:
            yield delta
        finally:
            inner, self.counter = self.counter, outer
        delta.update({k: v for k, v in inner.counts.items() if v}, samples=inner.samples)
        self.add_counts(delta)

    def add_counts(self, delta: Mapping[str, float]) -> None:
        """Add counts measured by :meth:`measure_counts` (nothing when paused)."""
        counter = self.counter
        if counter.active:
            counter._pending = None
            for key, value in delta.items():
                if key == "samples":
                    counter.samples += int(value)
                else:
                    counter.counts[key] += value

    def _problem_level(self, level: str) -> Callable:
        if level == "f":
            return self._problem.f
        if level == "g":
            return self._problem.g
        if level == "h":
            raise ValueError("use oracles.h(x, y) and autograd for constraint derivatives")
        raise ValueError(f"unknown level {level!r}: expected 'f' or 'g'")
