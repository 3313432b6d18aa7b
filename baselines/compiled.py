"""Compiled fast paths of the reference solvers (opt-in: ``solver.compiled = True``).

A solver's whole step is written as a pure function of its state and mini-batches on the
problem's *uncounted* objectives (:meth:`Oracles.uncounted`) with ``torch.func`` transforms, then

1. traced once with ``make_fx`` on fake tensors (a data-dependent Python branch, e.g.
   ``if bool(t > 0)``, raises instead of being baked into the graph; the problem's tensors are
   read as constants),
2. the constants lifted to graph inputs (so Inductor's on-disk FX-graph cache can reuse the
   compiled code across processes: a warm start compiles in ~0.3 s instead of ~1.5 s),
3. compiled by Inductor (C++ kernels built with the machine's compiler) and called without
   Dynamo: no bytecode tracing, no guards per call.

Counts stay exact: the first step of a run is eager and its passes are recorded, in order
(:func:`record_passes`); each compiled call replays them, one addition per pass as the eager step
makes them, so the totals equal the eager ones bit for bit (not only to rounding: a batch weight
|B| / n is rarely a power of two). A step whose number of passes varies (CG stopping early)
returns the number of products it made and the solver replays the passes of one product that
many times (:meth:`PassLog.section` tags them in the eager step). Any failure (tracing,
compiling, running) warns once and the solver continues eagerly on the same mini-batches, so a
run never fails for the fast path.

Compile options (:func:`_inductor_options`): ``cpp.vec_isa_ok`` is taken as true on x86 (the
CPU's vector extensions are read from /proc/cpuinfo instead of being probed by building and
loading six test libraries in subprocesses, ~0.9 s per process); reductions read materialised
buffers (``realize_acc_reads_threshold = 1``); on the CPU the wrapper that calls the kernels is
C++ too (``cpp_wrapper``: no Python per kernel call, argument check or allocation; the lifted
constants carry their traced values, which it reads).
"""

from __future__ import annotations

import contextlib
import platform
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch

from bilevel_bench.oracles import OracleCounter


class PassLog(dict):
    """Counts dict of a recording counter: every ``counts[key] += w`` reads 0 and logs
    ``(section, key, w)``; ``section`` tags the passes made inside :meth:`section`."""

    def __init__(self, keys) -> None:
        super().__init__({k: 0.0 for k in keys})
        self.log: list[tuple[str | None, str, float]] = []
        self.samples = 0  # samples touched in the block (set on exit)
        self.current: str | None = None

    def __getitem__(self, key: str) -> float:
        super().__getitem__(key)  # unknown keys raise as before
        return 0.0

    def __setitem__(self, key: str, value: float) -> None:
        if value:
            self.log.append((self.current, key, value))

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        previous, self.current = self.current, name
        try:
            yield
        finally:
            self.current = previous

    def passes(self, section: str | None = None) -> list[tuple[str, float]]:
        """The (key, weight) passes logged in ``section`` (None: outside every section)."""
        return [(k, w) for s, k, w in self.log if s == section]


class _RecordingCounter(OracleCounter):
    def __init__(self) -> None:
        super().__init__()
        self.counts = PassLog(self.counts)


@contextlib.contextmanager
def record_passes(problem) -> Iterator[PassLog]:
    """Record the passes made in this block through ``problem`` (an :class:`Oracles`), in
    order; they are also counted as usual on exit (replayed into the run's counter)."""
    outer = problem.counter
    inner = _RecordingCounter()
    inner.samples = 0
    problem.counter = inner
    try:
        yield inner.counts
    finally:
        problem.counter = outer
    inner.counts.samples = inner.samples
    replay(problem, [(k, w) for _, k, w in inner.counts.log], inner.samples)


def replay(problem, passes: list[tuple[str, float]], samples: int = 0) -> None:
    """Count ``passes`` ((key, weight), in order) and ``samples`` on ``problem``'s counter."""
    counter = problem.counter
    if counter.active:
        counter._pending = None
        counts = counter.counts
        for key, weight in passes:
            counts[key] += weight
        counter.samples += samples


def _lift_constants(gm: torch.fx.GraphModule) -> list[torch.Tensor]:
    """Turn the tensor constants of ``gm`` (``get_attr`` nodes) into trailing placeholders;
    returns the tensors in placeholder order."""
    graph = gm.graph
    last = [n for n in graph.nodes if n.op == "placeholder"][-1]
    lifted: dict[str, torch.fx.Node] = {}
    tensors: list[torch.Tensor] = []
    for node in list(graph.nodes):
        if node.op != "get_attr":
            continue
        if node.target not in lifted:
            with graph.inserting_after(last):
                last = graph.placeholder(f"constant_{len(lifted)}")
            # the traced value, as every placeholder has: Inductor's C++ wrapper reads its
            # inputs from these (a placeholder without one is compiled as a None argument)
            last.meta.update({k: v for k, v in node.meta.items() if k in ("val", "tensor_meta")})
            lifted[node.target] = last
            tensors.append(getattr(gm, node.target))
        node.replace_all_uses_with(lifted[node.target])
        graph.erase_node(node)
    for name in lifted:
        delattr(gm, name)
    gm.recompile()
    return tensors


def _inductor_options(cpu: bool = True) -> dict:
    import torch._inductor.config as config

    # a buffer read by a reduction is materialised first: a mini-batch gather (p[batch]) is
    # copied once into a contiguous block instead of being re-gathered, row-strided, inside
    # every reduction that reads it (SOBA on quadratic-benchopt: 163 -> 124 us per step)
    options: dict = {"realize_acc_reads_threshold": 1}
    if config.cpp.vec_isa_ok is None and platform.machine() in ("x86_64", "AMD64"):
        options["cpp.vec_isa_ok"] = True
    if cpu:
        # the step's wrapper (argument checks, views, allocations, extern matrix products) in
        # C++ instead of Python: SOBA on quadratic-benchopt 100 -> 72 us per compiled call
        options["cpp_wrapper"] = True
    return options


def compile_function(fn: Callable, example_args: Sequence) -> Callable:
    """``fn`` (tensors or ``None`` in, a tuple of tensors out) compiled for arguments shaped
    like ``example_args``: ``make_fx`` on fake tensors, constants lifted, Inductor. A ``None``
    argument is a constant of the compiled function: the call must pass ``None`` there."""
    import torch._inductor
    import torch._inductor.config as config
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    if not all(a is None or isinstance(a, torch.Tensor) for a in example_args):
        raise TypeError("compile_function takes tensors or None")
    where = [i for i, a in enumerate(example_args) if a is not None]
    n_args = len(example_args)

    def tensor_fn(*tensors):
        args: list = [None] * n_args
        for i, t in zip(where, tensors, strict=True):
            args[i] = t
        return fn(*args)

    tensors = [example_args[i] for i in where]
    gm = make_fx(tensor_fn, tracing_mode="fake", _allow_non_fake_inputs=True)(*tensors)
    constants = tuple(_lift_constants(gm))
    mode = FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True)
    fakes = [mode.from_tensor(t, static_shapes=True) for t in (*tensors, *constants)]
    with config.patch(_inductor_options(cpu=all(t.device.type == "cpu" for t in tensors))):
        compiled = torch._inductor.compile(gm, fakes)
    nones = [i for i in range(n_args) if i not in where]

    if not nones:
        def call(*args):
            return compiled(*args, *constants)
    else:
        def call(*args):
            if len(args) != n_args or any(args[i] is not None for i in nones):
                raise ValueError("compiled step called with another argument structure")
            return compiled(*[args[i] for i in where], *constants)

    return call


class FastPath:
    """A compiled step: ``build()`` returns the pure step function, compiled on the first call;
    each call counts ``passes`` ((key, weight) in eager order) and ``samples`` (recorded from an
    eager step by the solver)."""

    def __init__(self, name: str, build: Callable[[], Callable],
                 passes: list[tuple[str, float]], samples: int) -> None:
        self.name, self.build, self.passes, self.samples = name, build, passes, samples
        self.fn: Callable | None = None

    def __call__(self, problem, *args):
        """The step's outputs with its passes counted, or ``None`` (warned) when it failed."""
        try:
            if self.fn is None:
                self.fn = compile_function(self.build(), args)
            out = self.fn(*args)
        except Exception as exc:  # noqa: BLE001 - any failure: the solver continues eagerly
            warnings.warn(f"{self.name}: compiled step failed ({type(exc).__name__}: {exc}); "
                          "running eagerly", RuntimeWarning, stacklevel=3)
            return None
        replay(problem, self.passes, self.samples)
        return out
