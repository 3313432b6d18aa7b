"""Cost of one mini-batch draw: a permutation per draw (before) vs an epoch permutation (now).

Before, ``Oracles.sample_batch`` drew ``randperm(n)[:b]`` for every mini-batch: O(n) a draw.
Now it draws one permutation per epoch and returns consecutive slices of it: O(b) amortised.
Both are timed side by side in one process on quadratic-benchopt's LL finite sum (n = 32,768,
b = 64, SOBA's default batch), in interleaved repeats (alternating which goes first), and the
ratio of the median per-draw times old / new is printed. Threads are pinned to 1.

    python benchmarks/bench_sampling.py [--repeats 15] [--draws 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import torch  # noqa: E402

from bilevel_bench.oracles import Oracles  # noqa: E402
from bilevel_bench.registry import get_problem  # noqa: E402

torch.set_num_threads(1)


def old_sample_batch(oracles: Oracles, level: str, batch_size: int,
                     generator: torch.Generator) -> torch.Tensor:
    """The previous implementation: a fresh permutation of all n samples per mini-batch."""
    n = oracles.n_samples[level]
    idx = torch.randperm(n, generator=generator, device=generator.device)[:batch_size]
    return idx.to(oracles.device)


def per_draw(fn, draws: int) -> float:
    start = time.perf_counter()
    for _ in range(draws):
        fn()
    return (time.perf_counter() - start) / draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    problem = get_problem("quadratic-benchopt").make(seed=0)
    oracles = Oracles(problem)
    n, b = oracles.n_samples["g"], args.batch_size
    gen_old, gen_new = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    sides = {
        "old": lambda: old_sample_batch(oracles, "g", b, gen_old),
        "new": lambda: oracles.sample_batch("g", b, gen_new),
    }
    times: dict[str, list[float]] = {"old": [], "new": []}
    for rep in range(args.repeats):
        order = ["old", "new"] if rep % 2 == 0 else ["new", "old"]
        for key in order:
            times[key].append(per_draw(sides[key], args.draws))
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    ratios = [o / m for o, m in zip(times["old"], times["new"], strict=True)]
    print(f"torch {torch.__version__}, 1 thread, n = {n}, b = {b}, {args.draws} draws x "
          f"{args.repeats} interleaved repeats (medians)")
    print(f"per draw: old (randperm per batch) {1e6 * old:8.2f} us | "
          f"new (epoch permutation) {1e6 * new:8.2f} us | ratio old/new {old / new:7.1f} "
          f"(per-repeat range {min(ratios):.1f}-{max(ratios):.1f})")


if __name__ == "__main__":
    main()
