"""LV-HBA's projection onto the SVM's coupled constraints: exact separable path vs generic path.

On the LV-HBA SVM variant (P7', h_i = 1 - xi_i - t_i (w^T z_i + b), 500 constraints; LIBSVM
diabetes when its file is in the data directory, else scikit-learn's WDBC with 500 training
samples), side by side in one process, in interleaved repeats (alternating which goes first):

* one projection of a point violating many constraints (``project_onto_constraints`` with
  ``structured=True``, the exact per-sample path, vs ``structured=False``, the generic
  accelerated dual gradient); also the feasibility each reaches (max h after projection);
* one LV-HBA outer iteration (default hyperparameters) with either path.

Prints the medians and the ratios generic / exact. Then the same on ``svm-ho`` (P7: the same
constraints with x = c, boxed c >= 1e-4, on the rows' private coordinates): the exact path
there (``exact_boxes=True``, the default since LV-HBA 2.1,
:func:`inner_loops.separable_boxed_projection`) against the generic path, which stops short
of the projection (its distance to the exact projection and its largest violation are
printed).
Threads are pinned to 1.

    python benchmarks/bench_projection.py [--repeats 7] [--iterations 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import torch  # noqa: E402
from bilevel_bench_baselines import inner_loops, lv_hba  # noqa: E402

from bilevel_bench.data import MissingDataError  # noqa: E402
from bilevel_bench.oracles import Oracles  # noqa: E402
from bilevel_bench.problems.svm import SVMLVHBA  # noqa: E402
from bilevel_bench.registry import get_solver  # noqa: E402

torch.set_num_threads(1)


def make_problem() -> tuple[SVMLVHBA, str]:
    try:
        return SVMLVHBA(dataset="diabetes"), "LIBSVM diabetes, 500 train"
    except (MissingDataError, FileNotFoundError):
        return SVMLVHBA(dataset="wdbc", n_train=500, n_val=50), "WDBC, 500 train"


def time_projection(oracles: Oracles, x, y, structured: bool) -> tuple[float, float]:
    start = time.perf_counter()
    xp, yp = inner_loops.project_onto_constraints(oracles, x, y, structured=structured)
    elapsed = time.perf_counter() - start
    return elapsed, float(oracles._problem.h(xp, yp).max())


def time_iterations(problem, structured: bool, iterations: int, **options) -> float:
    """Median seconds per LV-HBA outer iteration with the given projection path."""
    original = lv_hba.project_onto_constraints
    lv_hba.project_onto_constraints = functools.partial(original, structured=structured,
                                                        **options)
    try:
        oracles = Oracles(problem)
        gen = torch.Generator().manual_seed(0)
        x0, y0 = problem.init(gen)
        solver = get_solver("lv-hba")()
        solver.init(oracles, x0, y0, gen)
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            solver.step()
            times.append(time.perf_counter() - start)
    finally:
        lv_hba.project_onto_constraints = original
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    problem, label = make_problem()
    oracles = Oracles(problem)
    gen = torch.Generator().manual_seed(0)
    x, y = problem.init(gen)
    y = y + 0.5 * torch.randn(y.shape, generator=gen, dtype=y.dtype)
    violated = int((problem.h(x, y) > 0).sum())
    for structured in (True, False):  # warm-up
        time_projection(oracles, x, y, structured)
    proj: dict[bool, list[float]] = {True: [], False: []}
    feas: dict[bool, float] = {}
    iters: dict[bool, list[float]] = {True: [], False: []}
    for rep in range(args.repeats):
        for structured in ((True, False) if rep % 2 == 0 else (False, True)):
            elapsed, feas[structured] = time_projection(oracles, x, y, structured)
            proj[structured].append(elapsed)
    for rep in range(max(1, args.repeats // 3)):
        for structured in ((True, False) if rep % 2 == 0 else (False, True)):
            iters[structured].append(time_iterations(problem, structured, args.iterations))
    p_fast, p_gen = statistics.median(proj[True]), statistics.median(proj[False])
    i_fast, i_gen = statistics.median(iters[True]), statistics.median(iters[False])
    print(f"torch {torch.__version__}, 1 thread, LV-HBA SVM variant ({label}, "
          f"{problem.n_constraints} constraints, {violated} violated at the test point)")
    print(f"projection:     exact {1e3 * p_fast:8.1f} ms (max h {feas[True]:.1e}) | generic "
          f"{1e3 * p_gen:8.1f} ms (max h {feas[False]:.1e}) | ratio generic/exact "
          f"{p_gen / p_fast:6.1f}")
    print(f"LV-HBA iteration: exact {1e3 * i_fast:6.1f} ms | generic {1e3 * i_gen:8.1f} ms | "
          f"ratio generic/exact {i_gen / i_fast:6.1f}")
    svm_ho(args.repeats, args.iterations)


def svm_ho(repeats: int, iterations: int) -> None:
    """svm-ho (boxed c): opt-in exact path vs the default generic path."""
    from bilevel_bench.problems.svm import SVMCoupled

    problem = SVMCoupled(dataset="wdbc")
    oracles = Oracles(problem)
    gen = torch.Generator().manual_seed(0)
    x, y = problem.init(gen)
    y = y + 0.5 * torch.randn(y.shape, generator=gen, dtype=y.dtype)
    x = x - 3 * torch.rand(x.shape, generator=gen, dtype=x.dtype)  # some c below the box
    paths = {"exact": {"exact_boxes": True}, "generic": {"exact_boxes": False}}
    seconds: dict[str, list[float]] = {k: [] for k in paths}
    out = {}
    for rep in range(repeats + 1):  # the first is a warm-up
        for name in (paths if rep % 2 == 0 else reversed(paths)):
            start = time.perf_counter()
            out[name] = inner_loops.project_onto_constraints(oracles, x, y, **paths[name])
            if rep:
                seconds[name].append(time.perf_counter() - start)
    gap = max(float((a - b).abs().max()) for a, b in zip(out["exact"], out["generic"],
                                                          strict=True))
    viol = {k: float(problem.h(*v).max()) for k, v in out.items()}
    iters: dict[str, list[float]] = {k: [] for k in paths}
    for rep in range(max(1, repeats // 3)):
        for name in (paths if rep % 2 == 0 else reversed(paths)):
            iters[name].append(time_iterations(problem, True, iterations, **paths[name]))
    p_fast, p_gen = statistics.median(seconds["exact"]), statistics.median(seconds["generic"])
    i_fast, i_gen = statistics.median(iters["exact"]), statistics.median(iters["generic"])
    print(f"\nsvm-ho (WDBC, {problem.n_constraints} constraints, c >= 1e-4; "
          f"{int((problem.h(x, y) > 0).sum())} violated, {int((x < 1e-4).sum())} c below the box)")
    print(f"projection:     exact {1e3 * p_fast:8.1f} ms (max h {viol['exact']:.1e}) | generic "
          f"{1e3 * p_gen:8.1f} ms (max h {viol['generic']:.1e}, {gap:.1e} from exact) | ratio "
          f"generic/exact {p_gen / p_fast:6.1f}")
    print(f"LV-HBA iteration: exact {1e3 * i_fast:6.1f} ms | generic {1e3 * i_gen:8.1f} ms | "
          f"ratio generic/exact {i_gen / i_fast:6.1f}")


if __name__ == "__main__":
    main()
