"""Where runs execute: in this process, in a pool of local worker processes, or on a Dask cluster.

A run is a pure task (:class:`~bilevel_bench.runner.RunTask`) -> record, so every executor has
one method, ``map(tasks, on_record)``, that calls ``on_record(record)`` as each run finishes.

:class:`LocalPool` (the default) keeps ``workers`` child processes (spawned, with BLAS/OpenMP/
torch threads pinned to ``threads`` each) and gives each run a hard wall-clock deadline. A worker
streams its checkpoints to the parent as they happen, so when a run hangs (deadline passed: the
worker is killed, status ``timeout``), crashes the interpreter (status ``error``) or is killed
for memory (status ``oom``), the record keeps everything measured up to that point; the worker
is replaced and the matrix goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import signal
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from typing import Any

from bilevel_bench.runner import RunTask, execute, finish_record, record_header

OnRecord = Callable[[dict[str, Any]], None]
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class InlineExecutor:
    """Runs tasks one after the other in this process (no isolation, no hard timeout): for
    debugging. Pins this process's threads like a worker's."""

    def __init__(self, threads: int = 1) -> None:
        from bilevel_bench.provenance import pin_threads

        pin_threads(threads)

    def map(self, tasks: Iterable[RunTask], on_record: OnRecord) -> None:
        for task in tasks:
            on_record(execute(task))


def _worker_main(conn: Connection, threads: int, memory_limit_gb: float | None) -> None:
    """Body of a worker process: receive tasks, stream events, send records."""
    from bilevel_bench.provenance import pin_threads

    pin_threads(threads)
    if memory_limit_gb:
        limit = int(memory_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    conn.send(("ready", None))  # start-up (imports) does not count against a run's timeout
    while True:
        task = conn.recv()
        if task is None:
            return
        record = execute(task, emit=lambda kind, payload: conn.send((kind, payload)))
        conn.send(("record", record))


class _Worker:
    def __init__(self, context: Any, threads: int, memory_limit_gb: float | None) -> None:
        self.conn, child = context.Pipe()
        saved = {k: os.environ.get(k) for k in THREAD_VARS}
        os.environ.update({k: str(threads) for k in THREAD_VARS})  # inherited at spawn
        try:
            self.process = context.Process(target=_worker_main, daemon=True,
                                           args=(child, threads, memory_limit_gb))
            self.process.start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        child.close()
        self.ready = False
        self.task: RunTask | None = None
        self.header: dict | None = None
        self.trace: list[dict] = []
        self.started = 0.0
        self.deadline = float("inf")

    def submit(self, task: RunTask) -> None:
        self.task, self.header, self.trace = task, None, []
        self.started = time.monotonic()
        self.deadline = self.started + task.hard_timeout()
        self.conn.send(task)

    def partial_record(self, status: str, message: str) -> dict[str, Any]:
        """A record from what the worker streamed before it stopped answering."""
        assert self.task is not None
        header = self.header or record_header(self.task)
        kind = {"timeout": "Timeout", "oom": "OutOfMemory"}.get(status, "WorkerDied")
        error = {"type": kind, "message": message, "traceback": ""}
        return finish_record(header, self.trace, status, error, time.monotonic() - self.started)

    def stop(self, force: bool = False) -> None:
        if force or not self.process.is_alive():
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class LocalPool:
    """A pool of local worker processes with hard per-run timeouts (see module docstring)."""

    def __init__(self, workers: int = 1, threads: int = 1,
                 memory_limit_gb: float | None = None) -> None:
        if workers < 1:
            raise ValueError(f"need at least one worker, got {workers}")
        self.workers, self.threads, self.memory_limit_gb = workers, threads, memory_limit_gb
        self.context = mp.get_context("spawn")

    def _spawn(self) -> _Worker:
        return _Worker(self.context, self.threads, self.memory_limit_gb)

    def map(self, tasks: Iterable[RunTask], on_record: OnRecord) -> None:
        queue = list(tasks)[::-1]
        pool = [self._spawn() for _ in range(min(self.workers, len(queue)))]
        try:
            while queue or any(w.task is not None for w in pool):
                for worker in pool:
                    if worker.ready and worker.task is None and queue:
                        worker.submit(queue.pop())
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
                    elif time.monotonic() > worker.deadline:
                        record = worker.partial_record(
                            "timeout", f"killed after the hard timeout of "
                            f"{worker.task.hard_timeout():.0f} s wall-clock")
                    else:
                        continue
                    alive = worker.process.is_alive() and record["status"] not in (
                        "timeout", "oom") and not record.get("_worker_died")
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
            kind, _ = worker.conn.recv()
        except (EOFError, OSError) as exc:
            raise RuntimeError(
                f"a worker process failed to start (exit code {worker.process.exitcode}); "
                "run with --backend inline to see the error") from exc
        worker.ready = kind == "ready"

    def _receive(self, worker: _Worker) -> dict[str, Any] | None:
        """Handle one message; returns the finished record, or None if the run goes on."""
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=5)
            code = worker.process.exitcode
            if code == -signal.SIGKILL:
                status, why = "oom", "worker killed by SIGKILL (most likely out of memory)"
            else:
                status, why = "error", f"worker process died (exit code {code})"
            record = worker.partial_record(status, why)
            record["_worker_died"] = True
            return record
        if kind == "header":
            worker.header = payload
        elif kind == "checkpoint":
            worker.trace.append(payload)
        elif kind == "evaluation":  # evaluating is not the solver's time: extend the deadline
            worker.deadline += payload
        elif kind == "record":
            return payload
        return None


def _run_isolated(task: RunTask, threads: int, memory_limit_gb: float | None) -> dict:
    """Run one task in a fresh child process of the calling process (used on Dask workers)."""
    records: list[dict] = []
    LocalPool(workers=1, threads=threads, memory_limit_gb=memory_limit_gb).map(
        [task], records.append)
    return records[0]


class DaskExecutor:
    """Runs each task on a Dask cluster (``address`` of a scheduler, or a local cluster of
    ``workers`` processes when ``address`` is None). On the Dask worker every run still lives in
    its own child process with the hard timeout of :class:`LocalPool`, and records are written
    on the client side. Start remote workers with ``DASK_DISTRIBUTED__WORKER__DAEMON=False``
    (daemonic processes may not start the run's child process) and ``--nthreads 1``.
    """

    def __init__(self, address: str | None = None, workers: int = 1, threads: int = 1,
                 memory_limit_gb: float | None = None) -> None:
        try:
            import dask
            from distributed import Client
        except ImportError as exc:
            raise ValueError("the dask backend needs `pip install 'bilevel-bench[dask]'`") from exc
        self.threads, self.memory_limit_gb = threads, memory_limit_gb
        if address is None:
            from distributed import LocalCluster

            with dask.config.set({"distributed.worker.daemon": False}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                            processes=True, dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            self.cluster = None
            self.client = Client(address)

    def map(self, tasks: Iterable[RunTask], on_record: OnRecord) -> None:
        from distributed import as_completed

        futures = [self.client.submit(_run_isolated, task, self.threads, self.memory_limit_gb,
                                      pure=False) for task in tasks]
        for future in as_completed(futures):
            on_record(future.result())

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(backend: str = "local", workers: int = 1, threads: int = 1,
                  memory_limit_gb: float | None = None, address: str | None = None) -> Any:
    """An executor by name: ``inline``, ``local`` (default) or ``dask``."""
    if backend == "inline":
        return InlineExecutor(threads=threads)
    if backend == "local":
        return LocalPool(workers=workers, threads=threads, memory_limit_gb=memory_limit_gb)
    if backend == "dask":
        return DaskExecutor(address=address, workers=workers, threads=threads,
                            memory_limit_gb=memory_limit_gb)
    raise ValueError(f"unknown backend {backend!r}: choose inline, local or dask")
