"""Solvers that reach outside their run (tests/test_submission.py): under ``--sandbox`` each one
fails with what the sandbox refused. ``$SANDBOX_TARGET`` names the file they try to write."""

from __future__ import annotations

import os
import socket

from bilevel_bench import Solver


class _Base(Solver):
    version = "0"
    citation = "test fixture"

    def init(self, problem, x0, y0, generator):
        self.problem, self.x, self.y = problem, x0.clone(), y0.clone()

    def step(self):
        _, gy = self.problem.grad("g", self.x, self.y, wrt="y")
        self.y = self.y - 0.1 * gy

    def solution(self):
        return self.x, self.y


class WritesOutside(_Base):
    """Writes a file outside its scratch folder."""

    name = "writes-outside"

    def step(self):
        super().step()
        with open(os.environ["SANDBOX_TARGET"], "w") as handle:
            handle.write("escaped")


class PhonesHome(_Base):
    """Opens a network connection (to a public address)."""

    name = "phones-home"

    def step(self):
        super().step()
        socket.create_connection(("1.1.1.1", 443), timeout=5).close()
