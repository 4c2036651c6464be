"""Build several targets at once, each in a worker process: live progress per target, a log
file each, a summary.

Processes, not threads: extraction and tar writing are pure Python and hold the GIL, so
threads could not build two targets on two cores. The workers are forked before anything
else starts a thread (the live display comes after), take target numbers from the parent
one at a time, write their target's log themselves and send the parent only what the live
display and the summary show. One failing target does not stop the others. On Ctrl-C every
worker gets SIGINT, which unwinds its build (its container is removed in ``finally``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TextIO, cast

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from builder.errors import MuslPbsError
from builder.plan import Target

STOP_GRACE = 60.0  # seconds a worker has to remove its container after SIGINT


@dataclass(frozen=True)
class Built:
    """What a target's job returns: the archive and anything for the report (picklable)."""

    archive: Path
    report: dict[str, Any] = field(default_factory=dict)


# (target, reporter) -> what was built (and verified, if asked); runs in a worker process
TargetJob = Callable[[Target, "LogReporter"], Built]


@dataclass
class Outcome:
    target: Target
    log: Path
    state: str = "waiting"  # waiting, running, ok, failed, cancelled
    stage: str = ""
    message: str = ""
    started: float | None = None
    finished: float | None = None
    archive: Path | None = None
    error: str = ""
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started


class LogReporter:
    """A target's reporter in its worker: everything to its log file, the stage and the
    latest message to the parent's live display."""

    def __init__(self, index: int, log: TextIO, conn: Connection) -> None:
        self._index = index
        self._log = log
        self._conn = conn
        self._start = time.monotonic()

    def _write(self, text: str) -> None:
        self._log.write(f"{time.monotonic() - self._start:7.1f}s {text}\n")
        self._log.flush()

    def stage(self, name: str, message: str) -> None:
        self._conn.send(("stage", self._index, name, message))
        self._write(f"[{name}] {message}")

    def detail(self, message: str) -> None:
        self._conn.send(("detail", self._index, message))
        self._write(f"          {message}")

    def output(self, line: str) -> None:
        self._write(f"        | {line}")


def _run_job(job: TargetJob, index: int, target: Target, log_path: Path,
             conn: Connection) -> tuple[str, str, Built | None]:
    """One target in a worker: (state, error, built)."""
    with log_path.open("w") as log:
        try:
            return "ok", "", job(target, LogReporter(index, log, conn))
        except KeyboardInterrupt:
            log.write("interrupted\n")
            return "cancelled", "interrupted", None
        except MuslPbsError as e:
            log.write(f"error: {e.message}\n" + (f"hint: {e.hint}\n" if e.hint else ""))
            return "failed", e.message.splitlines()[0], None
        except Exception as e:  # a bug must not take the other targets down
            log.write(traceback.format_exc())
            return "failed", f"{type(e).__name__}: {e}", None


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt_once(signum: int, frame: object) -> None:
    """The first stop signal unwinds the build; later ones (the terminal's Ctrl-C reaches
    the workers, then the parent's SIGINT follows) must not interrupt the container's
    removal."""
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker(job: TargetJob, targets: list[Target], logs: list[Path], conn: Connection) -> None:
    """A worker process: build the target numbers the parent sends until it sends None."""
    for s in _STOP_SIGNALS:
        signal.signal(s, _interrupt_once)
    try:
        while (index := conn.recv()) is not None:
            conn.send(("start", index))
            state, error, built = _run_job(job, index, targets[index], logs[index], conn)
            conn.send(("done", index, state, error, built))
            if state == "cancelled":
                return
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return  # interrupted between targets, or the parent has gone


Workers = dict[Connection, tuple[BaseProcess, int | None]]  # pipe -> (process, its target)


@dataclass
class Runner:
    targets: list[Target]
    job: TargetJob
    jobs: int
    logs_dir: Path
    console: Console = field(default_factory=lambda: Console(stderr=True))
    worker_pids: list[int] = field(default_factory=list)  # for tests and cleanups

    def _table(self, outcomes: list[Outcome]) -> Table:
        table = Table("target", "state", "stage", "elapsed", "detail")
        colour = {"ok": "green", "failed": "red", "running": "cyan", "cancelled": "yellow"}
        for o in outcomes:
            c = colour.get(o.state, "dim")
            detail = o.error if o.state == "failed" else o.message
            table.add_row(o.target.name, f"[{c}]{o.state}[/]", o.stage,
                          f"{o.seconds:5.0f}s", escape(detail[:70]))
        return table

    def run(self) -> list[Outcome]:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        outcomes = [
            Outcome(t, self.logs_dir / f"{t.release}-{t.arch.alpine}.log") for t in self.targets
        ]
        logs = [o.log for o in outcomes]
        ctx = multiprocessing.get_context("fork")  # the job is a closure: inherit, not pickle
        workers: Workers = {}
        for _ in range(max(1, min(self.jobs, len(outcomes)))):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(self.job, self.targets, logs, child_end),
                               name="musl-pbs-build", daemon=True)
            proc.start()
            child_end.close()
            self.worker_pids.append(proc.pid or 0)
            workers[parent_end] = (proc, None)
        pending = list(range(len(outcomes)))
        try:
            for conn in list(workers):
                self._hand_out(conn, workers, pending)
            with Live(self._table(outcomes), console=self.console, refresh_per_second=2,
                      transient=False) as live:
                while workers:
                    for ready in wait(list(workers), timeout=0.5):
                        self._receive(cast(Connection, ready), workers, pending, outcomes)
                    live.update(self._table(outcomes))
                for index in pending:  # every worker died: nobody left to build these
                    outcomes[index].state, outcomes[index].error = "failed", "no worker left"
                live.update(self._table(outcomes))
        except KeyboardInterrupt:
            self._stop(workers, outcomes)
            raise
        return outcomes

    def _hand_out(self, conn: Connection, workers: Workers,
                  pending: list[int]) -> None:
        proc, _ = workers[conn]
        index = pending.pop(0) if pending else None
        try:
            conn.send(index)
        except (BrokenPipeError, ConnectionResetError):
            if index is not None:
                pending.insert(0, index)
            return
        workers[conn] = (proc, index)

    def _receive(self, conn: Connection, workers: Workers,
                 pending: list[int], outcomes: list[Outcome]) -> None:
        proc, current = workers[conn]
        try:
            msg = conn.recv()
        except (EOFError, ConnectionResetError):  # the worker exited (or was killed)
            proc.join()
            del workers[conn]
            if current is not None and outcomes[current].state in ("waiting", "running"):
                o = outcomes[current]
                o.state, o.finished = "failed", time.monotonic()
                o.error = f"worker process died (exit code {proc.exitcode})"
            return
        kind, index = msg[0], msg[1]
        o = outcomes[index]
        if kind == "start":
            o.state, o.started = "running", time.monotonic()
        elif kind == "stage":
            o.stage, o.message = msg[2], msg[3]
        elif kind == "detail":
            o.message = msg[2]
        elif kind == "done":
            o.state, o.error, o.finished = msg[2], msg[3], time.monotonic()
            built: Built | None = msg[4]
            if built is not None:
                o.archive, o.report = built.archive, built.report
            if o.state != "cancelled":
                self._hand_out(conn, workers, pending)

    def _stop(self, workers: Workers,
              outcomes: list[Outcome]) -> None:
        """SIGINT every worker, give each time to remove its container, then make sure."""
        for proc, _ in workers.values():
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE
        for proc, _ in workers.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        for o in outcomes:
            if o.state in ("waiting", "running"):
                o.state, o.error = "cancelled", "interrupted"
                o.finished = o.finished or time.monotonic()


def summary(outcomes: list[Outcome]) -> Table:
    table = Table("target", "result", "time", "archive / error", "log", title="summary")
    for o in outcomes:
        result = "[green]ok[/]" if o.state == "ok" else f"[red]{o.state}[/]"
        what = str(o.archive) if o.archive else o.error
        table.add_row(o.target.name, result, f"{o.seconds:.0f}s", escape(what), str(o.log))
    return table
