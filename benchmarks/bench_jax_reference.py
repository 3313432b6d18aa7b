"""Our SOBA and StocBiO vs a jit-compiled JAX implementation of them, on quadratic-benchopt.

Side by side in one run, interleaved repeats, threads pinned to 1 (OMP/MKL/OpenBLAS, torch,
XLA's Eigen pool), CPU time of this process (``time.process_time``), float64 on both sides,
both started from our instance's data and initial point (seed 0). Printed per algorithm:

* the replay check: our run and the JAX run on the very mini-batches ours drew (max |diff| of
  the iterates after a few iterations; the two are the same algorithm when this is ~1e-15);
* per-iteration CPU time, ours (our solver's ``step`` on counted oracles, as in the runner:
  sampling, counting and all) and JAX (``iterations`` steps in one compiled call, fresh batches
  drawn with numpy for each call, their cost included), and the ratio ours / JAX (median of the
  repeats, min-max);
* with ``--compiled``, the same for our solver's compiled fast path (``compiled = True``) when
  it has one;
* the JAX compile time (lower + compile of the whole run), our fixed cost (the first 3 steps
  beyond 3 iterations: the compile for the compiled path), cold (the first repeat: a fresh,
  empty Inductor cache directory for this process) and warm (the median of the later repeats:
  Inductor's on-disk FX-graph cache hit, as in every run after the first on a machine), and the
  run lengths for which ours is faster end to end (cold fixed cost + iterations x per-iteration
  time). The fixed costs include the CPU time of the compiler subprocesses (g++), and exclude
  imports on both sides (jax and the torch compile stack are imported before the clock);
* AID-CG and AID-Neumann (deterministic, no JAX peer here): compiled / eager per iteration and
  the run length from which the compile pays.

Usage (jax is not a dependency of the package; install it into the venv to run this)::

    .venv/bin/pip install jax jaxlib
    python benchmarks/bench_jax_reference.py [--repeats 5] [--compiled]
"""

from __future__ import annotations

import os
import tempfile  # noqa: E402

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
# a fresh Inductor cache: the first compile of each solver is cold, as on a new machine
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                           " intra_op_parallelism_threads=1").strip()

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax_reference as jr  # noqa: E402

if not jr.available:
    print("bench_jax_reference: skipped, jax is not installed (.venv/bin/pip install jax jaxlib)")
    raise SystemExit(0)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bilevel_bench.oracles import Oracles  # noqa: E402
from bilevel_bench.registry import get_problem, get_solver  # noqa: E402

torch.set_num_threads(1)
# the compile stack, imported before any clock as jax is (about 1.5 s of CPU once per process)
import torch._inductor.compile_fx  # noqa: E402, F401
import torch.fx.experimental.proxy_tensor  # noqa: E402, F401

PROBLEM = "quadratic-benchopt"


def make_ours(name: str, seed: int = 0, compiled: bool = False, record: bool = False):
    """(problem, x0, y0, solver, recorded batches) with our solver initialised as the runner
    does; ``record`` keeps every mini-batch drawn, per level, in draw order."""
    problem = get_problem(PROBLEM).make(seed=seed)
    oracles = Oracles(problem)
    recorded: dict[str, list] = {"f": [], "g": []}
    if record:
        draw = oracles.sample_batch

        def sample_batch(level, size, generator):
            out = draw(level, size, generator)
            recorded[level].append(out.clone())
            return out

        oracles.sample_batch = sample_batch
    generator = torch.Generator().manual_seed(seed)
    x0, y0 = problem.init(generator)
    solver = get_solver(name)()
    if compiled:
        solver.compiled = True
    solver.init(oracles, x0, y0, generator)
    return problem, x0, y0, solver, recorded


def replay_check(name: str, data: dict, iterations: int) -> float:
    """Max |ours - JAX| over the iterates after ``iterations`` steps on our batches."""
    _, x0, y0, solver, rec = make_ours(name, record=True)
    for _ in range(iterations):
        solver.step()
    x0, y0 = jnp.asarray(x0.numpy()), jnp.asarray(y0.numpy())
    bg, bf = (torch.stack(rec[k]).numpy() for k in ("g", "f"))
    if name == "soba":
        out = jr.run_soba_on_batches(data, x0, y0, bg, bf)
        ours = (solver.x, solver.y, solver.v)
    else:
        d_, q_ = solver.inner_steps, solver.neumann_steps
        bg = bg.reshape(iterations, d_ + q_ + 1, -1)
        out = jr.run_stocbio_on_batches(data, x0, y0, bg[:, :d_], bf, bg[:, d_:d_ + q_],
                                        bg[:, -1])
        ours = (solver.x, solver.y)
    return max(float(np.abs(np.asarray(a) - b.numpy()).max()) for a, b in zip(out, ours,
                                                                               strict=True))


def jax_runner(name: str, data: dict, iterations: int):
    """(run: ``iterations`` JAX steps from our initial point on fresh batches, compile CPU
    seconds). The batches are drawn in each run (numpy epoch permutations), so their cost is
    in the JAX time as ours is in our solver's."""
    _, x0, y0, _, _ = make_ours(name)
    start_point = (data, jnp.asarray(x0.numpy()), jnp.asarray(y0.numpy()))
    rng = np.random.default_rng(0)
    if name == "soba":
        fn, draw = jr.run_soba_on_batches, jr.soba_batches
    else:
        fn, draw = jr.run_stocbio_on_batches, jr.stocbio_batches
    start = time.process_time()
    compiled = fn.lower(*start_point, *draw(data, rng, iterations)).compile()
    seconds = time.process_time() - start
    return (lambda: jax.block_until_ready(compiled(*start_point, *draw(data, rng, iterations)))
            ), seconds


def cpu_with_children() -> float:
    """CPU seconds of this process and of its waited-for children (the compiler)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def per_iteration_ours(name: str, iterations: int, compiled: bool = False
                       ) -> tuple[float, float]:
    """(CPU seconds per iteration, fixed cost: CPU of the 3 warm-up steps beyond 3 iterations,
    the compile for the compiled path, compiler subprocesses included)."""
    *_, solver, _ = make_ours(name, compiled=compiled)
    start = cpu_with_children()
    for _ in range(3):  # warm-up (first kernels; the compiled path's compile)
        solver.step()
    warm_up = cpu_with_children() - start
    start = time.process_time()
    for _ in range(iterations):
        solver.step()
    per_iteration = (time.process_time() - start) / iterations
    return per_iteration, max(warm_up - 3 * per_iteration, 0.0)


def break_even(fixed_ours: float, per_ours: float, fixed_jax: float, per_jax: float) -> str:
    """Iterations below which ours is faster end to end (fixed cost + iterations)."""
    if per_ours <= per_jax:
        return "every run length" if fixed_ours <= fixed_jax else \
            f"runs above {(fixed_ours - fixed_jax) / (per_jax - per_ours):,.0f} iterations"
    if fixed_ours >= fixed_jax:
        return "no run length"
    return f"runs below {(fixed_jax - fixed_ours) / (per_ours - per_jax):,.0f} iterations"


def per_iteration_jax(run, iterations: int) -> float:
    start = time.process_time()
    run()
    return (time.process_time() - start) / iterations


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f}x ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compiled", action="store_true",
                        help="also time our solvers' compiled fast path")
    args = parser.parse_args()
    problem = get_problem(PROBLEM).make(seed=0)
    data = jr.problem_data(problem)
    print(f"{PROBLEM}, float64, torch {torch.__version__}, jax {jax.__version__}, 1 thread, "
          f"CPU time, median (min-max) of {args.repeats} interleaved repeats\n")
    settings = {"soba": (200, 5000, 20), "stocbio": (20, 500, 5)}  # ours, JAX, replay iterations
    for name, (n_ours, n_jax, n_replay) in settings.items():
        print(f"{name}: replay on our batches, {n_replay} iterations: max |ours - JAX| = "
              f"{replay_check(name, data, n_replay):.1e}")
        run, compile_s = jax_runner(name, data, n_jax)
        run()  # warm-up
        has_fast_path = hasattr(get_solver(name), "compiled")
        variants = [("eager", False)] + ([("compiled", True)] if args.compiled and has_fast_path
                                         else [])
        times: dict[str, list[float]] = {v: [] for v, _ in variants} | {"jax": []}
        fixed: dict[str, list[float]] = {v: [] for v, _ in variants}
        for _ in range(args.repeats):
            times["jax"].append(per_iteration_jax(run, n_jax))
            for variant, flag in variants:
                per_iteration, fixed_cost = per_iteration_ours(name, n_ours, flag)
                times[variant].append(per_iteration)
                fixed[variant].append(fixed_cost)
        t_jax = statistics.median(times["jax"])
        print(f"  JAX: {t_jax * 1e6:8.1f} us / iteration, compile {compile_s:.2f} s CPU")
        for variant, _ in variants:
            ratios = [a / b for a, b in zip(times[variant], times["jax"], strict=True)]
            t_ours, c_ours = statistics.median(times[variant]), fixed[variant][0]
            c_warm = statistics.median(fixed[variant][1:] or fixed[variant])
            even = break_even(c_ours, t_ours, compile_s, t_jax)
            even_warm = break_even(c_warm, t_ours, compile_s, t_jax)
            print(f"  ours ({variant}): {t_ours * 1e6:8.1f} us / iteration, ours / JAX "
                  f"{summary(ratios)}, fixed cost {c_ours:.2f} s cold, {c_warm:.2f} s warm; "
                  f"ours faster end to end for {even} (cold), {even_warm} (warm)")
            if variant == "compiled":
                t_eager = statistics.median(times["eager"])
                print(f"    compiled / eager {t_ours / t_eager:.2f} per iteration; the compile "
                      f"pays after {break_even(0.0, t_eager, c_ours, t_ours).split()[-2]} "
                      "iterations")
        print()
    aid(args.repeats)


def aid(repeats: int) -> None:
    """AID-CG and AID-Neumann: compiled / eager per iteration (no JAX peer)."""
    for name in ("aid-cg", "aid-neumann"):
        times: dict[bool, list[float]] = {False: [], True: []}
        fixed: list[float] = []
        for _ in range(repeats):
            for flag in (False, True):
                per_iteration, fixed_cost = per_iteration_ours(name, 20, flag)
                times[flag].append(per_iteration)
                if flag:
                    fixed.append(fixed_cost)
        ratios = [c / e for c, e in zip(times[True], times[False], strict=True)]
        t_eager, t_fast = statistics.median(times[False]), statistics.median(times[True])
        pays = break_even(0.0, t_eager, fixed[0], t_fast).split()[-2]
        print(f"{name}: eager {t_eager * 1e6:8.1f} us / iteration, compiled {t_fast * 1e6:8.1f} "
              f"us, compiled / eager {statistics.median(ratios):.2f} ({min(ratios):.2f}-"
              f"{max(ratios):.2f}), compile {fixed[0]:.2f} s cold, "
              f"{statistics.median(fixed[1:] or fixed):.2f} s warm; pays after {pays} iterations")


if __name__ == "__main__":
    main()
