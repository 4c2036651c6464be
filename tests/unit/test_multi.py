"""Concurrent targets: a failing target does not stop the others; each has its log."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from builder.config import load_matrix
from builder.errors import StageError
from builder.multi import LogReporter, Runner, summary
from builder.plan import Target, select


def _targets() -> list[Target]:
    return select(load_matrix(), ["3.19:x86_64", "3.19:aarch64", "3.19:armv7"])


def test_failures_are_isolated(tmp_path: Path) -> None:
    def job(target: Target, reporter: LogReporter) -> Path:
        reporter.stage("acquire", f"pretending to build {target.name}")
        reporter.output("apk output line")
        if target.arch.alpine == "aarch64":
            raise StageError("no interpreter in the export", hint="check the recipe")
        if target.arch.alpine == "armv7":
            raise RuntimeError("a bug")
        return tmp_path / f"{target.arch.alpine}.tar.gz"

    console = Console(file=io.StringIO(), width=200)
    outcomes = Runner(_targets(), job, 2, tmp_path / "logs", console).run()
    states = {o.target.name: o.state for o in outcomes}
    assert states == {"3.19:x86_64": "ok", "3.19:aarch64": "failed", "3.19:armv7": "failed"}
    by_name = {o.target.name: o for o in outcomes}
    assert by_name["3.19:x86_64"].archive == tmp_path / "x86_64.tar.gz"
    assert "no interpreter" in by_name["3.19:aarch64"].error
    log = by_name["3.19:aarch64"].log.read_text()
    assert "pretending to build 3.19:aarch64" in log and "hint: check the recipe" in log
    assert "RuntimeError: a bug" in by_name["3.19:armv7"].log.read_text()
    out = Console(file=io.StringIO(), width=200)
    out.print(summary(outcomes))
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "3.19:aarch64" in text and "failed" in text


def test_ctrl_c_cancels_running_targets(tmp_path: Path) -> None:
    import threading

    started = threading.Event()

    def job(target: Target, reporter: LogReporter) -> Path:
        started.set()
        while True:  # a long build that keeps reporting output
            reporter.output("still going")

    runner = Runner(_targets()[:1], job, 1, tmp_path / "logs", Console(file=io.StringIO()))

    def interrupt_soon() -> None:
        started.wait(5)
        import _thread

        _thread.interrupt_main()

    threading.Thread(target=interrupt_soon).start()
    with pytest.raises(KeyboardInterrupt):
        runner.run()
