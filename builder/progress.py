"""Progress for long steps: stage lines with elapsed time, streamed command output."""

from __future__ import annotations

import time
from typing import Protocol

from rich.console import Console
from rich.markup import escape


class Reporter(Protocol):
    def stage(self, name: str, message: str) -> None: ...
    def detail(self, message: str) -> None: ...
    def output(self, line: str) -> None: ...


class ConsoleReporter:
    """Human progress on stderr. ``verbose`` streams command output as it comes."""

    def __init__(self, console: Console | None = None, *, verbose: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.verbose = verbose
        self._start = time.monotonic()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._start:6.1f}s"

    def stage(self, name: str, message: str) -> None:
        self.console.print(
            f"[dim]{self._elapsed()}[/] [bold cyan]{name:>8}[/] {escape(message)}",
            highlight=False,
        )

    def detail(self, message: str) -> None:
        self.console.print(f"[dim]{self._elapsed()}[/]          {escape(message)}",
                           highlight=False)

    def output(self, line: str) -> None:
        if self.verbose:
            self.console.print(f"[dim]         | {escape(line)}[/]", highlight=False)


class NullReporter:
    def stage(self, name: str, message: str) -> None:
        pass

    def detail(self, message: str) -> None:
        pass

    def output(self, line: str) -> None:
        pass


class StepTimer:
    """Passes everything on to ``inner`` and times the steps: each ``stage`` call starts a
    step that ends where the next one starts (or at :meth:`finish`)."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self._steps: list[tuple[str, str, float]] = []
        self._start = time.monotonic()

    def stage(self, name: str, message: str) -> None:
        self._steps.append((name, message, time.monotonic()))
        self.inner.stage(name, message)

    def detail(self, message: str) -> None:
        self.inner.detail(message)

    def output(self, line: str) -> None:
        self.inner.output(line)

    def finish(self) -> list[dict[str, str | float]]:
        """The steps so far as ``{"stage", "step", "seconds"}``, then the total."""
        end = time.monotonic()
        ends = [t for _, _, t in self._steps[1:]] + [end]
        out: list[dict[str, str | float]] = [
            {"stage": name, "step": message, "seconds": round(stop - start, 3)}
            for (name, message, start), stop in zip(self._steps, ends, strict=True)
        ]
        out.append({"stage": "total", "step": "", "seconds": round(end - self._start, 3)})
        return out
