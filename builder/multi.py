"""Build several targets concurrently: live progress per target, a log file each, a summary.

One failing target does not stop the others; each outcome says what happened.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from builder.errors import MuslPbsError
from builder.plan import Target

# (target, reporter) -> archive path built (and verified, if asked)
TargetJob = Callable[[Target, "LogReporter"], Path]


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

    @property
    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started


class LogReporter:
    """A target's reporter: everything to its log file, the stage to the live display."""

    def __init__(self, outcome: Outcome, log: TextIO, cancel: threading.Event) -> None:
        self._outcome = outcome
        self._log = log
        self._cancel = cancel
        self._start = time.monotonic()

    def _write(self, text: str) -> None:
        if self._cancel.is_set():
            raise KeyboardInterrupt  # unwinds the build: its container is removed
        self._log.write(f"{time.monotonic() - self._start:7.1f}s {text}\n")
        self._log.flush()

    def stage(self, name: str, message: str) -> None:
        self._outcome.stage, self._outcome.message = name, message
        self._write(f"[{name}] {message}")

    def detail(self, message: str) -> None:
        self._outcome.message = message
        self._write(f"          {message}")

    def output(self, line: str) -> None:
        self._write(f"        | {line}")


@dataclass
class Runner:
    targets: list[Target]
    job: TargetJob
    jobs: int
    logs_dir: Path
    console: Console = field(default_factory=lambda: Console(stderr=True))

    def _run_one(self, outcome: Outcome, cancel: threading.Event) -> None:
        outcome.state, outcome.started = "running", time.monotonic()
        with outcome.log.open("w") as log:
            reporter = LogReporter(outcome, log, cancel)
            try:
                outcome.archive = self.job(outcome.target, reporter)
                outcome.state = "ok"
            except KeyboardInterrupt:
                outcome.state, outcome.error = "cancelled", "interrupted"
            except MuslPbsError as e:
                outcome.state, outcome.error = "failed", e.message.splitlines()[0]
                log.write(f"error: {e.message}\n" + (f"hint: {e.hint}\n" if e.hint else ""))
            except Exception as e:  # a bug must not take the other targets down
                outcome.state, outcome.error = "failed", f"{type(e).__name__}: {e}"
                log.write(traceback.format_exc())
            finally:
                outcome.finished = time.monotonic()

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
        cancel = threading.Event()
        pool = ThreadPoolExecutor(max_workers=max(1, self.jobs), thread_name_prefix="build")
        futures: list[Future[None]] = []
        try:
            with Live(self._table(outcomes), console=self.console, refresh_per_second=2,
                      transient=False) as live:
                futures = [pool.submit(self._run_one, o, cancel) for o in outcomes]
                while not all(f.done() for f in futures):
                    time.sleep(0.5)
                    live.update(self._table(outcomes))
                live.update(self._table(outcomes))
        except KeyboardInterrupt:
            cancel.set()
            for f in futures:
                f.cancel()
            pool.shutdown(wait=True)
            raise
        pool.shutdown(wait=True)
        return outcomes


def summary(outcomes: list[Outcome]) -> Table:
    table = Table("target", "result", "time", "archive / error", "log", title="summary")
    for o in outcomes:
        result = "[green]ok[/]" if o.state == "ok" else f"[red]{o.state}[/]"
        what = str(o.archive) if o.archive else o.error
        table.add_row(o.target.name, result, f"{o.seconds:.0f}s", escape(what), str(o.log))
    return table
