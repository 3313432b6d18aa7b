"""Hostile solvers for the containment suite (tests/test_containment.py), each a few lines.

Processes they start write their pid to ``$HOSTILE_PIDS/<name>.<pid>`` so the tests can check
that none survives its run.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time

import torch

from bilevel_bench import Solver
from bilevel_bench.problem import BilevelProblem


def note_pid(tag: str, pid: int | None = None) -> None:
    folder = os.environ.get("HOSTILE_PIDS")
    if folder:
        open(os.path.join(folder, f"{tag}.{pid or os.getpid()}"), "w").close()


def sleeper(tag: str, new_session: bool = False) -> None:
    """A child process that would sleep for an hour."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"],
                             start_new_session=new_session)
    note_pid(tag, child.pid)


class _Base(Solver):
    version = "0"
    citation = "test fixture"

    def init(self, problem, x0, y0, generator):
        self.problem, self.x, self.y, self.k = problem, x0.clone(), y0.clone(), 0

    def step(self):
        _, gy = self.problem.grad("g", self.x, self.y, wrt="y")
        self.y, self.k = self.y - 0.1 * gy, self.k + 1

    def solution(self):
        return self.x, self.y


class ExactPeek(_Base):
    """Returns the exact solution it finds behind the oracle view."""

    name = "exact-peek"

    def solution(self):
        exact = self.problem._problem._exact
        return exact["x"].clone(), exact["y"].clone()


class GcPeek(_Base):
    """Searches the heap for a problem object with an exact solution or test data."""

    name = "gc-peek"

    def step(self):
        super().step()
        for obj in gc.get_objects():
            if isinstance(obj, BilevelProblem) and isinstance(vars(obj).get("_exact"), dict):
                self.x = obj._exact["x"].clone()


class FramePeek(_Base):
    """Walks up the stack for a local that evaluates."""

    name = "frame-peek"

    def step(self):
        super().step()
        frame = sys._getframe()
        while frame is not None:
            for value in frame.f_locals.values():
                if hasattr(value, "evaluate") and callable(value.evaluate):
                    value.evaluate(self.x, self.y)
            frame = frame.f_back


class EvaluatePatcher(_Base):
    """Replaces every problem's evaluate with one that reports success."""

    name = "evaluate-patcher"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        for cls in [BilevelProblem, *BilevelProblem.__subclasses__()]:
            cls.evaluate = lambda self, x, y: {self.primary_metric: 0.0, "ul_gap": 0.0}
        torch.Tensor.isfinite = lambda self: torch.ones((), dtype=torch.bool)


class Float32Answer(_Base):
    name = "float32-answer"

    def solution(self):
        return self.x.float(), self.y.float()


class Int64Answer(_Base):
    name = "int64-answer"

    def solution(self):
        return self.x.long(), self.y.long()


class _Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")


class UnprintableError(_Base):
    name = "unprintable-error"

    def step(self):
        raise _Unprintable()


class BusyLoop(_Base):
    """Spins at 100% CPU forever (and notes its pid)."""

    name = "busy-loop"

    def step(self):
        note_pid("busy")
        while True:
            pass


class ForkThenCrash(_Base):
    """Forks a child that holds the run's channel open, then the solver process dies."""

    name = "fork-then-crash"

    def step(self):
        pid = os.fork()
        if pid == 0:
            time.sleep(3600)
            os._exit(0)
        note_pid("forked", pid)
        os._exit(3)


class DetachedChild(_Base):
    """Leaves a child in a new session (outside the run's process group) and finishes."""

    name = "detached-child"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        sleeper("detached", new_session=True)


class DoubleFork(_Base):
    """Daemonises a grandchild (double fork + setsid), then finishes normally."""

    name = "double-fork"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        ready_r, ready_w = os.pipe()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                note_pid("daemon")
                os.write(ready_w, b"1")  # noted before the run may end (no race in the test)
                time.sleep(3600)
            os._exit(0)
        os.read(ready_r, 1)
        os.close(ready_r)
        os.close(ready_w)


class ExitsEarly(_Base):
    """Calls sys.exit in step."""

    name = "exits-early"

    def step(self):
        sys.exit(0)


class LiesOnTheWire(_Base):
    """Returns an iterate of the right shape but float32 disguised with a patched check."""

    name = "lies-on-the-wire"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        import bilevel_bench.runner as runner

        runner.check_solution = lambda out, problem: (out[0], out[1])

    def solution(self):
        return self.x.float(), self.y.float()


class BusyWithDetachedChild(_Base):
    """A busy loop and a detached sleeper: both must die when the orchestrator is killed."""

    name = "busy-with-detached-child"

    def step(self):
        sleeper("detached", new_session=True)
        note_pid("busy")
        while True:
            pass


# ----------------------------------------------------- data and problems out of the solver's reach
class ReadsDataDir(_Base):
    """Opens a file of the data directory (``$BILEVEL_BENCH_DATA``)."""

    name = "reads-data-dir"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        from bilevel_bench.data import data_dir

        (data_dir() / "held-out.csv").read_bytes()


class ReadsBundledData(_Base):
    """Opens scikit-learn's bundled digits file directly (no bilevel_bench call)."""

    name = "reads-bundled-data"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        import importlib.util

        folder = importlib.util.find_spec("sklearn").submodule_search_locations[0]
        with open(os.path.join(folder, "datasets", "data", "digits.csv.gz"), "rb") as handle:
            handle.read(16)


class RebuildsThroughRegistry(_Base):
    """Builds its instance again through the registry to read the exact y*."""

    name = "rebuilds-through-registry"

    def solution(self):
        from bilevel_bench import registry

        exact = registry.get_problem("quadratic-small").make(seed=0)._exact
        return exact["x"].clone(), exact["y"].clone()


class RebuildsThroughFamily(_Base):
    """Calls the family's constructor to get the test data."""

    name = "rebuilds-through-family"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        from bilevel_bench.problems.hyper_cleaning import HyperCleaning

        self.test = HyperCleaning(seed=0, dataset="digits").z_test


class LoadsDataset(_Base):
    """Loads a dataset (test split included) through bilevel_bench.data."""

    name = "loads-dataset"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        from bilevel_bench import data

        data.load("sklearn/digits")


def _evaluator_pid() -> int:
    """The solver process's grandparent: the evaluator (above the run template)."""
    with open(f"/proc/{os.getppid()}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


class ReadsEvaluatorMemory(_Base):
    """Opens the evaluator's memory through /proc (where its test data live)."""

    name = "reads-evaluator-memory"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        with open(f"/proc/{_evaluator_pid()}/mem", "rb") as handle:
            handle.read(1)


class KillsEvaluator(_Base):
    """Sends SIGKILL to its evaluator."""

    name = "kills-evaluator"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        os.kill(_evaluator_pid(), 9)


class UsesScratchAndImports(_Base):
    """Honest: imports modules not loaded yet and writes temporary files after the
    restriction; must run normally."""

    name = "uses-scratch-and-imports"

    def init(self, problem, x0, y0, generator):
        super().init(problem, x0, y0, generator)
        import tempfile

        note_pid("scratch")
        import scipy.optimize  # noqa: F401
        import torch.utils.benchmark  # noqa: F401

        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "note"), "w") as handle:
                handle.write("scratch")
        with tempfile.NamedTemporaryFile() as handle:
            handle.write(b"scratch")


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class HiddenWork(_Base):
    """Works in ``__init__``, which runs off the clock (the runner makes the solver twice)."""

    name = "hidden-work"

    def __init__(self, **params):
        super().__init__(**params)
        _burn(1.0)
