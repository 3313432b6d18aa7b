"""Solvers that break in every way the runner and the conformance check must survive.

Loaded by path (``tests/plugins/bad_solvers.py:ClassName``), as a third-party plugin would be.
"""

from __future__ import annotations

import os
import signal
import time

import torch

from bilevel_bench import Hyperparameter, Solver


class _Base(Solver):
    version = "0"
    citation = "test fixture"

    def init(self, problem, x0, y0, generator):
        self.problem, self.x, self.y = problem, x0.clone(), y0.clone()
        self.k = 0

    def step(self):
        _, gy = self.problem.grad("g", self.x, self.y, wrt="y")
        self.y = self.y - 0.1 * gy
        self.k += 1

    def solution(self):
        return self.x, self.y


class GoodSolver(_Base):
    """LL gradient descent only (x stays put): contract-abiding."""

    name = "good"
    hyperparameters = {"lr": Hyperparameter(0.1)}


class RaisingSolver(_Base):
    name = "raising"

    def step(self):
        super().step()
        if self.k == 3:
            raise RuntimeError("deliberate failure in step 3")


class NaNSolver(_Base):
    name = "nan"

    def step(self):
        super().step()
        if self.k >= 2:
            self.x = self.x * float("nan")


class HangingSolver(_Base):
    name = "hanging"

    def step(self):
        super().step()
        if self.k >= 2:
            time.sleep(3600)


class WrongShapeSolver(_Base):
    name = "wrong-shape"

    def solution(self):
        return self.x, torch.zeros(self.y.numel() + 1, dtype=self.y.dtype)


class MemoryHogSolver(_Base):
    name = "memory-hog"

    def step(self):
        super().step()
        self.waste = torch.empty(2**44, dtype=torch.float64)  # 128 TiB: allocation fails


class KilledSolver(_Base):
    """Dies as if the kernel's OOM killer took it."""

    name = "killed"

    def step(self):
        super().step()
        if self.k >= 2:
            os.kill(os.getpid(), signal.SIGKILL)


class MutatingSolver(_Base):
    name = "mutating"

    def step(self):
        super().step()
        self.problem._problem.data_tensors()  # reach behind the view ...
        for tensor in self.problem._problem.data_tensors().values():
            tensor.mul_(1.0001)  # ... and corrupt the data
            break


class EvalPeekingSolver(_Base):
    name = "eval-peeking"

    def step(self):
        super().step()
        self.problem._problem.evaluate(self.x, self.y)


class NondeterministicSolver(_Base):
    name = "nondeterministic"

    def step(self):
        super().step()
        self.x = self.x + 1e-3 * torch.randn(self.x.shape, dtype=self.x.dtype,
                                             generator=torch.Generator().manual_seed(
                                                 time.perf_counter_ns() % 2**31))


class MissingMethods(Solver):
    name = "missing methods"
    version = ""
    citation = ""


class NotASolver:
    name = "not-a-solver"


class Sleepy(_Base):
    """Sleeps 5 ms per step (wall time without CPU time) and does nothing else."""

    name = "sleepy"

    def init(self, problem, x0, y0, generator):
        self.x, self.y = x0, y0

    def step(self):
        time.sleep(0.005)

    def solution(self):
        return self.x, self.y


class NeedsMissingLibrary(_Base):
    """Declares an optional library that is not installed: planned out, never run."""

    name = "needs-missing-library"
    requires = {"no_such_library_xyz": "pip install xyz"}


class ImpostorSolver(_Base):
    """Takes the name of a registered reference solver."""

    name = "aid-cg"


class EnvironmentEcho(_Base):
    """Fails at once with what its process sees: an environment variable and torch's threads."""

    name = "environment-echo"

    def step(self):
        raise RuntimeError(f"echo={os.environ.get('BILEVEL_BENCH_TEST_ECHO')} "
                           f"threads={torch.get_num_threads()}")
