"""Does llm-safety's target measure data selection? x frozen against the ideal selection.

Solves the lower level of an llm-safety instance by full-batch gradient descent on y at two
fixed weight vectors and prints the best value of the primary metric each reaches:

* **x frozen** (x = x0 = 0, uniform weights: what direct mixing trains), and
* **ideal x** (x = -5 on the harmful-compliance samples, 0 elsewhere: their weight
  softmax(s x) is below e^-30, so the LL trains on benign and refusal samples only).

A final target separates the two when every x-frozen run stays on the wrong side of it and the
ideal selection crosses it. Run at several LL step sizes and seeds (each seed is its own data
split), evaluating every ``--every`` steps (the metric is untimed here; no solver is involved).

    python benchmarks/llm_safety_separation.py --instance llm-safety-tiny --steps 2000 \
        --lr 0.1 --lr 0.03 --seeds 3
"""

from __future__ import annotations

import argparse
import math

import torch

from bilevel_bench import registry


def lower_level_run(problem, x: torch.Tensor, lr: float, steps: int, every: int,
                    metric: str, verbose: bool = False) -> list[tuple[int, float]]:
    """(step, metric) every ``every`` steps of y <- y - lr grad_y g(x, y) from the seeded y0."""
    _, y = problem.init(torch.Generator().manual_seed(problem.seed))
    trace = []
    for k in range(steps + 1):
        if k % every == 0 or k == steps:
            metrics = problem.evaluate(x, y)
            value = metrics[metric]
            trace.append((k, value))
            if verbose:
                print(f"  step {k}: " + ", ".join(f"{name} {metrics[name]:.4f}" for name in (
                    metric, "ul_value", "ll_value") if name in metrics), flush=True)
            if not math.isfinite(value):
                break
        if k < steps:
            y = y.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(problem.g(x, y), y)
            y = (y - lr * grad).detach()
    return trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", default="llm-safety-tiny")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--lr", type=float, action="append")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mode", choices=("frozen", "ideal"), action="append")
    parser.add_argument("--threshold", type=float, action="append",
                        help="also report the first step at this value (default: the target)")
    parser.add_argument("--quick-eval", action="store_true",
                        help="one test prompt of each kind (the test sets are the last slices "
                             "of the split, so pool and validation sets are unchanged)")
    parser.add_argument("--verbose", action="store_true", help="print every evaluation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    entry = registry.get_problem(args.instance)
    sign = 1.0 if entry.family.higher_is_better else -1.0
    metric = entry.family.primary_metric
    print(f"{args.instance}: {metric}, target {entry.instance.target}, "
          f"{'higher' if sign > 0 else 'lower'} is better")
    params = dict(entry.instance.params, n_test_harmful=1, n_test_benign=1)
    for seed in range(args.seeds):
        problem = (entry.family(seed=seed, **params) if args.quick_eval
                   else entry.make(seed=seed))
        x0 = torch.zeros(problem.x_shape, dtype=problem.dtype, device=problem.device)
        xs = {"frozen": x0, "ideal": x0 - 5.0 * problem.is_compliance.to(x0.dtype)}
        for lr in args.lr or [0.1]:
            for mode in args.mode or ("frozen", "ideal"):
                trace = lower_level_run(problem, xs[mode], lr, args.steps, args.every, metric,
                                        args.verbose)
                step, best = max(trace, key=lambda t: sign * t[1] if math.isfinite(t[1])
                                 else -math.inf)
                firsts = ", ".join(
                    f"{level:g} at {next((k for k, v in trace if sign * (v - level) >= 0), None)}"
                    for level in args.threshold or [entry.instance.target])
                print(f"seed {seed} lr {lr:g} {mode:6s}: start {trace[0][1]:.3f}, best "
                      f"{best:.3f} at step {step}, last {trace[-1][1]:.3f}; first reached: "
                      f"{firsts}", flush=True)


if __name__ == "__main__":
    main()
