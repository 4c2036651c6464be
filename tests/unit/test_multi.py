"""Concurrent targets in worker processes: a failing target does not stop the others; each
has its log; Ctrl-C reaches the running builds."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from builder.config import load_matrix
from builder.errors import StageError
from builder.multi import Built, LogReporter, Runner, summary
from builder.plan import Target, select


def _targets() -> list[Target]:
    return select(load_matrix(), ["3.22:x86_64", "3.22:aarch64", "3.22:armv7"])


def test_failures_are_isolated(tmp_path: Path) -> None:
    def job(target: Target, reporter: LogReporter) -> Built:
        reporter.stage("acquire", f"pretending to build {target.name}")
        reporter.output("apk output line")
        if target.arch.alpine == "aarch64":
            raise StageError("no interpreter in the export", hint="check the recipe")
        if target.arch.alpine == "armv7":
            raise RuntimeError("a bug")
        return Built(tmp_path / f"{target.arch.alpine}.tar.gz", {"pid": os.getpid()})

    console = Console(file=io.StringIO(), width=200)
    runner = Runner(_targets(), job, 2, tmp_path / "logs", console)
    outcomes = runner.run()
    states = {o.target.name: o.state for o in outcomes}
    assert states == {"3.22:x86_64": "ok", "3.22:aarch64": "failed", "3.22:armv7": "failed"}
    by_name = {o.target.name: o for o in outcomes}
    assert by_name["3.22:x86_64"].archive == tmp_path / "x86_64.tar.gz"
    # Built in a worker process, and its report came back to the parent.
    assert by_name["3.22:x86_64"].report["pid"] in runner.worker_pids
    assert os.getpid() not in runner.worker_pids and len(runner.worker_pids) == 2
    assert "no interpreter" in by_name["3.22:aarch64"].error
    log = by_name["3.22:aarch64"].log.read_text()
    assert "pretending to build 3.22:aarch64" in log and "hint: check the recipe" in log
    assert "apk output line" in log
    assert "RuntimeError: a bug" in by_name["3.22:armv7"].log.read_text()
    out = Console(file=io.StringIO(), width=200)
    out.print(summary(outcomes))
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "3.22:aarch64" in text and "failed" in text


def test_targets_run_in_parallel_processes(tmp_path: Path) -> None:
    """Two CPU-bound targets at --jobs 2 run in two processes at the same time."""
    def job(target: Target, reporter: LogReporter) -> Built:
        start = time.monotonic()
        while time.monotonic() - start < 0.5:
            pass  # holds the GIL: only separate processes overlap
        return Built(tmp_path / target.name, {"span": (start, time.monotonic())})

    outcomes = Runner(_targets()[:2], job, 2, tmp_path / "logs",
                      Console(file=io.StringIO())).run()
    (a0, a1), (b0, b1) = (o.report["span"] for o in outcomes)
    assert max(a0, b0) < min(a1, b1)  # the two spans overlap


def test_a_worker_that_dies_fails_its_target_only(tmp_path: Path) -> None:
    def job(target: Target, reporter: LogReporter) -> Built:
        if target.arch.alpine == "aarch64":
            os.kill(os.getpid(), signal.SIGKILL)
        return Built(tmp_path / target.name)

    outcomes = Runner(_targets(), job, 2, tmp_path / "logs", Console(file=io.StringIO())).run()
    states = {o.target.name: (o.state, o.error) for o in outcomes}
    assert states["3.22:aarch64"][0] == "failed"
    assert "worker process died" in states["3.22:aarch64"][1]
    assert states["3.22:x86_64"][0] == "ok" and states["3.22:armv7"][0] == "ok"


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_cancels_running_targets(tmp_path: Path) -> None:
    def job(target: Target, reporter: LogReporter) -> Built:
        try:
            while True:  # a long build that keeps reporting output
                reporter.output("still going")
                time.sleep(0.01)
        finally:  # where a build removes its container
            (tmp_path / f"cleaned-{os.getpid()}").write_text(target.name)

    runner = Runner(_targets()[:2], job, 2, tmp_path / "logs", Console(file=io.StringIO()))

    def interrupt_soon() -> None:
        time.sleep(1.0)
        import _thread

        _thread.interrupt_main()

    threading.Thread(target=interrupt_soon).start()
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    cleaned = sorted(p.name for p in tmp_path.glob("cleaned-*"))
    assert cleaned == sorted(f"cleaned-{pid}" for pid in runner.worker_pids)
