"""User-facing errors: each message names the problem and says how to fix it."""

from __future__ import annotations


class BenchError(Exception):
    """Base class of errors that the CLI reports as a message, without a traceback."""


class UnknownNameError(BenchError, KeyError):
    """A problem, suite or solver name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PluginError(BenchError):
    """A plugin that cannot be imported or breaks the contract."""


class DataError(BenchError):
    """A dataset that is missing or fails its checksum."""


class ResultsError(BenchError):
    """A results directory that cannot be written or read."""


class PathError(ResultsError):
    """A path given to a command that cannot be used as it is (bilevel_bench.paths)."""
