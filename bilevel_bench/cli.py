"""The ``bilevel-bench`` command line.

The command reference, ``docs/cli.md``, is generated from :func:`build_parser` by
:mod:`bilevel_bench.cli_reference`; every path a command is given is checked first, by
:mod:`bilevel_bench.paths`.

Heavy modules (torch, the registry) are imported inside the commands, so that ``--help`` and
``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import re
import sys
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from bilevel_bench import paths

SUMMARY_COLUMNS = ["problem", "solver", "ruleset", "runs", "success_rate", "median_time_to_target",
                   "median_oracles_to_target", "median_final_primary", "statuses"]

EXAMPLES = """examples:
  bilevel-bench list problems                      instances, targets and suites
  bilevel-bench run --suite toys --seeds 3         every reference solver on the toys suite
  bilevel-bench run --problem quadratic-small --solver aid-cg --hp outer_lr=0.05
  bilevel-bench run --suite core --solver examples/my_solver.py:FirstOrderITD
  bilevel-bench check-solver examples/my_solver.py:FirstOrderITD
  bilevel-bench check-problem examples/my_problem.py:RidgeBilevel
  bilevel-bench show results
  bilevel-bench leaderboard results -o site        static HTML, open site/index.html
  bilevel-bench report results -o paper            LaTeX tables, figures, reproduce.sh, BibTeX

Bad input exits with status 2 and a one-line message; `bilevel-bench COMMAND --help` for more.
"""

#: third-party deprecation warnings printed by worker processes into the progress bar
QUIET_WARNINGS = ("ignore:We've integrated functorch into PyTorch:FutureWarning",)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2, already printed)
        return int(exc.code or 0)
    import signal

    from bilevel_bench.errors import BenchError

    def terminate(signum: int, frame: Any) -> None:  # SIGTERM stops like Ctrl-C: records kept
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`)
        sys.stderr.close()
        return 1
    except (BenchError, ValueError) as exc:  # bad names, values, combinations, plugins, data
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every record written so far is kept; run again to resume",
              file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def package_version() -> str:
    """The installed version of bilevel-bench (without importing torch)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bilevel-bench")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown (not installed)"


# ------------------------------------------------------------------ option values
def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be finite")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def device_name(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:K``."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: write cpu, cuda or cuda:K")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = Parser(prog="bilevel-bench",
                    description="Benchmark suite and leaderboard for bilevel optimization.",
                    epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list registered problems, solvers or suites")
    p.add_argument("what", choices=["problems", "solvers", "suites"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run solvers on problems and record the results")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--suite", metavar="S", help="a suite name (see `list suites`)")
    target.add_argument("--problem", action="append", metavar="P",
                        help="a problem instance (repeatable)")
    p.add_argument("--solver", action="append", metavar="X",
                   help="solver name or path/to/file.py:Class (repeatable; default: all)")
    p.add_argument("--seeds", type=positive_int, default=3, metavar="N",
                   help="number of seeds (default 3)")
    p.add_argument("--seed-offset", type=nonnegative_int, default=0, metavar="K",
                   help="first seed (default 0)")
    p.add_argument("--device", type=device_name, default="cpu", metavar="DEVICE",
                   help="cpu or cuda[:k] (default cpu)")
    p.add_argument("--budget-seconds", type=positive_float, metavar="T",
                   help="solver-time budget per run (seconds > 0)")
    p.add_argument("--budget-oracles", type=positive_float, metavar="C",
                   help="oracle-cost budget per run (> 0)")
    p.add_argument("--budget-iterations", type=positive_int, metavar="K",
                   help="iteration budget per run (>= 1)")
    p.add_argument("--budget-scale", type=positive_float, default=1.0, metavar="F",
                   help="multiply every instance's own budget (oracle cost, iterations) by F "
                        "(> 0; the main job's default ruleset uses 0.1)")
    p.add_argument("--timeout", type=positive_float, metavar="S",
                   help="hard limit per run in CPU seconds of the solver process (> 0; "
                        "default 3 x the budget in seconds + 60, or 600 for a work budget); "
                        "a run that hangs without using CPU is stopped by a wall-clock "
                        "backstop of 3 x that, stretched by the machine's load")
    p.add_argument("--results", default="results", metavar="DIR",
                   help="results directory (default ./results)")
    p.add_argument("--workers", type=positive_int, default=1, metavar="W",
                   help="parallel worker processes (default 1)")
    p.add_argument("--threads", type=positive_int, default=1, metavar="T",
                   help="torch/BLAS threads per worker (default 1)")
    p.add_argument("--memory-limit-gb", type=positive_float, metavar="G",
                   help="address-space limit per worker in GB (CPU)")
    p.add_argument("--backend", default="local",
                   choices=["local", "inline", "dask", "submitit"],
                   help="local worker processes (default), inline (no isolation), dask, or "
                        "submitit (SLURM; BILEVEL_BENCH_SUBMITIT_CLUSTER=local to try it here)")
    p.add_argument("--address", help="dask: scheduler address (default: a local cluster); "
                                     "submitit: log folder (default RESULTS/.submitit)")
    p.add_argument("--sandbox", action="store_true",
                   help="run each solver process inside bubblewrap (no network, read-only "
                        "filesystem but a scratch folder)")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="hyperparameter override (repeatable); such runs are recorded under "
                        "the ruleset 'custom', never ranked with the authors' defaults")
    p.add_argument("--no-resume", action="store_true", help="re-run runs already recorded")
    p.add_argument("--ruleset", default="default", choices=["default", "reference", "tuned"],
                   help="default hyperparameters; reference: the authors' published (or "
                        "target-freezing) configuration per problem; or tuned per instance "
                        "on tuning seeds")
    p.add_argument("--trials", type=positive_int, default=8, metavar="N",
                   help="tuned: configurations per instance (default 8)")
    p.add_argument("--tuning-seeds", type=positive_int, default=2, metavar="K",
                   help="tuned: seeds per configuration (default 2)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("show", help="summarise the run records in a directory")
    p.add_argument("results", nargs="+", metavar="DIR", help="folders of run records")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("check-solver", help="check a solver plugin against the contract")
    p.add_argument("solver", metavar="SOLVER", help="registered name or path/to/file.py:ClassName")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run the contained check without bubblewrap (default: inside it "
                        "where it is available)")
    p.set_defaults(func=cmd_check_solver)

    p = sub.add_parser("submit", help="pack run records and the solver's source into a bundle")
    p.add_argument("results", nargs="+", metavar="DIR", help="folders of run records")
    p.add_argument("-o", "--output", required=True, metavar="BUNDLE",
                   help="bundle: a new folder, or a file ending in .tar.gz")
    p.add_argument("--source", action="append", default=[], metavar="FILE",
                   help="solver plugin file the records name (and its helper modules)")
    p.add_argument("--wheel", action="append", default=[], metavar="WHEEL",
                   help="wheel of the solver package (other than bilevel-bench)")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("verify", help="re-execute a submitted bundle in a sandbox and compare")
    p.add_argument("bundle", metavar="BUNDLE",
                   help="bundle folder or .tar.gz from `bilevel-bench submit`")
    p.add_argument("--sample", type=positive_int, metavar="K",
                   help="re-execute K records (default: all)")
    p.add_argument("--seed", type=nonnegative_int, default=0, metavar="S",
                   help="sample seed (default 0)")
    p.add_argument("--band", type=positive_float, default=3.0, metavar="B",
                   help="times within this factor are within the band (default 3; reported, "
                        "never failed)")
    p.add_argument("--workers", type=positive_int, default=1, metavar="W",
                   help="parallel worker processes (default 1)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="verdicts file (default BUNDLE/verification.json, "
                        "or NAME.verification.json beside an archive)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("check-problem", help="check a problem plugin against the contract")
    p.add_argument("problem", metavar="PROBLEM", help="registered instance or family name, or "
                                   "path/to/file.py:ClassName[:instance]")
    p.set_defaults(func=cmd_check_problem)

    p = sub.add_parser("leaderboard", help="build the static HTML leaderboard from run records")
    p.add_argument("results", nargs="+", metavar="DIR",
                   help="folders of run records (searched recursively)")
    p.add_argument("-o", "--output", default="site", metavar="SITE",
                   help="site folder (default ./site)")
    p.add_argument("--bootstrap", type=nonnegative_int, default=1000, metavar="B",
                   help="bootstrap replicates for the intervals (default 1000)")
    p.add_argument("--seed", type=nonnegative_int, default=0, metavar="S",
                   help="bootstrap seed (default 0)")
    p.add_argument("--title", default="bilevel_bench leaderboard", metavar="T",
                   help="site title")
    p.add_argument("--no-suites", action="store_true",
                   help="rank all recorded problems together, without the registry's suites")
    p.add_argument("--asv", action="append", metavar="ASV_RESULTS",
                   help="asv results folder (e.g. .asv/results) whose timings the problem pages "
                        "show beside the records' (repeatable)")
    p.add_argument("--highlight", action="append", metavar="SOLVER",
                   help="always draw this solver's curves and mark its rows, e.g. your own "
                        "(repeatable; a page address may also say ?highlight=NAME)")
    p.add_argument("--cache", metavar="DIR",
                   help="keep what was read of each record file (by its sha256) in DIR, "
                        "outside the site, so that the next build reads only new or changed "
                        "files (default: no cache)")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("report", help="paper-ready LaTeX tables, PDF/SVG figures, reproduce.sh "
                                      "and BibTeX from run records")
    p.add_argument("results", nargs="+", metavar="DIR",
                   help="folders of run records (searched recursively)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="report folder (created when missing; files of an earlier report in "
                        "it are replaced)")
    p.add_argument("--solver", action="append", metavar="NAME",
                   help="only this solver's records, e.g. yours and the reference solvers "
                        "to compare with (repeatable; default: every solver)")
    p.add_argument("--task", action="append", metavar="TASK",
                   help="only the problems of this task, e.g. quadratics (repeatable; "
                        "default: every task)")
    p.set_defaults(func=cmd_report)
    return parser


# ---------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    """``bilevel-bench list``."""
    from bilevel_bench import registry

    if args.what == "problems":
        for name, entry in sorted(registry.problems().items()):
            inst, family = entry.instance, entry.family
            direction = ">=" if family.higher_is_better else "<="
            ladder = (f"ladder {' > '.join(f'{v:g}' for v in inst.ladder)}" if inst.ladder
                      else "ladder: 10 rungs from x0")
            budget = ", ".join(part for part in (
                f"{inst.budget.seconds:g} CPU s" if inst.budget.seconds is not None else "",
                f"{inst.budget.iterations} it" if inst.budget.iterations is not None else "",
                f"{inst.budget.oracle_cost:g} oracles" if inst.budget.oracle_cost is not None
                else "") if part)
            print(f"{name:30s} v{family.version:3s} {family.primary_metric} {direction} "
                  f"{inst.target:g} ({ladder}; budget {budget or 'none'})  suites: "
                  f"{','.join(inst.suites) or '-'}  {inst.description}")
    elif args.what == "solvers":
        for name, cls in sorted(registry.solvers().items()):
            caps = sorted(cls.needs) + [f"handles:{h}" for h in sorted(cls.handles)]
            print(f"{name:24s} v{cls.version:6s} [{', '.join(caps)}]  {cls.citation}")
    else:
        for name, members in sorted(registry.suites().items()):
            print(f"{name:12s} {len(members):3d} instances: {', '.join(members)}")
    for broken in registry.broken_plugins():
        print(f"warning: plugin {broken.name!r} ({broken.group}) left out: {broken.error}",
              file=sys.stderr)
    return 0


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are Python literals when they parse as one."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"cannot read --hp {item!r}: write KEY=VALUE, e.g. --hp lr=0.01")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def cmd_run(args: argparse.Namespace) -> int:
    """``bilevel-bench run``: plan, validate everything, then run with a progress bar."""
    from bilevel_bench import registry
    from bilevel_bench.executors import make_executor, plugin_folders
    from bilevel_bench.matrix import plan
    from bilevel_bench.results import load_results

    if args.address and args.backend not in ("dask", "submitit"):
        raise ValueError("--address applies to --backend dask or submitit")
    if args.sandbox and args.backend == "inline":
        raise ValueError("--sandbox needs a contained backend (local, dask or submitit), not "
                         "inline")
    problems = registry.get_suite(args.suite) if args.suite else args.problem
    solvers = args.solver or sorted(registry.solvers())
    hyper = parse_assignments(args.hp)
    if hyper:
        if len(solvers) != 1:
            raise ValueError("--hp applies to one solver: name exactly one --solver")
        if args.ruleset != "default":
            raise ValueError(f"--hp and --ruleset {args.ruleset} exclude each other")
        registry.get_solver(solvers[0])(**hyper)  # names, types and ranges, before anything runs
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: no CUDA device is available here")
    budget = {"seconds": args.budget_seconds, "oracle_cost": args.budget_oracles,
              "iterations": args.budget_iterations}
    the_plan = plan(problems, solvers, range(args.seed_offset, args.seed_offset + args.seeds),
                    device=args.device, budget=budget, hyperparameters=hyper,
                    threads=args.threads, timeout=args.timeout,
                    budget_scale=args.budget_scale)
    if not the_plan.tasks:
        reasons = sorted({f"{solver} {reason}" for _, solver, reason in the_plan.skipped})
        raise ValueError("nothing to run: no solver given can handle the problems given ("
                         + "; ".join(reasons[:5]) + ("; ..." if len(reasons) > 5 else "") + ")")
    if the_plan.skipped:
        print(skip_summary(the_plan.skipped))
    results = paths.output_folder(args.results, "results directory", "--results")
    _quiet_worker_warnings()
    executor = make_executor(args.backend, workers=args.workers, threads=args.threads,
                             memory_limit_gb=args.memory_limit_gb, address=args.address,
                             sandbox=args.sandbox, folder=results / ".submitit",
                             visible=plugin_folders(solvers))
    tasks = the_plan.tasks
    if hyper:  # hand-set hyperparameters are neither the authors' defaults nor tuned
        tasks = [replace(task, ruleset="custom") for task in tasks]
    if args.ruleset == "reference":
        from bilevel_bench import tuning

        tasks, missing = tuning.reference_tasks(tasks)
        if missing:
            shown = ", ".join(f"{solver} on {problem}" for problem, solver in missing[:4])
            print(f"reference: no reference configuration for {len(missing)} (problem, solver) "
                  f"pair(s), not run: {shown}{', ...' if len(missing) > 4 else ''}")
        if not tasks:
            raise ValueError("nothing to run: no solver given has a reference configuration "
                             "for the problems given (see `bilevel-bench list solvers`)")
    if args.ruleset == "tuned":
        from bilevel_bench import tuning

        trials = tuning.tuning_tasks(tasks, args.trials, args.tuning_seeds)
        print(f"tuning: {args.trials} configurations x {args.tuning_seeds} tuning seeds per "
              f"(problem, solver), {len(trials)} runs in {results / 'tuning'}")
        _run_with_progress(trials, results / "tuning", executor, not args.no_resume)
        tasks = tuning.select(results / "tuning", tasks, args.trials, args.tuning_seeds)
    job_cpu = _job_cpu_seconds()
    skipped = _run_with_progress(tasks, results, executor, not args.no_resume)
    job_cpu = _job_cpu_seconds() - job_cpu
    ids = {task.run_id() for task in tasks}
    frame = load_results(results, warn=False)
    frame = frame[frame["run_id"].isin(ids)] if not frame.empty else frame
    print_summary(frame)
    if not frame.empty and "evaluation_time" in frame:
        solver_s, eval_s = frame["solver_time"].sum(), frame["evaluation_time"].sum()
        print(f"\nsolver time {solver_s:.1f} s (CPU), evaluation time {eval_s:.1f} s "
              f"(untimed, {eval_s / max(solver_s, 1e-9):.2f} x the solver time)")
        new = frame[~frame["run_id"].isin(skipped)]["solver_time"].sum()
        if job_cpu > 0 and new > 0:
            print(f"this command spent {job_cpu:.1f} CPU s (all its processes); the solvers' "
                  f"share of it: {min(new / job_cpu, 1.0):.0%} (the rest: start-up, "
                  "evaluation, records)")
    print(f"\nresults: {results.resolve()}  ({len(frame)} run records)")
    return 0


def _job_cpu_seconds() -> float:
    """CPU seconds spent so far by this process and every process it started (the kernel's
    accounting: live descendants and the reaped ones)."""
    from bilevel_bench.sandbox import cpu_seconds, descendants

    me = os.getpid()
    return cpu_seconds([me, *descendants(me)])


def skip_summary(skipped: list[tuple[str, str, str]]) -> str:
    """One line for the (problem, solver) pairs a plan leaves out, counted by reason."""
    if len(skipped) == 1:
        problem, solver, reason = skipped[0]
        return f"skip {solver} on {problem}: it {reason}"
    by_reason = Counter(reason for _, _, reason in skipped)
    parts = [f"{count} {reason}" for reason, count in by_reason.most_common()]
    return (f"skip {len(skipped)} (problem, solver) pairs the solver cannot run: "
            + "; ".join(parts))


def _quiet_worker_warnings() -> None:
    """Keep known third-party deprecation warnings out of the progress bar, in this process
    and in the worker processes (which inherit ``PYTHONWARNINGS``)."""
    for option in QUIET_WARNINGS:  # all of the form ignore:MESSAGE:FutureWarning
        message = option.split(":")[1]
        warnings.filterwarnings("ignore", message=re.escape(message), category=FutureWarning)
    current = os.environ.get("PYTHONWARNINGS", "")
    os.environ["PYTHONWARNINGS"] = ",".join([current, *QUIET_WARNINGS] if current
                                            else QUIET_WARNINGS)


def _run_with_progress(tasks: list, directory: Path, executor: Any, resume: bool) -> set[str]:
    """Run the tasks with a progress bar; returns the run ids skipped as already recorded."""
    from tqdm import tqdm

    from bilevel_bench.matrix import run_matrix

    bar = tqdm(total=len(tasks), unit="run", dynamic_ncols=True, file=sys.stderr)
    # the work budget of the matrix (oracle cost): settled as runs finish, whether they used
    # it all or reached the target early; and the solver CPU seconds spent so far
    budgets = {task.run_id(): task.resolved_budget().oracle_cost or 0.0 for task in tasks}
    total, settled, cpu = sum(budgets.values()), [0.0], [0.0]

    def progress(record: dict, path: Path) -> None:
        settled[0] += budgets.get(record.get("run_id"), 0.0)
        cpu[0] += float((record.get("summary") or {}).get("solver_time") or 0.0)
        work = f"budget {settled[0] / total:.0%} settled, " if total else ""
        bar.set_postfix_str(f"{work}solver CPU {cpu[0]:.0f} s | {record['problem']['name']} / "
                            f"{record['solver']['name']}: {record['status']}")
        bar.update()

    recorded = run_matrix(tasks, directory, executor, resume=resume, on_record=progress)
    settled[0] += sum(budgets.get(run_id, 0.0) for run_id in recorded)
    bar.update(len(recorded))
    bar.close()
    if recorded:
        print(f"{len(recorded)} run(s) were already recorded and were skipped "
              "(--no-resume re-runs them)")
    return set(recorded)


def print_summary(frame) -> None:
    from bilevel_bench.metrics import per_instance

    table = per_instance(frame)
    if table.empty:
        print("no run records")
        return
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(table[[c for c in SUMMARY_COLUMNS if c in table]].to_string(index=False))


def cmd_show(args: argparse.Namespace) -> int:
    """``bilevel-bench show``."""
    folders = [paths.records_folder(folder) for folder in args.results]
    from bilevel_bench.results import load_results

    frame = load_results(*folders, warn=False)
    print_summary(frame)
    for path, reason in frame.attrs.get("skipped", []):
        print(f"skipped {path}: {reason}")
    return 0


def cmd_check_solver(args: argparse.Namespace) -> int:
    """``bilevel-bench check-solver``: 0 all checks pass, 1 a check fails, 2 cannot load."""
    from bilevel_bench.conformance import check_solver

    return _report(check_solver(args.solver, sandbox=not args.no_sandbox))


def cmd_submit(args: argparse.Namespace) -> int:
    """``bilevel-bench submit``: pack records, solver source and a manifest of sha256s."""
    folders = [paths.records_folder(folder) for folder in args.results]
    sources = [paths.input_file(path, "--source") for path in args.source]
    wheels = [paths.input_file(path, "--wheel") for path in args.wheel]
    if args.output.endswith((".tar.gz", ".tgz")):
        paths.output_file(args.output, "bundle", "-o", new=True)
    else:
        paths.output_folder(args.output, "bundle folder", "-o", empty=True)
    from bilevel_bench.submission import submit

    manifest = submit(folders, args.output, sources=sources, wheels=wheels)
    for line in manifest.get("skipped", []):
        print(f"skipped {line}")
    print(f"{args.output}: {len(manifest['records'])} record(s), source "
          f"{', '.join(manifest['sources'] + manifest['wheels']) or 'bilevel-bench itself'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``bilevel-bench verify``: 0 nothing failed, 2 a record is forged or tampered (one
    ``FAIL`` line per mismatch on stderr), or the sandbox is unavailable."""
    bundle = paths.input_path(args.bundle, "bundle")
    if not bundle.is_dir():
        paths.input_file(bundle, "bundle")
    if args.output is not None:
        paths.output_file(args.output, "verdicts file", "-o")
    from bilevel_bench.submission import verify

    _quiet_worker_warnings()
    result = verify(args.bundle, sample=args.sample, seed=args.seed, band=args.band,
                    output=args.output, workers=args.workers)
    for line in result.lines():
        print(line)
    for line in result.failure_lines():
        print(line, file=sys.stderr)
    return 0 if result.ok else 2


def cmd_check_problem(args: argparse.Namespace) -> int:
    """``bilevel-bench check-problem``: 0 all checks pass, 1 a check fails, 2 cannot load."""
    from bilevel_bench.conformance import check_problem

    return _report(check_problem(args.problem))


def _report(report: Any) -> int:
    if report.load_error:
        print(f"error: {_one_line(report.load_error)}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """``bilevel-bench leaderboard``: prints which site it built and the path of its index."""
    inputs = [paths.records_folder(folder) for folder in args.results]
    asv = [paths.input_path(path, "asv results") for path in args.asv or ()]
    site = paths.site_folder(args.output, inputs)
    cache = paths.cache_folder(args.cache, inputs, site) if args.cache else None
    from bilevel_bench.leaderboard.build import build_site
    from bilevel_bench.leaderboard.collect import official_suites

    suites = None if args.no_suites else official_suites()  # never the builder's plugins
    index = build_site(inputs, site, suites=suites, n_boot=args.bootstrap, seed=args.seed,
                       title=args.title, asv_results=asv, highlight=args.highlight or (),
                       cache=cache)
    print(site_description(inputs, site, index))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``bilevel-bench report``: prints what it wrote, what it kept apart, and the README."""
    inputs = [paths.records_folder(folder) for folder in args.results]
    output = paths.output_folder(args.output, "report folder", "-o")
    from bilevel_bench.report import write_report

    written = write_report(inputs, output, solvers=args.solver, tasks=args.task)
    print(f"report of {written.runs} run records: {len(written.tables)} table(s), "
          f"{len(written.figures)} figure(s) (PDF and SVG), reproduce.sh "
          f"({written.commands} command(s)), references.bib ({written.references} "
          "entries)")
    for note in written.notes:
        print(f"note: {note}")
    print(f"files: {(output / 'README.md').resolve()}")
    return 0


def site_description(inputs: list[Path], site: Path, index: Path) -> str:
    """One line saying which site was built (the official one, or one of your own records)
    and where its ``index.html`` is."""
    if paths.is_official_submissions(inputs):
        return f"official site (from {inputs[0]}): {index.resolve()}"
    line = f"site of your own records (not the official site): {index.resolve()}"
    if paths.is_official_site(site):
        line += (f" -- note: {site} is the official site's folder; rebuild the official site "
                 "with `bilevel-bench leaderboard leaderboard/submissions -o leaderboard/site`")
    return line


if __name__ == "__main__":
    sys.exit(main())
