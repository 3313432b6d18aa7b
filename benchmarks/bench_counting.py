"""Overhead of oracle counting per counted pass: direct counting (now) vs autograd hooks (before).

The derivative helpers of ``Oracles`` count their passes directly; before, every pass was
counted by tensor hooks (``view_as`` + ``register_hook`` per variable and value), which is still
the mechanism for raw autograd use by solvers (``Oracles.direct_counting = False`` routes the
helpers through it, as before). On quadratic-small (passes of a few microseconds, so that the
overhead is visible), three modes of the same helper calls are timed side by side, interleaved,
rotating the order:

* ``off``: counter paused (nothing counted, no hooks): the bare autograd work;
* ``direct``: the helpers count their passes themselves;
* ``hooks``: the same calls counted through the hooks.

The overhead per counted pass is (time(mode) - time(off)) / passes, where the passes of one
call are the counter increments it makes (a forward value, a gradient, an HVP or a JVP each one):
``grad`` = value + gradient (2); ``hvp_operator`` + one HVP + one JVP (4); ``weighted_grad`` of
f/gamma + g (4). Threads are pinned to 1.

    python benchmarks/bench_counting.py [--repeats 15] [--calls 400]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import torch  # noqa: E402

from bilevel_bench.oracles import Oracles  # noqa: E402
from bilevel_bench.registry import get_problem  # noqa: E402

torch.set_num_threads(1)
MODES = ("off", "direct", "hooks")


def operations(oracles: Oracles, x: torch.Tensor, y: torch.Tensor,
               v: torch.Tensor) -> dict[str, tuple[int, Callable[[], object]]]:
    """name -> (counted passes per call, the call)."""

    def hvp_jvp() -> object:
        _, product = oracles.hvp_operator("g", x, y)
        return product(v, "y"), product(v, "x")

    return {
        "grad": (2, lambda: oracles.grad("g", x, y)),
        "hvp_operator+hvp+jvp": (4, hvp_jvp),
        "weighted_grad f/10+g": (4, lambda: oracles.weighted_grad(x, y, {"f": 0.1, "g": 1.0})),
    }


def timed(oracles: Oracles, mode: str, fn: Callable[[], object], calls: int) -> float:
    oracles.direct_counting = mode != "hooks"
    oracles.counter.active = mode != "off"
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = (time.perf_counter() - start) / calls
    oracles.counter.active, oracles.direct_counting = True, True
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--problem", default="quadratic-small")
    args = parser.parse_args()
    problem = get_problem(args.problem).make(seed=0)
    oracles = Oracles(problem)
    gen = torch.Generator().manual_seed(0)
    x, y = problem.init(gen)
    v = torch.randn(y.shape, generator=gen, dtype=y.dtype)
    print(f"torch {torch.__version__}, 1 thread, {args.problem}, {args.calls} calls x "
          f"{args.repeats} interleaved repeats (medians)")
    header = (f"{'operation':<22} | {'off us/call':>11} | {'direct us/call':>14} | "
              f"{'hooks us/call':>13} | {'direct us/pass':>14} | {'hooks us/pass':>13} | "
              f"{'hooks/direct call':>17}")
    print(header)
    print("-" * len(header))
    for name, (passes, fn) in operations(oracles, x, y, v).items():
        for mode in MODES:  # warm-up
            timed(oracles, mode, fn, 20)
        times: dict[str, list[float]] = {m: [] for m in MODES}
        for rep in range(args.repeats):
            order = MODES[rep % 3:] + MODES[:rep % 3]
            for mode in order:
                times[mode].append(timed(oracles, mode, fn, args.calls))
        med = {m: statistics.median(t) for m, t in times.items()}
        per_pass = {m: statistics.median(
            [(a - b) / passes for a, b in zip(times[m], times["off"], strict=True)])
            for m in ("direct", "hooks")}
        print(f"{name:<22} | {1e6 * med['off']:11.1f} | {1e6 * med['direct']:14.1f} | "
              f"{1e6 * med['hooks']:13.1f} | {1e6 * per_pass['direct']:14.2f} | "
              f"{1e6 * per_pass['hooks']:13.2f} | {med['hooks'] / med['direct']:17.2f}")


if __name__ == "__main__":
    main()
