"""Step time and peak memory of the LLM problems per model tier and device.

    python benchmarks/bench_llm.py                              # tiny and smollm2 on CPU
    python benchmarks/bench_llm.py --tiers tiny --device cuda   # on a GPU
    python benchmarks/bench_llm.py --compare 60                 # direct mixing vs bilevel

Each (family, tier) is measured in a fresh child process so that its peak memory is its own
(CPU: peak resident set size of the process, ru_maxrss; CUDA: torch.cuda.max_memory_allocated).
Reported: problem build time (model load, data, reference log-probabilities), one full-batch
gradient of f and of g, one step of a solver (median of ``--steps`` after a warm-up step:
``direct-mixing`` on the safety family, ``pbgd-free`` on the representation family) and one
evaluation. ``--compare N`` runs N steps of direct mixing and of V-PBGD on llm-safety-tiny and
prints the final metrics of both.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

FAMILIES = {"safety": ("llm-safety", "direct-mixing", {"lr": 0.5}),
            "representation": ("llm-representation", "pbgd-free",
                               {"gamma": 10.0, "lr": 0.5, "inner_lr": 0.5})}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def measure(family: str, tier: str, device: str, steps: int, threads: int) -> dict:
    """Timings of one (family, tier) on ``device`` (run in a child process)."""
    from bilevel_bench.oracles import Oracles
    from bilevel_bench.registry import get_problem, get_solver

    torch.set_num_threads(threads)
    prefix, solver_name, hp = FAMILIES[family]
    name = f"{prefix}-{tier}"
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    holder: dict = {}
    build = _timed(lambda: holder.update(p=get_problem(name).make(seed=0, device=device)), device)
    problem = holder["p"]
    oracles = Oracles(problem)
    gen = torch.Generator().manual_seed(0)
    x0, y0 = problem.init(gen)
    grad_f = _timed(lambda: oracles.grad("f", x0, y0), device)
    grad_g = _timed(lambda: oracles.grad("g", x0, y0), device)
    solver = get_solver(solver_name)(**hp)
    solver.init(oracles, x0, y0, gen)
    solver.step()  # warm-up
    step_times = [_timed(solver.step, device) for _ in range(steps)]
    evaluate = _timed(lambda: holder.update(m=problem.evaluate(*solver.solution())), device)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
        kind = "cuda_max_allocated_MiB"
        hardware = torch.cuda.get_device_name()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kind = "cpu_peak_rss_MiB"
        hardware = f"cpu x{threads} threads"
    return {
        "instance": name, "tier": tier, "device": device, "hardware": hardware,
        "x_dim": int(x0.numel()), "y_dim": int(y0.numel()),
        "n_samples": dict(problem.n_samples), "build_s": build, "grad_f_s": grad_f,
        "grad_g_s": grad_g, "solver": solver_name,
        "step_s": statistics.median(step_times), "evaluate_s": evaluate,
        "peak_MiB": peak, "peak_kind": kind, "metrics": holder["m"],
    }


def compare(steps: int, seed: int = 0) -> list[dict]:
    """Direct mixing vs V-PBGD on llm-safety-tiny, ``steps`` steps each."""
    from bilevel_bench.oracles import Oracles
    from bilevel_bench.registry import get_problem, get_solver

    runs = [("direct-mixing", {"lr": 0.5}),
            ("v-pbgd", {"lr": 0.05, "gamma": 10.0, "inner_lr": 0.5, "inner_steps": 3})]
    out = []
    for solver_name, hp in runs:
        problem = get_problem("llm-safety-tiny").make(seed=seed)
        oracles, gen = Oracles(problem), torch.Generator().manual_seed(seed)
        x0, y0 = problem.init(gen)
        solver = get_solver(solver_name)(**hp)
        solver.init(oracles, x0, y0, gen)
        start = time.perf_counter()
        for _ in range(steps):
            solver.step()
        seconds = time.perf_counter() - start
        out.append({"solver": solver_name, "hp": hp, "steps": steps, "seconds": seconds,
                    "oracle_cost": oracles.counter.oracle_cost,
                    **problem.evaluate(*solver.solution())})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiers", nargs="+", default=["tiny", "smollm2"])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--compare", type=int, default=0, metavar="STEPS")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        family, tier = args.child.split(":")
        print(json.dumps(measure(family, tier, args.device, args.steps, args.threads)))
        return
    if args.compare:
        rows = compare(args.compare)
        for row in rows:
            print(json.dumps(row))
        return
    results = []
    for tier in args.tiers:
        for family in args.families:
            cmd = [sys.executable, __file__, "--child", f"{family}:{tier}", "--device",
                   args.device, "--steps", str(args.steps), "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{family}/{tier}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    header = f"{'instance':30} {'device':6} {'build s':>8} {'grad f s':>9} {'grad g s':>9} " \
             f"{'step s':>8} {'eval s':>8} {'peak MiB':>9}  solver"
    print(header)
    for r in results:
        print(f"{r['instance']:30} {r['device']:6} {r['build_s']:8.2f} {r['grad_f_s']:9.3f} "
              f"{r['grad_g_s']:9.3f} {r['step_s']:8.3f} {r['evaluate_s']:8.2f} "
              f"{r['peak_MiB']:9.0f}  {r['solver']} ({r['peak_kind']}, {r['hardware']})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
