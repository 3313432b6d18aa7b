"""Where runs execute: in this process, in a pool of local worker processes, or on a Dask cluster.

A run is a pure task (:class:`~bilevel_bench.runner.RunTask`) -> record, so every executor has
one method, ``map(tasks, on_record)``, that calls ``on_record(record)`` as each run finishes.

:class:`LocalPool` (the default) keeps ``workers`` child processes (forked from a fork server
that imported their heavy modules once, see :func:`worker_context`; with BLAS/OpenMP/torch threads
pinned to ``threads`` each) and gives each run a hard limit in CPU seconds of its solver
process and that process's descendants (the kernel's accounting, read from outside), with a
wall-clock backstop of :data:`WALL_BACKSTOP` times that limit, stretched by the machine's load
and by the time spent evaluating, for a run that hangs without using CPU: a busy machine does
not turn runs into ``timeout`` records. A worker
streams its checkpoints to the parent as they happen, so when a run hangs (limit passed: the
worker is killed, status ``timeout``), crashes the interpreter (status ``error``) or is killed
for memory (status ``oom``), the record keeps everything measured up to that point; the worker
is replaced and the matrix goes on.
"""

from __future__ import annotations

import gc
import importlib
import json
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from typing import Any

from bilevel_bench.runner import RunTask, execute, finish_record, record_header
from bilevel_bench.sandbox import (
    MAX_META_BYTES,
    SANDBOX_DESCRIPTION,
    ProtocolError,
    Template,
    alive,
    cgroup_oom_kills,
    cpu_seconds,
    decode,
    descendants,
    describe_exit,
    dtype_name,
    encode,
    kill_descendants,
    killed_for_memory,
    killpg,
    oracle_half,
    require_bwrap,
    safe_str,
    set_child_subreaper,
    set_parent_death_signal,
)

OnRecord = Callable[[dict[str, Any]], None]
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

#: the third-party part of a worker's start-up, imported once by the fork server instead of by
#: every worker (CPU seconds here: torch 1.1, the data loaders' scikit-learn and pandas 1.1,
#: torch's symbolic shapes with sympy 0.3)
WORKER_PRELOAD = ("torch", "torch.fx.experimental.symbolic_shapes", "sklearn.datasets", "pandas")

#: the thread count the fork server of this process was started with (None: not started)
_forkserver_threads: int | None = None

#: a run that uses no CPU (a hang, a sleep) is killed after this many times its CPU limit of
#: wall-clock time, stretched by the load per core and by the time spent evaluating
WALL_BACKSTOP = 3.0


def worker_context(threads: int) -> Any:
    """The multiprocessing context that starts :class:`LocalPool` workers.

    Where the platform has fork servers (Linux, macOS), one server per orchestrating process
    imports :data:`WORKER_PRELOAD` when the first worker starts, and every worker, including
    each one that replaces a worker killed after a timeout, crash or OOM, is forked from it: the
    ~2.5 s of imports are paid once instead of once per worker. The server keeps the
    environment it started with, and BLAS libraries read their thread counts when they load, so
    it serves only pools with that pool's ``threads``; a pool with another count spawns a fresh
    interpreter per worker, as do platforms without fork servers. Either way a worker starts
    from the orchestrator's environment of that moment (:class:`_Worker` passes it)."""
    global _forkserver_threads
    if "forkserver" not in mp.get_all_start_methods() or _forkserver_threads not in (None,
                                                                                       threads):
        return mp.get_context("spawn")
    context = mp.get_context("forkserver")
    if _forkserver_threads is None:
        context.set_forkserver_preload(list(WORKER_PRELOAD))
        _forkserver_threads = threads
    return context


class InlineExecutor:
    """Runs tasks one after the other in this process (no isolation, no hard timeout): for
    debugging. Pins this process's threads like a worker's."""

    def __init__(self, threads: int = 1) -> None:
        from bilevel_bench.provenance import pin_threads

        pin_threads(threads)

    def map(self, tasks: Iterable[RunTask], on_record: OnRecord) -> None:
        for task in tasks:
            on_record(execute(task))


class WireLink:
    """The solver half's side of a contained run: messages to the evaluator in the plain wire
    format of :mod:`bilevel_bench.sandbox` (never pickled on the way to the evaluator)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def describe(self, description: dict[str, Any], isolation: dict | None = None) -> None:
        self.conn.send_bytes(encode({"kind": "solver", "solver": description,
                                     "isolation": isolation}))

    def checkpoint(self, point: dict[str, Any], x: Any, y: Any) -> str | None:
        self.conn.send_bytes(encode({"kind": "checkpoint", "point": point}, (x, y)))
        return self.conn.recv()  # the evaluator's verdict (trusted side)

    def end(self, status: str, error: dict | None) -> None:
        self.conn.send_bytes(encode({"kind": "end", "status": status, "error": error}))


def _solver_body(conn: Connection) -> None:
    """The solver process (a fresh fork of the template): build the oracle half of the
    problem, then run the solver half of the task and stream to the evaluator."""
    from bilevel_bench import registry
    from bilevel_bench.runner import DTYPES, error_info, solve

    task = conn.recv()  # from the evaluator (trusted side)
    link = WireLink(conn)
    try:
        entry = registry.get_problem(task.problem)
        dtype = DTYPES[task.dtype] if task.dtype else None
        full = entry.make(seed=task.seed, device=task.device, dtype=dtype)
        problem, isolation = oracle_half(full)
        del full
    except Exception as exc:
        link.end("error", error_info(exc))
        return
    isolation = {"solver_process": "fresh fork per run, own process group", **isolation}
    solve(task, link, problem=problem, isolation=isolation)


#: largest tensor element on the wire, in bytes (complex128), for the message size limit
_ITEM = 16


def _text_fields(value: Any, limit: int = 2000) -> Any:
    """A JSON value from a solver process, kept only if it is plain and small."""
    blob = json.dumps(value, default=safe_str, allow_nan=True)
    if len(blob) > 100_000:
        raise ProtocolError("solver description over 100 kB")
    return json.loads(blob)


def run_contained(task: RunTask, template: Template, emit: Callable[[str, Any], None],
                  memory_limit_gb: float | None = None) -> tuple[dict[str, Any], bool]:
    """One run with the solver half in a fresh process forked from ``template`` and the
    evaluation here; returns the record and whether the template is still usable."""
    from bilevel_bench.runner import Evaluation

    evaluation = Evaluation(task, emit)
    record, healthy = _run_contained(task, template, emit, memory_limit_gb, evaluation)
    if template.scratch is not None:  # stated by the evaluator, not by the solver process
        record.setdefault("isolation", {})["sandbox"] = SANDBOX_DESCRIPTION
        empty_folder(template.scratch)
    return record, healthy


def empty_folder(folder: str) -> None:
    """Remove everything inside ``folder`` (a run's scratch), keeping the folder."""
    import shutil

    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _run_contained(task: RunTask, template: Template, emit: Callable[[str, Any], None],
                   memory_limit_gb: float | None, evaluation: Any) -> tuple[dict[str, Any], bool]:
    from bilevel_bench.runner import error_info

    if evaluation.failure is not None:
        return evaluation.finish("error", evaluation.failure), True
    problem = evaluation.problem
    limit = MAX_META_BYTES + _ITEM * (problem.x_shape.numel() + problem.y_shape.numel())
    oom_before = cgroup_oom_kills()
    conn, pid = template.fork()
    emit("solver_pid", pid)
    conn.send(task)
    ended: tuple[str, dict | None] | None = None
    exited: tuple[int, int, int] | None = None
    closed = False
    stop_at = float("inf")  # after a stop verdict: how long the solver may take to end
    healthy = True

    def handle(blob: bytes) -> None:
        nonlocal ended, stop_at
        meta, tensors = decode(blob)
        kind = meta.get("kind")
        if kind == "solver":
            description = _text_fields(meta.get("solver"))
            if not isinstance(description, dict):
                raise ProtocolError("solver description is not an object")
            isolation = _text_fields(meta.get("isolation"))
            evaluation.set_solver(description, isolation if isinstance(isolation, dict)
                                  else None)
        elif kind == "checkpoint":
            point = _point(meta.get("point"), evaluation.trace)
            if len(tensors) != 2:
                raise ProtocolError("a checkpoint carries exactly two tensors (x, y)")
            x, y = _iterate(tensors, problem, task.device)
            verdict = evaluation.score(point, x, y)
            conn.send(verdict)
            if verdict is not None:
                stop_at = time.monotonic() + 10.0
        elif kind == "end":
            status = meta.get("status")
            error = meta.get("error")
            if status not in ("budget", "error", "oom", "converged", "diverged") or not (
                    error is None or isinstance(error, dict)):
                raise ProtocolError(f"bad end message: status {safe_str(status)[:40]}")
            if error is not None:
                error = {k: safe_str(error.get(k, ""))[:8000] for k in
                         ("type", "message", "traceback")}
            ended = (status, error)
        else:
            raise ProtocolError(f"unknown message kind {safe_str(kind)[:40]}")

    try:
        while ended is None:
            if exited is not None or closed:
                break
            if time.monotonic() > stop_at:
                break
            ready = wait([conn, template.conn], timeout=0.5)
            if conn in ready:
                try:
                    blob = conn.recv_bytes(limit)
                except (EOFError, OSError):
                    closed = True
                    continue
                handle(blob)
            if template.conn in ready:
                try:
                    kind, payload = template.conn.recv()
                except (EOFError, OSError):
                    healthy = False
                    break
                if kind == "exited":
                    exited = payload
                    while ended is None and conn.poll(0):  # what it sent before dying
                        try:
                            handle(conn.recv_bytes(limit))
                        except (EOFError, OSError):
                            break
        if ended is None and healthy and exited is None:  # channel closed: wait for the exit
            if template.conn.poll(5.0):
                kind, payload = template.conn.recv()
                exited = payload if kind == "exited" else None
    except ProtocolError as exc:
        ended = ("error", {"type": "ProtocolError", "traceback": "",
                           "message": f"the solver process broke the run protocol: {exc}"})
    except Exception as exc:  # noqa: BLE001 - evaluation problems end this run, not the pool
        ended = ("error", error_info(exc))
    leftovers = 0
    if healthy:
        try:
            leftovers = template.clean()
        except (OSError, EOFError, RuntimeError):
            healthy = False
    else:
        killpg(pid)
    conn.close()
    if ended is None:
        if evaluation.verdict is not None:
            ended = evaluation.verdict
        else:
            ended = ("error", _death(exited, healthy, memory_limit_gb, oom_before))
            if ended[1]["type"] == "OutOfMemory":
                ended = ("oom", ended[1])
    record = evaluation.finish(*ended)
    if leftovers:
        record.setdefault("isolation", {})["killed_leftover_processes"] = leftovers
    return record, healthy


def _death(exited: tuple[int, int, int] | None, healthy: bool, memory_limit_gb: float | None,
           oom_before: int | None) -> dict[str, str]:
    """The error of a solver process that stopped without ending its run."""
    if not healthy:
        return {"type": "WorkerDied", "traceback": "",
                "message": "the run's supervising process died (killed by the solver?)"}
    if exited is None:
        return {"type": "WorkerDied", "traceback": "",
                "message": "the solver process closed its channel without finishing"}
    _pid, status, peak = exited
    code, sig = describe_exit(status)
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
        if sig == signal.SIGKILL and killed_for_memory(peak, memory_limit_gb, oom_before):
            return {"type": "OutOfMemory", "traceback": "",
                    "message": f"killed by signal 9 (SIGKILL) at a peak RSS of "
                               f"{peak / 2**30:.2f} GiB: out of memory"}
        return {"type": "WorkerDied", "traceback": "",
                "message": f"killed by signal {sig} ({name}); peak RSS {peak / 2**20:.0f} MiB"}
    return {"type": "WorkerDied", "traceback": "",
            "message": f"the solver process exited with code {code} before the run finished"}


def _point(point: Any, trace: list[dict]) -> dict[str, Any]:
    """The clocks and counts of a streamed checkpoint, checked for type and monotonicity."""
    if not isinstance(point, dict):
        raise ProtocolError("checkpoint without its point")
    try:
        out = {"iteration": int(point["iteration"]), "time": float(point["time"]),
               "wall_time": float(point["wall_time"]),
               "oracle_cost": float(point["oracle_cost"]), "samples": int(point["samples"]),
               "counts": {str(k): float(v) for k, v in dict(point["counts"]).items()}}
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed checkpoint: {type(exc).__name__}") from None
    if len(out["counts"]) > 64 or out["iteration"] < 0 or (
            trace and out["iteration"] < trace[-1]["iteration"]):
        raise ProtocolError("checkpoint iterations must be non-negative and non-decreasing")
    return out


def _iterate(tensors: list, problem: Any, device: str) -> tuple[Any, Any]:
    """(x, y) from the wire, checked against the problem: dtype and device as declared."""
    from bilevel_bench.runner import SolutionError

    out = []
    for label, (spec, t) in zip("xy", tensors, strict=True):
        if spec["dtype"] != dtype_name(problem.dtype):
            raise SolutionError(f"solution() returned {label} of dtype {spec['dtype']}; the "
                                f"problem is {dtype_name(problem.dtype)}")
        if str(spec.get("device", "")).split(":")[0] != str(problem.device.type):
            raise SolutionError(f"solution() returned {label} on {safe_str(spec.get('device'))};"
                                f" the problem lives on {problem.device}")
        out.append(t.to(device=problem.device, dtype=problem.dtype))
    return out[0], out[1]


def _drop_fork_server_handle() -> None:
    """Close the fork server's "orchestrator alive" pipe that a forked worker inherits (for
    children of its own, which it never starts). The server exits when the orchestrator's end
    closes, and every worker with it (parent-death signal), only if no worker holds a copy:
    otherwise a ``kill -9`` of the orchestrator would leave its workers and runs behind."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(fd, int):  # None in a spawned worker
        try:
            os.close(fd)
        except OSError:
            pass
        server._forkserver_alive_fd = None


def _worker_main(conn: Connection, threads: int, memory_limit_gb: float | None,
                 parent: int, sandbox: bool = False, python_path: tuple[str, ...] = (),
                 visible: tuple[str, ...] = (), environ: dict[str, str] | None = None) -> None:
    """Body of a worker process (the evaluator of its runs): receive tasks, run each one with
    its solver half in a fresh process forked from the template, stream events, send records.
    With ``sandbox``, the template is a fresh interpreter inside bubblewrap (with
    ``python_path`` on its ``PYTHONPATH``, never on the evaluator's), writable only in a
    scratch folder of this worker that is emptied after each run."""
    import shutil
    import tempfile

    from bilevel_bench import registry
    from bilevel_bench.data import import_loader_modules
    from bilevel_bench.provenance import distributions_of, pin_threads

    if environ is not None:  # forked from the fork server: the orchestrator's environment now
        os.environ.clear()
        os.environ.update(environ)
    _drop_fork_server_handle()
    # dies with its parent: the orchestrator, or the fork server, which exits with the
    # orchestrator; an orchestrator already gone means exit now
    set_parent_death_signal(signal.SIGKILL,
                            expected_parent=parent if os.getppid() == parent else None)
    if not alive(parent):
        os._exit(1)
    set_child_subreaper()  # orphans of a run whose template died come here, and are killed
    pin_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    registry.problems()  # warm-up, inherited by every solver process
    import_loader_modules()  # code only (no data): no run pays scikit-learn's import
    # torch imports symbolic shapes (sympy, ~0.2 s) lazily on a first double-backward pass
    importlib.import_module("torch.fx.experimental.symbolic_shapes")
    gc.freeze()  # start-up objects: a solver process's gc passes skip them (~0.1 s per run)
    distributions_of()
    scratch = tempfile.mkdtemp(prefix="bilevel-bench-scratch-") if sandbox else None
    try:
        template = Template(_solver_body, close_fds=[conn.fileno()],
                            memory_limit_gb=memory_limit_gb, scratch=scratch,
                            python_path=python_path, visible=visible)
        conn.send(("ready", template.pid))  # start-up (imports) does not count against a run
        _serve(conn, template, memory_limit_gb)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _serve(conn: Connection, template: Template, memory_limit_gb: float | None) -> None:
    while True:
        task = conn.recv()
        if task is None:
            template.close()
            return
        record, healthy = run_contained(
            task, template, lambda kind, payload: conn.send((kind, payload)), memory_limit_gb)
        if not healthy:
            kill_descendants(reap=_reap_children)
            record["_worker_died"] = True
        conn.send(("record", record))
        if not healthy:
            return


def _reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class _Worker:
    def __init__(self, context: Any, threads: int, memory_limit_gb: float | None,
                 sandbox: bool = False, python_path: tuple[str, ...] = (),
                 visible: tuple[str, ...] = ()) -> None:
        self.conn, child = context.Pipe()
        saved = {k: os.environ.get(k) for k in THREAD_VARS}
        # inherited at spawn and by a fork server started now; passed on in any case
        os.environ.update({k: str(threads) for k in THREAD_VARS})
        try:
            self.process = context.Process(target=_worker_main, daemon=True,
                                           args=(child, threads, memory_limit_gb, os.getpid(),
                                                 sandbox, python_path, visible,
                                                 dict(os.environ)))
            self.process.start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        child.close()
        self.ready = False
        self.template: int | None = None  # pid of the worker's run template
        self.solver_pid: int | None = None  # the solver process of the current run
        self.task: RunTask | None = None
        self.header: dict | None = None
        self.trace: list[dict] = []
        self.started = 0.0
        self.evaluating = 0.0  # seconds spent evaluating so far (not the solver's)
        self.next_check = 0.0
        self.limit_reason = ""

    def submit(self, task: RunTask) -> None:
        self.task, self.header, self.trace, self.solver_pid = task, None, [], None
        self.started = time.monotonic()
        self.evaluating, self.next_check = 0.0, 0.0
        self.conn.send(task)

    def over_limit(self) -> bool:
        """Whether the run passed its hard limit (checked twice a second): the CPU seconds of
        its solver process and descendants, or the wall-clock backstop (:data:`WALL_BACKSTOP`
        x the limit x max(1, load per core), plus the time spent evaluating)."""
        now = time.monotonic()
        if self.task is None or now < self.next_check:
            return False
        self.next_check = now + 0.5
        limit = self.task.hard_timeout()
        if self.solver_pid is not None:
            used = cpu_seconds([self.solver_pid, *descendants(self.solver_pid)])
            if used > limit:
                self.limit_reason = (f"killed after {used:.1f} s of solver CPU time (the hard "
                                     f"limit is {limit:.0f} CPU s)")
                return True
        load = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
        wall = now - self.started - self.evaluating
        if wall > WALL_BACKSTOP * limit * load:
            self.limit_reason = (f"killed after {wall:.0f} s wall-clock without finishing (the "
                                 f"backstop: {WALL_BACKSTOP:g} x the {limit:.0f} CPU s limit x "
                                 f"load {load:.1f})")
            return True
        return False

    def partial_record(self, status: str, message: str) -> dict[str, Any]:
        """A record from what the worker streamed before it stopped answering."""
        assert self.task is not None
        header = self.header or record_header(self.task)
        kind = {"timeout": "Timeout", "oom": "OutOfMemory"}.get(status, "WorkerDied")
        error = {"type": kind, "message": message, "traceback": ""}
        return finish_record(header, self.trace, status, error, time.monotonic() - self.started)

    def stop(self, force: bool = False) -> None:
        """End the worker; forced: kill it, its run's process group, and wait (up to 5 s) until
        its template has killed every process of the run (its parent-death signal)."""
        if force or not self.process.is_alive():
            self.process.kill()
            if self.solver_pid is not None:
                killpg(self.solver_pid)
        else:
            try:
                self.conn.send(None)
            except OSError:
                self.process.kill()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        if self.template is not None:
            deadline = time.monotonic() + 5.0
            while alive(self.template) and time.monotonic() < deadline:
                time.sleep(0.01)
            if alive(self.template):  # last resort: it did not clean up in time
                for pid in [self.template, *descendants(self.template)]:
                    killpg(pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        self.conn.close()


class LocalPool:
    """A pool of local worker processes with hard per-run timeouts (see module docstring)."""

    def __init__(self, workers: int = 1, threads: int = 1,
                 memory_limit_gb: float | None = None, sandbox: bool = False,
                 python_path: Iterable[str] = (), visible: Iterable[str] = ()) -> None:
        if workers < 1:
            raise ValueError(f"need at least one worker, got {workers}")
        if sandbox:
            require_bwrap()
        self.workers, self.threads, self.memory_limit_gb = workers, threads, memory_limit_gb
        self.sandbox, self.python_path = sandbox, tuple(str(p) for p in python_path)
        self.visible = tuple(str(p) for p in visible)
        self.context = worker_context(threads)

    def _spawn(self) -> _Worker:
        return _Worker(self.context, self.threads, self.memory_limit_gb, self.sandbox,
                       self.python_path, self.visible)

    def map(self, tasks: Iterable[RunTask], on_record: OnRecord) -> None:
        """Run the tasks, taking each from ``tasks`` only when a worker is free for it (the
        iterable may be lazy: :func:`~bilevel_bench.matrix.run_matrix` claims tasks so)."""
        source = iter(tasks)
        pending: list[RunTask] = []

        def next_task() -> RunTask | None:
            if pending:
                return pending.pop()
            return next(source, None)

        pool: list[_Worker] = []
        first = next_task()
        if first is None:
            return
        pending.append(first)
        exhausted = False
        try:
            while True:
                for worker in pool:
                    if worker.ready and worker.task is None and (pending or not exhausted):
                        task = next_task()
                        if task is None:
                            exhausted = True
                        else:
                            worker.submit(task)
                if not exhausted and len(pool) < self.workers and all(
                        w.task is not None or not w.ready for w in pool):
                    task = next_task()
                    if task is None:
                        exhausted = True
                    else:
                        pending.append(task)
                        pool.append(self._spawn())
                if exhausted and not pending and all(w.task is None for w in pool):
                    break
                ready = wait([w.conn for w in pool if w.task is not None or not w.ready],
                             timeout=0.2)
                for worker in pool:
                    if not worker.ready and worker.conn in ready:
                        self._await_ready(worker)
                for i, worker in enumerate(pool):
                    if worker.task is None:
                        continue
                    if worker.conn in ready:
                        record = self._receive(worker)
                        if record is None:
                            continue
                    elif worker.over_limit():
                        record = worker.partial_record("timeout", worker.limit_reason)
                    else:
                        continue
                    alive = worker.process.is_alive() and record["status"] != "timeout" \
                        and not record.get("_worker_died")
                    record.pop("_worker_died", None)
                    worker.task = None
                    if not alive:
                        worker.stop(force=True)
                        pool[i] = self._spawn()
                    on_record(record)
        finally:
            for worker in pool:
                worker.stop(force=worker.task is not None)

    @staticmethod
    def _await_ready(worker: _Worker) -> None:
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError) as exc:
            raise RuntimeError(
                f"a worker process failed to start (exit code {worker.process.exitcode}); "
                "run with --backend inline to see the error") from exc
        worker.ready = kind == "ready"
        worker.template = payload

    def _receive(self, worker: _Worker) -> dict[str, Any] | None:
        """Handle one message; returns the finished record, or None if the run goes on."""
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=5)
            code = worker.process.exitcode
            record = worker.partial_record(
                "error", f"the worker (evaluator) process died (exit code {code})")
            record["_worker_died"] = True
            return record
        if kind == "header":
            worker.header = payload
        elif kind == "checkpoint":
            worker.trace.append(payload)
        elif kind == "evaluation":  # evaluating is not the solver's time: not on the backstop
            worker.evaluating += payload
        elif kind == "solver_pid":
            worker.solver_pid = payload
        elif kind == "record":
            return payload
        return None


def _run_isolated(task: RunTask, threads: int, memory_limit_gb: float | None,
                  sandbox: bool = False) -> dict:
    """Run one task in a fresh child process of the calling process, contained as in
    :class:`LocalPool` (used on Dask workers and in submitit jobs)."""
    records: list[dict] = []
    LocalPool(workers=1, threads=threads, memory_limit_gb=memory_limit_gb, sandbox=sandbox,
              visible=plugin_folders([task.solver])).map([task], records.append)
    return records[0]


def plugin_folders(specs: Iterable[str]) -> list[str]:
    """The folders of path plugins (``path/to/file.py:Class``), for the sandbox to show."""
    return sorted({os.path.dirname(os.path.realpath(spec.rpartition(":")[0]))
                   for spec in specs if ".py:" in spec})


def lost_record(task: RunTask, message: str) -> dict[str, Any]:
    """The record of a run whose remote worker or job was lost before it sent its record."""
    error = {"type": "WorkerDied", "message": message, "traceback": ""}
    return finish_record(record_header(task), [], "error", error, 0.0)


class NoWorkerError(RuntimeError):
    """A cluster with no worker left to run the remaining tasks."""


class DaskExecutor:
    """Runs each task on a Dask cluster (``address`` of a scheduler, or a local cluster of
    ``workers`` processes when ``address`` is None). On the Dask worker every run still lives in
    its own child process with the hard timeout of :class:`LocalPool`, and records are written
    on the client side. Start remote workers with ``DASK_DISTRIBUTED__WORKER__DAEMON=False``
    (daemonic processes may not start the run's child process) and ``--nthreads 1``.

    ``no_worker_timeout``: when the cluster has had no worker for this many seconds while runs
    remain, :meth:`map` cancels them and raises :class:`NoWorkerError` (instead of waiting
    forever); ``connect_timeout`` bounds the connection to the scheduler. A worker that dies
    takes its runs' processes with it (parent-death signals down the chain); Dask retries
    the run elsewhere, and a run it gives up on is recorded as an error.
    """

    def __init__(self, address: str | None = None, workers: int = 1, threads: int = 1,
                 memory_limit_gb: float | None = None, sandbox: bool = False,
                 no_worker_timeout: float = 120.0, connect_timeout: float = 30.0) -> None:
        try:
            import dask
            from distributed import Client
        except ImportError as exc:
            raise ValueError("the dask backend needs `pip install 'bilevel-bench[dask]'`") from exc
        if sandbox:
            require_bwrap()
        self.threads, self.memory_limit_gb, self.sandbox = threads, memory_limit_gb, sandbox
        self.no_worker_timeout = no_worker_timeout
        if address is None:
            from distributed import LocalCluster

            with dask.config.set({"distributed.worker.daemon": False}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                            processes=True, dashboard_address=None)
            self.client = Client(self.cluster, timeout=connect_timeout)
        else:
            self.cluster = None
            try:
                self.client = Client(address, timeout=connect_timeout)
            except OSError as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {address!r} within "
                                 f"{connect_timeout:g} s: {exc}") from exc

    def _workers(self) -> int:
        try:
            return len(self.client.scheduler_info().get("workers", {}))
        except Exception:  # noqa: BLE001 - a scheduler that does not answer has no worker
            return 0

    def map(self, tasks: Iterable[RunTask], on_record: OnRecord) -> None:
        from distributed import wait as dask_wait

        submitted = {}
        for task in tasks:
            future = self.client.submit(_run_isolated, task, self.threads,
                                        self.memory_limit_gb, self.sandbox, pure=False)
            submitted[future] = task
        pending = set(submitted)
        idle_since: float | None = None
        try:
            while pending:
                try:
                    done, _ = dask_wait(list(pending), timeout=1.0, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                for future in done:
                    pending.discard(future)
                    try:
                        record = future.result()
                    except Exception as exc:  # noqa: BLE001 - KilledWorker, a lost worker
                        record = lost_record(submitted[future], f"the Dask worker running it "
                                             f"was lost: {type(exc).__name__}: {safe_str(exc)}")
                    on_record(record)
                if not pending:
                    break
                if self._workers():
                    idle_since = None
                    continue
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > self.no_worker_timeout:
                    raise NoWorkerError(
                        f"no Dask worker left for {self.no_worker_timeout:g} s with "
                        f"{len(pending)} run(s) to go: start workers for the scheduler or run "
                        "again later (recorded runs are kept; the next call resumes)")
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class SubmititExecutor:
    """Runs each task as a SLURM job through submitit (``cluster="local"``: local processes,
    for tests; ``None``: SLURM where ``sbatch`` exists, else local). In the job, the run is
    contained as in :class:`LocalPool` (its own process group, parent-death signals, an
    evaluator outside the solver process, bubblewrap with ``sandbox``); records are written
    here. ``folder`` keeps submitit's logs and pickles; ``slurm`` passes ``slurm_*``
    parameters (partition, account...) through."""

    def __init__(self, folder: str | os.PathLike, workers: int = 1, threads: int = 1,
                 memory_limit_gb: float | None = None, sandbox: bool = False,
                 cluster: str | None = None, poll: float = 0.5, **slurm: Any) -> None:
        try:
            import submitit
        except ImportError as exc:
            raise ValueError("the submitit backend needs `pip install "
                             "'bilevel-bench[slurm]'`") from exc
        if sandbox:
            require_bwrap()
        self.threads, self.memory_limit_gb, self.sandbox = threads, memory_limit_gb, sandbox
        self.poll = poll
        self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        params: dict[str, Any] = {"cpus_per_task": threads, "tasks_per_node": 1, "nodes": 1,
                                  "name": "bilevel-bench", **slurm}
        if memory_limit_gb:
            params["mem_gb"] = memory_limit_gb * 1.25 + 1  # the evaluator beside the solver
        if self.executor.cluster == "slurm":
            params["slurm_array_parallelism"] = workers
        self.executor.update_parameters(**params)

    def map(self, tasks: Iterable[RunTask], on_record: OnRecord) -> None:
        jobs = []
        for task in tasks:
            # the job's limit: the run's hard timeout (its evaluation on top) plus start-up
            self.executor.update_parameters(
                timeout_min=int(task.hard_timeout() * WALL_BACKSTOP / 60) + 5)
            jobs.append((task, self.executor.submit(_run_isolated, task, self.threads,
                                                    self.memory_limit_gb, self.sandbox)))
        try:
            while jobs:
                still = []
                for task, job in jobs:
                    if not job.done():
                        still.append((task, job))
                        continue
                    try:
                        record = job.result()
                    except Exception as exc:  # noqa: BLE001 - a failed or killed job
                        record = lost_record(task, f"the submitit job {job.job_id} failed: "
                                             f"{type(exc).__name__}: "
                                             f"{safe_str(exc).splitlines()[0][:500]}")
                    on_record(record)
                jobs = still
                if jobs:
                    time.sleep(self.poll)
        finally:
            for _task, job in jobs:
                try:
                    job.cancel(check=False)
                except Exception:  # noqa: BLE001
                    pass

    def close(self) -> None:
        pass


def make_executor(backend: str = "local", workers: int = 1, threads: int = 1,
                  memory_limit_gb: float | None = None, address: str | None = None,
                  sandbox: bool = False, folder: str | os.PathLike | None = None,
                  visible: Iterable[str] = ()) -> Any:
    """An executor by name: ``inline``, ``local`` (default), ``dask`` or ``submitit``
    (``address``, else ``folder``: its log folder; ``BILEVEL_BENCH_SUBMITIT_CLUSTER=local``
    runs its jobs as local processes)."""
    if backend == "inline":
        if sandbox:
            raise ValueError("--sandbox needs a contained backend (local, dask or submitit)")
        return InlineExecutor(threads=threads)
    if backend == "local":
        return LocalPool(workers=workers, threads=threads, memory_limit_gb=memory_limit_gb,
                         sandbox=sandbox, visible=visible)
    if backend == "dask":
        return DaskExecutor(address=address, workers=workers, threads=threads,
                            memory_limit_gb=memory_limit_gb, sandbox=sandbox)
    if backend == "submitit":
        return SubmititExecutor(address or folder or ".submitit", workers=workers,
                                threads=threads, memory_limit_gb=memory_limit_gb,
                                sandbox=sandbox,
                                cluster=os.environ.get("BILEVEL_BENCH_SUBMITIT_CLUSTER") or None)
    raise ValueError(f"unknown backend {backend!r}: choose inline, local, dask or submitit")
