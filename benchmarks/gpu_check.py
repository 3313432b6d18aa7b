"""GPU checks (issue 17): synchronised solver time on CUDA, and per-iteration ratios on the GPU.

    python benchmarks/gpu_check.py [--problem quadratic-benchopt] [--iterations 300]
                                   [--solvers soba,aid-cg] [--compiled] [--jax]

1. **Synchronised timing.** For each solver: a run through the runner on CUDA with an
   iteration budget; its recorded solver time (device-synchronised, see runner.SolverClock) is
   compared with the same init + steps timed by CUDA events around them, in the same process:
   they must agree within 5%. The same run on the CPU gives the per-iteration ratio GPU/CPU.
2. ``--compiled``: SOBA's compiled fast path (``baselines/compiled.py``; Inductor, which emits
   Triton kernels on CUDA) against its eager step on CUDA: per-iteration time (CUDA events,
   after 3 warm-up steps, the compile included in those) and whether the oracle counts of the
   two runs are identical.
3. ``--jax``: SOBA on CUDA against the jit-compiled JAX SOBA of ``benchmarks/jax_reference.py``
   on the same GPU (float64, same instance, fresh mini-batches drawn with numpy outside the
   compiled call, ``block_until_ready``): per-iteration wall time, ratio ours / JAX.

Exits 1 if a timing disagrees, 0 otherwise; prints one line and exits 0 when no CUDA device is
present. Each part that fails prints one line naming the error and the others still run.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

import torch

from bilevel_bench.oracles import Oracles
from bilevel_bench.problem import Budget
from bilevel_bench.registry import get_problem, get_solver
from bilevel_bench.runner import IterationSchedule, RunTask, execute, seeded_start, start_solver

#: the device the checks run on ("cpu" only to try this script where there is no GPU)
DEVICE = "cuda"


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn) -> float:
    """Seconds ``fn()`` takes, measured with CUDA events around it (perf_counter on the CPU)."""
    if DEVICE != "cuda":
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000.0


def event_time(problem_name: str, solver: str, iterations: int) -> float:
    """Seconds of what the runner's solver clock covers (``init``, ``iterations`` steps and
    ``solution()`` at the runner's checkpoints, from the runner's seeded start), measured with
    CUDA events around all of it, without the runner."""
    entry = get_problem(problem_name)
    problem = entry.make(seed=0, device=DEVICE)
    per_decade = entry.instance.checkpoints_per_decade or 20

    def run() -> None:
        generator, x0, y0 = seeded_start(problem, seed=0)
        algo = get_solver(solver)()
        algo.init(Oracles(problem), x0.clone(), y0.clone(), generator)
        algo.solution()
        schedule = IterationSchedule(per_decade)
        for iteration in range(1, iterations + 1):
            algo.step()
            if schedule.due(iteration) or iteration == iterations:
                algo.solution()
                schedule.advance(iteration)

    return timed(run)


def _recorded_run(problem: str, solver: str, device: str, iterations: int) -> dict:
    """The summary of a runner's run with an iteration budget (raises if it did not end at
    its budget or target)."""
    record = execute(RunTask(problem=problem, solver=solver, device=device,
                             budget=Budget(seconds=None, iterations=iterations)))
    if record["status"] not in ("budget", "converged"):
        raise RuntimeError(f"{solver} on {device}: run ended {record['status']}: "
                           f"{record.get('error')}")
    return record["summary"]


def synchronised_timing(problem: str, solver: str, iterations: int,
                        cpu_iterations: int) -> bool:
    """Part 1 for one solver; prints one line, returns whether the two times agree. The
    process is warmed up first (an untimed pass of 3 steps, as ``runner.warm_up`` warms a
    solver process before its clock starts), so that both timings are warm."""
    event_time(problem, solver, min(3, iterations))
    run = _recorded_run(problem, solver, DEVICE, iterations)
    on_cpu = _recorded_run(problem, solver, "cpu", cpu_iterations)
    # a run may stop early (target reached): time as many steps as it made
    steps, recorded = run["iterations"], run["solver_time"]
    measured = event_time(problem, solver, steps)
    gpu = recorded / max(steps, 1)
    cpu = on_cpu["solver_time"] / max(on_cpu["iterations"], 1)
    agree = abs(recorded - measured) <= 0.05 * measured
    print(f"{solver:12s} {steps} iterations: recorded {recorded:.4f} s, CUDA events "
          f"{measured:.4f} s ({'agree' if agree else 'DISAGREE'} within 5%); per iteration "
          f"GPU {1e3 * gpu:.3f} ms, CPU {1e3 * cpu:.3f} ms ({cpu_iterations} iterations), "
          f"GPU/CPU = {gpu / cpu:.3f}")
    return agree


def _soba(problem_name: str, compiled: bool):
    """(oracles, SOBA solver) started on CUDA exactly as the runner starts a run (seed 0)."""
    cls = type("SOBA", (get_solver("soba"),), {"compiled": compiled})
    problem = get_problem(problem_name).make(seed=0, device=DEVICE)
    solver, oracles = start_solver(problem, cls, {}, seed=0)
    return oracles, solver


def _per_iteration_events(solver, iterations: int) -> float:
    def run() -> None:
        for _ in range(iterations):
            solver.step()

    return timed(run) / iterations


def compiled_vs_eager(problem: str, iterations: int) -> None:
    """Part 2: SOBA compiled / eager per iteration on CUDA, and identical counts."""
    results = {}
    for compiled in (False, True):
        oracles, solver = _soba(problem, compiled)
        start = time.perf_counter()
        for _ in range(3):
            solver.step()
        _sync()
        warm_up = time.perf_counter() - start
        per = _per_iteration_events(solver, iterations)
        results[compiled] = (per, warm_up, dict(oracles.counter.counts), solver.compiled)
    (eager, _, counts_e, _), (comp, warm, counts_c, still) = results[False], results[True]
    print(f"soba compiled on CUDA: {1e3 * comp:.3f} ms/iteration vs eager {1e3 * eager:.3f} "
          f"(compiled / eager = {comp / eager:.3f}); first 3 steps incl. compile {warm:.2f} s; "
          f"fast path {'used' if still else 'FELL BACK to eager'}; counts "
          f"{'identical' if counts_e == counts_c else f'DIFFER {counts_e} vs {counts_c}'}")


def ours_vs_jax(problem: str, iterations: int) -> None:
    """Part 3: our SOBA (eager and compiled) vs jit-compiled JAX SOBA, both on the GPU."""
    sys.path.insert(0, "benchmarks")
    import jax_reference as jr  # noqa: E402 - benchmarks/, needs jax

    if not jr.available:
        print("jax: not installed; skipped")
        return
    import jax
    import numpy as np

    instance = get_problem(problem).make(seed=0, device=DEVICE)
    data = jr.problem_data(instance)
    x0, y0 = (jax.numpy.asarray(t.detach().cpu().numpy())
              for t in instance.init(torch.Generator().manual_seed(0)))
    rng = np.random.default_rng(0)
    fn = jr.run_soba_on_batches
    start = time.perf_counter()
    compiled = fn.lower(data, x0, y0, *jr.soba_batches(data, rng, iterations)).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(data, x0, y0, *jr.soba_batches(data, rng, iterations)))
    start = time.perf_counter()
    jax.block_until_ready(compiled(data, x0, y0, *jr.soba_batches(data, rng, iterations)))
    per_jax = (time.perf_counter() - start) / iterations
    ours = {}
    for flag in (False, True):
        _, solver = _soba(problem, flag)
        for _ in range(3):
            solver.step()
        ours[flag] = _per_iteration_events(solver, iterations)
    print(f"soba on {jax.devices()[0].device_kind}: JAX {1e3 * per_jax:.3f} ms/iteration "
          f"(compile {compile_s:.2f} s); ours eager / JAX = {ours[False] / per_jax:.2f}, "
          f"ours compiled / JAX = {ours[True] / per_jax:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problem", default="quadratic-benchopt")
    parser.add_argument("--solvers", default="soba,aid-cg")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--cpu-iterations", type=int, default=30,
                        help="iterations of the CPU run (the GPU/CPU ratio is per iteration)")
    parser.add_argument("--compiled", action="store_true", help="part 2 (SOBA compiled)")
    parser.add_argument("--jax", action="store_true", help="part 3 (SOBA vs JAX on the GPU)")
    parser.add_argument("--device", default="cuda", help="cpu: try the script without a GPU")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check")
        return 0
    name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}; problem "
          f"{args.problem}, {args.iterations} iterations", flush=True)
    ok = True
    parts = [(synchronised_timing, (args.problem, solver, args.iterations, args.cpu_iterations))
             for solver in args.solvers.split(",")]
    if args.compiled:
        parts.append((compiled_vs_eager, (args.problem, args.iterations)))
    if args.jax:
        parts.append((ours_vs_jax, (args.problem, args.iterations)))
    for part, part_args in parts:
        try:
            if part(*part_args) is False:
                ok = False
        except Exception as exc:  # noqa: BLE001 - one line per failed part, the others run
            ok = ok if part is not synchronised_timing else False
            last = traceback.extract_tb(exc.__traceback__)[-1]
            print(f"{part.__name__}{part_args}: {type(exc).__name__}: {exc} "
                  f"(at {last.filename}:{last.lineno})")
        sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
